"""Where received blocks go: hashed, written to the ``.part`` file, flushed.

Why a module of its own: the download loop (download.py) decides *what* to
accept -- the resume offset, the size limit, the stall rule -- and this
module only does the work per accepted block, in one of three ways:

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
* ``SpliceSink``: large plain-HTTP bodies of known length on Linux, where
  Python can call splice(2) (os.splice on CPython 3.10+, sagedl/libc.py on
  PyPy).  Even split, the threaded sink's work needs
  more CPU than two cores shared with the server have (bench/README.md);
  this one does less of it: the body goes socket -> pipe -> file with
  splice(2), never through Python's memory, and the worker hashes what
  was written, read back from the page cache.  1 GiB over loopback HTTP,
  3.11, bench/ab.py, 5 interleaved runs, 2026-12-03 22:06 UTC: a median
  1.05 s (0.98-1.09) against the threaded sink's 1.39 s (1.32-1.51) and
  1.00 s for ``curl -o f``.

All three give the same guarantees: bytes are hashed and written in the order
received, the file only ever holds a prefix of what was received (a write
error stops the worker before the next block, so there is never a gap), and
``finish()`` returns only when every block is hashed and written -- the
caller checks the digest after that and only then renames.  An error in the
worker (ENOSPC, EIO, ...) is raised in the caller's thread at its next
``buffer()``, ``put()`` or ``finish()``, as the same OSError.  When the
caller gives up early (network error, stall, Ctrl-C), ``close()`` still
writes the blocks already received, so the partial resumes from there.

Buffers are bytearrays, except on PyPy: there os.write copies whatever it
is given (a bytearray, a slice, a memoryview: the GC may move it) into a
temporary buffer it mallocs and frees on every call, so each MiB written
faulted in 256 fresh pages.  Measured on 2026-12-03 (PyPy3 7.3.11, 1,024
writes of 1 MiB into a new file, page cache warmed first, 3 runs):
263,414 minor faults and 1.13-2.17 s of system time per GiB, against 151
faults and 0.20 s when write(2) is called on the block's own memory, as
3.11's os.write does (0.20 s).  The VM this was measured on gives freed
memory back to its host, which makes each of those faults slower still
(bench/hostmem.py).  So on PyPy the blocks are memory outside the GC
(RawBlocks: its built-in _cffi_backend, a standard part of PyPy) and are
written by calling write(2) through it (sagedl/libc.py); recv_into and
hashlib take a buffer over that memory without a copy (measured: no extra
faults).  A
1 GiB download over loopback HTTP (bench/ab.py, 5 interleaved runs, the
machine shared with test runs, load 3-5) took PyPy3 a median 2.68 s this
way, 5.96 s with bytearrays, and 3.11 2.96 s.  On a PyPy without
_cffi_backend the caller hands a bytearray block over once it is full, so
the worker passes the bytearray itself to hashlib and os.write, sparing
the copy of a slice; on CPython a slice costs nothing, so each read is
handed over at once.
A block not yet handed over stays in memory; close() writes it, so an
error, SIGTERM or Ctrl-C keeps every byte received (kill -9 keeps a
prefix).
Other ways measured on PyPy were worse: an anonymous mmap as the buffer
(hashlib and os.write then copy through a slow path whose copies the GC
does not count: peak RSS up to 266 MB on 1 GiB), or one bytes copy per
block (up to 153 MB of GC garbage).  The simple Sink hands over each read
(the whole buffer when a read filled it, as compat_buffer_slice does for
everyone): it serves small files and 2.7.

The split of work -- the caller receives, the worker hashes and writes --
was measured against the caller writing too and the worker only hashing
(2026-12-03, Intel Xeon VM, 3.11, 1 GiB over loopback, bench/ab.py, 7
interleaved runs): the threads' CPU evened out (0.70-0.78 s receiving and
writing, 0.63-0.73 s hashing, against 0.30 s and 1.04 s) but the download
was no faster (HTTP 1.46 s against 1.32 s, HTTPS 1.75 s against 1.59 s):
both cores were busy with sagedl, nginx and writeback (bench/README.md).

``Syncer`` (syncer.py) flushes the data to disk behind the writes, for every sink; the splice sink lives in splicesink.py.
``Nursery`` (nursery.py) keeps PyPy's young generation from growing the
process during a large transfer.
"""

from __future__ import absolute_import

import errno
import os
import sys

from sagedl.compat import PY2, PYPY, compat_buffer_slice
from sagedl.engine.fsutil import write_all
from sagedl.engine.nursery import Nursery
from sagedl.engine.splicesink import SpliceSink
from sagedl.engine.syncer import SYNC_STEP, Syncer  # noqa: F401 (SYNC_STEP: tests, bench)

# Transfers at least this large (or of unknown size) use ThreadedSink and
# the Syncer; smaller ones finish before a thread would pay for itself.
LARGE_TRANSFER = 32 << 20
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
WHOLE_BLOCKS = PYPY
# Blocks outside the GC, written by write(2) itself: PyPy's way (see the
# module docstring); not elsewhere.
RAW_BLOCKS = PYPY
# Large plain-HTTP bodies of known length go through SpliceSink where it
# applies (splice_applies), PyPy included: 1 GiB over loopback HTTP as
# ``pypy3 sagedl.pyz``, bench/ab.py, 5 interleaved runs, 2026-12-04 04:50
# UTC: a median 1.29 s (peak RSS 123 MB) against 1.55 s (125-166 MB) on
# RawBlocks, and 1.05 s for CPython 3.11 splicing.
SPLICE = True


