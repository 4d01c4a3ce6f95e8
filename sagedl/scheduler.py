"""Many files over many mirrors at once: who fetches which byte range.

Real Sage mirrors are each slow (a few MB/s, 50-300 ms away) while the
user's link is often faster than any one of them, so one mirror per file
leaves most of the bandwidth unused.  Here work comes in units of (file,
byte range) and mirrors pull them:

* Each mirror has ``per_mirror`` connections (a polite cap, as aria2c's
  ``-x``), each a thread with its own transport; ``max_connections`` caps
  them all.  A connection that is free takes, in this order: a range of a
  file already started that nobody fetches, the next file not started, or
  the tail of the range that will take longest -- so a mirror's share
  follows its measured throughput, and a run never waits on its slowest
  mirror.
* A take-over splits the range where both connections would finish at the
  same time (from each one's measured bytes/s and the taker's answer
  latency), leaving the owner at least MIN_PIECE, and only when it saves
  more than two answer delays; a connection silent for a while counts as
  stalled (speed 0) and loses all its rest, without waiting out its
  deadline.  A file is fetched in at most ``split`` ranges at once (1:
  never split).  While a new file's size is unknown, idle mirrors ask for
  its first byte: the first Content-Range to arrive lets every connection
  take a range.
* A mirror that answers a range from byte N > 0 with 200 ignores Range: it
  still serves whole files (from byte 0) but never a split range.
* 429/503 rest that mirror only, by retry.py's policy (Retry-After, capped;
  else a backoff); once its retries are used up, or after ``DEAD_AFTER``
  other failures in a row, or found lying, it is dropped for the run; a
  404 drops it for that file only.
* When the file fails its checksum, each range is fetched again from
  another mirror and compared (find_liar): the ranges that differ are
  replaced, the mirror that sent them is named, dropped for the run and
  recorded in the health cache; the good ranges are kept.
* Each mirror's bytes/s go into the health cache, and start the next run.

A file that cannot be finished here (no mirror has it, every mirror failed,
a checksum no re-fetch could fix) comes back unfinished, with the failures:
the caller then runs it through download.py's one-source-at-a-time engine,
which tries every source in Sage's order and words the final error.

The bytes themselves are rangefile.py's: NAME.part written at offsets,
NAME.part.json with each range's progress, verification before the rename.

The rules, each with the test that fails when it is removed (checked by
removing each one; tests/test_scheduler.py):

=============================================  ======================================================
rule (where)                                   test
=============================================  ======================================================
find the liar by re-fetching its ranges        test_a_mirror_that_corrupts_a_range_is_found_named_and_recorded
(find_liar)
no split range from a mirror ignoring Range    test_a_mirror_that_ignores_range_serves_whole_files_only
(_take_over: ``m.ranges is False``)
a silent connection counts as stalled          test_a_stalled_range_is_taken_over_before_its_deadline
(_take_over: ``now - seen > stall_after``)
429/503 rest that mirror (failed)              test_retry_after_rests_that_mirror_only
each range resumes from NAME.part.json         test_kill_9_mid_split_then_every_range_resumes
(rangefile.RangeFile._resume)
at most ``split`` ranges at once (_take_over)  test_split_1_never_splits
bytes/s into the health cache (spread.fetch)   test_throughput_is_remembered_in_the_health_cache
=============================================  ======================================================
"""

from __future__ import absolute_import

import re
import threading

from sagedl import errors
from sagedl.compat import compat_monotonic
from sagedl.errors import SagedlError, SourceFailure, failure_error
from sagedl.rangefile import (IgnoresRange, PieceTransfer, RangeFile, check_response,
                              request_headers)
from sagedl.urls import redact

