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
# PyPy: its os module copies buffers, lacks os.splice and os.preadv on 3.9,
# and its garbage collector wants help (engine/pipeline.py, engine/nursery.py,
# sagedl/libc.py).
PYPY = hasattr(sys, "pypy_version_info")

# No http.client shim: it imports ssl and email at start-up, and the
# transport speaks HTTP itself (see transport.py).
# The URL functions are looked up on first use: urllib.parse imports re,
# enum, collections and ipaddress, about 20 ms of start-up on 3.13, which
# --version and a tarball that is already there never need.
_url_functions = {}


def _url_function(name):
    try:
        return _url_functions[name]
    except KeyError:
        pass
    try:  # Python 3
        from urllib import parse
        found = dict((n, getattr(parse, n)) for n in ("urlsplit", "urljoin", "quote", "unquote"))
    except ImportError:  # Python 2.7
        import urllib
        import urlparse
        found = {"urlsplit": urlparse.urlsplit, "urljoin": urlparse.urljoin,
                 "quote": urllib.quote, "unquote": urllib.unquote}
    _url_functions.update(found)
    return found[name]


def compat_urlsplit(url, scheme="", allow_fragments=True):
    return _url_function("urlsplit")(url, scheme, allow_fragments)


def compat_urljoin(base, url):
    return _url_function("urljoin")(base, url)


def compat_quote(s, safe="/"):
    return _url_function("quote")(s, safe)


def compat_unquote(s):
    return _url_function("unquote")(s)

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


def compat_shlex_quote(s):
    """shlex.quote (3.3+), else pipes.quote; imported when first needed."""
    try:
        quote = __import__("shlex").quote
    except AttributeError:
        quote = __import__("pipes").quote
    return quote(s)


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


COMPAT_NAMES = sorted(n for n in dir() if n.startswith("compat_")) + ["PY2", "PYPY"]
