"""A fault-injecting HTTP/1.1 server on loopback, for tests and benchmarks.

The URL path names the behaviour (the youtube-dl test-server idea), so a test
reads like the fault it provokes:

    {url}/{faults}/{name}                     e.g. /reset-at-1000,once/f.bin
    {url}/{faults}/spkg/upstream/{pkg}/{name} Sage mirror layout
    {url}/{name}, {url}/spkg/upstream/...     same as faults "ok"

The file is looked up by the last path component only.  {faults} is a
comma-separated list of these (N counts body bytes of this response):

    ok                 a correct server: ETag, Last-Modified, Accept-Ranges,
                       single Range -> 206, unsatisfiable -> 416, If-Range,
                       HEAD, persistent connections
    once               the other faults act on the first request for this
                       (faults, name) only; later ones behave like ok
    reset-at-N         head + N body bytes, then a TCP RST
    close-at-N         head (full Content-Length) + N body bytes, then FIN
    stall-at-N         head + N body bytes, then silence until release()
    hold               read the request, answer nothing until release()
    trickle-N          body at N bytes/s (until release(): then full speed)
    corrupt            the byte at file offset size//2 flipped (all ranges)
    corrupt-every      the first byte of every answer's body flipped: whatever
                       range this server sends is wrong
    no-range           Range ignored: 200 full, no Accept-Ranges
    bad-content-range  206 from (asked start + 100), Content-Range says so
    wrong-total        206 whose Content-Range total is size + 1000
    ignore-if-range    Range honoured even when If-Range does not match
    always-416         any Range -> 416
    404 410 500 503 429  that status, short HTML body; 503/429 carry
                       Retry-After: 0 unless retry-after-N
    retry-after-N      the Retry-After value for 503/429
    html               200 text/html error page instead of the file
    no-length          no Content-Length; the body ends at connection close
    long-N             N extra bytes after the body, then close
    gzip               Content-Encoding: gzip whatever Accept-Encoding says
    huge-headers       ~1 MiB of header lines before the real headers
    slow-headers       status line, then one header byte per second
    redirect           301 to {url}/ok/{name};  redirect-loop: 302 to itself

Cut faults combine in offset order (stall-at-100,reset-at-200 stalls, and
after release() sends 100 more bytes and resets).  An unknown fault answers
400 so a typo in a test fails loudly instead of testing the happy path.

Responses are written with raw socket calls so each fault is exact (a TCP RST
after exactly N body bytes, a Content-Range that lies by exactly 100, ...).

As a script it serves a directory, for benchmarks run in another process:

    python3 tests/faultserver.py --dir DIR [--port N] [--host H] [--tls]

It prints the URL on the first line of stdout and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import copy
import email.utils
import gzip
import hashlib
import mmap
import os
import selectors
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
import urllib.parse

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
TLS_CA = os.path.join(FIXTURES, "test-ca.pem")
TLS_CERT = os.path.join(FIXTURES, "localhost.pem")
TLS_KEY = os.path.join(FIXTURES, "localhost-key.pem")

# Big blocks keep the server far faster than any client under test; progress
# (body_bytes, wait_for) is updated once per block.
CHUNK = 1 << 20

# Faults without a parameter.
FLAG_FAULTS = frozenset("""
    ok once hold corrupt corrupt-every no-range bad-content-range wrong-total ignore-if-range
    always-416 html no-length gzip huge-headers slow-headers redirect
    redirect-loop
