"""Pure: the words and numbers of the progress displays.

Sizes (KiB/MiB/GiB), rates, durations and percentages, the one-line bar of
a transfer and the aggregate line of a bulk download, fitted to a width;
and the rate meter behind them.  No I/O and an injectable clock, so tests
pin every line exactly; progress.py draws them on a stream.
"""

from __future__ import absolute_import, division

import collections

# The displayed rate is measured over this many seconds: long enough to smooth
# TCP bursts, short enough to follow a mirror that slows down.
RATE_WINDOW = 5.0
BAR_MIN = 10
BAR_MAX = 40
NAME_MIN = 12

_UNITS = ("KiB", "MiB", "GiB", "TiB")
_INF = float("inf")


def human_bytes(n):
    """1536 -> '1.5 KiB'; below 1 KiB whole bytes ('512 B'); binary units."""
    n = max(0, n)
    if n < 1024:
        return "%d B" % n
    value = float(n)
    for unit in _UNITS:
        value /= 1024.0
        text = "%.1f" % value
        # Decide on the rounded text, so 1048575 B reads '1.0 MiB' and not '1024.0 KiB'.
        if float(text) < 1024 or unit == _UNITS[-1]:
            return "%s %s" % (text, unit)


def human_bytes_pair(done, total):
    """(6.2 MiB, 12.3 MiB) -> '6.2/12.3 MiB': one unit, chosen by the total."""
    total = max(0, total)
    done = max(0, done)
    if total < 1024:
        return "%d/%d B" % (done, total)
    divisor = 1.0
    for unit in _UNITS:
        divisor *= 1024.0
        if float("%.1f" % (total / divisor)) < 1024 or unit == _UNITS[-1]:
            return "%.1f/%.1f %s" % (done / divisor, total / divisor, unit)


def human_rate(bps):
    """Bytes per second -> '2.4 MiB/s'; None (not measurable yet) -> '-- B/s'."""
    if bps is None:
        return "-- B/s"
    return human_bytes(bps) + "/s"


