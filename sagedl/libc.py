"""C library calls that PyPy's os module lacks or makes costly, called on
memory the garbage collector never moves.

Why a module of its own: on PyPy the engine's hot loops call write(2),
pread(2) and splice(2) directly, through PyPy's built-in _cffi_backend (a
standard part of PyPy, so the core still needs nothing installed), and
both the engine (blocks written by write(2), the splice sink's read-back)
and the transport (splicing a socket into a pipe) need them:

* PyPy's os.write copies whatever buffer it is given into a temporary one
  it mallocs and frees each call (engine/pipeline.py's docstring has the
  fault counts); write(2) on the block's own memory does not.
* PyPy 3.9 (Debian's pypy3) has neither os.splice nor os.preadv, so the
  splice sink, which moves a plain-HTTP body socket -> pipe -> file without
  a copy through Python, could not run there at all.

Nothing here is loaded on CPython, which has os.splice (3.10+) and whose
os.write and os.preadv use the caller's buffer as it is.
"""

from __future__ import absolute_import

import errno
import os

# <fcntl.h>: splice(2)'s flags (os.SPLICE_F_* where Python has them).
SPLICE_F_MOVE = 1
SPLICE_F_NONBLOCK = 2

_CALLS = []


def calls():
    """The C calls (a Calls), loaded once; ImportError where
    _cffi_backend is missing (CPython without cffi, a PyPy built without it)."""
    if not _CALLS:
        _CALLS.append(Calls())
    return _CALLS[0]


class Calls(object):
    """write(2), pread(2) and splice(2) through _cffi_backend's ABI level
    (no C compiler, no header parsing: a few microseconds to set up).

    ``new(size)`` is a block of memory outside the GC; ``buffer(p, n)`` a
    buffer over its first n bytes (hashlib and recv_into take it without a
    copy).  Each call raises OSError as the os module would, and retries
    EINTR as Python does since 3.5 (PEP 475).
    """

    def __init__(self):
        import _cffi_backend as cb
        t = cb.new_primitive_type
        c_int, size_t, ssize_t = t("int"), t("size_t"), t("ssize_t")
        char_p = cb.new_pointer_type(t("char"))
        void_p = cb.new_pointer_type(cb.new_void_type())
        lib = cb.load_library(None)

        def load(name, args):
            return lib.load_function(cb.new_function_type(args, ssize_t, False), name)

        self._write = load("write", (c_int, char_p, size_t))
        self._pread = load("pread64", (c_int, char_p, size_t, t("long long")))
        self._splice = load("splice", (c_int, void_p, c_int, void_p, size_t, t("unsigned int")))
        self._null = cb.cast(void_p, 0)
        self._array = cb.new_array_type(char_p, None)
        self._newp, self.buffer, self._get_errno = cb.newp, cb.buffer, cb.get_errno

    def new(self, size):
        """A block of size bytes outside the GC (freed with the last reference)."""
        return self._newp(self._array, size)

    def _call(self, function, *args):
        while True:
            k = function(*args)
            if k >= 0:
                return k
            code = self._get_errno()
            if code != errno.EINTR:
                # OSError(EAGAIN, ...) is a BlockingIOError, as os.splice raises.
                raise OSError(code, os.strerror(code))

    def write(self, fd, p, n):
        """write(2) of the n bytes at p; the count written."""
        return self._call(self._write, fd, p, n)

    def pread(self, fd, p, n, offset):
        """pread(2) of at most n bytes at offset into p; the count read."""
        return self._call(self._pread, fd, p, n, offset)

    def splice(self, fd_in, fd_out, n, flags=0):
        """os.splice(fd_in, fd_out, n, flags=flags): one end must be a pipe."""
        null = self._null
        return self._call(self._splice, fd_in, null, fd_out, null, n, flags)