""".split())
# Faults written NAME-N with a non-negative integer N.
NUMBER_FAULTS = frozenset(
    "reset-at close-at stall-at trickle retry-after long".split())
STATUS_FAULTS = {
    404: "Not Found",
    410: "Gone",
    500: "Internal Server Error",
    503: "Service Unavailable",
    429: "Too Many Requests",
}
# Faults that cut the body after N bytes, in the order they act on a tie.
CUT_FAULTS = ("stall-at", "close-at", "reset-at")

BAD_CONTENT_RANGE_SHIFT = 100
WRONG_TOTAL_EXTRA = 1000
HUGE_HEADER_LINES = 1100  # of ~1 KiB each: just over 1 MiB of headers

REASONS = {
    200: "OK", 206: "Partial Content", 301: "Moved Permanently", 302: "Found",
    400: "Bad Request", 405: "Method Not Allowed",
    416: "Range Not Satisfiable",
}
REASONS.update(STATUS_FAULTS)

HTML_PAGE = (b"<!DOCTYPE html>\n<html><head><title>Download error</title>"
             b"</head><body><h1>Please sign in to download this file</h1>"
             b"</body></html>\n")


class UnknownFault(ValueError):
    pass


def parse_faults(spec):
    """'reset-at-10,once' -> {'reset-at': 10, 'once': True}; 'ok' -> {}.

    Status faults are stored under 'status' (an int)."""
    faults = {}
    for token in spec.split(","):
        token = token.strip()
        if token in FLAG_FAULTS:
            faults[token] = True
            continue
        if token.isdigit() and int(token) in STATUS_FAULTS:
            faults["status"] = int(token)
            continue
        base, dash, number = token.rpartition("-")
        if dash and base in NUMBER_FAULTS and number.isdigit():
            faults[base] = int(number)
            continue
        raise UnknownFault(token)
    faults.pop("ok", None)
    return faults


UNSATISFIABLE = "unsatisfiable"


def parse_range(value, total):
    """Return (first, last) inclusive, UNSATISFIABLE, or None to ignore.

    Only a single byte range is honoured; RFC 7233 section 3.1 lets a server
    ignore any Range it does not want to serve, so multi-range and malformed
    headers get the full 200."""
    if not value:
        return None
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":  # suffix range: the last N bytes
            count = int(last)
            if count <= 0 or total == 0:
                return UNSATISFIABLE
            return max(0, total - count), total - 1
        start = int(first)
        end = int(last) if last else None
    except ValueError:
        return None
    if end is not None and end < start:  # invalid: ignore the header
        return None
    if start >= total:
        return UNSATISFIABLE
    return start, total - 1 if end is None else min(end, total - 1)


def http_date(timestamp):
    return email.utils.formatdate(timestamp, usegmt=True)


def tls_server_context(cert=TLS_CERT, key=TLS_KEY):
    """A server-side SSLContext with the fixture certificate for localhost."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


class Request(object):
    """What the server saw and did for one request (tests read snapshots)."""

    def __init__(self, connection, method, path, name, faults, headers):
        self.connection = connection  # sequence number of the TCP connection
        self.method = method
        self.path = path
        self.name = name
        self.faults = faults          # the fault spec string, "" for none
        self.headers = headers        # lower-case keys
        self.range = headers.get("range")
        self.status = None            # set just before the head is sent
        self.start = None             # file offset of the body; None: no file
        self.body_bytes = 0           # body bytes handed to the kernel
        self.stalled = False          # parked in stall/hold right now
        self.finished = False         # the server is done with this request

    def __repr__(self):
        return "<Request %s %s -> %s, %d bytes%s>" % (
            self.method, self.path, self.status, self.body_bytes,
            " stalled" if self.stalled else "")


class _File(object):
    def __init__(self, data, etag, mtime):
        self.data = data  # bytes, or an mmap for files served from a dir
        self.etag = etag
        self.last_modified = http_date(mtime)


class _Stopped(Exception):
    """The server is stopping: drop this connection."""


class _Closed(Exception):
    """A fault ended the connection on purpose."""


