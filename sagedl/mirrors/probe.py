"""Ranking mirrors: every mirror probed at once, under one deadline.

Each probe is a HEAD request over a non-blocking socket (through the proxy
urls.proxy_for picks, as the transport would); the time to the first byte of
the answer is its latency.  ONE deadline covers the whole ranking, name
resolution included, so hung connects and silent servers cost nothing beyond
it; the ranking also stops early once enough mirrors answered.  Results are
cached, and recently failed mirrors demoted, by health.py.
"""

from __future__ import absolute_import

import errno
import os
import random
import re
import select
import socket
import time

from sagedl import __version__
from sagedl.compat import compat_monotonic, compat_urlsplit
from sagedl.mirrors.mirrorlist import Mirror
from sagedl.net.reachability import (CONNECT_TIMEOUT, DNS_TIMEOUT, SILENT, cause_of_connect,
                                     cause_of_lookup)
from sagedl.net.urls import (Lookup, base_url_problem, getaddrinfo, numeric_addresses, port_of,
                             proxy_endpoint, proxy_for)

RANK_DEADLINE = 1.2
RANK_WANT = 3
NEAR_BEST_FACTOR = 1.5         # mirrors within 1.5x the best latency + 5 ms
NEAR_BEST_MARGIN = 0.005       # are "as good as the best": pick among them at random
HAPPY_EYEBALLS_DELAY = 0.25    # RFC 8305's connection attempt delay
MAX_DNS_THREADS = 32

OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"            # not measured: the ranking stopped early


class Ranked(object):
    """One mirror's place in a ranking.

    status OK: ``latency`` is the seconds from connect start to the first
    byte of the response.  FAILED: latency None, ``reason`` says why.
    SKIPPED: latency None; the ranking stopped before this mirror answered.
    ``cause``: for a network failure, its reachability cause (DNS lookups
    time out, connection refused, ...), else None.
    """

    __slots__ = ("mirror", "status", "latency", "reason", "cause")

    def __init__(self, mirror, status, latency=None, reason=None, cause=None):
        self.mirror = mirror
        self.status = status
        self.latency = latency
        self.reason = reason
        self.cause = cause

    @property
    def ok(self):
        return self.status == OK

    def __repr__(self):
        if self.ok:
            return "<Ranked %s %.1f ms>" % (self.mirror.url, self.latency * 1000)
        return "<Ranked %s %s: %s>" % (self.mirror.url, self.status, self.reason)


def measure(mirrors, deadline=RANK_DEADLINE, want=RANK_WANT, env=None, ssl_context=None,
            path="", resolver=None):
    """Probe ``mirrors`` (Mirrors or URLs) in parallel: a Ranked for each, in
    no particular order (order_ranking ranks them; health.rank_cached does
    both, with a cache).

    Each probe connects (through the proxy that urls.proxy_for picks from
    ``env``: an absolute-URI request for http, CONNECT then TLS for https),
    sends ``HEAD <mirror url + path>`` and times the first byte of the
    response.  A mirror answers OK with a status below 400 (below 500 when
    ``path`` is empty: any answer proves a live server at the base URL).

    ONE deadline covers the whole call, resolution included: hung connects
    and silent servers cost nothing beyond it and the call returns by then.
    It returns earlier once ``want`` mirrors answered AND every mirror still
    pending has been running longer than the near-best window (1.5x the best
    latency + 5 ms) -- so no mirror that could still be near-best is cut off.
    Those are SKIPPED, not FAILED.  ``want=None`` waits for every mirror.

    Name resolution blocks in getaddrinfo, so names are resolved in daemon
    threads (at most MAX_DNS_THREADS at once); IP literals are not resolved.
    A resolver hanging past the deadline is abandoned (its thread ends when
    the system resolver gives up); everything else is closed before return.
    ``resolver``: getaddrinfo's stand-in, for tests.
    """
    return _Prober(_as_mirrors(mirrors), deadline, want, env, ssl_context, path, resolver).run()


def _as_mirrors(mirrors):
    result, seen = [], set()
    for m in mirrors:
        m = m if isinstance(m, Mirror) else Mirror(m)
        if m.url not in seen:
            seen.add(m.url)
            result.append(m)
    return result


