"""When a source is asked again, and how long to wait first: one value.

A busy server (429, 503, ...) is asked again after a pause, a bounded number
of times.  The whole policy is one immutable ``Retry``, as in urllib3: how
many retries, the capped exponential backoff with jitter (so parallel
clients spread out), and the cap on a server's Retry-After (a server asking
for an hour must not hold a build for an hour: bounded time).  Callers loop;
each retry is a new value, so a policy shared by several sources or workers
is never used up by one of them::

    retry = options.retry
    while True:
        try:
            return attempt()
        except SourceFailure as f:
            if f.kind != f.KIND_TRANSIENT or retry.exhausted:
                raise
            retry = retry.increment()
            sleep(retry.delay(f.retry_after))

Retry-After is either delay-seconds or an HTTP-date (RFC 7231 section
7.1.3); dates are parsed with email.utils, as on every supported Python.
"""

from __future__ import absolute_import

import time

# Statuses worth asking the same source again, and why:
RETRY_STATUSES = {
    408: "request timeout: the server gave up waiting for us; a new request may pass",
    429: "rate limited: wait for Retry-After",
    502: "bad gateway: a CDN or proxy in front of the mirror hiccuped",
    503: "unavailable: overloaded or in maintenance, usually brief",
    504: "gateway timeout: as 502",
}


class Retry(object):
    """total: retries allowed.  backoff: the first pause (s) without a
    Retry-After; each next one doubles, up to max_backoff, times a random
    factor in [0.5, 1).  max_retry_after: the longest Retry-After obeyed
    (longer ones are cut to it).  used: retries taken so far."""

    __slots__ = ("total", "backoff", "max_backoff", "max_retry_after", "used")

    def __init__(self, total=2, backoff=0.5, max_backoff=30.0, max_retry_after=30.0, used=0):
        for name, value in (("total", total), ("backoff", backoff),
                            ("max_backoff", max_backoff),
                            ("max_retry_after", max_retry_after), ("used", used)):
            if value < 0:
                raise ValueError("Retry %s must not be negative: %r" % (name, value))
            object.__setattr__(self, name, value)

    def __setattr__(self, name, value):
        raise AttributeError("a Retry is immutable: use increment()")

    def __repr__(self):
        return "Retry(total=%r, used=%r)" % (self.total, self.used)

    @property
    def exhausted(self):
        """No retry left."""
        return self.used >= self.total

    def increment(self):
        """The policy after one more retry (this one is unchanged)."""
        if self.exhausted:
            raise ValueError("no retry left (%d of %d used)" % (self.used, self.total))
        return Retry(self.total, self.backoff, self.max_backoff, self.max_retry_after,
                     self.used + 1)

    def delay(self, retry_after=None, rand=None):
        """Seconds to wait before retry number ``used``: the server's
        Retry-After (seconds, see parse_retry_after) up to max_retry_after,
        else the capped backoff with jitter.  ``rand``: a random() for tests."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        if rand is None:
            import random     # only when a server is busy: not at start-up
            rand = random.random
        step = min(self.max_backoff, self.backoff * 2 ** max(self.used - 1, 0))
        return step * (0.5 + rand() / 2)


def parse_retry_after(value, now=time.time):
    """A Retry-After header value as seconds from now (>= 0), or None when
    absent or unreadable.  ``now``: the wall clock an HTTP-date is
    measured against."""
    if value is None:
        return None
    value = value.strip()
    if value and value.strip("0123456789") == "":     # not isdigit(): "\xb2" is a digit
        return float(int(value))
    from email.utils import mktime_tz, parsedate_tz   # only for an HTTP-date
    try:
        parsed = parsedate_tz(value)
        when = mktime_tz(parsed) if parsed else None
    except (TypeError, ValueError, OverflowError, IndexError):
        when = None
    if when is None:
        return None
    return max(when - now(), 0.0)
