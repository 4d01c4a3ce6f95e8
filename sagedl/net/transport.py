"""HTTP/1.1 over plain sockets: the standard-library transport.

Why not http.client?  Two things a downloader needs that it cannot give on
every supported Python: a deadline on the *whole* response head (a server
sending one header byte a second never trips a per-recv timeout), and a body
read that performs at most one recv() so the caller can apply its stall rule
(http.client's readinto fills the whole buffer; on 2.7 httplib reads through
an unbuffered file object).  What we need of HTTP is small: GET/HEAD, one
request at a time per connection, Content-Length, chunked and
close-delimited bodies, keep-alive, redirects, proxies and TLS.

Everything a source can do wrong surfaces as errors.SourceFailure with a
``kind`` that tells the engine whether to retry, fail over or give up.
"""

from __future__ import absolute_import

import errno
import re
import socket

from sagedl import __version__
from sagedl.compat import compat_monotonic, compat_urljoin, compat_urlsplit
from sagedl.errors import CAUSE_REDIRECT, CAUSE_SILENT, CAUSE_SLOW, SourceFailure, UsageError
from sagedl.net.urls import (PROXY_HINT, ascii_host, basic_auth, check_url, origin, port_of,
                             proxy_endpoint, proxy_for, redact, resolve)

USER_AGENT = "sagedl/%s" % __version__
MAX_HEAD_BYTES = 64 * 1024      # a response head larger than this is hostile
MAX_HEADERS = 200
MAX_REDIRECTS = 10
MAX_INTERIM = 10                # 1xx responses skipped before the final one
# A TCP connect (three SYNs: 1 + 2 + 4 s) or a name lookup that has not
# succeeded by then will not: the connect deadline, shorter than the read
# timeout, bounds what an unreachable server costs.
CONNECT_TIMEOUT = 10.0
REDIRECT_CODES = (301, 302, 303, 307, 308)
# Request headers that carry credentials: never sent to another origin.
CREDENTIAL_HEADERS = ("authorization", "cookie", "proxy-authorization")

_NETWORK_ERRORS = (socket.error, OSError, IOError)
_STATUS = re.compile(br"^[0-9]{3}$")
_DIGITS = re.compile(r"^[0-9]{1,20}$")
_CHUNK_SIZE = re.compile(br"^[0-9A-Fa-f]{1,16}$")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")       # a header name (RFC 7230 3.2.6)
# Control characters other than HTAB are invalid in a header field (RFC 7230
# section 3.2); a bare CR inside a line is how response splitting starts.
_HEADER_CTL = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")


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


def _printable(text, limit=80):
    """A server's reason phrase, safe to print on a terminal."""
    return "".join(c if " " <= c <= "~" else "?" for c in text[:limit])


def _header_text_ok(text):
    return all(c == "\t" or " " <= c <= "~" or u"\x80" <= c <= u"\xff" for c in text)