def order_ranking(results, rng=None):
    """Pure: measure()'s results ranked, best first: answered mirrors within
    the near-best window in random order (``rng``, so load spreads over
    equally good mirrors), then the other answered ones by latency, then
    SKIPPED, then FAILED (by priority)."""
    rng = rng or random.Random()
    answered = sorted((r for r in results if r.ok), key=lambda r: r.latency)
    if answered:
        limit = answered[0].latency * NEAR_BEST_FACTOR + NEAR_BEST_MARGIN
        near = [r for r in answered if r.latency <= limit]
        rng.shuffle(near)
        answered = near + answered[len(near):]
    by_priority = lambda r: -r.mirror.priority  # noqa: E731 (sorted() is stable)
    skipped = sorted((r for r in results if r.status == SKIPPED), key=by_priority)
    failed = sorted((r for r in results if r.status == FAILED), key=by_priority)
    return answered + skipped + failed


_CONNECT_PENDING = set([errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EALREADY])
_STATUS_RE = re.compile(br"^HTTP/\d\.\d (\d\d\d)")

try:
    import ssl as _ssl
    _SSL_WANT_READ = _ssl.SSLWantReadError
    _SSL_WANT_WRITE = _ssl.SSLWantWriteError
    _SSL_ERRORS = (_ssl.SSLError, getattr(_ssl, "CertificateError", ValueError))
except (ImportError, AttributeError):  # Python built without ssl
    _ssl = None
    _SSL_WANT_READ = _SSL_WANT_WRITE = ()
    _SSL_ERRORS = ()


def _describe(e):
    """A short reason from a socket or TLS exception."""
    if _ssl is not None and isinstance(e, _ssl.SSLError):
        return "TLS error: %s" % (getattr(e, "reason", None) or e)
    if isinstance(e, EnvironmentError) and e.errno:
        return (e.strerror or os.strerror(e.errno)).lower()
    return str(e) or e.__class__.__name__


class _Target(object):
    """Where a probe connects and what it says, decided before any I/O."""

    def __init__(self, mirror, path, env):
        url = mirror.url + path.lstrip("/")
        problem = base_url_problem(url)
        if problem:
            raise ValueError("URL %s" % problem)
        parts = compat_urlsplit(url)
        self.tls = parts.scheme.lower() == "https"
        self.host = parts.hostname
        self.port = port_of(parts)
        bracketed = "[%s]" % self.host if ":" in self.host else self.host
        host_header = bracketed + (":%d" % parts.port if parts.port else "")
        request_path = parts.path or "/"
        self.tunnel = None
        self.connect_host, self.connect_port = self.host, self.port
        self.via = ""
        extra = []
        proxy_url = proxy_for(url, env)
        if proxy_url:
            phost, pport, pauth = proxy_endpoint(proxy_url)   # ValueError: the reason
            self.connect_host, self.connect_port = phost, pport
            self.via = " to the proxy %s:%d" % (phost, pport)
            auth = ["Proxy-Authorization: %s" % pauth] if pauth else []
            if self.tls:
                authority = "%s:%d" % (bracketed, self.port)  # CONNECT always names the port
                self.tunnel = _http_bytes(["CONNECT %s HTTP/1.1" % authority,
                                           "Host: %s" % authority] + auth)
            else:
                request_path = url  # RFC 7230 5.3.2: absolute-form to a proxy
                extra = auth
        self.request = _http_bytes(["HEAD %s HTTP/1.1" % request_path, "Host: %s" % host_header,
                                    "User-Agent: sagedl/%s (mirror probe)" % __version__,
                                    "Accept: */*", "Connection: close"] + extra)


def _http_bytes(lines):
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    except (UnicodeError, ValueError):
        raise ValueError("URL is not ASCII")


class _Probe(object):
    def __init__(self, mirror, path):
        self.mirror = mirror
        self.target_path = path
        self.target = None
        self.addrs = None        # getaddrinfo results still to try
        self.attempts = []       # live _Attempts (several only while connecting)
        self.started = None      # monotonic time of the first connect
        self.last_start = None
        self.result = None       # Ranked once finished
        self.last_error = None
        self.last_cause = None   # reachability cause of last_error
        self.first_byte = None   # monotonic time the answer's first byte arrived
        self.phase = "resolving"


