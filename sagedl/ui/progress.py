"""Progress display on stderr (stdout is reserved for machine output).

One interface, four looks, picked by ``make_progress``:

- ``bar``:   one line redrawn with '\\r' on a terminal, at most 4 times a second;
- ``lines``: a few plain lines for build logs (start, sparse progress, end);
- ``dots``:  the 70-column ``[....]`` line of Sage's own downloader
             (build/sage_bootstrap/download/transfer.py, ``ProgressBar``), so
             logs of a Sage build look the same whichever tool fetched the tarball;
- ``none``:  silent (errors are reported by the CLI, not here).

aggregate.py holds the one-line summary for bulk downloads run in threads.

The clock is injectable so that tests are deterministic; the text is made
by the pure functions of progresstext.py (``human_bytes``,
``format_bar_line``, ...).
"""

from __future__ import absolute_import, division

import io
import os

from sagedl.compat import compat_monotonic
from sagedl.text import for_stream
from sagedl.ui.progresstext import (RateMeter, average_rate, format_bar_line, human_bytes,
                                    human_bytes_pair, human_duration, human_rate, percent)

MODES = ("auto", "bar", "lines", "dots", "none")

# bar: 4 redraws a second look smooth and cost nothing next to a 256 KiB block.
REDRAW_INTERVAL = 0.25

# lines: a progress line when a new 25 % mark is passed, but never within
# LINES_MIN_GAP seconds of the previous line (a 300-file bulk download of
# small tarballs then logs only start and end lines); and a heartbeat line
# after LINES_HEARTBEAT seconds of silence, so a slow download (or one of
# unknown size) visibly still lives in a CI log.
LINES_MIN_GAP = 30.0
LINES_HEARTBEAT = 300.0
# Once the gap has passed without a new mark, look again at most this often,
# so update() stays a single comparison on nearly every call.
LINES_RECHECK = 1.0

# dots: Sage's ProgressBar(length=70).
DOTS_LENGTH = 70

_INF = float("inf")


# --------------------------------------------------------------------------
# Stream plumbing

