"""Where received blocks go: hashed, written to the ``.part`` file, flushed.

Why a module of its own: the download loop (download.py) decides *what* to
accept -- the resume offset, the size limit, the stall rule -- and this
module only does the work per accepted block, in one of two ways:

* ``Sink``: the simple path.  Hash, then write, in the caller's thread.
  Used for small transfers (a thread costs more than it saves) and on
  Python 2, whose built-in sha256 holds the GIL, so a second thread could
  not run in parallel anyway.
* ``ThreadedSink``: a pipeline for large transfers.  A 1 GiB download is
  three kinds of work of similar size -- recv (copying out of the socket),
  sha256, write (copying into the page cache) -- and one thread doing them
  in turn left the machine's second core idle (bench/README.md).  The caller
  receives into one of a small ring of preallocated buffers while a worker
  thread hashes and writes the previous ones; recv_into, hashlib's update
  and os.write all release the GIL, so they really overlap.  Blocks travel
  by index, never copied (on CPython; PyPy: below).

Both give the same guarantees: bytes are hashed and written in the order
received, the file only ever holds a prefix of what was received (a write
error stops the worker before the next block, so there is never a gap), and
``finish()`` returns only when every block is hashed and written -- the
caller checks the digest after that and only then renames.  An error in the
worker (ENOSPC, EIO, ...) is raised in the caller's thread at its next
``buffer()``, ``put()`` or ``finish()``, as the same OSError.  When the
caller gives up early (network error, stall, Ctrl-C), ``close()`` still
writes the blocks already received, so the partial resumes from there.

Buffers are bytearrays.  On PyPy the caller fills a block over as many
reads as it takes and hands it over only when it is full (or at the end),
so the worker passes the bytearray itself to hashlib and os.write: PyPy
copies a slice into a temporary raw buffer for each of those calls (the GC
may move a bytearray), and a whole block spares that copy.  On CPython a
slice costs nothing, so each read is handed over at once.  What either
choice buys in speed is within noise: A/Bs taken on the morning of
2026-11-28 (PyPy3 2.8 s against 1.8 s of CPU per GiB for whole blocks) ran
while the VM gave freed memory back to its host, which made runs bimodal
(bench/hostmem.py); with that held off (1 GiB over loopback HTTP, 5
interleaved runs, 13:40 UTC) PyPy3 took 1.19-1.31 s per GiB handing over
each read and 1.17-1.31 s handing over whole blocks, 3.11 1.03-1.11 s and
0.95-1.10 s, at the same peak RSS (82-84 MB on PyPy3).
A block not yet handed over stays in memory; close() writes it, so an
error, SIGTERM or Ctrl-C keeps every byte received (kill -9 keeps a
prefix).
Other ways measured on PyPy were worse: an anonymous mmap as the buffer
(hashlib and os.write then copy through a slow path whose copies the GC
does not count: peak RSS up to 266 MB on 1 GiB), or one bytes copy per
block (up to 153 MB of GC garbage).  The simple Sink hands over each read
(the whole buffer when a read filled it, as compat_buffer_slice does for
everyone): it serves small files and 2.7.

``Syncer`` flushes the data to disk behind the writes, for both sinks.
"""

from __future__ import absolute_import

import os
import sys

from sagedl.compat import PY2, compat_buffer_slice
from sagedl.fsutil import write_all