class _Attempt(object):
    """One socket of one probe, stepping through connect / tunnel / TLS / request / answer."""

    def __init__(self, probe, addrinfo, ssl_context):
        self.probe = probe
        self.ssl_context = ssl_context
        family, socktype, proto, _, sockaddr = addrinfo
        self.phase = "connect"
        self.want_write = True
        self.buf = b""
        self.out = b""
        self.sock = socket.socket(family, socktype, proto)
        try:
            self.sock.setblocking(False)
            err = self.sock.connect_ex(sockaddr)
            if err and err not in _CONNECT_PENDING:
                raise socket.error(err, os.strerror(err))
        except BaseException:
            self.sock.close()
            raise

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        try:
            self.sock.close()
        except EnvironmentError:
            pass

    def step(self, now):
        """Advance on readiness; returns 'connected', 'answered' or None.

        Raises socket/TLS errors and _ProbeFailed for a wrong answer.
        """
        target = self.probe.target
        if self.phase == "connect":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise socket.error(err, os.strerror(err))
            if target.tunnel:
                self._start_send("tunnel-send", target.tunnel)
            elif target.tls:
                self._start_tls()
            else:
                self._start_send("send", target.request)
            self.step(now)  # try to make progress at once
            return "connected"
        if self.phase in ("send", "tunnel-send"):
            try:
                sent = self.sock.send(self.out)
            except _SSL_WANT_WRITE:
                return None
            except _SSL_WANT_READ:
                self.want_write = False
                return None
            except socket.error as e:
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return None
                raise
            self.out = self.out[sent:]
            if not self.out:
                self.phase = "tunnel-read" if self.phase == "tunnel-send" else "read"
                self.want_write = False
            return None
        if self.phase == "tls":
            try:
                self.sock.do_handshake()
            except _SSL_WANT_READ:
                self.want_write = False
                return None
            except _SSL_WANT_WRITE:
                self.want_write = True
                return None
            self._start_send("send", target.request)
            return self.step(now)
        return self._read(now)

    def _start_send(self, phase, data):
        self.phase = phase
        self.out = data
        self.want_write = True

    def _start_tls(self):
        if self.ssl_context is None:
            raise _ProbeFailed("no TLS support in this Python")
        self.sock = self.ssl_context.wrap_socket(self.sock, server_hostname=self.probe.target.host,
                                                 do_handshake_on_connect=False)
        self.phase = "tls"
        self.want_write = True

    def _recv(self):
        try:
            data = self.sock.recv(4096)
        except _SSL_WANT_READ:
            return None
        except socket.error as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return None
            raise
        # TLS may hold more decrypted bytes than the fd signals.
        while data and self.phase == "read" and getattr(self.sock, "pending", None) \
                and self.sock.pending() and len(self.buf) + len(data) < 4096:
            data += self.sock.recv(4096)
        return data

    def _read(self, now):
        data = self._recv()
        if data is None:
            return None
        if not data:
            raise _ProbeFailed("connection closed before an HTTP answer"
                               if not self.buf else "connection closed inside the status line")
        first = not self.buf
        self.buf += data
        if not b"HTTP/".startswith(self.buf[:5]):
            raise _ProbeFailed("not an HTTP server (answered %r)" % self.buf[:20])
        if self.phase == "tunnel-read":
            if b"\r\n\r\n" not in self.buf:
                if len(self.buf) > 16384:
                    raise _ProbeFailed("proxy answer to CONNECT too long")
                return None
            status = self._status()
            if status != 200:
                raise _ProbeFailed("proxy refused CONNECT: HTTP %d" % status)
            self.buf = b""
            self._start_tls()
            return self.step(now)
        if first:
            self.probe.first_byte = now
        if b"\n" not in self.buf:
            if len(self.buf) > 1024:
                raise _ProbeFailed("status line too long")
            return None
        status = self._status()
        limit = 400 if self.probe.target_path else 500
        if status >= limit:
            raise _ProbeFailed("HTTP %d" % status)
        return "answered"

    def _status(self):
        m = _STATUS_RE.match(self.buf)
        if not m:
            raise _ProbeFailed("malformed HTTP status line")
        return int(m.group(1))


class _ProbeFailed(Exception):
    pass


