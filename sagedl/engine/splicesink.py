"""The splice sink: a large plain-HTTP body goes socket -> pipe -> file
without a copy through Python, and a worker hashes what was written.

Why a module of its own: pipeline.py chooses the sink (open_sink) and holds
the sinks that receive into buffers; this one receives with splice(2)
(net/splice.py does the socket side) and so keeps its own rules: the hash
is read back from the page cache, and the caller waits when it is too far
ahead.  Its figures are in pipeline.py's docstring and bench/README.md.
"""

from __future__ import absolute_import

import errno
import os
import sys

from sagedl.compat import PYPY
from sagedl.engine.fsutil import write_all
from sagedl.engine.nursery import Nursery
from sagedl.engine.syncer import Syncer

# SpliceSink: the worker reads what was written back in pieces of
# HASH_READ bytes (small enough to stay in the CPU's L2 cache between the
# copy and the hash), and the caller waits when the worker is MAX_LAG bytes
# behind (so the pages not hashed yet are still in the page cache).
HASH_READ = 256 << 10
HASH_GRAB = 4 << 20
MAX_LAG = 32 << 20


class SpliceSink(object):
    """Receive with splice(2), socket -> pipe -> file, and hash what was
    written in a worker thread, read back from the page cache.

    The caller's loop hands ``buffer()`` (room in the pipe: a
    net.splice.PipeSpace) to Response.splice_into instead of a buffer, then
    ``put(n)`` moves those n bytes from the pipe into the file at its
    position.  The kernel moves the socket's pages into the pipe (no receive
    copy: 3.5% of a download's CPU against recv_into's 23%) and copies them
    once, into the page cache.  The worker hashes each written range in
    order, read back with preadv into one small buffer: that copy stays in
    the CPU's cache, and the whole worker took 0.69-0.76 s of CPU per GiB
    against 0.82-0.87 s when it hashed a read-only mmap of the file
    (MAP_POPULATE; 3 interleaved runs each, 2026-12-03), which also risks
    SIGBUS should anything shorten the file.

    The guarantees of the module docstring hold: the caller writes, in
    order, so the file only holds a prefix of what was received; the worker
    hashes in order, at most MAX_LAG bytes behind; its error surfaces at the
    caller's next buffer(), put() or finish(); close() keeps what is written.
    Used only for plain HTTP bodies of known length on Linux with splice(2)
    (os.splice on CPython 3.10+, libc's on PyPy): Response.can_splice.
    """

    threaded = True
    spliced = True

    @classmethod
    def open(cls, fd, hasher):
        """A SpliceSink on fd, or None when this file cannot have one."""
        from sagedl.net.splice import Pipe
        try:
            # Reading back needs a readable descriptor of the same file; the
            # .part is opened for writing only.  Reopened through the
            # descriptor, never by name: nothing can be swapped in between.
            reader = os.open("/proc/self/fd/%d" % fd, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return None
        try:
            if not os.path.sameopenfile(reader, fd):
                raise OSError(errno.EBADF, "not the same file")
            pipe = Pipe()
        except OSError:
            os.close(reader)
            return None
        return cls(fd, hasher, pipe, reader)

    def __init__(self, fd, hasher, pipe, reader):
        import threading
        self._fd = fd
        self._update = hasher.update
        self._pipe = pipe
        self._reader = reader
        self._start = os.lseek(fd, 0, os.SEEK_CUR)
        self._splice_writes = True
        self.written = 0
        self._queued = 0            # bytes written and given to the worker
        self._hashed = 0            # bytes the worker has hashed
        self._stopping = False
        self._error = None
        self._cond = threading.Condition()
        self._syncer = Syncer(fd)
        self._nursery = Nursery.when_needed()
        self._thread = threading.Thread(target=self._run, name="sagedl-hash")
        self._thread.daemon = True
        self._thread.start()

    # -- the caller's side
    def buffer(self):
        """Room in the pipe; waits while the worker is MAX_LAG behind."""
        if self._error is not None or self.written - self._hashed > MAX_LAG:
            cond = self._cond
            with cond:
                while self.written - self._hashed > MAX_LAG and self._error is None:
                    cond.wait()
        self._raise()
        return self._pipe.space()

    def put(self, n):
        """The n bytes just spliced into the pipe go into the file, then to the worker."""
        self._raise()
        pipe = self._pipe
        if self._splice_writes:
            try:
                pipe.drain_to(self._fd, n)
            except OSError as e:
                if e.errno != errno.EINVAL or self.written:
                    raise
                # A file system that splice(2) cannot write to: nothing
                # moved; copy through user space from now on.
                self._splice_writes = False
                pipe.copy_to(self._fd, n, write_all)
        else:
            pipe.copy_to(self._fd, n, write_all)
        self.written += n
        syncer = self._syncer
        if self.written >= syncer.next_at:
            syncer.wrote(self.written)
        nursery = self._nursery
        if nursery is not None and self.written >= nursery.next_at:
            nursery.collect(self.written)
        cond = self._cond
        with cond:
            self._queued = self.written
            cond.notify_all()

    def finish(self):
        cond = self._cond
        with cond:
            while self._hashed < self._queued and self._error is None:
                cond.wait()
        self._raise()

    def close(self):
        """Stop the worker (what it was given is written already) and free the pipe."""
        cond = self._cond
        with cond:
            self._stopping = True
            cond.notify_all()
        self._thread.join()
        self._syncer.stop()
        self._pipe.close()
        os.close(self._reader)

    def _raise(self):
        if self._error is not None:
            raise self._error[1]

    # -- the worker
    def _run(self):
        cond = self._cond
        try:
            back = ReadBack.open(self._reader, HASH_READ)
            while True:
                with cond:
                    while self._queued == self._hashed and not self._stopping:
                        cond.wait()
                    if self._queued == self._hashed:
                        return
                    # At most HASH_GRAB at a time, so a waiting caller
                    # (MAX_LAG) goes on as soon as the worker catches up.
                    begin = self._hashed
                    end = min(self._queued, begin + HASH_GRAB)
                self._hash_range(back, begin, end)
                with cond:
                    self._hashed = end
                    cond.notify_all()
        except BaseException:
            with cond:
                self._error = sys.exc_info()
                cond.notify_all()

    def _hash_range(self, back, begin, end):
        """Hash the bytes [begin, end) of what was written, read back from
        the page cache in pieces of back.size."""
        update, start, size = self._update, self._start, back.size
        while begin < end:
            k = back.read(min(size, end - begin), start + begin)
            if k <= 0:
                raise OSError(errno.EIO, "the file is shorter than what was written to it")
            update(back.chunk(k))
            begin += k


class ReadBack(object):
    """One small buffer the worker reads the file back into at an offset,
    with os.preadv into a bytearray.  ``ReadBack.open`` gives PyPy a
    RawReadBack instead."""

    @staticmethod
    def open(fd, size):
        return RawReadBack(fd, size) if PYPY else ReadBack(fd, size)

    def __init__(self, fd, size):
        self.fd, self.size = fd, size
        self._view = memoryview(bytearray(size))

    def read(self, n, offset):
        """Read at most n bytes at offset into the buffer; the count read."""
        return os.preadv(self.fd, [self._view[:n]], offset)

    def chunk(self, k):
        """The first k bytes of the buffer, for hashlib."""
        return self._view[:k]


class RawReadBack(object):
    """ReadBack on PyPy, whose os has no preadv before 3.10 and copies
    through a temporary buffer: pread(2) into memory outside the GC, which
    hashlib takes without a copy (sagedl/libc.py)."""

    def __init__(self, fd, size):
        from sagedl.libc import calls
        self.fd, self.size = fd, size
        self._c = calls()
        self._p = self._c.new(size)

    def read(self, n, offset):
        return self._c.pread(self.fd, self._p, n, offset)

    def chunk(self, k):
        return self._c.buffer(self._p, k)