class FaultServer(object):
    def __init__(self, files=None, host="127.0.0.1", ssl_context=None,
                 port=0, directory=None):
        self.host = host
        self.ssl_context = ssl_context
        self.directory = directory
        self.errors = []  # tracebacks of server bugs (never client hang-ups)
        self._files = {}
        self._mmaps = []
        self._records = []
        self._seen = {}  # (fault spec, name) -> requests, for "once"
        self._cond = threading.Condition(threading.RLock())
        self._release_generation = 0
        self._stopping = False
        self._connections = {}  # number -> socket, to shut down on stop()
        self._threads = set()
        self._connection_count = 0
        self._listener = None
        self._wake = None
        self._accept_thread = None
        self._port = port
        for name, data in (files or {}).items():
            self.add(name, data)

    # -- files --------------------------------------------------------------

    def add(self, name, data):
        data = bytes(data)
        etag = '"%s"' % hashlib.sha256(data).hexdigest()[:40]
        with self._cond:
            self._files[name] = _File(data, etag, int(time.time()))

    def _lookup(self, name):
        with self._cond:
            found = self._files.get(name)
            if found is not None or not self.directory:
                return found
            if name in ("", ".", "..") or "/" in name or os.sep in name:
                return None
            path = os.path.join(self.directory, name)
            try:
                with open(path, "rb") as handle:
                    stat = os.fstat(handle.fileno())
                    size = stat.st_size
                    # mmap: big files are served without being read into
                    # memory; an empty file cannot be mapped.
                    data = (mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
                            if size else b"")
            except (IOError, OSError):
                return None
            if size:
                self._mmaps.append(data)
            # Hashing a multi-GB benchmark file would stall its first request;
            # size and mtime identify a file on disk well enough.
            etag = '"%x-%x"' % (size, stat.st_mtime_ns)
            found = self._files[name] = _File(data, etag, int(stat.st_mtime))
            return found

    # -- lifecycle ----------------------------------------------------------

    @property
    def port(self):
        return self._port

    @property
    def url(self):
        scheme = "https" if self.ssl_context else "http"
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d" % (scheme, host, self._port)

    def url_for(self, name, faults="ok"):
        """{url}/{faults}/{name}: faults as a spec string or a list."""
        if not isinstance(faults, str):
            faults = ",".join(faults)
        return "%s/%s/%s" % (self.url, faults, urllib.parse.quote(name))

    def start(self):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((self.host, self._port))
        listener.listen(128)
        self._listener = listener
        self._port = listener.getsockname()[1]
        # A socketpair wakes the accept loop on stop(): closing a socket that
        # another thread blocks in accept() on does not wake it on Linux.
        self._wake = socket.socketpair()
        self._accept_thread = threading.Thread(
            target=self._accept_loop, name="faultserver-accept", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self):
        with self._cond:
            if self._stopping or self._listener is None:
                return
            self._stopping = True
            self._cond.notify_all()  # wakes stalled, held and trickling ones
            connections = list(self._connections.values())
        for sock in connections:
            _shutdown(sock)  # wakes threads blocked in recv or send
        self._wake[1].send(b"x")
        self._accept_thread.join(10)
        self._listener.close()
        for sock in self._wake:
            sock.close()
        for thread in list(self._threads):
            thread.join(10)
        for mapped in self._mmaps:
            try:
                mapped.close()
            except BufferError:  # a thread that did not finish still uses it
                pass

    def __enter__(self):
        return self if self._listener is not None else self.start()

    def __exit__(self, *exc_info):
        self.stop()

    def release(self):
        """Let every connection parked by stall/hold/trickle/slow-headers
        right now finish at full speed.  Later requests are faulted again."""
        with self._cond:
            self._release_generation += 1
            self._cond.notify_all()

    # -- observation ----------------------------------------------------------

    @property
    def requests(self):
        with self._cond:
            return [copy.copy(record) for record in self._records]

    def requests_for(self, name):
        return [r for r in self.requests if r.name == name]

    def full_gets(self, name):
        """GETs of `name` that sent the file from byte 0 (not a resume)."""
        return sum(1 for r in self.requests_for(name)
                   if r.method == "GET" and r.status in (200, 206)
                   and r.start == 0)

    def wait_for(self, predicate, timeout=10):
        """Block until predicate(self) is true; False after `timeout` s."""
        with self._cond:
            return bool(self._cond.wait_for(lambda: predicate(self), timeout))

    def _update(self, record, **changes):
        with self._cond:
            for key, value in changes.items():
                setattr(record, key, value)
            self._cond.notify_all()

    # -- connections ----------------------------------------------------------

    def _accept_loop(self):
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        selector.register(self._wake[0], selectors.EVENT_READ)
        try:
            while not self._stopping:
                ready = [key.fileobj for key, _ in selector.select()]
                if self._wake[0] in ready or self._stopping:
                    return
                try:
                    sock, _ = self._listener.accept()
                except OSError:
                    continue
                with self._cond:
                    if self._stopping:
                        sock.close()
                        return
                    self._connection_count += 1
                    number = self._connection_count
                    self._connections[number] = sock
                    thread = threading.Thread(
                        target=self._serve_connection, args=(sock, number),
                        name="faultserver-%d" % number, daemon=True)
                    self._threads.add(thread)
                thread.start()
        finally:
            selector.close()

    def _serve_connection(self, sock, number):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.ssl_context is not None:
                sock.settimeout(10)  # a client that never handshakes
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
                sock.settimeout(None)
                with self._cond:
                    self._connections[number] = sock
                    if self._stopping:
                        raise _Stopped()
            reader = _Reader(sock)
            while not self._stopping:
                request = _read_request(reader)
                if request is None:
                    break
                if not self._respond(sock, number, *request):
                    _shutdown(sock)
                    break
        except (_Stopped, _Closed, OSError, ValueError):
            # Client hang-ups, resets and stop() all land here; a test server
            # that printed tracebacks for them would bury real failures.
            pass
        except Exception:
            self.errors.append(traceback.format_exc())
            sys.stderr.write(self.errors[-1])
        finally:
            try:
                sock.close()
            except OSError:
                pass
            with self._cond:
                self._connections.pop(number, None)
                self._threads.discard(threading.current_thread())
                for record in self._records:
                    if record.connection == number and not record.finished:
                        record.finished = True
                        record.stalled = False
                self._cond.notify_all()

    # -- responses ------------------------------------------------------------

    def _respond(self, sock, number, method, target, version, headers):
        """Answer one request; return True to keep the connection open."""
        if method is None:  # unparseable request
            self._send_simple(sock, None, 400, b"bad request\n", close=True)
            return False
        path = urllib.parse.urlsplit(target).path
        parts = [urllib.parse.unquote(p) for p in path.split("/") if p]
        spec = parts[0] if len(parts) >= 2 and parts[0] != "spkg" else ""
        name = parts[-1] if parts else ""
        record = Request(number, method, path, name, spec, headers)
        with self._cond:
            self._records.append(record)
            key = (spec, name)
            self._seen[key] = self._seen.get(key, 0) + 1
            first_time = self._seen[key] == 1
            self._cond.notify_all()

        connection = headers.get("connection", "").lower()
        keep_alive = ("close" not in connection if version == "HTTP/1.1"
                      else "keep-alive" in connection)
        try:
            faults = parse_faults(spec) if spec else {}
        except UnknownFault as exc:
            body = ("unknown fault %r in %r\n" % (exc.args[0], spec)).encode()
            return self._send_simple(sock, record, 400, body, not keep_alive)
        if faults.get("once") and not first_time:
            faults = {}
        generation = self._release_generation
        if method not in ("GET", "HEAD"):
            return self._send_simple(sock, record, 405, b"GET or HEAD\n",
                                     not keep_alive, [("Allow", "GET, HEAD")])
        if faults.get("hold"):
            generation = self._park(record)
        if "status" in faults:
            status = faults["status"]
            extra = []
            if status in (503, 429):
                extra.append(("Retry-After", str(faults.get("retry-after", 0))))
            body = ("<html><body><h1>%d %s</h1></body></html>\n"
                    % (status, REASONS[status])).encode()
            return self._send_simple(sock, record, status, body,
                                     not keep_alive, extra, faults, generation,
                                     content_type="text/html")
        if faults.get("redirect") or faults.get("redirect-loop"):
            if faults.get("redirect"):
                status, location = 301, "%s/ok/%s" % (
                    self.url, urllib.parse.quote(name))
            else:
                status, location = 302, self.url + target if target.startswith(
                    "/") else target
            return self._send_simple(sock, record, status, b"moved\n",
                                     not keep_alive, [("Location", location)],
                                     faults, generation)
        if faults.get("html"):
            return self._send_simple(sock, record, 200, HTML_PAGE,
                                     not keep_alive, [], faults, generation,
                                     content_type="text/html; charset=utf-8")
        found = self._lookup(name)
        if found is None:
            return self._send_simple(sock, record, 404, b"no such file\n",
                                     not keep_alive, [], faults, generation)
        return self._send_file(sock, record, found, faults, generation,
                               keep_alive)

    def _send_file(self, sock, record, found, faults, generation, keep_alive):
        data = found.data
        total = len(data)
        head = [("Content-Type", "application/octet-stream"),
                ("ETag", found.etag),
                ("Last-Modified", found.last_modified)]
        if not faults.get("no-range"):
            head.append(("Accept-Ranges", "bytes"))
        if faults.get("corrupt") and total:
            data = bytearray(data)
            data[total // 2] ^= 0xFF
        wanted = None
        if (record.range and not faults.get("no-range")
                and not faults.get("gzip")):
            if_range = record.headers.get("if-range")
            if (if_range is None or faults.get("ignore-if-range")
                    or if_range in (found.etag, found.last_modified)):
                wanted = parse_range(record.range, total)
                if faults.get("always-416") and wanted is not None:
                    wanted = UNSATISFIABLE
        if wanted == UNSATISFIABLE:
            return self._send_simple(
                sock, record, 416, b"", not keep_alive,
                [("Content-Range", "bytes */%d" % total)], faults, generation)
        if faults.get("gzip"):
            # Hostile: compressed whatever Accept-Encoding said.
            data = gzip.compress(bytes(data), mtime=0)
            head.append(("Content-Encoding", "gzip"))
            status, first, last = 200, 0, len(data) - 1
        elif wanted is None:
            status, first, last = 200, 0, total - 1
        else:
            status, (first, last) = 206, wanted
            claimed_total = total
            if faults.get("bad-content-range"):
                shift = (BAD_CONTENT_RANGE_SHIFT
                         if first + BAD_CONTENT_RANGE_SHIFT < total
                         else -min(first, BAD_CONTENT_RANGE_SHIFT))
                first, last = first + shift, max(last, first + shift)
            if faults.get("wrong-total"):
                claimed_total = total + WRONG_TOTAL_EXTRA
            head.append(("Content-Range", "bytes %d-%d/%d"
                         % (first, last, claimed_total)))
        length = last - first + 1
        close = not keep_alive or faults.get("no-length") or "long" in faults
        if not faults.get("no-length"):
            head.append(("Content-Length", str(length)))
        self._update(record, start=first)
        self._send_head(sock, record, status, head, close, faults, generation)
        if record.method == "HEAD":
            self._update(record, finished=True)
            return not close
        body = memoryview(data)[first:last + 1]
        if faults.get("corrupt-every") and length > 0:
            body = bytearray(body)
            body[0] ^= 0xFF
            body = memoryview(body)
        self._send_body(sock, record, body, faults, generation)
        if faults.get("long"):
            sock.sendall(b"X" * faults["long"])
        self._update(record, finished=True)
        return not close

    def _send_simple(self, sock, record, status, body, close, headers=(),
                     faults=None, generation=0, content_type="text/plain"):
        head = [("Content-Type", content_type)] + list(headers)
        head.append(("Content-Length", str(len(body))))
        self._send_head(sock, record, status, head, close, faults or {},
                        generation)
        if record is None or record.method != "HEAD":
            sock.sendall(body)
        if record is not None:
            self._update(record, finished=True)
        return not close

    def _send_head(self, sock, record, status, headers, close, faults,
                   generation):
        status_line = "HTTP/1.1 %d %s\r\n" % (status, REASONS[status])
        lines = [("Date", http_date(time.time())), ("Server", "faultserver")]
        lines += headers
        lines.append(("Connection", "close" if close else "keep-alive"))
        rest = "".join("%s: %s\r\n" % pair for pair in lines) + "\r\n"
        if faults.get("huge-headers"):
            filler = "x" * 1000
            rest = "".join("X-Filler-%04d: %s\r\n" % (i, filler)
                           for i in range(HUGE_HEADER_LINES)) + rest
        if record is not None:
            self._update(record, status=status)
        if faults.get("slow-headers"):
            sock.sendall(status_line.encode("latin-1"))
            self._pace(sock, record, memoryview(rest.encode("latin-1")), 1,
                       generation, count_body=False)
        else:
            sock.sendall((status_line + rest).encode("latin-1"))

    def _send_body(self, sock, record, body, faults, generation):
        """Send `body` applying the cut faults in order of their offsets."""
        cuts = sorted((min(faults[kind], len(body)), CUT_FAULTS.index(kind),
                       kind) for kind in CUT_FAULTS if kind in faults)
        sent = 0
        for offset, _, kind in cuts:
            sent = self._send_range(sock, record, body, sent, offset, faults,
                                    generation)
            if kind == "stall-at":
                generation = self._park(record)
            elif kind == "close-at":
                _shutdown(sock)
                raise _Closed()
            else:
                self._reset(sock)
                raise _Closed()
        self._send_range(sock, record, body, sent, len(body), faults,
                         generation)

    def _send_range(self, sock, record, body, start, end, faults, generation):
        if start >= end:
            return start
        if "trickle" in faults:
            return self._pace(sock, record, body[start:end],
                              faults["trickle"], generation) + start
        for offset in range(start, end, CHUNK):
            block = body[offset:min(offset + CHUNK, end)]
            sock.sendall(block)
            self._progress(record, len(block))
        return end

    def _pace(self, sock, record, data, rate, generation, count_body=True):
        """Send `data` at `rate` bytes/s until release() (then at full speed)
        or stop() (then abort).  Returns the number of bytes sent."""
        # Ten sends a second: smooth enough for a client's speed limits.
        step = max(1, rate // 10)
        began = time.monotonic()
        sent = 0
        while sent < len(data):
            released = self._release_generation != generation
            block = data[sent:sent + (CHUNK if released else step)]
            sock.sendall(block)
            sent += len(block)
            if count_body:
                self._progress(record, len(block))
            if released or sent >= len(data):
                continue
            due = began + sent / float(rate)
            with self._cond:
                self._cond.wait_for(
                    lambda: self._stopping
                    or self._release_generation != generation,
                    max(0, due - time.monotonic()))
                if self._stopping:
                    raise _Stopped()
        return sent

    def _progress(self, record, count):
        with self._cond:
            record.body_bytes += count
            self._cond.notify_all()

    def _park(self, record):
        """Wait for the next release() (or stop); return the new generation.

        The generation is read here, not at request start, so a release()
        aimed at other connections does not cancel this stall in advance."""
        with self._cond:
            generation = self._release_generation
            record.stalled = True
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._stopping
                                or self._release_generation != generation)
            record.stalled = False
            self._cond.notify_all()
            if self._stopping:
                raise _Stopped()
            return self._release_generation

    def _reset(self, sock):
        """Abort with a TCP RST, after the client acknowledged what was sent.

        An RST discards data still in our send queue, so without the wait the
        client could see fewer than N bytes.  SIOCOUTQ (== TIOCOUTQ) counts
        bytes sent but not yet acknowledged; Linux only, elsewhere no wait."""
        try:
            import fcntl
            import termios
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                buf = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ,
                                  struct.pack("i", 0))
                if struct.unpack("i", buf)[0] == 0:
                    break
                with self._cond:
                    if self._cond.wait_for(lambda: self._stopping, 0.005):
                        raise _Stopped()
        except (ImportError, AttributeError, OSError):
            pass
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        struct.pack("ii", 1, 0))
        sock.close()