class _Resolver(object):
    """Many urls.Lookups, at most MAX_DNS_THREADS at once, polled by the
    event loop: getaddrinfo is the one blocking call, kept off it."""

    def __init__(self, resolve):
        self.resolve = resolve
        self.queue = []
        self.running = {}   # (host, port) -> Lookup

    def submit(self, key):
        self.queue.append(key)
        self._spawn()

    def _spawn(self):
        while self.queue and len(self.running) < MAX_DNS_THREADS:
            key = self.queue.pop(0)
            self.running[key] = Lookup(key[0], key[1], self.resolve)

    def take(self):
        """{key: (addresses or None, error or None)} of the lookups finished since."""
        done = {}
        for key, lookup in list(self.running.items()):
            if lookup.done():
                del self.running[key]
                done[key] = (lookup.infos, lookup.error)
        self._spawn()
        return done

    def busy(self):
        return bool(self.running or self.queue)


class _Prober(object):
    def __init__(self, mirrors, deadline, want, env, ssl_context, path, resolver):
        self.mirrors = mirrors
        self.deadline = float(deadline)
        self.want = want
        self.env = env
        self.path = path or ""
        self.ssl_context = ssl_context
        self.resolver = _Resolver(resolver or getaddrinfo)
        self.waiting = {}  # (host, port) -> probes waiting for that resolution

    def run(self):
        self.start = compat_monotonic()
        self.end = self.start + self.deadline
        probes = [_Probe(m, self.path) for m in self.mirrors]
        try:
            for p in probes:
                self._prepare(p)
            self._loop(probes)
        finally:
            for p in probes:
                for a in p.attempts:
                    a.close()
                p.attempts = []
        return [p.result for p in probes]

    def _prepare(self, p):
        try:
            p.target = _Target(p.mirror, self.path, self.env)
        except ValueError as e:
            self._fail(p, str(e))
            return
        if p.target.tls and self.ssl_context is None and _ssl is not None:
            self.ssl_context = _ssl.create_default_context()
        key = (p.target.connect_host, p.target.connect_port)
        numeric = numeric_addresses(*key)
        if numeric is not None:
            self._resolved(p, numeric, compat_monotonic())
            return
        if key not in self.waiting:
            self.waiting[key] = []
            self.resolver.submit(key)
        self.waiting[key].append(p)

    def _resolved(self, p, addrs, now):
        if p.result is not None:
            return
        p.addrs = list(addrs)
        p.phase = "connect"
        if not p.addrs:
            self._fail(p, "host has no address")
            return
        p.started = now
        self._next_attempt(p, now)

    def _next_attempt(self, p, now):
        while p.addrs:
            addr = p.addrs.pop(0)
            try:
                p.attempts.append(_Attempt(p, addr, self.ssl_context))
                p.last_start = now
                return
            except EnvironmentError as e:
                p.last_error = _describe(e)
                p.last_cause = cause_of_connect(e)
        if not p.attempts:
            self._fail(p, "cannot connect%s: %s" % (p.target.via, p.last_error or "no address"),
                       p.last_cause)

    def _fail(self, p, reason, cause=None):
        for a in p.attempts:
            a.close()
        p.attempts = []
        p.result = Ranked(p.mirror, FAILED, None, reason, cause)

    def _stop_time(self, probes, answered):
        """When ranking may stop early (see measure()), or None while it may not."""
        if not self.want or self.want <= 0 or len(answered) < self.want:
            return None
        best = min(p.result.latency for p in answered)
        window = best * NEAR_BEST_FACTOR + NEAR_BEST_MARGIN
        pending = [p.started or self.start for p in probes if p.result is None]
        return max(pending) + window if pending else None

    def _loop(self, probes):
        while True:
            now = compat_monotonic()
            for key, (addrs, err) in self.resolver.take().items():
                for p in self.waiting.pop(key, []):
                    if err is not None:
                        self._fail(p, "cannot resolve %s%s: %s"
                                   % (key[0], " (proxy)" if p.target.via else "", _describe(err)),
                                   cause_of_lookup(err))
                    else:
                        self._resolved(p, addrs, now)
            for p in probes:  # Happy Eyeballs (RFC 8305): try the next address too
                if (p.result is None and p.addrs and p.attempts and p.phase == "connect"
                        and now - p.last_start >= HAPPY_EYEBALLS_DELAY):
                    self._next_attempt(p, now)
            pending = [p for p in probes if p.result is None]
            if not pending:
                return
            answered = [p for p in probes if p.result is not None and p.result.ok]
            stop = self._stop_time(probes, answered)
            if now >= self.end or (stop is not None and now >= stop):
                break
            timeout = min(self.end, stop if stop is not None else self.end) - now
            if self.resolver.busy():
                timeout = min(timeout, 0.01)  # resolver threads cannot wake select
            for p in pending:  # wake up for the next Happy Eyeballs attempt
                if p.phase == "connect" and p.addrs and p.attempts:
                    timeout = min(timeout, p.last_start + HAPPY_EYEBALLS_DELAY - now)
            readers, writers = [], []
            for p in pending:
                for a in p.attempts:
                    (writers if a.want_write else readers).append(a)
            ready = _wait(readers, writers, max(timeout, 0))
            now = compat_monotonic()
            for a in ready:
                self._step(a, now)
        early = now < self.end
        answered = len([p for p in probes if p.result is not None and p.result.ok])
        for p in probes:
            if p.result is not None:
                continue
            if early:
                p.result = Ranked(p.mirror, SKIPPED, None,
                                  "not measured: %d faster mirrors answered first" % answered)
            else:
                cause = {"resolving": DNS_TIMEOUT, "connect": CONNECT_TIMEOUT}.get(p.phase, SILENT)
                self._fail(p, "timed out after %.1f s %s" % (self.deadline, _phase_words(p)), cause)

    def _step(self, a, now):
        p = a.probe
        if p.result is not None or a not in p.attempts:
            return
        try:
            outcome = a.step(now)
        except (_ProbeFailed, EnvironmentError, ValueError) + _SSL_ERRORS as e:
            a.close()
            p.attempts.remove(a)
            p.last_error = _describe(e)
            if p.phase == "connect" and a.phase == "connect":
                p.last_cause = cause_of_connect(e) if isinstance(e, EnvironmentError) else None
                if not p.attempts:
                    self._next_attempt(p, now)
                return
            self._fail(p, p.last_error)
            return
        if outcome == "connected" or (p.phase == "connect" and a.phase != "connect"):
            for other in p.attempts:  # this address won: drop the others
                if other is not a:
                    other.close()
            p.attempts = [a]
            p.addrs = []
            p.phase = "talking"
        if outcome == "answered":
            a.close()
            p.attempts = []
            p.result = Ranked(p.mirror, OK, p.first_byte - p.started, None)