# Transfers at least this large (or of unknown size) use ThreadedSink and
# the Syncer; smaller ones finish before a thread would pay for itself.
LARGE_TRANSFER = 32 << 20
# fdatasync every 64 MiB; the final fsync flushes the rest.  Every 16 MiB
# looked slower in the morning's A/Bs of 2026-11-28, taken while the VM gave
# memory back to its host (see above); with that held off, 16 and 64 MiB
# measured the same (5 interleaved runs, 1 GiB, 13:35-13:45 UTC: 3.11 over
# HTTP 0.99-1.16 s against 1.03-1.11 s, PyPy3 1.16-1.25 s against
# 1.17-1.31 s, 3.11 over HTTPS 1.64-1.83 s against 1.57-1.97 s).  64 MiB
# makes fewer calls for the same durability.
SYNC_STEP = 64 << 20
RING = 4                    # buffers in flight: enough to absorb jitter
# The threaded sink's blocks: 1 MiB took 20% less CPU per GiB than 256 KiB
# on 3.11 (1.5 vs 1.9 s: fewer recv calls and hand-offs), and PyPy3,
# handing over whole blocks, got 729 MB/s against 617 MB/s with 256 KiB
# ones, at a peak RSS of 82-102 MB on 1 GiB (loopback, morning A/Bs of
# 2026-11-28, so with the host noise the module docstring describes).
THREADED_BLOCK = 1 << 20
# When the caller hands a block to the worker: on PyPy once it is full, so
# the worker can hash and write the bytearray itself (a slice is copied
# there); on CPython after every read (a slice costs nothing there).  The
# two measured the same speed on each interpreter: see the module docstring.
WHOLE_BLOCKS = hasattr(sys, "pypy_version_info")


def open_sink(fd, hasher, block_size, remaining, env=os.environ):
    """The sink for a transfer of ``remaining`` bytes (None: unknown).

    SAGEDL_PIPELINE=thread or =simple overrides the choice, to measure one
    against the other (bench/) and to test both on small files (tests/);
    =whole is the threaded sink handing over whole blocks, as on PyPy.
    """
    choice = env.get("SAGEDL_PIPELINE", "auto")
    large = remaining is None or remaining >= LARGE_TRANSFER
    if choice in ("thread", "whole") or (choice != "simple" and large and threads_pay()):
        return ThreadedSink(fd, hasher, max(block_size, THREADED_BLOCK),
                            whole_blocks=True if choice == "whole" else None)
    return Sink(fd, hasher, block_size, sync=large)


def threads_pay():
    """A second thread helps only if hashing releases the GIL: on
    Python 3 (CPython's OpenSSL-backed hashlib, and PyPy's); not on 2.7,
    whose hashlib here is the built-in one that holds the GIL throughout."""
    return not PY2


class Sink(object):
    """Hash and write in the caller's thread (see the module docstring)."""

    threaded = False

    def __init__(self, fd, hasher, block_size, sync=False):
        self._fd = fd
        self._update = hasher.update
        self._buf = bytearray(block_size)
        self._view = memoryview(self._buf)
        self._syncer = Syncer(fd) if sync else None
        self.written = 0

    def buffer(self):
        """The buffer to receive the next block into."""
        return self._view

    def put(self, n):
        """The first n bytes of buffer() are the next block: hash and write them."""
        chunk = compat_buffer_slice(self._buf, self._view, n)    # 2.7: see compat.py
        self._update(chunk)
        write_all(self._fd, chunk)
        self.written += n
        syncer = self._syncer
        if syncer is not None and self.written >= syncer.next_at:
            syncer.wrote(self.written)

    def finish(self):
        """Every block put so far is hashed and written."""

    def close(self):
        if self._syncer is not None:
            self._syncer.stop()