class Response(object):
    """A response whose head has been read; the body is read with readinto()."""

    def __init__(self, conn, method, url, status, reason, headers):
        self.conn = conn
        self.url = url
        self.status = status
        self.reason = reason
        self.headers = headers          # dict: lower-case name -> value
        self._method = method
        self.length = None              # Content-Length, if given and valid
        self.chunked = False
        self._chunk_left = 0
        self._chunks_done = False
        self._remaining = None
        self._done = False
        te = headers.get("transfer-encoding", "").lower()
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            self._remaining = 0
        elif te:
            # RFC 7230 section 3.3.3: Transfer-Encoding overrides Content-Length.
            # Only chunked is decoded here; a body in any other transfer
            # coding (gzip, ...) would be stored and hashed as it came, so it
            # is refused: gzip bytes once reached a final name with exit 0.
            codings = [c.strip() for c in te.split(",") if c.strip() not in ("", "identity")]
            if codings not in ([], ["chunked"]):
                raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                    "unsupported Transfer-Encoding %r (only chunked is decoded)"
                                    % _printable(headers["transfer-encoding"], 60))
            self.chunked = codings == ["chunked"]
        elif "content-length" in headers:
            # "5, 5" (a repeated header) is fine; "5, 7", "+5", "0x5" or "5_0"
            # are not: a body length that is ambiguous is an attack surface.
            values = set(v.strip() for v in headers["content-length"].split(","))
            value = values.pop() if len(values) == 1 else ""
            if not _DIGITS.match(value):
                raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                    "invalid Content-Length %r" % headers["content-length"][:60])
            self.length = int(value)
            self._remaining = self.length
        connection = headers.get("connection", "").lower()
        self.will_close = ("close" in connection or self._remaining is None and not self.chunked)
        if self._remaining == 0:
            self._done = True

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def readinto(self, view):
        """Read at most len(view) body bytes with at most one recv(); 0 at the end.

        A body that ends early (connection closed before Content-Length bytes)
        raises SourceFailure(KIND_PROTOCOL): the standard library never reports
        a short body, so this is where it is caught.
        """
        if self._done:
            return 0
        want = len(view)
        if self.chunked:
            if self._chunk_left == 0:
                if not self._next_chunk():
                    return 0
            want = min(want, self._chunk_left)
        elif self._remaining is not None:
            want = min(want, self._remaining)
        n = self.conn.recv_into(view, want)
        if n == 0:
            if self._remaining is None and not self.chunked:
                self._done = True   # close-delimited body: EOF is the end
                return 0
            expected = self.length if self.length is not None else "chunked"
            self.will_close = True
            # A network failure, like a reset: one failure, one exit code.
            raise SourceFailure(SourceFailure.KIND_NETWORK,
                                "connection closed early (short body; expected %s bytes)" % expected)
        if self.chunked:
            self._chunk_left -= n
            if self._chunk_left == 0 and self.conn.read_line(self._deadline(), what=CHUNKED):
                # The chunk must end with CRLF: more data means a lying size.
                self.will_close = True
                raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                    "chunk longer than its declared size")
        elif self._remaining is not None:
            self._remaining -= n
            if self._remaining == 0:
                self._done = True
        return n

    def _deadline(self):
        return compat_monotonic() + self.conn.timeout

    def _next_chunk(self):
        line = self.conn.read_line(self._deadline(), what=CHUNKED)
        digits = line.split(b";", 1)[0].strip(b" \t")
        if not _CHUNK_SIZE.match(digits):
            self.will_close = True
            raise SourceFailure(SourceFailure.KIND_PROTOCOL, "bad chunk header %r" % line[:40])
        size = int(digits, 16)
        if size == 0:
            # Trailers, then an empty line (RFC 7230 section 4.1.2): bounded
            # like a head, in size and time, so they cannot go on for ever.
            deadline, total = self._deadline(), 0
            while True:
                trailer = self.conn.read_line(deadline, what=CHUNKED)
                if not trailer:
                    break
                total += len(trailer) + 2
                if total > MAX_HEAD_BYTES:
                    self.will_close = True
                    raise SourceFailure(SourceFailure.KIND_PROTOCOL, "chunked trailers too large")
            self._done = True
            return False
        self._chunk_left = size
        return True

    def read_all(self, limit=1 << 20):
        return read_all(self, limit)

    def close(self):
        """Give the connection back for keep-alive if the body was consumed, else drop it."""
        conn, self.conn = self.conn, None
        if conn is None:
            return
        if self._done and not self.will_close:
            conn.release()
        else:
            conn.close()


CHUNKED = "a chunked body"
HEAD_DEADLINE = "timed out waiting for the response (the whole head must arrive within %gs)"