def human_duration(seconds):
    """65 -> '1:05', 3725 -> '1:02:05'; None/inf/NaN -> '--:--'."""
    if seconds is None or seconds != seconds or seconds == _INF:
        return "--:--"
    s = int(round(max(0, seconds)))
    hours, rest = divmod(s, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return "%d:%02d:%02d" % (hours, minutes, secs)
    return "%d:%02d" % (minutes, secs)


def percent(done, total):
    """Whole percent, clamped to 0..100; an empty file is complete."""
    if total <= 0:
        return 100
    return max(0, min(100, int(done * 100 // total)))


def truncate_middle(text, width):
    """Shorten to `width` chars by eliding the middle: tarball names differ in
    their version and extension at the end, so the end is kept too."""
    if len(text) <= width:
        return text
    if width <= 3:
        return text[:max(0, width)]
    keep = width - 3
    head = (keep + 1) // 2
    tail = keep - head
    return text[:head] + "..." + (text[-tail:] if tail else "")


def format_bar_line(name, done, total, rate, tail, width):
    """The bar-mode line, at most width-1 columns (writing the last column
    makes some terminals wrap, and the next '\\r' then redraws one line down).
    When space is short the bar goes first, then the middle of the name.

    'NAME  45% [=========           ] 12.3/27.0 MiB   3.4 MiB/s  ETA 0:05'
    With total None there is no percentage and no bar.
    """
    avail = max(1, width - 1)
    fields = []
    if total is None:
        fields.append(human_bytes(done))
    else:
        # Pad to the widest this pair can get, so the bar does not jitter.
        widest = len(human_bytes_pair(total, total))
        fields.append(human_bytes_pair(done, total).rjust(widest))
    fields.append(human_rate(rate).rjust(len("1023.9 KiB/s")))
    if tail:
        # 'ETA --:--', 'ETA 0:05', 'in 0:05', 'failed': one width, so that
        # the space left for the name does not change between redraws.
        fields.append(tail.ljust(len("ETA --:--")))
    # On a narrow terminal whole figures go (the rate, then the bytes), so
    # none is cut in the middle: "3.4 MiB/" would be a wrong figure.
    pct_len = 0 if total is None else len(" 100%")
    for _ in range(2):
        if len(fields) < 2 or NAME_MIN + 2 + pct_len + len("  ".join(fields)) <= avail:
            break
        fields.pop(1 if len(fields) > 2 or not tail else 0)
    right = "  ".join(fields)

    if total is None:
        name = truncate_middle(name, max(NAME_MIN, avail - len(right) - 2))
        return ("%s  %s" % (name, right))[:avail]

    pct = "%3d%%" % percent(done, total)
    # The name matters more than the bar: the bar goes first, then the
    # name's middle, then whatever sticks out on the right.
    bar_width = min(BAR_MAX, avail - (len(name) + len(pct) + len(right) + 6))
    if bar_width < BAR_MIN:
        name = truncate_middle(name, max(NAME_MIN, avail - (len(pct) + len(right) + 3)))
        return ("%s  %s %s" % (name, pct, right))[:avail]
    filled = bar_width * percent(done, total) // 100
    bar = "=" * filled + " " * (bar_width - filled)
    return ("%s  %s [%s] %s" % (name, pct, bar, right))[:avail]


def format_aggregate_line(finished, files, present, total_bytes, rate, failed, tail=None,
                          eta=None, estimated=False, width=None, mirrors=None):
    """'12/300 files, 45.6/120.0 MiB 38%, 23.4 MiB/s, ETA 0:05, 2 failed'.

    total_bytes may be an estimate (``estimated``: shown as '~120.0 MiB').
    With ``width`` the line fits in width-1 columns by leaving out whole
    figures (the rate, then the bytes, then the word 'files'), never by
    cutting one in the middle; the percentage, ETA and failures stay.
    ``mirrors``: how many mirrors are sending (a multi-mirror run), after the rate.
    """
    count = "%d/%d" % (finished, files) if files is not None else "%d" % finished
    if total_bytes is None:
        nbytes, pct = human_bytes(present), None
    else:
        nbytes = human_bytes_pair(present, total_bytes)
        if estimated:
            nbytes = nbytes.replace("/", "/~", 1)
        pct = "%d%%" % percent(present, total_bytes)
    fields = [("count", count + " files"), ("bytes", nbytes + (" " + pct if pct else "")),
              ("rate", human_rate(rate))]
    if mirrors is not None:
        fields.append(("mirrors", "%d mirror%s" % (mirrors, "" if mirrors == 1 else "s")))
    if tail is None and eta is not None:
        fields.append(("eta", "ETA " + human_duration(eta)))
    if failed:
        fields.append(("failed", "%d failed" % failed))
    if tail:
        fields.append(("tail", tail))
    line = ", ".join(text for _, text in fields)
    if width is None:
        return line
    avail = max(1, width - 1)
    for drop in ("mirrors", "rate", "bytes", "files"):
        if len(line) <= avail:
            break
        if drop == "bytes" and pct:
            fields = [(k, pct if k == "bytes" else t) for k, t in fields]
        elif drop == "files":
            fields = [(k, count if k == "count" else t) for k, t in fields]
        else:
            fields = [(k, t) for k, t in fields if k != drop]
        line = ", ".join(text for _, text in fields)
    return line[:avail]


class RateMeter(object):
    """Rate over a sliding window of (time, bytes) samples.

    The rate is a difference between samples, so bytes already present from a
    resumed partial never count as speed.
    """

    def __init__(self, window=RATE_WINDOW):
        self.window = window
        self._samples = collections.deque()

    def reset(self, t, n):
        self._samples.clear()
        self._samples.append((t, n))

    def add(self, t, n):
        s = self._samples
        if s and t < s[-1][0]:
            # compat_monotonic is time.time on 2.7: it can jump back.
            self.reset(t, n)
            return
        s.append((t, n))
        # Keep as base the newest sample at least `window` old.
        while len(s) > 2 and s[1][0] <= t - self.window:
            s.popleft()

    def rate(self):
        s = self._samples
        if len(s) < 2:
            return None
        (t0, n0), (t1, n1) = s[0], s[-1]
        if t1 <= t0:
            return None
        return max(0.0, (n1 - n0) / float(t1 - t0))


def average_rate(nbytes, seconds):
    if seconds is None or seconds <= 0:
        return None
    return nbytes / float(seconds)