def open_sink(fd, hasher, block_size, remaining, env=os.environ, response=None):
    """The sink for a transfer of ``remaining`` bytes (None: unknown) of
    ``response`` (the body being read, if the caller has one).

    SAGEDL_PIPELINE=thread or =simple overrides the choice, to measure one
    against the other (bench/) and to test both on small files (tests/);
    =whole is the threaded sink handing over whole bytearray blocks, =raw
    the threaded sink on RawBlocks (PyPy's way, wherever _cffi_backend
    exists), =bytearray the threaded sink on bytearrays, =splice the splice
    sink wherever the response allows it (else the threaded sink).
    """
    choice = env.get("SAGEDL_PIPELINE", "auto")
    large = remaining is None or remaining >= LARGE_TRANSFER
    if choice == "splice" or (choice == "auto" and large and SPLICE):
        if splice_applies(remaining, response):
            sink = SpliceSink.open(fd, hasher)
            if sink is not None:
                return sink
        if choice == "splice":
            choice = "thread"
    raw = raw_blocks(choice)
    if choice in ("thread", "whole", "raw", "bytearray") or (
            choice != "simple" and large and threads_pay()):
        return ThreadedSink(fd, hasher, max(block_size, THREADED_BLOCK),
                            whole_blocks=True if choice == "whole" else None, raw=raw)
    return Sink(fd, hasher, block_size, sync=large, raw=raw)


def splice_applies(remaining, response):
    """The splice sink needs a body of known length that the transport can
    splice (plain TCP on Linux with os.splice: Response.can_splice) and a
    second thread for the hash."""
    if remaining is None or not threads_pay():
        return False
    can_splice = getattr(response, "can_splice", None)
    return can_splice is not None and can_splice()


def raw_blocks(choice="auto"):
    """A RawBlocks when the sink should use one (PyPy, or asked for), else None."""
    if choice == "raw" or (RAW_BLOCKS and choice not in ("whole", "bytearray")):
        try:
            return RawBlocks()
        except (ImportError, AttributeError, OSError):
            return None
    return None


class RawBlocks(object):
    """Blocks in memory the GC never moves, hashed through a buffer over
    them and written by calling write(2) on them (PyPy's os.write copies
    every buffer it is given; see the module docstring).

    A block is (pointer, view): recv_into fills the memoryview ``view``;
    ``chunk(block, n)`` is a buffer over its first n bytes for hashlib;
    ``write_all(fd, block, n)`` writes them, as fsutil.write_all does.
    """

    def __init__(self):
        from sagedl.libc import calls
        self._c = calls()
        self.write = self._c.write

    def new(self, size):
        p = self._c.new(size)
        return p, memoryview(self._c.buffer(p))

    def chunk(self, block, n):
        return self._c.buffer(block[0], n)

    def write_all(self, fd, block, n):
        """write(2) until n bytes are written; an error is an OSError."""
        p, done, write = block[0], 0, self.write
        while done < n:
            k = write(fd, p + done, n - done)
            if k == 0:
                raise OSError(errno.EIO, "write(2) wrote nothing")
            done += k


def threads_pay():
    """A second thread helps only if hashing releases the GIL: on
    Python 3 (CPython's OpenSSL-backed hashlib, and PyPy's); not on 2.7,
    whose hashlib here is the built-in one that holds the GIL throughout."""
    return not PY2


class Sink(object):
    """Hash and write in the caller's thread (see the module docstring)."""

    threaded = False

    def __init__(self, fd, hasher, block_size, sync=False, raw=None):
        self._fd = fd
        self._update = hasher.update
        self._raw = raw
        if raw is not None:
            self._block = raw.new(block_size)
            self._view = self._block[1]
        else:
            self._buf = bytearray(block_size)
            self._view = memoryview(self._buf)
        self._syncer = Syncer(fd) if sync else None
        self.written = 0

    def buffer(self):
        """The buffer to receive the next block into."""
        return self._view

    def put(self, n):
        """The first n bytes of buffer() are the next block: hash and write them."""
        raw = self._raw
        if raw is not None:
            self._update(raw.chunk(self._block, n))
            raw.write_all(self._fd, self._block, n)
        else:
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

    def __init__(self, fd, hasher, block_size, ring=RING, whole_blocks=None, raw=None):
        import threading
        from collections import deque
        self._fd = fd
        self._update = hasher.update
        self._raw = raw
        if raw is not None:
            self._bufs = [raw.new(block_size) for _ in range(ring)]
            self._views = [view for _, view in self._bufs]
            whole_blocks = False        # a part of a raw block is no copy
        else:
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
        self._nursery = Nursery.when_needed()
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
        update, fd, syncer, raw = self._update, self._fd, self._syncer, self._raw
        nursery = self._nursery
        try:
            while True:
                with cond:
                    while not ready and not self._stopping:
                        cond.wait()
                    if not ready:
                        return
                    i, n = ready.popleft()
                    self._busy = True
                if raw is not None:
                    update(raw.chunk(bufs[i], n))
                    raw.write_all(fd, bufs[i], n)
                else:
                    chunk = compat_buffer_slice(bufs[i], views[i], n)
                    update(chunk)
                    write_all(fd, chunk)
                self.written += n
                if self.written >= syncer.next_at:
                    syncer.wrote(self.written)
                if nursery is not None and self.written >= nursery.next_at:
                    nursery.collect(self.written)
                with cond:
                    free.append(i)
                    self._busy = False
                    cond.notify()
        except BaseException:
            with cond:
                self._error = sys.exc_info()
                self._busy = False
                cond.notify_all()