class Connection(object):
    """One socket to one origin (or proxy), with the bytes read past a head."""

    def __init__(self, pool, key, sock, timeout, head_timeout=None):
        self.pool = pool
        self.key = key
        self.sock = sock
        self.timeout = timeout
        self.head_timeout = head_timeout or timeout   # the whole response head
        self.buf = bytearray()    # bytes received but not consumed yet
        # An SSLSocket (it has pending()) returns one TLS record, at most
        # 16 KiB, per recv_into: see _drain_tls.
        self.is_tls = hasattr(sock, "pending")

    def send(self, data):
        try:
            self.sock.sendall(data)
        except socket.timeout:
            raise SourceFailure(SourceFailure.KIND_NETWORK, "timed out sending the request",
                                cause=CAUSE_SLOW)
        except _NETWORK_ERRORS as e:
            raise SourceFailure(SourceFailure.KIND_NETWORK, "send failed: %s" % _strerror(e))

    def _recv(self, view, n, deadline=None):
        timeout = self.timeout
        by_deadline = False
        if deadline is not None:
            left = deadline - compat_monotonic()
            if left <= 0:
                raise _silent(HEAD_DEADLINE % self.head_timeout)
            by_deadline = left < timeout
            timeout = min(timeout, left)
        self.sock.settimeout(timeout)
        try:
            got = self.sock.recv_into(view, n)
            if self.is_tls and 0 < got < n:
                got += self._drain_tls(view, got, n)
            return got
        except socket.timeout:
            if by_deadline:
                raise _silent(HEAD_DEADLINE % self.head_timeout)
            raise _silent("no data for %gs (read timeout)" % self.timeout)
        except _NETWORK_ERRORS as e:
            if getattr(e, "errno", None) == errno.EINTR:
                return self._recv(view, n, deadline)
            raise SourceFailure(SourceFailure.KIND_NETWORK, "connection error: %s" % _strerror(e))

    def _drain_tls(self, view, got, n):
        """Take the TLS records already in the kernel's buffer without waiting.

        One record per recv_into made the copy loop run 65,536 times per GiB
        (as many writes, timeout ioctls and hash calls); draining what has
        arrived cut 3.11's HTTPS time per GiB from 3.0 to 2.3 s and PyPy3's
        peak memory from 227 to 91 MB.  It never waits (timeout 0), so the
        stall rule and the read timeout see the same reads as before; an
        error here is left for the next blocking read to report.
        """
        sock = self.sock
        more = 0
        sock.settimeout(0.0)
        try:
            while got + more < n:
                m = sock.recv_into(view[got + more:], n - got - more)
                if not m:
                    break
                more += m
        except _NETWORK_ERRORS:    # SSLWantReadError: nothing more has arrived
            pass
        return more

    def recv_into(self, view, n):
        if self.buf:
            k = min(n, len(self.buf))
            view[:k] = self.buf[:k]
            del self.buf[:k]
            return k
        return self._recv(view, n)

    def read_line(self, deadline, limit=MAX_HEAD_BYTES, what="the response head"):
        """One CRLF-terminated line (without the terminator), bounded in size and time."""
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                line = bytes(self.buf[:i]).rstrip(b"\r")
                del self.buf[:i + 1]
                return line
            if len(self.buf) > limit:
                raise SourceFailure(SourceFailure.KIND_PROTOCOL, "line too long in %s" % what)
            chunk = bytearray(16384)
            n = self._recv(memoryview(chunk), len(chunk), deadline)
            if n == 0:
                raise SourceFailure(SourceFailure.KIND_NETWORK,
                                    "connection closed while reading %s" % what)
            self.buf += chunk[:n]

    def read_head(self, deadline):
        """Status line and headers; the whole head must arrive before ``deadline``."""
        status_line = self.read_line(deadline)
        while not status_line:              # tolerate stray CRLF before a status line
            status_line = self.read_line(deadline)
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                "not an HTTP response: %r" % status_line[:60])
        if not _STATUS.match(parts[1]):
            raise SourceFailure(SourceFailure.KIND_PROTOCOL, "bad status line %r" % status_line[:60])
        status = int(parts[1])
        # The reason phrase ends up in messages: nothing a terminal obeys.
        reason = _printable(parts[2].decode("latin-1")) if len(parts) > 2 else ""
        headers = {}
        total = len(status_line) + 2
        count = 0
        while True:
            line = self.read_line(deadline)
            if not line:
                break
            total += len(line) + 2
            count += 1
            if total > MAX_HEAD_BYTES or count > MAX_HEADERS:
                raise SourceFailure(SourceFailure.KIND_PROTOCOL, "response head too large")
            if _HEADER_CTL.search(line):
                raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                    "control character in header line %r" % line[:60])
            if line[:1] in (b" ", b"\t"):
                continue                    # obsolete line folding: ignore (RFC 7230 3.2.4)
            name, sep, value = line.partition(b":")
            if not sep:
                raise SourceFailure(SourceFailure.KIND_PROTOCOL, "bad header line %r" % line[:60])
            key = name.strip().decode("latin-1").lower()
            value = value.strip().decode("latin-1")
            headers[key] = headers[key] + ", " + value if key in headers else value
        if parts[0] == b"HTTP/1.0" and "keep-alive" not in headers.get("connection", "").lower():
            headers["connection"] = "close"
        return status, reason, headers

    def release(self):
        # Bytes already received past the response are not the next response
        # (we never pipeline): a connection holding any is not reused.
        if self.pool is not None and not self.buf:
            self.pool._put(self)
        else:
            self.close()

    def close(self):
        sock, self.sock = self.sock, None
        if sock is not None:
            try:
                sock.close()
            except _NETWORK_ERRORS:
                pass


