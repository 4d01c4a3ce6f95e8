"""One file fetched as byte ranges, by several connections at once.

The engine's half of the multi-mirror scheduler (scheduler.py decides which
mirror fetches which range; this module only moves and checks bytes).  It
keeps download.py's promises and adds the ones ranges need:

* Only with a checksum.  Bytes from one mirror are joined to another's only
  when a digest pins the content (as download.py resumes a partial from
  another mirror only then).
* ``NAME.part`` is made at its full size; each range is written at its own
  offset, through its own descriptor (Python 2.7 has no os.pwrite), never
  past the range's current end: a range whose tail another connection took
  over stops where the other starts.
* ``NAME.part.json`` holds the digests, the total, and every range as
  ``[start, end, done, mirror]``.  It is written before the first body byte
  and after every block a range receives, so ``kill -9`` loses at most one
  block per range, and the next run continues every range where it stopped.
  It is ignored unless every field has the expected type and the ranges tile
  the file exactly.  (download.py, meeting such a partial, sees a file of
  full size: its 416 rule hashes it, keeps it only if it verifies, else
  starts from zero -- it never appends to a file with holes.)
* A 206 is used only when its Content-Range is exactly the range asked for,
  of the known total, with a Content-Length to match.  A 200 is used only
  for a range that starts at byte 0 (the mirror ignored Range): its bytes
  past the range's end are never read.
* Only verified bytes reach NAME: once every range is complete, the whole
  file is hashed from disk, fsync'ed and renamed, as in download.py.
"""

from __future__ import absolute_import

import json
import os
import re

from sagedl.compat import compat_integer_types, compat_monotonic, compat_text_types
from sagedl.engine import fsutil
from sagedl.engine.download import Download
from sagedl.engine.lock import FileLock
from sagedl.engine.retry import RETRY_STATUSES, parse_retry_after
from sagedl.engine.transfer import MAX_META_BYTES, NOT_FOUND_STATUSES
from sagedl.engine.verify import hash_file
from sagedl.errors import DiskError, SourceFailure

META_VERSION = 2


class IgnoresRange(Exception):
    """The mirror answered 200 to a request for a range that does not start
    at byte 0: it cannot serve a range, only whole files."""


class Piece(object):
    """One range of the file, [start, end), of which [start, done) is on
    disk, served by one mirror (``server``, its label).  Changed only under
    the file's lock.  ``owner``: the connection fetching it, or None."""

    def __init__(self, start, end, done=None, server=None):
        self.start = start
        self.end = end
        self.done = start if done is None else done
        self.server = server
        self.owner = None
        self.rate = 0.0           # bytes/s of its connection, smoothed
        self.last_byte = None     # monotonic time of its last block
        self.asked = None         # monotonic time its current request was sent

    def remaining(self):
        return 0 if self.end is None else self.end - self.done

    def complete(self):
        return self.end is not None and self.done >= self.end

    def __repr__(self):
        return "Piece(%s-%s done %s by %s)" % (self.start, self.end, self.done, self.server)