def _shutdown(sock):
    try:
        # socket.socket.shutdown, not SSLSocket.shutdown: the latter drops
        # the SSL object under the feet of the thread using it.
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


MAX_LINE = 65536
MAX_HEADERS = 200


class _Reader(object):
    """Buffered request reader.

    Not sock.makefile(): a makefile holds a reference that defers the real
    close, and reset-at-N needs close() to send the RST at once."""

    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def _fill(self):
        data = self.sock.recv(65536)
        self.buffer += data
        return bool(data)

    def readline(self, limit):
        while True:
            end = self.buffer.find(b"\n", 0, limit)
            if end >= 0:
                end += 1
                break
            if len(self.buffer) >= limit or not self._fill():
                end = limit
                break
        line, self.buffer = self.buffer[:end], self.buffer[end:]
        return line

    def read(self, count):
        while len(self.buffer) < count and self._fill():
            pass
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data


def _read_request(reader):
    """(method, target, version, headers) or None at end of connection.

    Returns (None, ...) for a malformed request."""
    line = b"\r\n"
    while line in (b"\r\n", b"\n"):  # RFC 7230 3.5: skip leading empty lines
        line = reader.readline(MAX_LINE + 1)
        if not line:
            return None
    bad = (None, None, None, None)
    parts = line.decode("latin-1").split()
    if len(line) > MAX_LINE or len(parts) != 3:
        return bad
    method, target, version = parts
    headers = {}
    for _ in range(MAX_HEADERS):
        line = reader.readline(MAX_LINE + 1)
        if not line:
            return None
        if line in (b"\r\n", b"\n"):
            break
        key, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            return bad
        headers[key.strip().lower()] = value.strip()
    else:
        return bad
    # Request bodies are not expected (GET/HEAD) but must not be parsed as
    # the next request on a persistent connection.
    length = headers.get("content-length", "0")
    if length.isdigit() and int(length):
        reader.read(int(length))
    return method, target, version, headers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dir", required=True, help="directory to serve")
    parser.add_argument("--port", type=int, default=0, help="0: pick a free one")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tls", action="store_true",
                        help="serve https with the fixture certificate")
    args = parser.parse_args(argv)
    context = tls_server_context() if args.tls else None
    server = FaultServer(host=args.host, port=args.port, ssl_context=context,
                         directory=os.path.abspath(args.dir))
    done = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: done.set())
    with server:
        print(server.url, flush=True)
        while not done.wait(3600):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