PER_MIRROR = 4          # connections per mirror (see bench/mirrors.py)
MAX_CONNECTIONS = 24    # all mirrors together
SPLIT = 16              # ranges of one file fetched at once
MIN_PIECE = 512 * 1024  # a take-over never leaves or takes less (unless stalled)
DEAD_AFTER = 3          # failures in a row that drop a mirror for the run
STALL_MIN = 1.5         # seconds without a byte after which a connection counts as stalled
POLL = 0.1              # an idle connection looks again this often
DEFAULT_LATENCY = 0.2
PROBE = "probe"         # the work of asking a mirror for a file's size


class Settings(object):
    """The scheduler's knobs, fixed for a run."""

    __slots__ = ("per_mirror", "max_connections", "split", "min_piece", "engine")

    def __init__(self, engine, per_mirror=PER_MIRROR, max_connections=MAX_CONNECTIONS,
                 split=SPLIT, min_piece=MIN_PIECE):
        self.engine = engine                  # download.Options: timeouts, stall rule, lock
        self.per_mirror = max(1, per_mirror)
        self.max_connections = max(1, max_connections)
        self.split = max(1, split)
        self.min_piece = min_piece


def mirror_key(url):
    """The mirror a source URL belongs to: the URL without the file name
    and, in Sage's layout, without spkg/upstream/PKG/."""
    return re.sub(r"(spkg/upstream/[^/]+/)?[^/]*$", "", url)


class Mirror(object):
    """One mirror: its connection cap and what this run measured of it."""

    def __init__(self, key, label, rate=None):
        self.key = key
        self.label = label
        self.active = 0
        self.ranges = None         # None: not known yet; False: ignores Range
        self.dead = None           # why it is no longer used in this run
        self.resting_until = 0.0   # 429/503: no request before this
        self.failures = 0          # in a row
        self.retry = None          # retry.Retry: 429/503 in a row (set by the Scheduler)
        self.rate = rate           # bytes/s of one connection, smoothed
        self.latency = None        # seconds to the response head, smoothed
        self.bytes = 0
        self.busy_since = None
        self.busy = 0.0            # seconds with at least one connection open

    def per_connection_rate(self, default):
        return self.rate or default

    def __repr__(self):
        return "Mirror(%s)" % self.label


class FileWork(object):
    """One file: where it goes, what it must hash to, and each mirror's URL
    for it (``urls``: mirror key -> URL, in the order to prefer)."""

    def __init__(self, index, name, dest, expected, urls):
        self.index = index
        self.name = name
        self.dest = dest
        self.expected = expected
        self.urls = urls
        self.rf = None
        self.state = "new"         # new, opening, open, finishing, done, failed
        self.result = None
        self.error = None          # set when this run gave up on the file
        self.fatal = False         # ... for a reason no other source can fix (disk, lock)
        self.excluded = set()      # mirror keys that do not have it (404, other size)
        self.attempts = []         # (label, SourceFailure), for the final error
        self.probed = set()        # mirror keys asked for its size (Scheduler._size_probe)
        self.announced = False

    def finished(self):
        return self.state in ("done", "failed")


