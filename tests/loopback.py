"""Loopback servers for the mirror probe and ranking tests (and
bench/bench_ranking.py): raw sockets on 127.0.0.1 that answer, hang at
connect, never answer HTTP, or proxy; a self-signed TLS mirror.  conftest.py
makes the fixtures (servers, env, tls_files) from these.
"""

import datetime
import errno
import ipaddress
import os
import select
import socket
import ssl
import threading
import time

import pytest


OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


# -- loopback fixtures -----------------------------------------------------------
def listener(backlog):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(backlog)
    return s


def listener_url(sock, scheme="http"):
    return "%s://127.0.0.1:%d/" % (scheme, sock.getsockname()[1])


def fill_accept_queues(listeners, settle=0.2, rounds=8):
    """Connect to each listener until a connect hangs; return the filler sockets.

    A listener with backlog 0 holds one completed connection; with its accept
    queue full, Linux drops further SYNs (syncookies or not), so a connect
    then hangs in SYN_SENT.  A loopback handshake completes at once, so a
    connect still pending after ``settle`` seconds is verified as hanging.
    Raises RuntimeError if this kernel never makes connects hang.
    """
    fillers = []
    pending = list(listeners)
    for _ in range(rounds):
        waiting = {}
        for lst in pending:
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            err = c.connect_ex(lst.getsockname())
            if err not in (0, errno.EINPROGRESS):
                raise RuntimeError("filler connect failed: %s" % os.strerror(err))
            fillers.append(c)
            waiting[c] = lst
        deadline = time.monotonic() + settle
        while waiting and time.monotonic() < deadline:
            _, w, _ = select.select([], list(waiting), [], deadline - time.monotonic())
            for c in w:
                if c.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    raise RuntimeError("filler connect failed")
                del waiting[c]
        hung = set(waiting.values())
        pending = [lst for lst in pending if lst not in hung]
        if not pending:
            return fillers
    for c in fillers:
        c.close()
    raise RuntimeError("connects to a full accept queue do not hang on this kernel")


class LoopbackServers(object):
    """Loopback 'mirrors' of three kinds, served by one select() thread.

    full():    a listener whose accept queue is full: connects hang.
    silent():  accepts connections and never answers.
    respond(): answers each request with fixed bytes, then closes.
    ``requests`` maps a port to the request heads it received.
    """

    def __init__(self):
        self.full_listeners = []
        self.silent_listeners = []
        self.responders = {}          # listener -> response bytes
        self.requests = {}
        self.fillers = []
        self.held = []
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = None
        self._closed = False

    def full(self):
        s = listener(0)
        self.full_listeners.append(s)
        return listener_url(s)

    def silent(self):
        s = listener(64)
        self.silent_listeners.append(s)
        return listener_url(s)

    def respond(self, response=OK_RESPONSE):
        s = listener(64)
        self.responders[s] = response
        self.requests[s.getsockname()[1]] = []
        return listener_url(s)

    def start(self):
        if self.full_listeners:
            self.fillers = fill_accept_queues(self.full_listeners)
        self._thread = threading.Thread(target=self._serve, name="loopback-mirrors")
        self._thread.daemon = True
        self._thread.start()
        return self

    def _serve(self):
        conns = {}                    # socket -> [listener port, buffer, response]
        listeners = self.silent_listeners + list(self.responders)
        while True:
            r, _, _ = select.select([self._wake_r] + listeners + list(conns), [], [])
            for s in r:
                if s is self._wake_r:
                    for c in conns:
                        c.close()
                    return
                if s in self.silent_listeners:
                    self.held.append(s.accept()[0])
                elif s in self.responders:
                    c = s.accept()[0]
                    conns[c] = [s.getsockname()[1], b"", self.responders[s]]
                else:
                    port, buf, response = conns[s]
                    try:
                        data = s.recv(4096)
                    except OSError:
                        data = b""
                    buf += data
                    if data and b"\r\n\r\n" not in buf:
                        conns[s][1] = buf
                        continue
                    if data:
                        self.requests[port].append(buf.split(b"\r\n\r\n")[0].decode("latin-1"))
                        try:
                            s.sendall(response)
                        except OSError:
                            pass
                    s.close()
                    del conns[s]

    def close(self):
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._wake_w.send(b"x")
            self._thread.join(10)
        for s in (self.full_listeners + self.silent_listeners + list(self.responders)
                  + self.fillers + self.held + [self._wake_r, self._wake_w]):
            s.close()


