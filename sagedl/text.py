"""Text, bytes and names across Python 2.7 and 3: every conversion in one place.

Why: the same name travels from Sage's metadata (UTF-8 on disk), argv and
the environment to paths, URLs, messages and pipes.  On 2.7 the native str
is bytes, and unicode meeting a non-ASCII byte path raised
UnicodeDecodeError; on 3.6 in a C locale paths are ASCII with
surrogateescape.  Each rule below was a bug once.  No other module names
Python 2's ``unicode`` or tests ``sys.version_info`` (tests/test_text.py
holds them to it); they use these helpers, or compat.PY2 for what is not
text (streams, buffers).
"""

from __future__ import absolute_import

import os

from sagedl.compat import PY2, compat_str


def native_str(text):
    """The native str of ``text``: on 2.7 unicode becomes UTF-8 bytes (it
    joins with byte paths, Python 2's quote() takes it, a pipe takes it);
    anything else, and everything on 3.x, is returned as it is."""
    if PY2 and isinstance(text, compat_str):
        return text.encode("utf-8")
    return text


def from_native(value):
    """On 2.7, a name read from the file system (bytes) as text, to compare
    with names given on the command line and read from files (text); bytes
    that are not UTF-8 stay bytes.  On 3.x unchanged."""
    if PY2 and isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def printable(value):
    """A path or name for an error message: text on every interpreter; on
    3.x, bytes the locale could not decode are shown as UTF-8 if they are."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if not PY2:
        try:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeError:
            return value
    return value


def utf8(value):
    """One piece of output as UTF-8 bytes; on 3.x a name's undecodable bytes
    go back out unchanged (surrogateescape), bytes as they are."""
    if isinstance(value, bytes):
        return value
    if PY2:
        return value.encode("utf-8")
    return value.encode("utf-8", "surrogateescape")


def native_name(text):
    """A file name read from Sage's metadata (UTF-8 on disk) as the str the
    OS calls take.  On 2.7 sage/tree.py already reads metadata as UTF-8 bytes,
    the native str, so this only encodes stray unicode.  On 3.x: the name
    whose encoding in the filesystem encoding is those UTF-8 bytes (3.6 in
    a C locale encodes paths as ASCII with surrogateescape)."""
    if PY2:
        return native_str(text)
    if isinstance(text, bytes):
        return os.fsdecode(text)
    return os.fsdecode(text.encode("utf-8", "surrogateescape"))


def text_name(native):
    """The inverse: an argv or path component (native str) in the form names
    read from Sage's metadata have, to compare them: text on 3.x, UTF-8
    bytes on 2.7."""
    if PY2:
        return native_str(native)
    if isinstance(native, bytes):
        return native.decode("utf-8", "surrogateescape")
    try:
        return os.fsencode(native).decode("utf-8", "surrogateescape")
    except UnicodeError:
        return native   # already text (PyPy decodes argv as UTF-8 even under LANG=C)


def for_stream(stream, text):
    """``text`` as ``stream`` takes it: on 2.7 a real file (sys.stderr)
    wants the native str, while io.StringIO and other io text streams want
    unicode; on 3.x text is text."""
    if not PY2:
        return text
    import io
    if isinstance(stream, io.TextIOBase):
        return text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    if isinstance(text, compat_str):
        return text.encode(getattr(stream, "encoding", None) or "utf-8", "replace")
    return text