class Scheduler(object):
    """Fetch ``files`` (FileWork) from ``mirrors`` (Mirror, best first).

    ``new_transport()`` makes one transport per connection; ``progress``
    gets file_started/file_progress/file_done/set_mirrors as
    AggregateProgress; ``on_result(url, ok, reason)`` feeds the health
    record.  run() returns when every file is done or given up on."""

    def __init__(self, files, mirrors, settings, new_transport, progress, notify, on_result):
        self.files = files
        self.mirrors = mirrors
        self.by_key = dict((m.key, m) for m in mirrors)
        for m in mirrors:
            m.retry = settings.engine.retry
        self.settings = settings
        self.new_transport = new_transport
        self.progress = progress
        self.notify = notify
        self.on_result = on_result
        self.cond = threading.Condition(threading.Lock())
        self.active = 0
        self.queue = list(files)      # not started yet, in order
        self.open_files = []
        self.interrupted = False
        self.shown_mirrors = None
        known = [m.rate for m in mirrors if m.rate]
        self.default_rate = (sum(known) / len(known)) if known else 1e6

    # -- running ----------------------------------------------------------------------
    def run(self):
        slots = []
        per = self.settings.per_mirror
        budget = self.settings.max_connections
        for round_ in range(per):            # the best mirrors' first connections first
            for m in self.mirrors:
                if budget <= 0:
                    break
                slots.append(_Slot(self, m, round_))
                budget -= 1
        threads = []
        for s in slots:
            t = threading.Thread(target=s.run, name="sagedl-%s-%d" % (s.mirror.label, s.index))
            t.daemon = True      # a connection stuck in a stalled read must not hold the exit
            t.start()
            threads.append(t)
        try:
            with self.cond:
                while not self._all_finished():
                    self.cond.wait(0.2)   # a timeout, so SIGINT reaches this thread on 2.7
        except KeyboardInterrupt:
            with self.cond:
                self.interrupted = True
                self.cond.notify_all()
            raise
        finally:
            now = compat_monotonic()
            for m in self.mirrors:
                if m.busy_since is not None:
                    m.busy += now - m.busy_since
                    m.busy_since = None
        return self.files

    def _all_finished(self):
        return all(f.finished() for f in self.files)

    def throughputs(self):
        """[(mirror key, bytes/s while it had a connection open)] of this run."""
        return [(m.key, m.bytes / m.busy) for m in self.mirrors if m.bytes and m.busy > 0.5]

    # -- handing out work (called by the connections, under self.cond) ---------------
    def take(self, slot):
        m = slot.mirror
        with self.cond:
            while True:
                if self.interrupted or self._all_finished() or m.dead:
                    return None
                now = compat_monotonic()
                if m.resting_until > now:
                    self.cond.wait(min(m.resting_until - now, POLL * 5))
                    continue
                if self.active < self.settings.max_connections:
                    work = (self._pending_piece(m) or self._next_file(m)
                            or self._size_probe(m) or self._take_over(m, now))
                    if work is not None:
                        self.active += 1
                        if m.active == 0:
                            m.busy_since = now
                        m.active += 1
                        self._show_mirrors()
                        if work[1] not in (None, PROBE):
                            work[1].owner = slot
                            work[1].last_byte = None
                            work[1].asked = now
                        return work
                self.cond.wait(POLL)

    def _usable(self, f, m):
        return m.key in f.urls and m.key not in f.excluded

    def _ranges_at_once(self, f):
        return sum(1 for p in f.rf.pieces if p.owner is not None)

    def _pending_piece(self, m):
        """A range of an open file that nobody fetches (a resume's, or one
        whose connection failed)."""
        for f in self.open_files:
            if f.state != "open" or not self._usable(f, m):
                continue
            if self._ranges_at_once(f) >= self.settings.split:
                continue
            with f.rf.lock:
                for p in f.rf.pieces:
                    if p.owner is not None or p.complete():
                        continue
                    if p.done > 0 and m.ranges is False:
                        continue
                    piece = f.rf.reassign(p, m.label)
                    if piece is not None:
                        return f, piece
        return None

    def _next_file(self, m):
        for f in self.queue:
            if self._usable(f, m):
                self.queue.remove(f)
                f.state = "opening"
                return f, None
        return None

    def _size_probe(self, m):
        """A file whose size nobody has told yet (its first request waits
        for the head of a mirror that may be slow to answer): ask this one
        for its first byte, whose Content-Range says the size.  Once it is
        known, every idle connection can take a range (so not when files
        are never split)."""
        if self.settings.split < 2 or m.ranges is False:
            return None
        for f in self.open_files:
            if (f.state == "open" and f.rf.total is None and self._usable(f, m)
                    and m.key not in f.probed):
                f.probed.add(m.key)
                return f, PROBE
        return None

    def _take_over(self, m, now):
        """The tail of the range that would finish last, split where the
        owner and this mirror would finish together; None when no split
        gains time."""
        if self.settings.split < 2 or m.ranges is False:
            return None
        r_s = m.per_connection_rate(self.default_rate)
        lat_s = m.latency if m.latency is not None else DEFAULT_LATENCY
        best = None
        for f in self.open_files:
            if f.state != "open" or f.rf.total is None or not self._usable(f, m):
                continue
            if self._ranges_at_once(f) >= self.settings.split:
                continue
            for p in f.rf.pieces:
                owner = p.owner
                if owner is None or p.end is None or owner.mirror is m:
                    continue
                R = p.remaining()
                if R <= 0:
                    continue
                om = owner.mirror
                stall_after = max(STALL_MIN, 4 * (om.latency or DEFAULT_LATENCY))
                seen = p.last_byte if p.last_byte is not None else p.asked
                if now - seen > stall_after:
                    r_o, keep = 0.0, 0
                else:
                    r_o = p.rate or om.per_connection_rate(self.default_rate)
                    keep = int((lat_s + R / r_s) / (1.0 / r_o + 1.0 / r_s))
                    # The owner keeps at least what is on its way to it.
                    keep = max(keep, self.settings.min_piece)
                    if R - keep < self.settings.min_piece:
                        continue
                owner_time = R / r_o if r_o else float("inf")
                if best is None or owner_time > best[0]:
                    best = (owner_time, f, p, keep)
        if best is None:
            return None
        _, f, p, keep = best
        with f.rf.lock:
            at = p.done + keep
            if at >= p.end:
                return None
            piece = f.rf.split(p, at, m.label)
        errors.debug("%s: bytes %d-%d taken over by %s from %s"
                     % (f.name, piece.start, piece.end - 1, m.label, p.owner.mirror.label
                        if p.owner is not None else "?"))
        return f, piece

    # -- results (under self.cond) -------------------------------------------------------
    def _release(self, slot, piece):
        m = slot.mirror
        self.active -= 1
        m.active -= 1
        if m.active == 0 and m.busy_since is not None:
            m.busy += compat_monotonic() - m.busy_since
            m.busy_since = None
        if piece is not None and piece.owner is slot:
            piece.owner = None
        self._show_mirrors()
        self.cond.notify_all()

    def _show_mirrors(self):
        count = sum(1 for m in self.mirrors if m.active)
        if count != self.shown_mirrors:
            self.shown_mirrors = count
            self.progress.set_mirrors(count)

    def _give_up(self, f, error):
        f.state = "failed"
        f.error = error
        if f.rf is not None:
            f.rf.release()
        if f in self.open_files:
            self.open_files.remove(f)
        if f in self.queue:
            self.queue.remove(f)
        # Not reported as done: the caller tries the file again (download.py).
        self.cond.notify_all()

    def _check_viable(self):
        """Give up on files no live mirror can finish."""
        for f in list(self.queue) + list(self.open_files):
            if f.finished() or f.state in ("opening", "finishing"):
                continue
            live = [self.by_key[k] for k in f.urls
                    if k in self.by_key and k not in f.excluded and not self.by_key[k].dead]
            needs_range = f.rf is not None and any(p.done > 0 and not p.complete()
                                                   for p in f.rf.pieces)
            if needs_range:
                live = [m for m in live if m.ranges is not False]
            if not live and not any(p.owner is not None for p in (f.rf.pieces if f.rf else ())):
                self._give_up(f, failure_error(f.attempts, f.name))

    def failed(self, slot, f, piece, url, failure):
        """One request failed: the range goes back, the mirror is judged."""
        m = slot.mirror
        now = compat_monotonic()
        errors.debug("%s: %s failed: %s" % (f.name, m.label, failure))
        self.on_result(url, False, str(failure))
        with self.cond:
            self._release(slot, piece)
            if f.state == "opening":
                f.state = "new"
                self.queue.insert(0, f)
            f.attempts.append((m.label, failure))
            kind = failure.kind
            if kind in (SourceFailure.KIND_NOT_FOUND, SourceFailure.KIND_CHECKSUM):
                f.excluded.add(m.key)      # this mirror has no such file, or another one
            if kind == SourceFailure.KIND_TRANSIENT and not m.retry.exhausted:
                # Busy: that mirror rests, the others go on (retry.py's policy).
                m.retry = m.retry.increment()
                delay = m.retry.delay(failure.retry_after)
                m.resting_until = now + delay
                self.notify("%s: %s; no request to it for %.1fs" % (m.label, failure, delay))
            elif kind != SourceFailure.KIND_NOT_FOUND:
                m.failures += 1
                if (m.failures >= DEAD_AFTER or kind == SourceFailure.KIND_TRANSIENT) \
                        and not m.dead:
                    m.dead = str(failure)
                    self.notify("%s: %s; not used any more in this run" % (m.label, failure))
            self._check_viable()

    def ignores_range(self, slot, f, piece):
        m = slot.mirror
        with self.cond:
            self._release(slot, piece)
            if m.ranges is not False:
                m.ranges = False
                errors.debug("%s ignores Range: whole files only" % m.label)
            self._check_viable()

    def fatal(self, slot, f, piece, error):
        """A failure no other mirror can fix (the disk, an unsafe path, the lock)."""
        with self.cond:
            self._release(slot, piece)
            if not f.finished():
                f.fatal = True
                self._give_up(f, error)