class RangeFile(object):
    """NAME.part and NAME.part.json of one file, while its ranges arrive.

    open() takes the file's lock and says whether a verified file is already
    there; the pieces then come from a valid NAME.part.json (a resume) or
    start as one piece of unknown end, which set_total() fixes when the
    first answer tells the size."""

    def __init__(self, dest, expected, options, notify):
        self.dest = os.path.abspath(dest)
        self.name = os.path.basename(self.dest)
        self.part = self.dest + ".part"
        self.meta_path = self.part + ".json"
        self.expected = expected
        self.opts = options
        self.notify = notify
        import threading      # here: a verified file must not pay for it
        self.lock = threading.Lock()
        self.total = None
        self.pieces = []
        self.closed = False
        self._file_lock = None
        # The checks a verified file at NAME gets are download.py's.
        self._engine = Download(dest, [], expected, None, None, options, notify=notify)

    # -- opening ------------------------------------------------------------------
    def open(self):
        """Take the lock; a Result when NAME verifies after all, else None
        with the pieces to fetch set up (resumed when the partial is ours)."""
        lock = FileLock(self.dest + ".lock", self.opts.lock_timeout, self.name,
                        on_wait=self.notify)
        lock.__enter__()
        try:
            fsutil.remove_stale_temps(self.dest)
            present = self._engine.check_existing()
            if present is not None:
                lock.__exit__(None, None, None)
                return present
            self._resume()
        except BaseException:
            lock.__exit__(None, None, None)
            raise
        self._file_lock = lock
        return None

    def release(self):
        """Drop the lock (the partial, if any, stays for the next run)."""
        with self.lock:
            self.closed = True
        lock, self._file_lock = self._file_lock, None
        if lock is not None:
            lock.__exit__(None, None, None)

    def _resume(self):
        meta = self._load_meta()
        k = fsutil.kind(self.part)
        if k not in (None, "file"):
            raise fsutil.UnsafePath(self.part, k)
        if meta and k == "file" and os.lstat(self.part).st_size == meta["total"]:
            self.total = meta["total"]
            self.pieces = [Piece(s, e, d, m) for s, e, d, m in meta["ranges"]]
            done = sum(p.done - p.start for p in self.pieces)
            if done:
                self.notify("resuming %s: %d of %d bytes in %d ranges"
                            % (self.name, done, self.total, len(self.pieces)))
            return
        fsutil.remove(self.part)
        fsutil.remove(self.meta_path)
        self.pieces = [Piece(0, None)]

    def _load_meta(self):
        try:
            meta = json.loads(fsutil.read_bounded(self.meta_path, MAX_META_BYTES).decode("utf-8"))
        except (IOError, OSError, ValueError, UnicodeError, DiskError):
            return None
        if not _valid_meta(meta):
            return None
        if (meta["sha256"], meta["sha1"]) != (self.expected.sha256, self.expected.sha1):
            return None       # a partial of other content
        if self.expected.size is not None and meta["total"] != self.expected.size:
            return None
        return meta

    # -- the size, once known ---------------------------------------------------------
    def set_total(self, total):
        """The first answer told the size: make NAME.part at full size, close
        the open-ended piece there, and write NAME.part.json before any body
        byte."""
        with self.lock:
            if self.total is not None:
                if total != self.total:
                    raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                        "size %d, but %d before" % (total, self.total))
                return
            try:
                fd = fsutil.create_exclusive(self.part, 0o644)
                try:
                    os.ftruncate(fd, total)
                finally:
                    os.close(fd)
            except OSError as e:
                raise fsutil.write_error("cannot write %s" % self.part, e)
            self.total = total
            for p in self.pieces:
                if p.end is None:
                    p.end = total
            self._save_locked()

    # -- progress -----------------------------------------------------------------------
    def done_bytes(self):
        return sum(p.done - p.start for p in self.pieces)

    def complete(self):
        return self.total is not None and all(p.complete() for p in self.pieces)

    def save(self):
        with self.lock:
            self._save_locked()

    def _save_locked(self):
        if self.closed or self.total is None:
            return     # after the commit or release, NAME.part.json is not ours to write
        meta = {"version": META_VERSION, "total": self.total,
                "sha256": self.expected.sha256, "sha1": self.expected.sha1,
                "ranges": [[p.start, p.end, p.done, p.server] for p in self.pieces]}
        fsutil.write_atomic(self.meta_path, json.dumps(meta, sort_keys=True).encode("utf-8"),
                            mode=0o600)

    def split(self, piece, at, server):
        """Give [at, piece.end) to a new piece served by ``server``; the old
        piece's connection stops at ``at``.  Caller holds self.lock."""
        new = Piece(at, piece.end, server=server)
        piece.end = at
        self.pieces.append(new)
        self.pieces.sort(key=lambda p: p.start)
        self._save_locked()
        return new

    def reassign(self, piece, server):
        """A piece whose connection failed goes to ``server``: what it had
        stays as a complete piece of its old mirror, the rest is a new
        piece.  Caller holds self.lock.  Returns the piece to fetch."""
        if piece.done == piece.start:
            piece.server = server
            return piece
        if piece.complete():
            return None
        return self.split(piece, piece.done, server)

    # -- the end -------------------------------------------------------------------------
    def verify(self):
        """The whole NAME.part hashed from disk: None when it verifies, else
        (short reason, full reason)."""
        h = hash_file(self.part, self.expected)
        reason = h.mismatch()
        return None if reason is None else (h.short_mismatch(), reason)

    def commit(self):
        """fsync NAME.part, rename it to NAME, then forget NAME.part.json."""
        with self.lock:
            self.closed = True
        try:
            fd = fsutil.open_regular(self.part, os.O_RDONLY, doing="read")
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            raise fsutil.write_error("cannot write %s" % self.part, e)
        fsutil.commit_part(self.part, self.dest, self.meta_path)

    def discard(self):
        with self.lock:
            self.closed = True
        fsutil.remove(self.part)
        fsutil.remove(self.meta_path)

    # -- writing ---------------------------------------------------------------------------
    def open_writer(self):
        try:
            return fsutil.open_regular(self.part, os.O_WRONLY)
        except OSError as e:
            raise fsutil.write_error("cannot write %s" % self.part, e)

    def write(self, fd, piece, view, n):
        """Write the next n received bytes of ``piece`` at its offset, cut at
        its current end; returns how many were kept (0: the piece is done,
        its tail taken over).  The lock makes "where does it end" and the
        write one step, so two connections never write the same byte."""
        with self.lock:
            keep = min(n, piece.end - piece.done)
            if keep <= 0 or self.closed:
                return 0
            try:
                os.lseek(fd, piece.done, os.SEEK_SET)
                fsutil.write_all(fd, view[:keep])
            except OSError as e:
                raise fsutil.write_error("cannot write %s" % self.part, e)
            piece.done += keep
            self._save_locked()
            return keep


