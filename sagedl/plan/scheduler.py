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
  still serves whole files (from byte 0) but never a split range.  Until
  its first answer says which, one connection at a time may ask it for
  such a range: the others take whole files or wait.
* 429/503 rest that mirror only, by retry.py's policy (Retry-After, capped;
  else a backoff); once its retries are used up, or after ``DEAD_AFTER``
  other failures in a row, or found lying, it is dropped for the run; a
  404 (to a range or to the size probe) drops it for that file only.
* When the file fails its checksum, each range is fetched again from
  another mirror and compared (liars.py): the ranges that differ are
  replaced, the mirror that sent them is named, dropped for the run and
  recorded in the health cache; the good ranges are kept.
* Each mirror's bytes/s go into the health cache, and start the next run.

A file that cannot be finished here (no mirror has it, every mirror failed,
a checksum no re-fetch could fix) comes back unfinished, with the failures:
the caller then runs it through download.py's one-source-at-a-time engine,
which tries every source in Sage's order and words the final error.

Each connection is a worker.Slot, which carries out the work it takes; the
bytes themselves are rangefile.py's: NAME.part written at offsets,
NAME.part.json with each range's progress, verification before the rename.

The rules, each with the test that fails when it is removed (checked by
removing each one; tests/test_scheduler.py):

=============================================  ======================================================
rule (where)                                   test
=============================================  ======================================================
find the liar by re-fetching its ranges        test_a_mirror_that_corrupts_a_range_is_found_named_and_recorded
(liars.find_liar)
no split range from a mirror ignoring Range    test_a_mirror_that_ignores_range_serves_whole_files_only
(may_ask_range: ``m.ranges is False``)
one range from byte N > 0 at a time to a       tests/test_scheduler_choice.py
mirror not known to honour Range               test_one_range_at_a_time_while_range_support_is_unknown
(may_ask_range: ``m.trials``)
a 404 to the size probe drops that mirror      tests/test_scheduler_choice.py
for the file (worker.Slot._probe)              test_a_404_to_the_size_probe_drops_that_mirror_for_the_file
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

import threading

from sagedl import errors
from sagedl.compat import compat_monotonic
from sagedl.engine.worker import PROBE, Slot
from sagedl.errors import SourceFailure, failure_error

PER_MIRROR = 4          # connections per mirror (see bench/mirrors.py)
MAX_CONNECTIONS = 24    # all mirrors together
SPLIT = 16              # ranges of one file fetched at once
# A take-over never leaves or takes less (unless stalled).  512 KiB kept a
# large file's last second on its slowest mirrors (the fast ones idle);
# 128 KiB ended it ~2% sooner in bench/mirrors.py's large item for ~0.6%
# more bytes sent (overlap in flight); 64 KiB gained nothing more.
MIN_PIECE = 128 * 1024
DEAD_AFTER = 3          # failures in a row that drop a mirror for the run
STALL_MIN = 1.5         # seconds without a byte after which a connection counts as stalled
POLL = 0.1              # an idle connection looks again this often
DEFAULT_LATENCY = 0.2


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


class Mirror(object):
    """One mirror: its connection cap and what this run measured of it."""

    def __init__(self, key, label, rate=None):
        self.key = key
        self.label = label
        self.active = 0
        self.ranges = None         # None: not known yet; False: ignores Range
        self.trials = 0            # requests from byte N > 0 in flight while ranges is None
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
                slots.append(Slot(self, m, round_))
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
                work = self.work_for(slot, now)
                if work is not None:
                    return work
                self.cond.wait(POLL)

    def work_for(self, slot, now):
        """The work ``slot`` takes now, counted as started, or None (take()'s
        one step, under self.cond)."""
        m = slot.mirror
        if self.active >= self.settings.max_connections:
            return None
        work = (self._pending_piece(m) or self._next_file(m)
                or self._size_probe(m) or self._take_over(m, now))
        if work is None:
            return None
        self.active += 1
        if m.active == 0:
            m.busy_since = now
        m.active += 1
        self._show_mirrors()
        if work[1] not in (None, PROBE):
            work[1].owner = slot
            work[1].last_byte = None
            work[1].asked = now
            self.asking(slot, work[1])
        return work

    def _usable(self, f, m):
        return m.key in f.urls and m.key not in f.excluded

    def may_ask_range(self, m):
        """Whether ``m`` may be asked for a range from byte N > 0: not when
        it ignores Range, and while that is not known yet, by one connection
        at a time -- a mirror ignoring Range answers such a request with the
        whole file from byte 0, thrown away, and several connections taking
        ranges before the first answer came would each cost that.  The size
        probe and a file's first range start at byte 0, which such a mirror
        serves as asked: they are not counted."""
        return m.ranges is True or (m.ranges is None and m.trials == 0)

    def asking(self, slot, piece):
        """``slot`` sends its request for ``piece`` (under self.cond)."""
        if piece.done > 0 and slot.mirror.ranges is None:
            slot.mirror.trials += 1
            slot.trial = True

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
                    if p.done > 0 and not self.may_ask_range(m):
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
        if self.settings.split < 2 or not self.may_ask_range(m):
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
                if self.settings.engine.throttle is not None:
                    # --limit-rate holds connections back: only the stall
                    # rule's own window tells a stall from a wait then.
                    stall_after = max(stall_after, self.settings.engine.low_speed_time)
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
    def release(self, slot, piece):
        m = slot.mirror
        self.active -= 1
        m.active -= 1
        self.answered(slot)
        if m.active == 0 and m.busy_since is not None:
            m.busy += compat_monotonic() - m.busy_since
            m.busy_since = None
        if piece is not None and piece.owner is slot:
            piece.owner = None
        self._show_mirrors()
        self.cond.notify_all()

    def answered(self, slot):
        """``slot``'s request for a range from byte N > 0 is over (its
        answer, which set ``ranges``, or a failure, which did not): another
        connection of that mirror may try one."""
        if slot.trial:
            slot.trial = False
            slot.mirror.trials -= 1
            self.cond.notify_all()

    def _show_mirrors(self):
        count = sum(1 for m in self.mirrors if m.active)
        if count != self.shown_mirrors:
            self.shown_mirrors = count
            self.progress.set_mirrors(count)

    def give_up(self, f, error):
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

    def check_viable(self):
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
                self.give_up(f, failure_error(f.attempts, f.name))

    def failed(self, slot, f, piece, url, failure):
        """One request failed: the range goes back, the mirror is judged."""
        m = slot.mirror
        now = compat_monotonic()
        errors.debug("%s: %s failed: %s" % (f.name, m.label, failure))
        self.on_result(url, False, str(failure))
        with self.cond:
            self.release(slot, piece)
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
            self.check_viable()

    def ignores_range(self, slot, f, piece):
        m = slot.mirror
        with self.cond:
            self.release(slot, piece)
            if m.ranges is not False:
                m.ranges = False
                errors.debug("%s ignores Range: whole files only" % m.label)
            self.check_viable()

    def fatal(self, slot, f, piece, error):
        """A failure no other mirror can fix (the disk, an unsafe path, the lock)."""
        with self.cond:
            self.release(slot, piece)
            if not f.finished():
                f.fatal = True
                self.give_up(f, error)