class _Slot(object):
    """One connection to one mirror: pulls work until there is none."""

    def __init__(self, sched, mirror, index):
        self.sched = sched
        self.mirror = mirror
        self.index = index
        self.transport = None

    def run(self):
        sched = self.sched
        try:
            while True:
                work = sched.take(self)
                if work is None:
                    return
                f, piece = work
                if piece is PROBE:
                    self._probe(f)
                    continue
                try:
                    if piece is None:
                        piece = self._open(f)
                        if piece is None:
                            continue
                    self._fetch(f, piece)
                except SagedlError as e:
                    sched.fatal(self, f, piece, e)
                except Exception as e:    # a bug must not leave the run waiting for ever
                    sched.fatal(self, f, piece, SagedlError("%s: %s" % (f.name, e)))
        finally:
            if self.transport is not None:
                self.transport.close()

    def _open(self, f):
        """The connection that takes a new file opens it (lock, a verified
        file already there, a partial to resume) and fetches its first range."""
        sched = self.sched
        rf = RangeFile(f.dest, f.expected, sched.settings.engine, sched.notify)
        present = rf.open()
        with sched.cond:
            f.rf = rf
            if present is not None:
                f.result, f.state = present, "done"
                sched._release(self, None)
                sched.progress.file_done(f.name, True, present.nbytes)
                return None
            f.state = "open"
            sched.open_files.append(f)
            if rf.total is not None:
                sched.progress.file_started(f.name, rf.total, rf.done_bytes())
            m = self.mirror
            with rf.lock:
                for p in rf.pieces:
                    if p.owner is None and not p.complete() and (p.done == 0 or m.ranges is not False):
                        piece = rf.reassign(p, m.label)
                        if piece is not None:
                            piece.owner = self
                            piece.asked = compat_monotonic()
                            return piece
            sched._release(self, None)     # a resume with nothing this mirror can take
            sched._check_viable()
            if rf.complete():
                f.state = "finishing"
        if f.state == "finishing":
            self._finish(f)
        return None

    def _probe(self, f):
        """bytes=0-0: the size from the Content-Range, the first of the
        mirror's latency and Range support; nothing else is kept."""
        from sagedl.rangefile import Piece
        sched, m, rf = self.sched, self.mirror, f.rf
        url = f.urls[m.key]
        try:
            if self.transport is None:
                self.transport = sched.new_transport()
            t0 = compat_monotonic()
            resp = self.transport.open(url, headers={"Range": "bytes=0-0"},
                                       allow_downgrade=True)
            try:
                m.latency = _smooth(m.latency, compat_monotonic() - t0, 0.3)
                total = check_response(resp, rf, Piece(0, None), True, 0)
                if resp.status == 206:
                    m.ranges = True
                    was_unknown = rf.total is None
                    rf.set_total(total)
                    if was_unknown:
                        sched.progress.file_started(f.name, total, 0)
            finally:
                resp.close()
        except (SourceFailure, IgnoresRange, SagedlError) as e:
            errors.debug("%s: size from %s: %s" % (f.name, m.label, e))
        with sched.cond:
            sched._release(self, None)

    def _fetch(self, f, piece):
        sched, m = self.sched, self.mirror
        url = f.urls[m.key]
        rf = f.rf
        if self.transport is None:
            self.transport = sched.new_transport()
        headers = request_headers(piece, rf.total, m.ranges)
        asked_end = None if rf.total is None else piece.end - 1
        t0 = compat_monotonic()
        try:
            resp = self.transport.open(url, headers=headers, allow_downgrade=True)
        except SourceFailure as failure:
            sched.failed(self, f, piece, url, failure)
            return
        try:
            m.latency = _smooth(m.latency, compat_monotonic() - t0, 0.3)
            try:
                total = check_response(resp, rf, piece, bool(headers), asked_end)
            except IgnoresRange:
                sched.ignores_range(self, f, piece)
                return
            if resp.status == 206:
                m.ranges = True
            elif headers and m.ranges is not False:
                m.ranges = False
                errors.debug("%s ignores Range: whole files only" % m.label)
            was_unknown = rf.total is None
            rf.set_total(total)
            if was_unknown:
                sched.progress.file_started(f.name, total, 0)
            errors.debug("%s: bytes %d-%d from %s" % (f.name, piece.done, piece.end - 1, m.label))
            PieceTransfer(rf, piece, resp, sched.settings.engine.block_size,
                          sched.settings.engine.low_speed_limit,
                          sched.settings.engine.low_speed_time,
                          _Meter(sched, f, piece, m)).run()
        except SourceFailure as failure:
            sched.failed(self, f, piece, url, failure)
            return
        finally:
            resp.close()
        sched.on_result(url, True, "ok")
        with sched.cond:
            m.failures = 0
            m.retry = sched.settings.engine.retry
            sched._release(self, piece)
            # A connection stalled on a range taken over from it may still
            # own a complete piece: it writes nothing more (rangefile.write).
            done = rf.complete() and f.state == "open"
            if done:
                f.state = "finishing"
        if done:
            self._finish(f)

    def _finish(self, f):
        """Every range is in: verify the whole file, find a liar if it does
        not verify, and rename."""
        sched, rf = self.sched, f.rf
        bad = rf.verify()
        if bad is not None:
            liar = find_liar(sched, f, self)
            bad = rf.verify() if liar else bad
        with sched.cond:
            if bad is not None:
                failure = SourceFailure(SourceFailure.KIND_CHECKSUM,
                                        "checksum mismatch: " + bad[0], detail=bad[1])
                f.attempts.append(("mirrors", failure))
                rf.discard()
                sched._give_up(f, failure_error(f.attempts, f.name))
                return
        rf.commit()
        rf.release()
        from sagedl.download import Result
        with sched.cond:
            f.result = Result(f.dest, "downloaded", nbytes=rf.total)
            f.state = "done"
            if f in sched.open_files:
                sched.open_files.remove(f)
            sched.progress.file_done(f.name, True, rf.total)
            sched.cond.notify_all()


