"""HTTP/1.1 on one connection: the response head read within a deadline,
and a body read with at most one recv() per call.

Why a module of its own: transport.py decides where to connect and what to
send (proxies, TLS, redirects, the connection pool); this reads what comes
back, bounded in size and time, and is where a lying server is caught: a
head that never ends, an ambiguous Content-Length, a chunk longer than its
size, a body that ends early.  Its hot loop (Response.readinto,
Connection._recv) is every downloaded byte's way in.
"""

from __future__ import absolute_import

import errno
import os
import re
import socket

from sagedl.compat import compat_monotonic
from sagedl.errors import CAUSE_SILENT, CAUSE_SLOW, SourceFailure

MAX_HEAD_BYTES = 64 * 1024      # a response head larger than this is hostile
MAX_HEADERS = 200

NETWORK_ERRORS = (socket.error, OSError, IOError)
_STATUS = re.compile(br"^[0-9]{3}$")
_DIGITS = re.compile(r"^[0-9]{1,20}$")
_CHUNK_SIZE = re.compile(br"^[0-9A-Fa-f]{1,16}$")
# Control characters other than HTAB are invalid in a header field (RFC 7230
# section 3.2); a bare CR inside a line is how response splitting starts.
_HEADER_CTL = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")


def printable(text, limit=80):
    """A server's reason phrase, safe to print on a terminal."""
    return "".join(c if " " <= c <= "~" else "?" for c in text[:limit])


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
                                    % printable(headers["transfer-encoding"], 60))
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

    def can_splice(self):
        """True when the body can be moved with splice(2) (net/splice.py):
        plain TCP, on Linux with os.splice, a Content-Length (a chunked body
        has none: its framing is read in Python)."""
        if self._remaining is None or self._done or self.conn.is_tls:
            return False
        from sagedl.net import splice
        return splice.AVAILABLE

    def splice_into(self, space):
        """As readinto, but the next body bytes go into a pipe
        (``space``: a net.splice.PipeSpace), at most len(space) of them.
        Only when can_splice().  Bytes read with the head go first."""
        if self._done:
            return 0
        n = self.conn.splice_into(space.fd, min(len(space), self._remaining))
        if n == 0:
            self.will_close = True
            raise SourceFailure(SourceFailure.KIND_NETWORK,
                                "connection closed early (short body; expected %s bytes)"
                                % self.length)
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
        except NETWORK_ERRORS as e:
            raise SourceFailure(SourceFailure.KIND_NETWORK, "send failed: %s" % strerror(e))

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
        except NETWORK_ERRORS as e:
            if getattr(e, "errno", None) == errno.EINTR:
                return self._recv(view, n, deadline)
            raise SourceFailure(SourceFailure.KIND_NETWORK, "connection error: %s" % strerror(e))

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
        except NETWORK_ERRORS:    # SSLWantReadError: nothing more has arrived
            pass
        return more

    def recv_into(self, view, n):
        if self.buf:
            k = min(n, len(self.buf))
            view[:k] = self.buf[:k]
            del self.buf[:k]
            return k
        return self._recv(view, n)

    def splice_into(self, pipe_w, n):
        """Move at most n bytes into the empty pipe pipe_w: first those
        received with the head, then from the socket with splice(2)."""
        from sagedl.net.splice import splice_from_socket
        try:
            if self.buf:
                k = min(n, len(self.buf))
                done = 0
                while done < k:     # fits: the pipe is empty and larger than a head read
                    done += os.write(pipe_w, bytes(self.buf[done:k]))
                del self.buf[:k]
                return k
            self.sock.settimeout(self.timeout)      # non-blocking underneath
            return splice_from_socket(self.sock, pipe_w, n, self.timeout)
        except socket.timeout:
            raise _silent("no data for %gs (read timeout)" % self.timeout)
        except NETWORK_ERRORS as e:
            raise SourceFailure(SourceFailure.KIND_NETWORK, "connection error: %s" % strerror(e))

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
        reason = printable(parts[2].decode("latin-1")) if len(parts) > 2 else ""
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
            except NETWORK_ERRORS:
                pass


def _silent(message):
    return SourceFailure(SourceFailure.KIND_NETWORK, message, cause=CAUSE_SILENT)


def strerror(e):
    if isinstance(e, socket.gaierror):
        return "cannot resolve host (%s)" % (e.args[-1] if e.args else e)
    return getattr(e, "strerror", None) or str(e) or e.__class__.__name__


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
