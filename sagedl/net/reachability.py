"""Is the network there?  Telling, in seconds, why nothing can be reached.

A laptop on a broken network or a build box behind a firewall must not wait
minutes for a verdict, nor read one line per mirror per file.  Three pieces:

* **Causes.**  A failed lookup or connect is classified once, where it
  happens (the probe, the transport), into a few causes a user can act on
  (errors.CAUSE_*, carried by each SourceFailure):
  DNS lookups time out, DNS lookups fail, no route to the network,
  connections refused, connections time out, servers connected but silent.
* **The probe's verdict.**  When no mirror answered the ranking probe, the
  causes say whether trying them one by one could help.  When every mirror
  failed the same conclusive way (DNS, no route, refused), it cannot: the
  mirrors are dropped and the run reports, once, "the network looks
  unreachable: <cause>".  Timeouts are not conclusive (a slow link misses a
  1.2 s probe): the first few mirrors are tried, on probation -- short
  connect and response-head deadlines.  The verdict is cached for
  VERDICT_TTL, so the next sagedl process (Sage's make runs one per
  package) does not probe a dead network again.  After a conclusive
  verdict the other sources (SAGE_SERVER, .upstream.d, upstream) are still
  tried, on probation too.
* **Per-run memory of dead hosts** (HostMemory): a server that failed to
  connect or timed out is skipped for the rest of the run, by every worker;
  the first connection to each server in a run goes alone, so parallel
  workers do not all walk into the same blackhole at once.

Only the classification is pure; the memory is shared by the transports of
one run (session.py makes it).
"""

from __future__ import absolute_import

import errno
import socket

from sagedl.compat import compat_monotonic
from sagedl.errors import (CAUSE_CONNECT_TIMEOUT as CONNECT_TIMEOUT,
                           CAUSE_DNS_FAILED as DNS_FAILED, CAUSE_DNS_TIMEOUT as DNS_TIMEOUT,
                           CAUSE_REFUSED as REFUSED, CAUSE_SILENT as SILENT,
                           CAUSE_UNREACHABLE as UNREACHABLE)

# What a user reads; "the network looks unreachable: " comes before it.
WORDS = {
    DNS_TIMEOUT: "DNS lookups time out",
    DNS_FAILED: "DNS lookups fail",
    UNREACHABLE: "there is no route to the network",
    REFUSED: "connections are refused",
    CONNECT_TIMEOUT: "connections time out",
    SILENT: "servers accept connections but never answer",
}
# Causes after which trying the same servers again cannot help.
CONCLUSIVE = (DNS_TIMEOUT, DNS_FAILED, UNREACHABLE, REFUSED)
# Causes that make a server dead for the rest of the run.
DEAD = (DNS_TIMEOUT, DNS_FAILED, UNREACHABLE, REFUSED, CONNECT_TIMEOUT, SILENT)

try:
    import _thread as _low_thread      # a C module: no start-up cost
except ImportError:                    # Python 2
    import thread as _low_thread
_GUARD = _low_thread.allocate_lock()

UNREACHABLE_SENTENCE = "the network looks unreachable"
VERDICT_TTL = 120            # seconds a probe where nothing answered is believed
PROBATION_CONNECT = 2.5      # connect (and lookup) deadline for mirrors that missed the probe
PROBATION_HEAD = 2.5         # ... and for their response head

_UNREACHABLE_ERRNOS = set(getattr(errno, n) for n in ("ENETUNREACH", "EHOSTUNREACH",
                                                      "EADDRNOTAVAIL", "ENETDOWN", "EHOSTDOWN")
                          if hasattr(errno, n))
_REFUSED_ERRNOS = set([errno.ECONNREFUSED])
_TIMEOUT_ERRNOS = set([errno.ETIMEDOUT])


def cause_of_lookup(exc):
    """The cause of a failed name resolution (a timeout of ours, or getaddrinfo's error)."""
    if isinstance(exc, socket.timeout):
        return DNS_TIMEOUT
    return DNS_FAILED


def cause_of_connect(exc):
    """The cause of a failed connect(), or None when it is none of ours."""
    if isinstance(exc, socket.timeout):
        return CONNECT_TIMEOUT
    if isinstance(exc, socket.gaierror):
        return DNS_FAILED
    code = getattr(exc, "errno", None)
    if code in _UNREACHABLE_ERRNOS:
        return UNREACHABLE
    if code in _REFUSED_ERRNOS:
        return REFUSED
    if code in _TIMEOUT_ERRNOS:
        return CONNECT_TIMEOUT
    return None


