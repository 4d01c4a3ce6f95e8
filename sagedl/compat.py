"""The few shims that let one codebase run on Python 2.7 and 3.6+.

Each shim is named for the Python 3 concept and chosen by feature detection,
not by comparing version numbers.  tests/test_compat.py pins this list, so a
new shim is a conscious decision.
"""

from __future__ import absolute_import

import errno
import os
import sys
import time

PY2 = sys.version_info[0] == 2

# No http.client shim: it imports ssl and email at start-up, and the
# transport speaks HTTP itself (see transport.py).
try:  # Python 3
    from urllib.parse import (urlsplit as compat_urlsplit,
                              urljoin as compat_urljoin,
                              quote as compat_quote,
                              unquote as compat_unquote)
except ImportError:  # Python 2.7
    from urlparse import (urlsplit as compat_urlsplit,
                          urljoin as compat_urljoin)
    from urllib import quote as compat_quote, unquote as compat_unquote

try:
    compat_str = unicode  # noqa: F821 (Python 2)
    compat_text_types = (str, unicode)  # noqa: F821
    compat_integer_types = (int, long)  # noqa: F821 (JSON gives a long for a big number)
except NameError:
    compat_str = str
    compat_text_types = (str,)
    compat_integer_types = (int,)

# The first n bytes of a bytearray for os.write and hash updates, without a
# copy: the bytearray itself when n covers it (PyPy copies every slice it is
# given, not a whole bytearray: see pipeline.py), else a slice.  On 2.7
# os.write copies a memoryview (750 MB/s measured) but not a buffer (2.9 GB/s).
try:
    _slice = lambda buf, view, n: buffer(buf, 0, n)  # noqa: E731,F821
    buffer  # noqa: F821 - a NameError on Python 3 picks the memoryview slice
except NameError:
    _slice = lambda buf, view, n: view[:n]  # noqa: E731


def compat_buffer_slice(buf, view, n):
    return buf if n == len(buf) else _slice(buf, view, n)

# time.monotonic is 3.3+; on 2.7 wall-clock time is the best the stdlib offers.
compat_monotonic = getattr(time, "monotonic", time.time)

try:
    compat_shlex_quote = __import__("shlex").quote  # 3.3+
except AttributeError:
    compat_shlex_quote = __import__("pipes").quote


def compat_makedirs(path):
    """os.makedirs(path, exist_ok=True); exist_ok is 3.2+."""
    try:
        os.makedirs(path)
    except OSError as e:
        if e.errno != errno.EEXIST or not os.path.isdir(path):
            raise


def compat_replace(src, dst):
    """Atomic rename over an existing file: os.replace is 3.3+; on POSIX
    os.rename already replaces atomically."""
    getattr(os, "replace", os.rename)(src, dst)


COMPAT_NAMES = sorted(n for n in dir() if n.startswith("compat_")) + ["PY2"]