class LoopbackProxy(object):
    """An HTTP proxy on 127.0.0.1 that only reaches 127.0.0.1: absolute-form
    requests are forwarded, CONNECT is tunnelled (or refused with 403 when
    ``refuse_connect``).  ``seen`` lists the request lines it received."""

    def __init__(self, refuse_connect=False):
        self.refuse_connect = refuse_connect
        self.seen = []
        self.sock = listener(16)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._threads = []
        t = threading.Thread(target=self._accept_loop, name="loopback-proxy")
        t.daemon = True
        t.start()
        self._threads.append(t)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c = self.sock.accept()[0]
            except OSError:
                return
            t = threading.Thread(target=self._handle, args=(c,))
            t.daemon = True
            t.start()
            self._threads.append(t)

    def _handle(self, c):
        c.settimeout(5)
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = c.recv(4096)
                if not data:
                    return
                head += data
            line = head.split(b"\r\n")[0].decode("latin-1")
            self.seen.append(line)
            method, target, _ = line.split(" ")
            if method == "CONNECT":
                if self.refuse_connect:
                    c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
                    return
                host, port = target.rsplit(":", 1)
                assert host == "127.0.0.1"
                up = socket.create_connection((host, int(port)), 5)
                c.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._relay(c, up)
            else:
                assert target.startswith("http://127.0.0.1:")
                hostport = target[len("http://"):].split("/", 1)[0]
                up = socket.create_connection(("127.0.0.1", int(hostport.split(":")[1])), 5)
                path = "/" + target[len("http://"):].split("/", 1)[1]
                up.sendall(("%s %s HTTP/1.0\r\nHost: %s\r\n\r\n" % (method, path, hostport))
                           .encode("latin-1"))
                self._relay(c, up)
        except (OSError, ValueError, AssertionError):
            pass
        finally:
            c.close()

    def _relay(self, a, b):
        try:
            while not self._stop.is_set():
                r, _, _ = select.select([a, b], [], [], 5)
                if not r:
                    return
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        finally:
            b.close()

    def close(self):
        self._stop.set()
        self.sock.close()


class TLSServer(object):
    """An https mirror on 127.0.0.1 answering 200 to every request."""

    def __init__(self, certfile, keyfile):
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(certfile, keyfile)
        self.sock = listener(16)
        self.url = listener_url(self.sock, "https")
        self.heads = []
        t = threading.Thread(target=self._loop)
        t.daemon = True
        t.start()

    def _loop(self):
        while True:
            try:
                c = self.sock.accept()[0]
            except OSError:
                return
            c.settimeout(5)
            try:
                with self.ctx.wrap_socket(c, server_side=True) as t:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        data = t.recv(4096)
                        if not data:
                            break
                        head += data
                    self.heads.append(head.decode("latin-1"))
                    t.sendall(OK_RESPONSE)
            except (OSError, ssl.SSLError):
                c.close()

    def close(self):
        self.sock.close()


def make_tls_files(directory):
    """(certfile, keyfile): a self-signed certificate for 127.0.0.1 in ``directory``."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sagedl test mirror")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    d = directory
    certfile, keyfile = str(d / "cert.pem"), str(d / "key.pem")
    with open(certfile, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(keyfile, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return certfile, keyfile


def by_url(ranked):
    return dict((r.mirror.url, r) for r in ranked)


def rank(mirrors, rng=None, **kw):
    """The ranking health.rank_cached makes, without its cache and health
    record: probe.measure's results in order_ranking's order."""
    from sagedl.mirrors import probe
    return probe.order_ranking(probe.measure(mirrors, **kw), rng)