def _phase_words(p):
    if p.phase == "resolving":
        return "resolving the host name"
    if p.phase == "connect":
        return "connecting"
    a = p.attempts[0] if p.attempts else None
    return {"tunnel-send": "sending CONNECT to the proxy",
            "tunnel-read": "waiting for the proxy's CONNECT answer",
            "tls": "in the TLS handshake", "send": "sending the request"}.get(
        a.phase if a else "", "waiting for an answer")


def _wait(readers, writers, timeout):
    """The attempts ready among readers/writers, waiting at most ``timeout`` seconds.

    poll() where available (no FD_SETSIZE limit), select() elsewhere.  An
    error or hang-up counts as ready: the step then meets the error.
    """
    if not readers and not writers:
        if timeout > 0:
            time.sleep(timeout)  # only while resolvers run; bounded by the caller
        return []
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            by_fd = {}
            for a in readers:
                poller.register(a.fileno(), select.POLLIN)
                by_fd[a.fileno()] = a
            for a in writers:
                poller.register(a.fileno(), select.POLLOUT)
                by_fd[a.fileno()] = a
            return [by_fd[fd] for fd, _ in poller.poll(int(timeout * 1000 + 0.999))]
        r, w, x = select.select(readers, writers, writers, timeout)  # Windows: failed connects in x
        return list(set(r) | set(w) | set(x))
    except (select.error, OSError, IOError) as e:
        if (e.args and e.args[0] == errno.EINTR) or getattr(e, "errno", None) == errno.EINTR:
            return []  # Python 2 does not retry EINTR itself (PEP 475 is 3.5+)
        raise