def present(dest, expected, options, notify):
    """A Result when NAME already verifies (checked before the lock, as
    download.py does), else None."""
    return Download(dest, [], expected, None, None, options, notify=notify).present()


# -- one request for one piece --------------------------------------------------------------
def request_headers(piece, total, ranges_ok):
    """Range for a piece: a closed range once the total is known, an open
    one (to learn it) before; none for a mirror known to ignore Range,
    which only ever serves a piece from byte 0."""
    if ranges_ok is False:
        return {}
    if total is None:
        return {"Range": "bytes=%d-" % piece.done}
    return {"Range": "bytes=%d-%d" % (piece.done, piece.end - 1)}


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+)\s*$")


def check_response(resp, rf, piece, asked_range, asked_end=None):
    """The total the response is for, or a SourceFailure / IgnoresRange.
    The same rules as transfer.py's _check_response, for a closed range.
    ``asked_end``: the last byte asked for (None: to the end of the file);
    the piece's end may have moved closer since (a take-over)."""
    status = resp.status
    if status in NOT_FOUND_STATUSES:
        raise SourceFailure(SourceFailure.KIND_NOT_FOUND, "HTTP %d %s" % (status, resp.reason))
    if status in RETRY_STATUSES:
        raise SourceFailure(SourceFailure.KIND_TRANSIENT, "HTTP %d %s" % (status, resp.reason),
                            retry_after=parse_retry_after(resp.header("retry-after")))
    if status not in (200, 206):
        raise SourceFailure(SourceFailure.KIND_HTTP, "HTTP %d %s" % (status, resp.reason))
    ctype = resp.header("content-type", "").lower()
    if ctype.startswith("text/html") and not rf.name.lower().endswith((".html", ".htm")):
        raise SourceFailure(SourceFailure.KIND_PROTOCOL, "served an HTML page instead of the file")
    if status == 200:
        if piece.done != 0:
            raise IgnoresRange()
        total = resp.length
        if total is None:
            raise SourceFailure(SourceFailure.KIND_PROTOCOL, "no Content-Length")
    else:
        if not asked_range:
            raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                "206 Partial Content to a request without Range")
        cr = resp.header("content-range", "")
        m = _CONTENT_RANGE.match(cr)
        if not m:
            raise SourceFailure(SourceFailure.KIND_PROTOCOL, "bad Content-Range %r" % cr[:80])
        start, end, total = (int(x) for x in m.groups())
        want_end = total - 1 if asked_end is None else asked_end
        known = rf.total or rf.expected.size
        if start != piece.done or end != want_end or (known and total != known):
            raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                "Content-Range %r does not match the request for bytes %d-%d"
                                % (cr, piece.done, want_end))
        if resp.length is not None and resp.length != end - start + 1:
            raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                "Content-Length %d disagrees with Content-Range %r"
                                % (resp.length, cr))
    if rf.expected.size is not None and total != rf.expected.size:
        raise SourceFailure(SourceFailure.KIND_CHECKSUM,
                            "size %d, expected %d" % (total, rf.expected.size))
    return total