class ThreadedSink(object):
    """Receive in the caller's thread, hash and write in a worker thread.

    The ring: ``_free`` holds the indices of buffers the caller may fill,
    ``_ready`` the (index, length) of filled ones in order; one Condition
    guards both.  The worker hashes and writes a block while the caller
    receives into another.
    """

    threaded = True

    def __init__(self, fd, hasher, block_size, ring=RING, whole_blocks=None):
        import threading
        from collections import deque
        self._fd = fd
        self._update = hasher.update
        self._bufs = [bytearray(block_size) for _ in range(ring)]
        self._views = [memoryview(b) for b in self._bufs]
        self._free = deque(range(ring))
        self._ready = deque()
        self._current = None        # the block being filled, and how far
        self._filled = 0
        if whole_blocks is None:
            whole_blocks = WHOLE_BLOCKS
        # Hand a block to the worker once this much of it is filled.
        self._hand_over_at = block_size if whole_blocks else 1
        self._busy = False          # the worker holds a block it took from _ready
        self._stopping = False
        self._error = None          # sys.exc_info() of the worker's failure
        self._cond = threading.Condition()
        self._syncer = Syncer(fd)
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="sagedl-write")
        self._thread.daemon = True
        self._thread.start()

    # -- the caller's side
    def buffer(self):
        """Where to receive next: the unfilled rest of the current block."""
        if self._current is None:
            cond = self._cond
            with cond:
                while not self._free and self._error is None:
                    cond.wait()
                self._raise()
                self._current = self._free.popleft()
            return self._views[self._current]
        return self._views[self._current][self._filled:]

    def put(self, n):
        """n more bytes were received into buffer(); the block goes to the
        worker now, or on PyPy once it is full (see WHOLE_BLOCKS)."""
        self._raise()
        self._filled += n
        if self._filled >= self._hand_over_at:
            self._hand_over()

    def _hand_over(self):
        cond = self._cond
        with cond:
            self._ready.append((self._current, self._filled))
            self._current, self._filled = None, 0
            cond.notify()

    def finish(self):
        if self._filled:
            self._hand_over()
        cond = self._cond
        with cond:
            while (self._ready or self._busy) and self._error is None:
                cond.wait()
            self._raise()

    def close(self):
        """Stop the worker once it has written what it was given (unless it failed)."""
        if self._filled and self._error is None:
            self._hand_over()
        cond = self._cond
        with cond:
            self._stopping = True
            cond.notify_all()
        self._thread.join()
        self._syncer.stop()

    def _raise(self):
        if self._error is not None:
            exc = self._error[1]
            raise exc

    # -- the worker
    def _run(self):
        cond = self._cond
        ready, free, bufs, views = self._ready, self._free, self._bufs, self._views
        update, fd, syncer = self._update, self._fd, self._syncer
        try:
            while True:
                with cond:
                    while not ready and not self._stopping:
                        cond.wait()
                    if not ready:
                        return
                    i, n = ready.popleft()
                    self._busy = True
                chunk = compat_buffer_slice(bufs[i], views[i], n)
                update(chunk)
                write_all(fd, chunk)
                self.written += n
                if self.written >= syncer.next_at:
                    syncer.wrote(self.written)
                with cond:
                    free.append(i)
                    self._busy = False
                    cond.notify()
        except BaseException:
            with cond:
                self._error = sys.exc_info()
                self._busy = False
                cond.notify_all()


class Syncer(object):
    """Flush written data to disk in the background while the download goes on.

    The page cache holds a whole tarball as dirty pages (Linux starts
    writeback at 10% of RAM), so a final fsync of a 1 GiB file waited over
    a second for the disk.  A thread calling fdatasync every SYNC_STEP bytes
    overlaps that with the network, and the final fsync only flushes the
    tail.  The writer never waits for it; fdatasync releases the GIL.
    Only large transfers start the thread (threading costs start-up time).
    """

    def __init__(self, fd):
        import threading
        self.fd = fd
        self.next_at = SYNC_STEP
        self._written = 0
        self._stopped = False
        self._cond = threading.Condition()
        self._sync = getattr(os, "fdatasync", os.fsync)   # macOS has no fdatasync
        self._thread = threading.Thread(target=self._run, name="sagedl-sync")
        self._thread.daemon = True
        self._thread.start()

    def wrote(self, total):
        self.next_at = total + SYNC_STEP
        with self._cond:
            self._written = total
            self._cond.notify()

    def _run(self):
        synced = 0
        while True:
            with self._cond:
                while not self._stopped and self._written - synced < SYNC_STEP:
                    self._cond.wait()
                if self._stopped:
                    return
                target = self._written
            try:
                self._sync(self.fd)
            except OSError:
                return   # the final fsync reports any real problem
            synced = target

    def stop(self):
        with self._cond:
            self._stopped = True
            self._cond.notify()
        self._thread.join()
