"""Moving a plain TCP body into a pipe with splice(2), without copying it
through Python's memory.

Why a module of its own: this is the transport side of the engine's splice
sink (sagedl/engine/splicesink.py): the socket's pages go into a pipe the
engine owns, and the engine moves them from the pipe into the ``.part``
file.  Only Linux has splice(2).  CPython has os.splice from 3.10; PyPy
calls splice(2) through its built-in _cffi_backend (sagedl/libc.py), as
Debian's PyPy 3.9 has no os.splice.  Everywhere else ``AVAILABLE`` is False
and nothing here is used.  TLS bodies never come here: their bytes must be
decrypted in user space.
"""

from __future__ import absolute_import

import errno
import os
import socket
import sys

from sagedl.compat import PYPY
from sagedl.libc import SPLICE_F_MOVE, SPLICE_F_NONBLOCK

_OS_SPLICE = hasattr(os, "splice")


def _libc_splice():
    """PyPy without os.splice: splice(2) through _cffi_backend, if it has one."""
    if not PYPY:
        return False
    try:
        import _cffi_backend  # noqa: F401
    except ImportError:
        return False
    return True


AVAILABLE = sys.platform.startswith("linux") and (_OS_SPLICE or _libc_splice())
# The pipe between the socket and the file: 1 MiB, the threaded sink's
# block size (fewer, larger moves).  Unprivileged processes may ask for up
# to /proc/sys/fs/pipe-max-size (1 MiB by default); a smaller pipe still works.
PIPE_SIZE = 1 << 20
F_SETPIPE_SZ = 1031             # fcntl.F_SETPIPE_SZ, missing before 3.10's fcntl
F_GETPIPE_SZ = 1032


def move(fd_in, fd_out, n, flags=0):
    """splice(2) of at most n bytes from fd_in to fd_out (one is a pipe):
    os.splice where Python has it, else libc's (PyPy).  The count moved;
    OSError as os.splice raises it (BlockingIOError for EAGAIN)."""
    if _OS_SPLICE:
        return os.splice(fd_in, fd_out, n, flags=flags)
    from sagedl.libc import calls
    return calls().splice(fd_in, fd_out, n, flags)


class Pipe(object):
    """A pipe the body passes through: ``space()`` is where the next bytes
    may go (what Response.splice_into fills), ``drain_to(fd, n)`` moves n
    of them into the file.  The pipe is empty between the two."""

    def __init__(self, size=PIPE_SIZE):
        import fcntl
        self.r, self.w = os.pipe()      # close-on-exec on Python 3
        try:
            try:
                fcntl.fcntl(self.w, F_SETPIPE_SZ, size)
            except OSError:
                pass                    # over the user's pipe limit: keep the default
            self.size = fcntl.fcntl(self.w, F_GETPIPE_SZ)
        except BaseException:
            self.close()
            raise

    def space(self):
        return PipeSpace(self.w, self.size)

    def drain_to(self, fd, n):
        """Move the n bytes in the pipe to fd's position (splice(2): the
        kernel copies them into the page cache; Python never sees them).
        An error is the OSError of the write; the file then holds a prefix."""
        while n:
            k = move(self.r, fd, n)
            if k == 0:
                raise OSError(errno.EIO, "splice moved nothing from a full pipe")
            n -= k

    def copy_to(self, fd, n, write_all):
        """As drain_to, through user space: for a file system whose files
        splice(2) cannot write to (EINVAL)."""
        while n:
            data = os.read(self.r, n)
            if not data:
                raise OSError(errno.EIO, "the pipe ended early")
            write_all(fd, data)
            n -= len(data)

    def close(self):
        for fd in (self.r, self.w):
            try:
                os.close(fd)
            except OSError:
                pass


class PipeSpace(object):
    """Room for ``len()`` bytes in the pipe whose write end is ``fd``: what
    the copy loop hands to Response.splice_into in place of a buffer.
    Sliced like one, so --limit-rate can ask for smaller reads."""

    __slots__ = ("fd", "n")

    def __init__(self, fd, n):
        self.fd, self.n = fd, n

    def __len__(self):
        return self.n

    def __getitem__(self, key):
        return PipeSpace(self.fd, len(range(self.n)[key]))


def splice_from_socket(sock, pipe_w, n, timeout):
    """Move at most n bytes from the socket into the (empty) pipe; 0 at EOF.

    Python's socket with a timeout is non-blocking underneath, so splice(2)
    is called with SPLICE_F_NONBLOCK and this waits with poll() for at most
    ``timeout`` seconds of silence, as recv_into would: socket.timeout then.
    """
    import select
    fd = sock.fileno()
    while True:
        try:
            return move(fd, pipe_w, n, SPLICE_F_MOVE | SPLICE_F_NONBLOCK)
        except (BlockingIOError, InterruptedError):
            pass
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLPRI)
        if not poller.poll(timeout * 1000.0):
            raise socket.timeout("timed out")