def summarize(causes):
    """Pure: (cause, count) of the most common cause among ``causes`` (None
    for a failure without a known cause), or (None, 0) when there is none."""
    counts = {}
    for c in causes:
        if c is not None:
            counts[c] = counts.get(c, 0) + 1
    if not counts:
        return None, 0
    order = [DNS_TIMEOUT, DNS_FAILED, UNREACHABLE, REFUSED, CONNECT_TIMEOUT, SILENT]
    best = max(counts, key=lambda c: (counts[c], -order.index(c)))
    return best, counts[best]


class Verdict(object):
    """What a probe where nothing answered says about the network.

    conclusive: every mirror failed for a reason retrying cannot fix; the
    mirrors are not tried.  Otherwise the first few are tried on probation.
    """

    def __init__(self, cause, failed, total, conclusive, example=None):
        self.cause = cause
        self.failed = failed
        self.total = total
        self.conclusive = conclusive
        self.example = example     # one mirror's own failure, e.g. "host: cannot resolve ..."

    def sentence(self):
        """One line: the network looks unreachable, and why."""
        words = WORDS.get(self.cause, "no mirror answered")
        text = "%s: %s (%d of %d mirrors" % (UNREACHABLE_SENTENCE, words, self.failed, self.total)
        if self.example:
            text += "; %s" % self.example
        return text + ")"


def verdict(ranked):
    """Pure: the Verdict of a probe in which nothing answered, from its
    Ranked results (each with a reachability cause, or None: an HTTP error,
    TLS, ...)."""
    ranked = list(ranked)
    causes = [r.cause for r in ranked]
    cause, count = summarize(causes)
    conclusive = bool(causes) and all(c in CONCLUSIVE for c in causes)
    example = next(("%s: %s" % (r.mirror.name, r.reason) for r in ranked
                    if r.cause == cause and r.reason), None)
    return Verdict(cause, count if cause else len(causes), len(causes), conclusive, example)


class HostMemory(object):
    """Per-run facts about servers, shared by every transport of the run.

    Keys are origins (scheme, host, port).  ``before_connect`` raises the
    remembered failure for a dead server, and makes the first connection to
    a server of unknown state go alone (the others wait for its outcome, at
    most the connect deadline).  ``probation`` marks servers that missed the
    ranking probe: short deadlines (PROBATION_*).
    """

    def __init__(self, clock=compat_monotonic):
        self._made = None
        self._dead = {}          # origin -> SourceFailure
        self._alive = set()
        self._pioneering = set()
        self._probation = set()
        self._all_on_probation = False
        self.clock = clock

    @property
    def _cond(self):
        """The lock, made at first use: a run that connects nowhere (a
        verified cached file) never imports threading."""
        made = self._made
        if made is None:
            with _GUARD:
                if self._made is None:
                    import threading
                    self._made = threading.Condition()
                made = self._made
        return made

    def set_probation(self, origins):
        with self._cond:
            self._probation.update(origins)

    def suspect_network(self):
        """The probe found the network unreachable (a conclusive verdict):
        every server not yet seen answering is on probation -- after 38
        mirror names timed out, github.com's lookup will not do better."""
        with self._cond:
            self._all_on_probation = True

    def deadlines(self, origin, connect_timeout, head_timeout):
        """(connect, head) deadlines for a new connection to ``origin``."""
        if origin in self._probation or (self._all_on_probation and origin not in self._alive):
            return min(connect_timeout, PROBATION_CONNECT), min(head_timeout, PROBATION_HEAD)
        return connect_timeout, head_timeout

    def before_connect(self, origin, wait):
        """Returns None to go ahead; returns the remembered failure of a
        dead server (the caller raises it).  ``wait``: how long to wait for
        another worker's first connection to the same server (longer than
        that connection may take, or both would give up at once)."""
        end = self.clock() + wait
        with self._cond:
            while True:
                failure = self._dead.get(origin)
                if failure is not None:
                    return failure
                if origin in self._alive:
                    return None
                if origin not in self._pioneering:
                    self._pioneering.add(origin)
                    return None
                left = end - self.clock()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def connected(self, origin):
        with self._cond:
            self._alive.add(origin)
            self._pioneering.discard(origin)
            self._cond.notify_all()

    def failed(self, origin, failure):
        """A connection to ``origin`` failed: remember it when its cause
        makes the server dead for this run; always end its pioneering."""
        with self._cond:
            if failure.cause in DEAD:
                self._dead[origin] = failure
                self._alive.discard(origin)
            self._pioneering.discard(origin)
            self._cond.notify_all()

    def dead_servers(self):
        """Each server found dead in this run, as its failure said it: for a
        report that names every unreachable host once."""
        with self._cond:
            return sorted(set(str(f) for f in self._dead.values()))