def stream_isatty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def terminal_width(stream, env=None):
    """COLUMNS from `env`, else the size of the terminal `stream` is on, else 80.

    shutil.get_terminal_size() asks about stdout, which is a pipe in
    `path=$(sagedl ...)` while stderr (our stream) is the terminal; so the
    stream's own descriptor is asked first.
    """
    env = os.environ if env is None else env
    try:
        columns = int(env.get("COLUMNS", ""))
        if columns > 0:
            return columns
    except ValueError:
        pass
    get_size = getattr(os, "get_terminal_size", None)  # 3.3+
    if get_size is not None:
        try:
            columns = get_size(stream.fileno()).columns
            if columns > 0:
                return columns
        except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
            pass
    else:
        # 2.7 has no get_terminal_size: ask the terminal driver directly.
        try:
            import fcntl
            import struct
            import termios
            packed = fcntl.ioctl(stream.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
            columns = struct.unpack("HHHH", packed)[1]
            if columns > 0:
                return columns
        except (AttributeError, ValueError, IOError, OSError, ImportError, io.UnsupportedOperation):
            pass
    try:
        import shutil
        columns = shutil.get_terminal_size((80, 24)).columns  # 3.3+
        if columns > 0:
            return columns
    except (AttributeError, ValueError, OSError):
        pass
    return 80


def write(stream, text):
    """text on a progress stream, in any locale, shown at once."""
    stream.write(for_stream(stream, text))
    try:
        # '\r' lines end in no newline: without a flush a buffered stderr
        # (3.x before 3.9 when not a tty) would show nothing.
        stream.flush()
    except (AttributeError, ValueError):
        pass


# --------------------------------------------------------------------------
# Single-file progress

class Progress(object):
    """The interface, and the silent "none" mode.

    start(name, total, offset=0, source=None): an attempt begins; total may be
        None (unknown); offset is what a resumed partial already holds; source
        is a short label (mirror host).  Calling start() again before finish()
        means the previous attempt was abandoned (failover to another mirror).
    update(done): absolute byte count including offset; called per block.
    note(text): an informational line.
    finish(ok, message=None): the end (ok None: interrupted, Ctrl-C or
        SIGTERM, not failed); message, if given, goes on its own line.
    """

    mode = "none"

    def start(self, name, total, offset=0, source=None):
        pass

    def update(self, done):
        pass

    def note(self, text):
        pass

    def finish(self, ok, message=None):
        pass


class _StreamProgress(Progress):
    """Bookkeeping shared by the visible modes: one session of one or more
    attempts, from the first start() to finish()."""

    def __init__(self, stream, clock=None):
        self._stream = stream
        self._clock = clock or compat_monotonic
        self._name = None  # None while no attempt is open
        self._total = None
        self._offset = 0
        self._source = None
        self._done = 0
        self._attempt_start = None
        self._session_start = None
        self._received_before = 0  # bytes received by abandoned attempts

    def _write(self, text):
        write(self._stream, text)

    def _begin(self, name, total, offset, source):
        now = self._clock()
        if self._name is not None:
            self._received_before += max(0, self._done - self._offset)
        else:
            self._session_start = now
            self._received_before = 0
        self._name, self._total, self._offset, self._source = name, total, offset or 0, source
        self._done = self._offset
        self._attempt_start = now
        return now

    def _end(self):
        """Close the session: (now, elapsed seconds, bytes received)."""
        now = self._clock()
        received = self._received_before + max(0, self._done - self._offset)
        self._name = None
        return now, max(0.0, now - self._session_start), received

    def _message(self, message):
        if message:
            self._write("%s\n" % message)


class RedrawnLine(object):
    """One status line redrawn in place with '\r' (the bar, the aggregate
    line).  Needs ``_write(text)`` and ``_shown``: the length of the line now
    on screen, 0 when none."""

    def _paint(self, line):
        # Spaces, not an ANSI erase: they also work on a Windows console.
        pad = max(0, self._shown - len(line))
        self._write("\r" + line + " " * pad)
        self._shown = len(line)

    def _clear(self):
        if self._shown:
            self._write("\r" + " " * self._shown + "\r")
            self._shown = 0


class BarProgress(RedrawnLine, _StreamProgress):
    mode = "bar"

    def __init__(self, stream, clock=None, width=80):
        _StreamProgress.__init__(self, stream, clock)
        self._width = width
        self._meter = RateMeter()
        self._shown = 0  # length of the line now on screen; 0 when none
        self._last_draw = _INF
        self._next_draw = _INF

    def start(self, name, total, offset=0, source=None):
        now = self._begin(name, total, offset, source)
        self._meter.reset(now, self._done)
        self._draw(now)

    def update(self, done):
        self._done = done
        now = self._clock()
        # The second bound catches a clock that jumped back (2.7's time.time).
        if self._last_draw <= now < self._next_draw:
            return
        if self._name is None:
            return
        self._meter.add(now, done)
        self._draw(now)

    def note(self, text):
        self._clear()
        self._write("%s\n" % text)
        if self._name is not None:
            self._draw(self._clock())

    def finish(self, ok, message=None):
        if self._name is not None:
            total, done, name = self._total, self._done, self._name
            now, elapsed, received = self._end()
            tail = ("in " + human_duration(elapsed)) if ok else \
                ("interrupted" if ok is None else "failed")
            self._paint(format_bar_line(name, done, total, average_rate(received, elapsed),
                                        tail, self._width))
            self._write("\n")
            self._shown = 0
            self._last_draw = self._next_draw = _INF
        self._message(message)

    def _draw(self, now):
        rate = self._meter.rate()
        tail = None
        if self._total is not None:
            eta = (self._total - self._done) / rate if rate else None
            tail = "ETA " + human_duration(eta)
        self._paint(format_bar_line(self._name, self._done, self._total, rate, tail, self._width))
        self._last_draw = now
        self._next_draw = now + REDRAW_INTERVAL

class LinesProgress(_StreamProgress):
    mode = "lines"

    def __init__(self, stream, clock=None):
        _StreamProgress.__init__(self, stream, clock)
        self._last_line = _INF
        self._next_check = _INF
        self._quarter = 0

    def start(self, name, total, offset=0, source=None):
        now = self._begin(name, total, offset, source)
        size = human_bytes(total) if total is not None else "size unknown"
        where = (" from %s" % source) if source else ""
        self._write("Downloading %s (%s)%s\n" % (name, size, where))
        self._quarter = self._quarter_of(self._done)
        self._last_line = now
        self._next_check = now + LINES_MIN_GAP

    def update(self, done):
        self._done = done
        now = self._clock()
        if self._last_line <= now < self._next_check:
            return
        if self._name is None:
            return
        quarter = self._quarter_of(done)
        if (quarter is not None and self._quarter < quarter < 4) or \
                now - self._last_line >= LINES_HEARTBEAT or now < self._last_line:
            if quarter is not None:
                self._quarter = quarter
            self._write(self._progress_line(now) + "\n")
            self._last_line = now
            self._next_check = now + LINES_MIN_GAP
        else:
            self._next_check = now + LINES_RECHECK

    def note(self, text):
        self._write("%s\n" % text)

    def finish(self, ok, message=None):
        if self._name is not None:
            name, done, total = self._name, self._done, self._total
            now, elapsed, received = self._end()
            if ok:
                self._write("Downloaded %s: %s in %s (%s)\n" % (
                    name, human_bytes(done), human_duration(elapsed),
                    human_rate(average_rate(received, elapsed))))
            else:
                got = human_bytes(done) if total is None else \
                    "%s of %s" % (human_bytes(done), human_bytes(total))
                self._write("Download of %s %s after %s (%s)\n" % (
                    name, "interrupted" if ok is None else "failed", human_duration(elapsed),
                    got))
            self._last_line = self._next_check = _INF
        self._message(message)

    def _quarter_of(self, done):
        if self._total is None:
            return None
        return percent(done, self._total) // 25

    def _progress_line(self, now):
        rate = average_rate(self._done - self._offset, now - self._attempt_start)
        if self._total is None:
            return "%s: %s, %s" % (self._name, human_bytes(self._done), human_rate(rate))
        eta = (self._total - self._done) / rate if rate else None
        return "%s: %d%% (%s), %s, ETA %s" % (
            self._name, percent(self._done, self._total),
            human_bytes_pair(self._done, self._total), human_rate(rate), human_duration(eta))


class DotsProgress(_StreamProgress):
    """Sage's log format, as its download/transfer.py writes it:

        Attempting to download package NAME from mirrors
        SOURCE
        [......................................................................]

    70 dots in proportion to the bytes; of unknown size, 35 dots at the first
    byte and the rest at the end; a failure fills the rest with 'x'.  The first
    line comes once per file, SOURCE before each attempt (when given).
    """

    mode = "dots"

    def __init__(self, stream, clock=None, length=DOTS_LENGTH):
        _StreamProgress.__init__(self, stream, clock)
        self._length = length
        self._dots = 0
        self._open = False  # a '[' was written and not yet closed
        self._held = []
        self._header_for = None

    def start(self, name, total, offset=0, source=None):
        if self._open:
            self._close("x")  # Sage closes a failed mirror's line this way
        # Once per file, also when the caller ended a failed attempt with
        # finish(False) before trying the next mirror.
        if name != self._header_for:
            self._write("Attempting to download package %s from mirrors\n" % name)
            self._header_for = name
        self._begin(name, total, offset, source)
        if source:
            self._write("%s\n" % source)
        self._write("[")
        self._open = True
        self._dots = 0

    def update(self, done):
        self._done = done
        if not self._open:
            return
        if self._total is None:
            n = 0 if done == 0 else self._length // 2
        elif self._total <= 0:
            n = self._length
        else:
            n = done * self._length // self._total
        # Sage ignores a count past the end (its last block may overshoot);
        # dots only ever go forward.
        if self._dots < n <= self._length:
            self._write("." * (n - self._dots))
            self._dots = n

    def note(self, text):
        # A line in the middle would break the 70-column line that readers of
        # Sage logs expect; notes wait until it closes.
        if self._open:
            self._held.append(text)
        else:
            self._write("%s\n" % text)

    def finish(self, ok, message=None):
        if self._open:
            self._close("." if ok else "x")
        if self._name is not None:
            self._end()
        self._message(message)

    def _close(self, fill):
        self._write(fill * (self._length - self._dots) + "]\n")
        self._open = False
        held, self._held = self._held, []
        for text in held:
            self._write("%s\n" % text)


def resolve_mode(mode, stream, quiet=False):
    """The concrete mode: quiet wins; "auto" is a bar on a terminal, lines elsewhere."""
    if mode not in MODES:
        raise ValueError("unknown progress mode %r (expected one of %s)" % (mode, ", ".join(MODES)))
    if quiet:
        return "none"
    if mode == "auto":
        return "bar" if stream_isatty(stream) else "lines"
    return mode


def make_progress(mode, stream, quiet=False, clock=None, width=None, env=None):
    """A Progress for `mode` ("auto", "bar", "lines", "dots", "none") on `stream`."""
    mode = resolve_mode(mode, stream, quiet)
    if mode == "bar":
        return BarProgress(stream, clock, width or terminal_width(stream, env))
    if mode == "lines":
        return LinesProgress(stream, clock)
    if mode == "dots":
        return DotsProgress(stream, clock)
    return Progress()
