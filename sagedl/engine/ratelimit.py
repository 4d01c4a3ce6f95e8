"""--limit-rate: one cap on the bytes per second of a whole run.

curl's option, with curl's syntax (100K, 1M, 1G: powers of 1024).  A token
bucket, shared by every transfer of the run (the workers of a bulk download
take turns on one lock), so the cap is the run's total, not each file's.

The engine calls ``take(n)`` after receiving n bytes: the bytes are paid
for, and the caller sleeps -- once, for exactly the time the rate needs,
never polling -- when the bucket is in debt.  Each read is at most
``chunk`` bytes, a quarter of a second's worth, so the sleeps stay short
and a server never sees a long silence from us.  The clock and the sleep
are parameters: the arithmetic is tested with a fake clock, no timing.
"""

from __future__ import absolute_import

import re
import time

from sagedl.compat import compat_monotonic

MIN_CHUNK = 1024            # smaller reads would only cost system calls
SUFFIXES = "KMGT"           # curl's, powers of 1024


def parse_rate(text):
    """Bytes per second from curl's syntax: 4096, 100K, 1.5M, 1G; None when
    ``text`` is not one, or is under one byte per second."""
    m = re.match(r"^\s*(\d+(?:\.\d*)?)\s*([A-Za-z]?)\s*$", text or "")
    if not m:
        return None
    suffix = m.group(2).upper()
    if suffix and suffix not in SUFFIXES:
        return None
    rate = float(m.group(1)) * (1024 ** (SUFFIXES.find(suffix) + 1) if suffix else 1)
    if not 1 <= rate < 2 ** 62:
        return None
    return int(rate)


class TokenBucket(object):
    """``rate`` bytes per second, with bursts of at most ``capacity`` bytes
    after a pause (default: ``chunk``).  It starts empty: the first bytes
    are paced too, so a short run keeps to the cap as well as a long one."""

    def __init__(self, rate, capacity=None, clock=compat_monotonic, sleep=time.sleep):
        import threading        # only runs with --limit-rate pay for it
        self.rate = float(rate)
        self.chunk = max(MIN_CHUNK, int(rate) // 4)
        self.capacity = self.chunk if capacity is None else capacity
        self.tokens = 0.0
        self.last = None
        self.clock = clock
        self.sleep = sleep
        self._lock = threading.Lock()

    def debt_after(self, n):
        """Pay for n bytes at the clock's time now; the seconds until the
        bucket is out of debt (0.0 when it is not in debt)."""
        with self._lock:
            now = self.clock()
            if self.last is not None and now > self.last:
                self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now if self.last is None else max(now, self.last)
            self.tokens -= n
            return -self.tokens / self.rate if self.tokens < 0 else 0.0

    def take(self, n):
        """Pay for n bytes just received, sleeping as long as the rate needs;
        returns the seconds slept (the stall rule does not count them)."""
        delay = self.debt_after(n)
        if delay > 0:
            self.sleep(delay)
        return delay