class _Meter(object):
    """Told of each block a connection writes: the piece's and the mirror's
    bytes/s, and the file's progress."""

    def __init__(self, sched, f, piece, mirror):
        self.sched = sched
        self.f = f
        self.piece = piece
        self.mirror = mirror

    def __call__(self, n, seconds):
        p, m = self.piece, self.mirror
        now = compat_monotonic()
        p.last_byte = now
        if seconds > 0:
            sample = n / seconds
            weight = min(1.0, seconds / 1.0)
            p.rate = _smooth(p.rate or None, sample, weight)
            m.rate = _smooth(m.rate, sample, min(1.0, seconds / 3.0))
        m.bytes += n
        self.sched.progress.file_progress(self.f.name, self.f.rf.done_bytes())


def _smooth(old, sample, weight):
    return sample if old is None else old + (sample - old) * weight


# -- a file that failed its checksum ---------------------------------------------------------
def find_liar(sched, f, slot):
    """Fetch each mirror's ranges again from another mirror, most bytes first;
    ranges that differ are overwritten with the other's bytes.  Once the file
    verifies, the mirror whose ranges differed is the liar: named, dropped
    for the run, recorded.  Returns its label, or None."""
    rf = f.rf
    by_server = {}
    for p in rf.pieces:
        by_server.setdefault(p.server, []).append(p)
    order = sorted(by_server, key=lambda s: -sum(p.end - p.start for p in by_server[s]))
    if slot.transport is None:
        slot.transport = sched.new_transport()
    for server in order:
        checkers = [m for m in sched.mirrors if m.label != server and not m.dead
                    and m.ranges is not False and m.key in f.urls]
        if not checkers:
            continue
        differed = []
        for p in by_server[server]:
            for checker in checkers:
                try:
                    if _compare_and_fix(rf, p, f.urls[checker.key], slot.transport):
                        differed.append((p, checker))
                    break
                except (SourceFailure, IgnoresRange):
                    continue
        if differed and rf.verify() is None:
            _name_liar(sched, f, server, differed)
            return server
    return None


