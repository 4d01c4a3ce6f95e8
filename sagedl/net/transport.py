"""HTTP/1.1 over plain sockets: the standard-library transport.

Why not http.client?  Two things a downloader needs that it cannot give on
every supported Python: a deadline on the *whole* response head (a server
sending one header byte a second never trips a per-recv timeout), and a body
read that performs at most one recv() so the caller can apply its stall rule
(http.client's readinto fills the whole buffer; on 2.7 httplib reads through
an unbuffered file object).  What we need of HTTP is small: GET/HEAD, one
request at a time per connection, Content-Length, chunked and
close-delimited bodies, keep-alive, redirects, proxies and TLS.

http1.py reads the responses; this module connects (proxies, TLS), sends
the requests and follows redirects.  Everything a source can do wrong surfaces as errors.SourceFailure with a
``kind`` that tells the engine whether to retry, fail over or give up.
"""

from __future__ import absolute_import

import re
import socket

from sagedl import __version__
from sagedl.compat import compat_monotonic, compat_urljoin, compat_urlsplit
from sagedl.errors import CAUSE_REDIRECT, SourceFailure, UsageError
from sagedl.net.http1 import NETWORK_ERRORS, Connection, Response, printable, strerror
from sagedl.net.urls import (PROXY_HINT, ascii_host, basic_auth, check_url, origin, proxy_endpoint,
                             redact, resolve, server_key)

USER_AGENT = "sagedl/%s" % __version__
MAX_REDIRECTS = 10
MAX_INTERIM = 10                # 1xx responses skipped before the final one
# A TCP connect (three SYNs: 1 + 2 + 4 s) or a name lookup that has not
# succeeded by then will not: the connect deadline, shorter than the read
# timeout, bounds what an unreachable server costs.
CONNECT_TIMEOUT = 10.0
REDIRECT_CODES = (301, 302, 303, 307, 308)
# Request headers that carry credentials: never sent to another origin.
CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")       # a header name (RFC 7230 3.2.6)


def _quote_unsafe(text):
    """Percent-encode what may not appear raw in a request target: spaces,
    controls and non-ASCII (as UTF-8; bytes as they are).  '%' itself is
    left alone: the URL may be encoded already."""
    if not isinstance(text, bytes):
        try:
            text = text.encode("utf-8")
        except UnicodeEncodeError:      # undecodable argv bytes (surrogateescape)
            text = text.encode("utf-8", "surrogateescape")
    return "".join(chr(b) if 0x20 < b < 0x7f else "%%%02X" % b for b in bytearray(text))


def _header_text_ok(text):
    return all(c == "\t" or " " <= c <= "~" or u"\x80" <= c <= u"\xff" for c in text)


def _is_ascii(text):
    try:
        text.encode("ascii")
        return True
    except UnicodeError:
        return False