def server_key(parts, env):
    """(scheme, host, port, proxy) of a split URL: what a connection is made
    to, the key of the connection pool and of the run's HostMemory."""
    return (parts.scheme.lower(), ascii_host(parts.hostname), port_of(parts),
            proxy_for(parts.geturl(), env))


def _silent(message):
    return SourceFailure(SourceFailure.KIND_NETWORK, message, cause=CAUSE_SILENT)


def _is_ascii(text):
    try:
        text.encode("ascii")
        return True
    except UnicodeError:
        return False


def _strerror(e):
    if isinstance(e, socket.gaierror):
        return "cannot resolve host (%s)" % (e.args[-1] if e.args else e)
    return getattr(e, "strerror", None) or str(e) or e.__class__.__name__


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
        except _NETWORK_ERRORS as e:
            raise SourceFailure(SourceFailure.KIND_NETWORK,
                                "cannot connect to %s: %s" % (peer, _strerror(e)),
                                cause=cause_of_lookup(e))
        error = None
        for family, _, _, _, sockaddr in infos:
            try:
                # A numeric address: create_connection resolves nothing more.
                sock = socket.create_connection(sockaddr[:2], connect_timeout)
                break
            except (socket.timeout,) + _NETWORK_ERRORS as e:
                error = e
        else:
            if isinstance(error, socket.timeout):
                raise SourceFailure(SourceFailure.KIND_NETWORK,
                                    "timed out connecting to %s (%gs)" % (peer, connect_timeout),
                                    cause=cause_of_connect(error))
            raise SourceFailure(SourceFailure.KIND_NETWORK,
                                "cannot connect to %s: %s" % (peer, _strerror(error)),
                                cause=cause_of_connect(error))
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except _NETWORK_ERRORS:
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
                                    % (_printable(redact(location), 100), e),
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


def read_all(resp, limit=1 << 20):
    """The whole (small) body of any response with readinto(): error pages,
    mirror lists.  Bounded by ``limit``."""
    out = bytearray()
    buf = bytearray(64 * 1024)
    view = memoryview(buf)
    while True:
        n = resp.readinto(view)
        if not n:
            return bytes(out)
        out += view[:n]
        if len(out) > limit:
            raise SourceFailure(SourceFailure.KIND_PROTOCOL, "response larger than %d bytes" % limit)


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
    except (ValueError, _NETWORK_ERRORS):
        return False
    if not r:
        return True
    # Readable while idle means EOF or garbage: either way, not reusable.
    return False