def _compare_and_fix(rf, piece, url, transport):
    """Fetch piece's range from ``url``; compare it with the disk block by
    block, and from the first difference on, write the new bytes.  True if
    anything differed."""
    import os
    headers = {"Range": "bytes=%d-%d" % (piece.start, piece.end - 1)}
    resp = transport.open(url, headers=headers, allow_downgrade=True)
    try:
        saved = piece.done
        piece.done = piece.start
        try:
            check_response(resp, rf, piece, True, piece.end - 1)
        finally:
            piece.done = saved
        if resp.status != 206:
            raise IgnoresRange()
        fd = rf.open_writer()
        rfd = os.open(rf.part, os.O_RDONLY)
        try:
            differed = False
            at = piece.start
            view = memoryview(bytearray(256 * 1024))
            while at < piece.end:
                n = resp.readinto(view[:min(len(view), piece.end - at)])
                if not n:
                    raise SourceFailure(SourceFailure.KIND_PROTOCOL, "connection closed early")
                os.lseek(rfd, at, os.SEEK_SET)
                if not differed and os.read(rfd, n) != view[:n].tobytes():
                    differed = True
                if differed:
                    os.lseek(fd, at, os.SEEK_SET)
                    from sagedl.fsutil import write_all
                    write_all(fd, view[:n])
                at += n
            return differed
        finally:
            os.close(fd)
            os.close(rfd)
    finally:
        resp.close()


def _name_liar(sched, f, server, differed):
    spans = ", ".join("bytes %d-%d" % (p.start, p.end - 1) for p, _ in differed[:3])
    checker = differed[0][1].label
    sched.notify("%s: %s from %s did not match %s's; %s is not used any more in this run"
                 % (f.name, spans, server, checker, server))
    with sched.cond:
        for m in sched.mirrors:
            if m.label == server:
                m.dead = "served corrupt bytes of %s" % f.name
                if m.key in f.urls:
                    sched.on_result(f.urls[m.key], False,
                                    "served corrupt bytes of %s (%s)" % (f.name, spans))
        sched.cond.notify_all()


def labels_for(keys):
    """A short label per mirror key: host:port, or more of the URL when two
    mirrors share a host."""
    from sagedl.download import source_label
    labels = [source_label(k) for k in keys]
    out = []
    for k, label in zip(keys, labels):
        if labels.count(label) > 1:
            label = redact(k).split("://", 1)[-1].rstrip("/")
        out.append(label)
    return out