class Transport(object):
    """Connections, proxies, TLS and redirects.  One per process (or per thread).

    timeout: the network timeout: no recv waits longer, and the whole response
    head must arrive within it.  connect_timeout: for the name lookup and the
    TCP connect, each; defaults to CONNECT_TIMEOUT (or timeout, if shorter).
    hosts: the run's reachability.HostMemory, shared by the transports of
    one run: servers found dead are skipped, servers that missed the
    ranking probe get short deadlines.
    """

    def __init__(self, timeout=30.0, connect_timeout=None, env=None, ca_bundle=None,
                 verify=True, user_agent=USER_AGENT, hosts=None):
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout or min(self.timeout, CONNECT_TIMEOUT))
        self.hosts = hosts
        self.env = env if env is not None else {}
        self.ca_bundle = ca_bundle
        self.verify = verify
        self.tls = None                 # sagedl.net.tls.TLSConfig, made at the first https URL
        self.user_agent = user_agent
        self._idle = {}

    # -- connection pool ------------------------------------------------
    def _put(self, conn):
        self._idle.setdefault(conn.key, []).append(conn)

    def close(self):
        for conns in self._idle.values():
            for c in conns:
                c.close()
        self._idle.clear()

    def _connect(self, parts):
        key = server_key(parts, self.env)
        scheme, host, port, proxy_url = key
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if _is_reusable(conn.sock):
                return conn, proxy_url, True
            conn.close()
        connect_timeout, head_timeout = self.connect_timeout, self.timeout
        if self.hosts is not None:
            connect_timeout, head_timeout = self.hosts.deadlines(key, connect_timeout, head_timeout)
            known = self.hosts.before_connect(key, connect_timeout + head_timeout + 1.0)
            if known is not None:
                raise SourceFailure(SourceFailure.KIND_NETWORK,
                                    "skipped: failed earlier in this run (%s)" % known,
                                    cause=known.cause)
        try:
            sock = self._socket(scheme, host, port, proxy_url, connect_timeout)
            if scheme == "https":
                # reconnect: after a certificate error, tls.py handshakes again
                # to tell the user which check failed (2.7 and 3.6 do not say).
                sock = self._tls().wrap(sock, host, connect_timeout,
                                        reconnect=lambda: self._socket(scheme, host, port,
                                                                       proxy_url, connect_timeout))
        except SourceFailure as f:
            if self.hosts is not None:
                self.hosts.failed(key, f)
            raise
        conn = Connection(self, key, sock, self.timeout, head_timeout)
        return conn, (proxy_url if scheme == "http" else None), False

    def _socket(self, scheme, host, port, proxy_url, connect_timeout):
        """A connected TCP socket to the origin, or a tunnel to it through the proxy."""
        if not proxy_url:
            return self._tcp(host, port, "", connect_timeout)
        phost, pport, pauth = _proxy_endpoint(proxy_url)
        sock = self._tcp(phost, pport, "the proxy ", connect_timeout)
        if scheme == "https":
            sock = self._tunnel(sock, host, port, pauth)
        return sock

    def _tcp(self, host, port, what, connect_timeout):
        """A connected socket; WHAT ("the proxy " or "") prefixes the peer in messages."""
        # "resolving example.org", "connecting to example.org:443"
        name, peer = what + host, what + _host_port(host, port)
        from sagedl.net.reachability import cause_of_connect, cause_of_lookup
        # An ASCII host as bytes: a str host makes getaddrinfo import the
        # idna codec (7 ms of start-up on 3.13).
        addr = host.encode("ascii") if not isinstance(host, bytes) and _is_ascii(host) else host
        try:
            infos = resolve(addr, port, connect_timeout)
        except socket.timeout as e:
            raise SourceFailure(SourceFailure.KIND_NETWORK, "timed out resolving %s (%gs)"
                                % (name, connect_timeout), cause=cause_of_lookup(e))
        except NETWORK_ERRORS as e:
            raise SourceFailure(SourceFailure.KIND_NETWORK,
                                "cannot connect to %s: %s" % (peer, strerror(e)),
                                cause=cause_of_lookup(e))
        error = None
        for family, _, _, _, sockaddr in infos:
            try:
                # A numeric address: create_connection resolves nothing more.
                sock = socket.create_connection(sockaddr[:2], connect_timeout)
                break
            except (socket.timeout,) + NETWORK_ERRORS as e:
                error = e
        else:
            if isinstance(error, socket.timeout):
                raise SourceFailure(SourceFailure.KIND_NETWORK,
                                    "timed out connecting to %s (%gs)" % (peer, connect_timeout),
                                    cause=cause_of_connect(error))
            raise SourceFailure(SourceFailure.KIND_NETWORK,
                                "cannot connect to %s: %s" % (peer, strerror(error)),
                                cause=cause_of_connect(error))
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except NETWORK_ERRORS:
            pass
        return sock

    def _tunnel(self, sock, host, port, auth):
        """CONNECT through an HTTP proxy for an https URL (RFC 7231 section 4.3.6)."""
        conn = Connection(None, None, sock, self.timeout)
        target = "%s:%d" % (host, port)
        lines = ["CONNECT %s HTTP/1.1" % target, "Host: %s" % target,
                 "User-Agent: %s" % self.user_agent]
        if auth:
            lines.append("Proxy-Authorization: " + auth)
        try:
            conn.send(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            status, reason, headers = conn.read_head(compat_monotonic() + self.timeout)
        except SourceFailure:
            conn.close()
            raise
        if status != 200:
            conn.close()
            raise SourceFailure(SourceFailure.KIND_NETWORK,
                                "proxy refused CONNECT to %s: %d %s" % (target, status, reason))
        return sock

    def _tls(self):
        if self.tls is None:
            from sagedl.net.tls import TLSConfig
            self.tls = TLSConfig(self.ca_bundle, self.verify, self.env)
        return self.tls

    # -- requests -------------------------------------------------------
    def open(self, url, method="GET", headers=None, allow_downgrade=False,
             max_redirects=MAX_REDIRECTS):
        """Send a request and read the response head, following redirects.

        Only http and https are followed, at most ``max_redirects`` hops, and
        an https -> http downgrade only when ``allow_downgrade`` (the caller
        knows a checksum, so a tampered body cannot pass).
        """
        seen = 0
        while True:
            resp = self._open_once(url, method, headers)
            if resp.status not in REDIRECT_CODES or "location" not in resp.headers:
                return resp
            location = resp.headers["location"]
            _drain(resp)
            seen += 1
            if seen > max_redirects:
                raise SourceFailure(SourceFailure.KIND_REDIRECT,
                                    "too many redirects (more than %d)" % max_redirects,
                                    cause=CAUSE_REDIRECT)
            # The header was decoded as latin-1: back to its bytes, and
            # anything unsafe percent-encoded, before it is parsed.
            try:
                new = compat_urljoin(url, _quote_unsafe(location.encode("latin-1")))
                new_parts = check_url(new)
            except ValueError as e:         # urljoin: "Invalid IPv6 URL"
                raise SourceFailure(SourceFailure.KIND_REDIRECT,
                                    "redirect refused: invalid Location '%s' (%s)"
                                    % (printable(redact(location), 100), e),
                                    cause=CAUSE_REDIRECT)
            except UsageError as e:
                raise SourceFailure(SourceFailure.KIND_REDIRECT, "redirect refused: %s" % e,
                                    cause=CAUSE_REDIRECT)
            old_parts = compat_urlsplit(url)
            if (old_parts.scheme.lower() == "https"
                    and new_parts.scheme.lower() == "http" and not allow_downgrade):
                raise SourceFailure(SourceFailure.KIND_REDIRECT,
                                    "redirect from https to http refused: %s (followed only "
                                    "when a checksum is known)" % redact(new),
                                    cause=CAUSE_REDIRECT)
            if origin(new_parts) != origin(old_parts) and headers:
                # Credentials given for one origin are not another's business.
                headers = dict((k, v) for k, v in headers.items()
                               if k.lower() not in CREDENTIAL_HEADERS)
            url = new

    def _open_once(self, url, method, headers):
        parts = check_url(url)
        for k, v in (headers or {}).items():
            if not (_TOKEN.match(k) and _header_text_ok(v)):
                raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                    "refusing to send header %r: invalid characters" % (k[:40],))
        conn, absolute_proxy, reused = self._connect(parts)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        target = _quote_unsafe(path)
        host = ascii_host(parts.hostname)
        if ":" in host:
            host = "[%s]" % host
        if parts.port:
            host = "%s:%d" % (host, parts.port)
        if absolute_proxy:
            # The absolute form, without user:password or fragment.
            target = "%s://%s%s" % (parts.scheme.lower(), host, target)
        lines = ["%s %s HTTP/1.1" % (method, target), "Host: %s" % host,
                 "User-Agent: %s" % self.user_agent,
                 # The bytes we hash must be the bytes served: never a
                 # transparently decoded body.
                 "Accept-Encoding: identity", "Accept: */*"]
        auth = basic_auth(parts)
        if auth:
            lines.append("Authorization: " + auth)
        if absolute_proxy:
            pauth = _proxy_endpoint(absolute_proxy)[2]
            if pauth:
                lines.append("Proxy-Authorization: " + pauth)
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        try:
            data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        except UnicodeError:
            conn.close()
            raise SourceFailure(SourceFailure.KIND_PROTOCOL, "cannot encode the request headers")
        try:
            conn.send(data)
            deadline = compat_monotonic() + conn.head_timeout
            status, reason, rheaders = conn.read_head(deadline)
            interim = 0
            while 100 <= status < 200 and status != 101:
                # 100 Continue, 103 Early Hints: interim, the real one follows
                # (RFC 7231 section 6.2), within the same head deadline.
                interim += 1
                if interim > MAX_INTERIM:
                    raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                        "more than %d interim (1xx) responses" % MAX_INTERIM)
                status, reason, rheaders = conn.read_head(deadline)
        except SourceFailure as f:
            conn.close()
            if reused:
                # A kept-alive connection the server closed meanwhile: one fresh try.
                return self._open_once(url, method, headers)
            if self.hosts is not None:
                self.hosts.failed(conn.key, f)
            raise
        if self.hosts is not None and not reused:
            self.hosts.connected(conn.key)   # it answers: the workers waiting on it go ahead
        try:
            return Response(conn, method, url, status, reason, rheaders)
        except SourceFailure:
            conn.close()
            raise


def _host_port(host, port):
    """host:port as a URL writes it (an IPv6 address in brackets)."""
    return "[%s]:%s" % (host, port) if ":" in host else "%s:%s" % (host, port)


def _proxy_endpoint(proxy_url):
    try:
        return proxy_endpoint(proxy_url)
    except ValueError as e:
        raise SourceFailure(SourceFailure.KIND_NETWORK, str(e), hint=PROXY_HINT)


def _drain(resp, limit=64 * 1024):
    """Read a small body (a redirect's) so the connection can be reused."""
    try:
        if resp.length is not None and resp.length <= limit:
            resp.read_all(limit)
            resp.close()
            return
    except SourceFailure:
        pass
    resp.will_close = True
    resp.close()


def _is_reusable(sock):
    """A pooled socket is reusable if the server has not closed it (no EOF pending)."""
    import select
    try:
        r, _, _ = select.select([sock], [], [], 0)
    except (ValueError, NETWORK_ERRORS):
        return False
    if not r:
        return True
    # Readable while idle means EOF or garbage: either way, not reusable.
    return False