class PieceTransfer(object):
    """Receive one piece's bytes from an open response into NAME.part.

    ``on_block(n, seconds)`` is told of every block (the scheduler's
    throughput).  Stops at the piece's end, which may move closer while it
    runs (a take-over); the stall rule is transfer.py's."""

    def __init__(self, rf, piece, resp, options, on_block):
        """options: download.Options (block size, the stall rule, --limit-rate)."""
        block_size, low_speed_limit, low_speed_time = (options.block_size,
                                                       options.low_speed_limit,
                                                       options.low_speed_time)
        self.throttle = options.throttle
        self.rf = rf
        self.piece = piece
        self.resp = resp
        self.buf = bytearray(block_size)
        self.low_speed_limit = low_speed_limit
        self.low_speed_time = low_speed_time
        self.on_block = on_block

    def run(self):
        rf, piece = self.rf, self.piece
        fd = rf.open_writer()
        try:
            self._loop(fd)
        finally:
            os.close(fd)

    def _loop(self, fd):
        rf, piece, resp = self.rf, self.piece, self.resp
        view = memoryview(self.buf)
        now = compat_monotonic
        window_start, window_bytes = now(), 0
        last = now()
        while True:
            want = min(len(view), piece.end - piece.done)
            if want <= 0:
                return
            got = 0
            throttle = self.throttle
            while got < want:
                end = want if throttle is None else min(want, got + throttle.chunk)
                n = resp.readinto(view[got:end])
                if not n:
                    break
                got += n
                window_bytes += n
                if throttle is not None:
                    # Time held back by --limit-rate (shared by every
                    # connection of the run) is not a stall.
                    window_start += throttle.take(n)
                t = now()
                piece.last_byte = t     # the scheduler's sign of life (_take_over)
                if t - window_start >= self.low_speed_time:
                    if window_bytes < self.low_speed_limit * (t - window_start):
                        raise SourceFailure(SourceFailure.KIND_NETWORK,
                                            "stalled: %d bytes in %.0fs (below %d bytes/s)"
                                            % (window_bytes, t - window_start,
                                               self.low_speed_limit))
                    window_start, window_bytes = t, 0
            if got:
                kept = rf.write(fd, piece, view, got)
                t = now()
                self.on_block(kept, t - last)
                last = t
                if kept < got:
                    return       # the tail is someone else's now
            if got < want:
                if piece.complete():
                    return
                raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                    "connection closed early at byte %d" % piece.done)


# -- NAME.part.json -----------------------------------------------------------------------------
def _is_int(x):
    return isinstance(x, compat_integer_types) and not isinstance(x, bool) and x >= 0


def _valid_meta(meta):
    """Exactly what _save_locked writes, with ranges that tile [0, total)."""
    if not isinstance(meta, dict) or meta.get("version") != META_VERSION:
        return False
    if not _is_int(meta.get("total")):
        return False
    for key in ("sha256", "sha1"):
        if meta.get(key) is not None and not isinstance(meta[key], compat_text_types):
            return False
    ranges = meta.get("ranges")
    if not isinstance(ranges, list) or not ranges or len(ranges) > 10000:
        return False
    at = 0
    for r in ranges:
        if not isinstance(r, list) or len(r) != 4:
            return False
        start, end, done, server = r
        if not (_is_int(start) and _is_int(end) and _is_int(done)):
            return False
        if server is not None and not isinstance(server, compat_text_types):
            return False
        if start != at or not start <= done <= end:
            return False
        at = end
    return at == meta["total"]
