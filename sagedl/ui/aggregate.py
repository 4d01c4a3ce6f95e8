"""One progress line for many files at once: the display of a bulk
download whose files are fetched by worker threads.

Why a module of its own: a single download (progress.py) reports one
transfer from one thread; this adds up many, under a lock, and estimates
what is not known yet.  Only a run of several files imports it (and
threading with it).
"""

from __future__ import absolute_import, division

from sagedl.compat import compat_monotonic
from sagedl.ui.progress import (LINES_MIN_GAP, REDRAW_INTERVAL, RedrawnLine, resolve_mode,
                                terminal_width, write)
from sagedl.ui.progresstext import (RateMeter, average_rate, format_aggregate_line,
                                    human_bytes, human_duration)

_INF = float("inf")



class AggregateProgress(RedrawnLine):
    """One summary for many files downloaded by worker threads.

    On a terminal ("bar") one line, redrawn at most 4 times a second:
        12/300 files, 45.6/~120.0 MiB 38%, 23.4 MiB/s, ETA 0:05, 2 failed
    Sage's checksums.ini gives no sizes, so unless set_totals() knows the
    total it is estimated ('~'): the sizes the servers announced so far, and
    their mean for each file not started yet.  The line fits the terminal
    by leaving figures out, never by cutting one.
    Elsewhere ("lines"; "dots" means the same here) that line at most every
    LINES_MIN_GAP seconds, when something changed.  "none" is silent.
    Files count as finished whether they succeeded or failed.
    """

    def __init__(self, stream, mode="auto", clock=None, width=None, env=None):
        mode = resolve_mode(mode, stream)
        self.mode = "lines" if mode == "dots" else mode
        self._stream = stream
        self._clock = clock or compat_monotonic
        self._width = (width or terminal_width(stream, env)) if self.mode == "bar" else None
        import threading   # here only: a single download never needs it
        self._lock = threading.Lock()
        self._files = None
        self._total_bytes = None
        self._ok = 0
        self._failed = 0
        self._active = {}  # name -> bytes present so far
        self._sizes = {}   # name -> size, as announced or found, for the estimate
        self._completed_bytes = 0
        self._transferred = 0  # bytes that came over the network (for the rate)
        self._start = self._clock()
        self._meter = RateMeter()
        self._meter.reset(self._start, 0)
        self._shown = 0
        if self.mode == "lines":
            # The first summary line is due LINES_MIN_GAP after the start.
            self._last_draw, self._next_draw = self._start, self._start + LINES_MIN_GAP
        else:
            self._last_draw = self._next_draw = _INF
        self._logged_state = (0, 0, 0)
        self._finished = False
        self._mirrors = None   # mirrors with a connection open (the multi-mirror scheduler)

    def set_totals(self, files, total_bytes):
        with self._lock:
            self._files, self._total_bytes = files, total_bytes
            if self.mode == "lines":
                size = (" (%s)" % human_bytes(total_bytes)) if total_bytes is not None else ""
                self._write("Downloading %d files%s\n" % (files, size))
                now = self._clock()
                self._last_draw, self._next_draw = now, now + LINES_MIN_GAP
            else:
                self._tick(self._clock(), force=True)

    def file_started(self, name, total, offset=0):
        """offset: bytes a resumed partial already holds (present, not transferred)."""
        with self._lock:
            self._active[name] = offset or 0
            if total is not None:
                self._sizes[name] = total
            self._tick(self._clock())

    def file_progress(self, name, done):
        with self._lock:
            previous = self._active.get(name, 0)
            if done > previous:
                self._transferred += done - previous
            self._active[name] = done
            self._tick(self._clock())

    def file_done(self, name, ok, nbytes=0):
        """nbytes: the file's size; for a file never started (already cached)
        it counts as present but not as transferred."""
        with self._lock:
            previous = self._active.pop(name, None)
            if ok:
                self._sizes[name] = nbytes or previous or 0
                self._ok += 1
                if previous is not None and nbytes > previous:
                    self._transferred += nbytes - previous
                self._completed_bytes += nbytes or previous or 0
            else:
                self._failed += 1
            self._tick(self._clock())

    def set_mirrors(self, count):
        """How many mirrors are sending right now: shown on the line."""
        with self._lock:
            self._mirrors = count

    def note(self, text):
        with self._lock:
            if self.mode == "none":
                return
            self._clear()
            self._write("%s\n" % text)
            if self.mode == "bar" and not self._finished:
                self._tick(self._clock(), force=True)

    def above(self, write):
        """Run ``write()`` (say, a path printed on stdout, the same terminal)
        with the line cleared, then draw it again below: never glued on."""
        with self._lock:
            if self.mode == "bar" and not self._finished:
                self._clear()
                write()
                self._tick(self._clock(), force=True)
            else:
                write()

    def finish(self, interrupted=False):
        """The last line, ending 'in 0:42' -- or 'interrupted' on Ctrl-C."""
        with self._lock:
            if self._finished or self.mode == "none":
                self._finished = True
                return
            self._finished = True
            self._mirrors = None     # none is sending any more: not worth a word
            now = self._clock()
            elapsed = max(0.0, now - self._start)
            line = self._line(average_rate(self._transferred, elapsed),
                              "interrupted" if interrupted else "in " + human_duration(elapsed))
            if self.mode == "bar":
                self._paint(line)
                self._write("\n")
                self._shown = 0
            else:
                self._write(line + "\n")

    # -- internals; called with the lock held

    def _write(self, text):
        write(self._stream, text)

    def _line(self, rate, tail=None):
        present = self._completed_bytes + sum(self._active.values())
        total, estimated = self._total_bytes, False
        if total is None and self._sizes and self._files is not None:
            known = list(self._sizes.values())
            unknown = max(0, self._files - self._failed - len(known))
            total, estimated = sum(known) + unknown * sum(known) // len(known), unknown > 0
            total = max(total, present)
        eta = None
        if total is not None and rate:
            eta = max(0, total - present) / rate
        return format_aggregate_line(self._ok + self._failed, self._files, present, total, rate,
                                     self._failed, tail, eta=eta, estimated=estimated,
                                     mirrors=self._mirrors,
                                     width=self._width if self.mode == "bar" else None)

    def _tick(self, now, force=False):
        if self.mode == "none" or self._finished:
            return
        if not force and self._last_draw <= now < self._next_draw:
            return
        self._meter.add(now, self._transferred)
        if self.mode == "bar":
            self._paint(self._line(self._meter.rate()))
            self._last_draw, self._next_draw = now, now + REDRAW_INTERVAL
            return
        state = (self._ok, self._failed, self._transferred)
        if state != self._logged_state:
            self._write(self._line(self._meter.rate()) + "\n")
            self._logged_state = state
        self._last_draw, self._next_draw = now, now + LINES_MIN_GAP

