"""Mirrors: the shipped list, overrides, the live list and its cache, ranking, health.

Every socket here is on 127.0.0.1.  The loopback fixtures (LoopbackServers,
LoopbackProxy) are plain classes so bench/bench_ranking.py can reuse them.
"""

import datetime
import errno
import importlib.util
import ipaddress
import json
import os
import random
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
import zipfile

import pytest
from hypothesis import given, settings, strategies as st

from sagedl import cli, errors, health, mirrorlist, probe, urls
from sagedl.urls import base_url_problem
from sagedl.errors import MetadataError, SourceFailure
from sagedl.lock import FileLock
from sagedl.paths import cache_dir, config_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
def _mirrors_yaml():
    # The shared data sits beside the clone (../shared), or $SAGEDL_SAGE_PKGS.
    from realfiles import sage_pkgs_dir
    return os.path.join(sage_pkgs_dir(), "mirrors.yaml")


MIRRORS_YAML = _mirrors_yaml()
OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


# -- loopback fixtures -----------------------------------------------------------
def _listener(backlog):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(backlog)
    return s


def _url(sock, scheme="http"):
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
        s = _listener(0)
        self.full_listeners.append(s)
        return _url(s)

    def silent(self):
        s = _listener(64)
        self.silent_listeners.append(s)
        return _url(s)

    def respond(self, response=OK_RESPONSE):
        s = _listener(64)
        self.responders[s] = response
        self.requests[s.getsockname()[1]] = []
        return _url(s)

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
        self.sock = _listener(16)
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
        self.sock = _listener(16)
        self.url = _url(self.sock, "https")
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


@pytest.fixture
def servers():
    s = LoopbackServers()
    yield s
    s.close()


@pytest.fixture
def env(tmp_path):
    """An environment with private config/cache dirs and no proxies."""
    return {"HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "XDG_CONFIG_HOME": str(tmp_path / "config")}


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
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
    d = tmp_path_factory.mktemp("tls")
    certfile, keyfile = str(d / "cert.pem"), str(d / "key.pem")
    with open(certfile, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(keyfile, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return certfile, keyfile


def by_url(ranked):
    return dict((r.mirror.url, r) for r in ranked)


# -- paths -----------------------------------------------------------------------
def test_paths_follow_xdg_with_an_injected_environment():
    env = {"HOME": "/home/u"}
    assert config_dir(env) == "/home/u/.config/sagedl"
    assert cache_dir(env) == "/home/u/.cache/sagedl"
    env = {"HOME": "/home/u", "XDG_CONFIG_HOME": "/cfg", "XDG_CACHE_HOME": "/cch"}
    assert (config_dir(env), cache_dir(env)) == ("/cfg/sagedl", "/cch/sagedl")
    # The XDG spec: relative values are invalid and ignored; empty means unset.
    env = {"HOME": "/home/u", "XDG_CONFIG_HOME": "rel", "XDG_CACHE_HOME": ""}
    assert (config_dir(env), cache_dir(env)) == ("/home/u/.config/sagedl", "/home/u/.cache/sagedl")


# -- the shipped list and its generator --------------------------------------------
def _generator():
    spec = importlib.util.spec_from_file_location(
        "make_mirrors_toml", os.path.join(ROOT, "tools", "make_mirrors_toml.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


needs_yaml = pytest.mark.skipif(not os.path.isfile(MIRRORS_YAML),
                                reason="the Sage website's mirrors.yaml is not available")


@needs_yaml
def test_regenerating_mirrors_toml_gives_the_committed_file():
    with open(os.path.join(ROOT, "sagedl", "mirrors.toml"), encoding="utf-8", newline="") as f:
        committed = f.read()
    assert _generator().generate(MIRRORS_YAML) == committed


@needs_yaml
def test_shipped_list_has_every_active_mirror_of_mirrors_yaml():
    gen = _generator()
    with open(MIRRORS_YAML, encoding="utf-8") as f:
        entries = gen.parse_yaml_list(f.read())
    active = [e for e in entries if e.get("active") is True]
    shipped = mirrorlist.load_shipped()
    assert len(shipped) == len(active) == 38
    assert [m.url for m in shipped] == [e["url"] for e in active]
    xmission = shipped[0]
    assert (xmission.name, xmission.country, xmission.region, xmission.priority) == \
        ("XMission, Utah, USA", "us", "na", 75)
    assert all(m.url.endswith("/") and m.url.split(":")[0] in ("http", "https") for m in shipped)


def test_load_shipped_reads_the_copy_embedded_in_a_zipapp(tmp_path):
    """The pyz has the list at sagedl/mirrors.toml; pkgutil.get_data must find it there."""
    pyz = str(tmp_path / "t.pyz")
    with zipfile.ZipFile(pyz, "w") as z:
        for name in os.listdir(os.path.join(ROOT, "sagedl")):
            if name.endswith(".py"):
                z.write(os.path.join(ROOT, "sagedl", name), "sagedl/" + name)
        z.writestr("sagedl/mirrors.toml", '[[mirror]]\nurl = "https://only.example/sage"\n')
    code = ("import sys; sys.path.insert(0, %r); from sagedl import mirrorlist; "
            "print([m.url for m in mirrorlist.load_shipped()])" % pyz)
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         cwd=str(tmp_path), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['https://only.example/sage/']"


def test_mirror_urls_are_normalised_to_end_with_a_slash():
    m = mirrorlist.Mirror("https://h.example/sage")
    assert m.url == "https://h.example/sage/"
    assert m.name == "h.example"
    assert m == mirrorlist.Mirror("https://h.example/sage/")


# -- overrides ---------------------------------------------------------------------
def _write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def test_override_order_is_mirrors_file_then_user_file_then_shipped(env, tmp_path):
    assert mirrorlist.load_configured(env=env) == mirrorlist.load_shipped()
    assert mirrorlist.configured_file(env=env) is None
    user = _write(os.path.join(config_dir(env), "mirrors.toml"),
                  '[[mirror]]\nurl = "https://user.example/"\nname = "Mine"\npriority = 3\n')
    assert mirrorlist.load_configured(env=env) == [mirrorlist.Mirror("https://user.example/", "Mine", "", "", 3)]
    given_file = _write(str(tmp_path / "given.toml"), "[[mirror]]\nurl = 'http://given.example/s'\n")
    assert [m.url for m in mirrorlist.load_configured(given_file, env)] == ["http://given.example/s/"]
    assert mirrorlist.configured_file(given_file, env) == given_file
    assert mirrorlist.configured_file(None, env) == user


@pytest.mark.parametrize("text, words", [
    ('[[mirror]]\nurl = "ftp://x.example/"\n', "not an http or https URL"),
    ('[[mirror]]\nurl = "file:///etc/"\n', "not an http or https URL"),
    ('[[mirror]]\nname = "no url"\n', "url is missing"),
    ('[[mirror]]\nurl = "https://x.example/"\npriority = "high"\n', "priority must be an integer"),
    ('[[mirror]]\nurl = "https://x.example/"\npriority = true\n', "priority must be an integer"),
    ('[[mirror]]\nurl = "https://x.example/"\nname = 3\n', "name must be a string"),
    ('[[mirror]]\nurl = "https:///nohost"\n', "has no host"),
    ('[[mirror]]\nurl = "https://x.example/a b"\n', "spaces"),
    ("[mirror]\nurl = 'https://x.example/'\n", "no [[mirror]] entries"),
    ("# empty\n", "no [[mirror]] entries"),
    ("[[mirror]]\nurl = https://x\n", "bad.toml:2"),
])
def test_bad_mirrors_files_are_metadata_errors_naming_the_file(tmp_path, text, words):
    path = _write(str(tmp_path / "bad.toml"), text)
    with pytest.raises(MetadataError) as e:
        mirrorlist.load_file(path)
    assert path in str(e.value) and words in str(e.value)


def test_unreadable_mirrors_file_is_a_metadata_error(tmp_path):
    with pytest.raises(MetadataError) as e:
        mirrorlist.load_configured(str(tmp_path / "missing.toml"), {"HOME": str(tmp_path)})
    assert "missing.toml" in str(e.value) and "cannot read" in str(e.value)


# -- the live list: parsing ----------------------------------------------------------
def test_live_list_parses_comments_quotes_and_python2_reprs():
    text = ("# Sage mirror list\n# generated\n[\n  'https://a.example/sage/',  # first\n"
            '  "http://b.example/s",\n  u\'https://c.example:8443/x/\',\n'
            "  'https://a.example/sage/',\n]\n# end\n")
    assert mirrorlist.parse_mirror_list(text, "list") == [
        "https://a.example/sage/", "http://b.example/s/", "https://c.example:8443/x/"]
    assert mirrorlist.parse_mirror_list(b"['https://a.example/']", "list") == ["https://a.example/"]


@pytest.mark.parametrize("text", [
    "__import__('os').system('x')",
    "[__import__('os').system('x')]",
    "['https://a.example/'] + [__import__('os')]",
    "['https://a.example/'];__import__('os')",
    "['https://a.example/' 'b']",
    "['http://a.example/' + 'x']",
    "[('https://a.example/',)]",
    "[['https://a.example/']]",
    "{'https://a.example/': 1}",
    "[1, 2]",
    "[None]",
    "[]",
    "",
    "# only comments\n",
    "['https://a.example/'",
    "['https://a.example/]",
    "['ftp://a.example/']",
    "['file:///etc/passwd']",
    "['javascript:alert(1)']",
    "['//a.example/']",
    "['https://a.example/\\x00']",
    "['https://a.example/ space']",
    "['https://user:pw@a.example/']",
    "['https://a.example/?q=1']",
    "['https://a.example:99999/']",
    "[b'https://a.example/']",
    "[f'https://a.example/']",
    "['https://a.example/'] trailing",
    "['https://a.example/',,]",
    "[,]",
])
def test_live_list_rejects_anything_but_a_list_of_http_urls(text):
    with pytest.raises(MetadataError):
        mirrorlist.parse_mirror_list(text, "https://www.sagemath.org/mirror_list")


def test_live_list_rejects_huge_input_and_too_many_entries():
    huge = "[" + "'https://a.example/', " * 20000 + "]"
    with pytest.raises(MetadataError) as e:
        mirrorlist.parse_mirror_list(huge, "l")
    assert "larger than" in str(e.value)
    with pytest.raises(MetadataError):
        mirrorlist.parse_mirror_list(huge.encode(), "l")
    many = "[" + ", ".join("'https://m%d.example/'" % i for i in range(mirrorlist.MAX_LIST_ENTRIES + 1)) + "]"
    with pytest.raises(MetadataError) as e:
        mirrorlist.parse_mirror_list(many, "l")
    assert "more than" in str(e.value)
    with pytest.raises(MetadataError):
        mirrorlist.parse_mirror_list(b"['https://a.example/\xff']", "l")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80),
                 st.text(alphabet="[]'\",#\n u:/.ahpstxe0", max_size=60)))
def test_live_list_parser_only_returns_urls_or_raises_metadata_error(text):
    try:
        found = mirrorlist.parse_mirror_list(text, "fuzz")
    except MetadataError:
        return
    assert found and all(base_url_problem(u) is None and u.endswith("/") for u in found)


# -- the live list: cache and fallbacks ------------------------------------------------
LIST_URL = mirrorlist.MIRROR_LIST_URL
GOOD_LIST = b"# comment\n['https://mirrors.xmission.com/sage/', 'https://new.example/sage/']\n"


class Fetcher(object):
    def __init__(self, result):
        self.result = result
        self.calls = 0

    def __call__(self, url, timeout):
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def never_called(url, timeout):
    raise AssertionError("the network must not be used here")


def test_live_list_is_fetched_cached_and_named_from_the_shipped_list(env):
    fetch = Fetcher(GOOD_LIST)
    mirrors, origin, problem = mirrorlist.live_mirror_list(LIST_URL, fetch, env=env, clock=lambda: 1000.0)
    assert (origin, problem, fetch.calls) == ("fetched", None, 1)
    assert [m.url for m in mirrors] == ["https://mirrors.xmission.com/sage/",
                                        "https://new.example/sage/"]
    assert mirrors[0].name == "XMission, Utah, USA" and mirrors[1].name == "new.example"
    # Within the TTL the cache answers, without the network.
    again, origin, _ = mirrorlist.live_mirror_list(LIST_URL, never_called, env=env,
                                          clock=lambda: 1000.0 + 86399)
    assert (again, origin) == (mirrors, "cache")


def test_expired_cache_is_refreshed(env):
    mirrorlist.live_mirror_list(LIST_URL, Fetcher(GOOD_LIST), env=env, clock=lambda: 1000.0)
    newer = Fetcher(b"['https://other.example/']")
    mirrors, origin, _ = mirrorlist.live_mirror_list(LIST_URL, newer, env=env, clock=lambda: 1000.0 + 86400)
    assert origin == "fetched" and [m.url for m in mirrors] == ["https://other.example/"]
    mirrors, origin, _ = mirrorlist.live_mirror_list(LIST_URL, never_called, env=env,
                                            clock=lambda: 1000.0 + 86401)
    assert origin == "cache" and [m.url for m in mirrors] == ["https://other.example/"]


def test_cache_stamped_in_the_future_is_not_trusted(env):
    mirrorlist.live_mirror_list(LIST_URL, Fetcher(GOOD_LIST), env=env, clock=lambda: 5000.0)
    fetch = Fetcher(b"['https://other.example/']")
    _, origin, _ = mirrorlist.live_mirror_list(LIST_URL, fetch, env=env, clock=lambda: 1000.0)
    assert origin == "fetched" and fetch.calls == 1


@pytest.mark.parametrize("bad", [
    b"", b"[]", b"<html>Service Unavailable</html>", b"__import__('os').system('x')",
    SourceFailure(SourceFailure.KIND_NETWORK, "connection refused"),
    errors.SagedlError("offline"),
])
def test_broken_download_never_replaces_a_good_cache(env, bad):
    mirrorlist.live_mirror_list(LIST_URL, Fetcher(GOOD_LIST), env=env, clock=lambda: 1000.0)
    path = os.path.join(cache_dir(env), "mirror_list")
    with open(path, "rb") as f:
        before = f.read()
    mirrors, origin, problem = mirrorlist.live_mirror_list(LIST_URL, Fetcher(bad), env=env,
                                                  clock=lambda: 1000.0 + 2 * 86400)
    assert origin == "stale cache" and problem
    assert [m.url for m in mirrors][1] == "https://new.example/sage/"
    with open(path, "rb") as f:
        assert f.read() == before


def test_offline_without_cache_falls_back_to_the_shipped_list(env):
    offline = Fetcher(SourceFailure(SourceFailure.KIND_NETWORK, "no route to host"))
    mirrors, origin, problem = mirrorlist.live_mirror_list(LIST_URL, offline, env=env)
    assert origin == "shipped" and "no route to host" in problem
    assert mirrors == mirrorlist.load_shipped()
    fallback = [mirrorlist.Mirror("https://fb.example/")]
    assert mirrorlist.live_mirror_list(LIST_URL, offline, env=env, fallback=fallback)[0] == fallback


def test_corrupt_cache_is_ignored_and_rewritten(env):
    path = _write(os.path.join(cache_dir(env), "mirror_list"), "\x00garbage[[[")
    mirrors, origin, _ = mirrorlist.live_mirror_list(LIST_URL, Fetcher(GOOD_LIST), env=env)
    assert origin == "fetched"
    assert mirrorlist.parse_mirror_list(open(path, "rb").read(), path) == [m.url for m in mirrors]
    assert not [n for n in os.listdir(cache_dir(env)) if n.startswith(".tmp")]


def test_unwritable_cache_still_gives_the_downloaded_list(tmp_path):
    blocker = tmp_path / "cachefile"
    blocker.write_text("not a directory")
    env = {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(blocker)}
    mirrors, origin, _ = mirrorlist.live_mirror_list(LIST_URL, Fetcher(GOOD_LIST), env=env)
    assert origin == "fetched" and len(mirrors) == 2


def test_a_busy_lock_does_not_block_the_list(env):
    """Another process refreshing (holding the lock) costs at most lock_timeout."""
    mirrorlist.live_mirror_list(LIST_URL, Fetcher(GOOD_LIST), env=env, clock=lambda: 1000.0)
    path = os.path.join(cache_dir(env), "mirror_list")
    with FileLock(path + ".lock", 5, "test holder"):
        offline = Fetcher(errors.SagedlError("offline"))
        mirrors, origin, _ = mirrorlist.live_mirror_list(LIST_URL, offline, env=env, lock_timeout=0.05,
                                                clock=lambda: 1000.0 + 2 * 86400)
    assert origin == "stale cache" and offline.calls == 1 and len(mirrors) == 2


def test_another_list_url_gets_its_own_cache_file(env):
    mirrorlist.live_mirror_list(LIST_URL, Fetcher(GOOD_LIST), env=env)
    other = "http://127.0.0.1:1/mirror_list"
    mirrors, origin, _ = mirrorlist.live_mirror_list(other, Fetcher(b"['https://x.example/']"), env=env)
    assert origin == "fetched" and [m.url for m in mirrors] == ["https://x.example/"]
    assert len([n for n in os.listdir(cache_dir(env)) if n.startswith("mirror_list")
                and not n.endswith(".lock")]) == 2


# -- ranking -----------------------------------------------------------------------
def test_24_mirrors_hung_and_silent_ones_fail_and_a_healthy_one_wins(servers):
    full = [servers.full() for _ in range(8)]
    silent = [servers.silent() for _ in range(8)]
    healthy = [servers.respond() for _ in range(8)]
    servers.start()
    urls = full + silent + healthy
    random.Random(7).shuffle(urls)
    # want=None: no early stop, so every hung mirror meets the deadline.
    ranked = probe.rank(urls, want=None, env={}, rng=random.Random(1))
    assert len(ranked) == 24
    assert ranked[0].mirror.url in healthy and ranked[0].ok
    result = by_url(ranked)
    assert all(result[u].ok and result[u].latency >= 0 for u in healthy)
    for u in full:
        assert result[u].status == probe.FAILED and result[u].latency is None
        assert "timed out" in result[u].reason and "connecting" in result[u].reason
    for u in silent:
        assert result[u].status == probe.FAILED and result[u].latency is None
        assert "timed out" in result[u].reason and "answer" in result[u].reason
    assert [r.ok for r in ranked] == [True] * 8 + [False] * 16
    for u in healthy:
        assert servers.requests[int(u.rsplit(":", 1)[1].strip("/"))][0].startswith("HEAD / HTTP/1.1")


def test_24_mirrors_with_early_stop_ranks_healthy_first(servers):
    full = [servers.full() for _ in range(8)]
    silent = [servers.silent() for _ in range(8)]
    healthy = [servers.respond() for _ in range(8)]
    servers.start()
    ranked = probe.rank(full + silent + healthy, env={}, rng=random.Random(2))
    assert ranked[0].mirror.url in healthy
    assert len([r for r in ranked if r.ok]) >= 3
    result = by_url(ranked)
    # Stopped early: the hung mirrors were cut off, not timed out.
    for u in full + silent:
        assert result[u].status == probe.SKIPPED and result[u].latency is None
        assert result[u].reason.startswith("not measured")


def test_wrong_answers_fail_and_any_answer_at_the_base_url_counts(servers):
    garbage = servers.respond(b"SSH-2.0-OpenSSH_9.6\r\n")
    forbidden = servers.respond(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    broken = servers.respond(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
    closes = servers.respond(b"")
    gone = _listener(1)
    refused = _url(gone)
    gone.close()  # nothing listens there any more: connection refused
    servers.start()
    result = by_url(probe.rank([garbage, forbidden, broken, closes, refused], want=None, env={},
                           deadline=5))
    assert "not an HTTP server" in result[garbage].reason
    assert result[forbidden].ok  # a live server that forbids listing its base URL
    assert result[broken].reason == "HTTP 503"
    assert "closed" in result[closes].reason
    assert "refused" in result[refused].reason


def test_with_a_path_only_success_counts(servers):
    missing = servers.respond(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    present = servers.respond()
    servers.start()
    result = by_url(probe.rank([missing, present], want=None, env={}, path="spkg/upstream/a/a.tgz",
                           deadline=5))
    assert result[missing].reason == "HTTP 404" and result[present].ok
    port = int(present.rsplit(":", 1)[1].strip("/"))
    assert servers.requests[port][0].startswith("HEAD /spkg/upstream/a/a.tgz HTTP/1.1")


def test_explicit_ports_and_ipv6_literals_are_honoured():
    try:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s6.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    s6.listen(4)
    url = "http://[::1]:%d/" % s6.getsockname()[1]
    got = {}

    def serve():
        c = s6.accept()[0]
        got["head"] = c.recv(4096).decode("latin-1")
        c.sendall(OK_RESPONSE)
        c.close()
    t = threading.Thread(target=serve)
    t.start()
    ranked = probe.rank([url], want=None, env={}, deadline=5)
    t.join(10)
    s6.close()
    assert ranked[0].ok
    assert "Host: [::1]:%d\r\n" % int(url.rsplit(":", 1)[1].strip("/")) in got["head"]


def test_a_hanging_name_resolver_costs_no_more_than_the_deadline(servers):
    healthy = servers.respond()
    servers.start()
    release = threading.Event()

    def resolver(host, port):
        release.wait(30)  # a resolver that never answers within the ranking
        raise socket.gaierror("gave up")
    try:
        ranked = probe.rank(["http://hangs.invalid/", healthy], want=None, env={}, deadline=0.5,
                        resolver=resolver)
    finally:
        release.set()
    result = by_url(ranked)
    assert result[healthy].ok
    assert "resolving" in result["http://hangs.invalid/"].reason


def test_resolver_errors_are_reasons(servers):
    def resolver(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    ranked = probe.rank(["http://nowhere.invalid/"], env={}, deadline=2, resolver=resolver)
    assert ranked[0].status == probe.FAILED and "cannot resolve nowhere.invalid" in ranked[0].reason


def test_next_address_is_tried_when_the_first_hangs_or_refuses(servers):
    hung = _listener(0)
    fillers = fill_accept_queues([hung])
    healthy = servers.respond()
    servers.start()
    port = int(healthy.rsplit(":", 1)[1].strip("/"))
    refused = _listener(1)
    refused_port = refused.getsockname()[1]
    refused.close()

    def info(p):
        return (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", p))

    def resolver(host, p):
        return {"hang.test": [info(hung.getsockname()[1]), info(port)],
                "refuse.test": [info(refused_port), info(port)]}[host]
    try:
        ranked = probe.rank(["http://hang.test/", "http://refuse.test/"], want=None, env={},
                        deadline=5, resolver=resolver)
    finally:
        for s in fillers + [hung]:
            s.close()
    assert all(r.ok for r in ranked), ranked


def test_the_fastest_mirror_is_drawn_at_random_among_the_near_best():
    def ranked(latencies):
        return [probe.Ranked(mirrorlist.Mirror("https://m%d.example/" % i), probe.OK, lat)
                for i, lat in enumerate(latencies)]
    # best 10 ms: the window is 10 * 1.5 + 5 = 20 ms.
    results = ranked([0.050, 0.0199, 0.010, 0.021, 0.012]) + [
        probe.Ranked(mirrorlist.Mirror("https://dead.example/", priority=1), probe.FAILED, None, "x"),
        probe.Ranked(mirrorlist.Mirror("https://dead2.example/", priority=99), probe.FAILED, None, "x"),
        probe.Ranked(mirrorlist.Mirror("https://later.example/"), probe.SKIPPED, None, "not measured")]
    near = {"https://m1.example/", "https://m2.example/", "https://m4.example/"}
    firsts = set()
    for seed in range(40):
        order = [r.mirror.url for r in probe.order_ranking(results, random.Random(seed))]
        assert set(order[:3]) == near
        assert order[3:] == ["https://m3.example/", "https://m0.example/",
                             "https://later.example/", "https://dead2.example/",
                             "https://dead.example/"]
        firsts.add(order[0])
    assert firsts == near
    assert probe.order_ranking(results, random.Random(5))[0].mirror.url == \
        probe.order_ranking(results, random.Random(5))[0].mirror.url


def test_rank_accepts_mirrors_and_drops_duplicates(servers):
    url = servers.respond()
    servers.start()
    ranked = probe.rank([mirrorlist.Mirror(url, "Named"), url], env={}, deadline=5)
    assert len(ranked) == 1 and ranked[0].mirror.name == "Named" and ranked[0].ok


def test_bad_urls_fail_without_io():
    ranked = probe.rank(["ftp://x.example/", "http://h\u00e9.example/"], env={}, deadline=1)
    assert all(r.status == probe.FAILED for r in ranked)


# -- proxies -------------------------------------------------------------------------
def test_http_mirrors_are_probed_through_the_proxy(servers):
    url = servers.respond()
    servers.start()
    proxy = LoopbackProxy()
    try:
        ranked = probe.rank([url], want=None, env={"http_proxy": proxy.url}, deadline=5)
    finally:
        proxy.close()
    assert ranked[0].ok
    assert proxy.seen == ["HEAD %s HTTP/1.1" % url]  # absolute-form to the proxy
    assert servers.requests[int(url.rsplit(":", 1)[1].strip("/"))]  # and on to the mirror


def test_no_proxy_makes_the_probe_direct(servers):
    url = servers.respond()
    servers.start()
    proxy = LoopbackProxy()
    try:
        ranked = probe.rank([url], env={"http_proxy": proxy.url, "no_proxy": "localhost, 127.0.0.1"},
                        deadline=5)
    finally:
        proxy.close()
    assert ranked[0].ok and proxy.seen == []


def test_https_mirrors_are_probed_with_tls_directly_and_through_connect(tls_files):
    certfile, keyfile = tls_files
    server = TLSServer(certfile, keyfile)
    proxy = LoopbackProxy()
    trusting = ssl.create_default_context(cafile=certfile)
    try:
        direct = probe.rank([server.url], want=None, env={}, ssl_context=trusting, deadline=5)
        tunnelled = probe.rank([server.url], want=None, env={"https_proxy": proxy.url},
                           ssl_context=trusting, deadline=5)
        untrusted = probe.rank([server.url], want=None, env={}, deadline=5,
                           ssl_context=ssl.create_default_context())
    finally:
        proxy.close()
        server.close()
    assert direct[0].ok and tunnelled[0].ok
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    assert proxy.seen == ["CONNECT 127.0.0.1:%d HTTP/1.1" % port]
    assert any(h.startswith("HEAD / HTTP/1.1") for h in server.heads)
    assert untrusted[0].status == probe.FAILED and "TLS" in untrusted[0].reason


def test_a_proxy_refusing_connect_fails_the_mirror():
    proxy = LoopbackProxy(refuse_connect=True)
    try:
        ranked = probe.rank(["https://127.0.0.1:9/"], env={"https_proxy": proxy.url}, deadline=5)
    finally:
        proxy.close()
    assert ranked[0].reason == "proxy refused CONNECT: HTTP 403"


def test_an_unreachable_proxy_is_named_in_the_reason():
    gone = _listener(1)
    port = gone.getsockname()[1]
    gone.close()
    ranked = probe.rank(["http://127.0.0.1:9/"], env={"http_proxy": "127.0.0.1:%d" % port},
                    deadline=5)
    assert ranked[0].reason.startswith("cannot connect to the proxy 127.0.0.1:%d: " % port)


def test_socks_proxies_are_reported_not_silently_bypassed():
    ranked = probe.rank(["http://127.0.0.1:9/"], env={"all_proxy": "socks5://127.0.0.1:1080"},
                    deadline=1)
    assert ranked[0].status == probe.FAILED and "socks5" in ranked[0].reason


# -- ranking cache and health ---------------------------------------------------------
def test_ranking_is_cached_for_an_hour(servers, env):
    a, b = servers.respond(), servers.respond()
    servers.start()
    first = health.rank_cached([a, b], env=env, clock=lambda: 1000.0, want=None, deadline=5)
    assert all(r.ok for r in first)
    servers.close()  # the mirrors go away; the cached ranking still answers
    cached = health.rank_cached([a, b], env=env, clock=lambda: 1000.0 + 3599, want=None, deadline=5)
    assert sorted((r.mirror.url, r.latency) for r in cached) == \
        sorted((r.mirror.url, r.latency) for r in first)
    expired = health.rank_cached([a, b], env=env, clock=lambda: 1000.0 + 3600, want=None, deadline=1)
    assert not any(r.ok for r in expired)
    # Another mirror set is another ranking.
    other = health.rank_cached([a], env=env, clock=lambda: 1000.0 + 1, want=None, deadline=1)
    assert not other[0].ok


def test_corrupt_ranking_and_health_files_are_ignored_and_rewritten(servers, env):
    url = servers.respond()
    servers.start()
    d = cache_dir(env)
    _write(os.path.join(d, "ranking.json"), "{not json")
    _write(os.path.join(d, "health.json"), '{"version": 1, "mirrors": {"x": "junk"}}')
    ranked = health.rank_cached([url], env=env, deadline=5)
    assert ranked[0].ok
    with open(os.path.join(d, "ranking.json")) as f:
        assert json.load(f)["results"][0]["url"] == url
    assert health.load_health(env) == {}
    assert health.record_result(url + "f.tar.gz", True, None, env=env)
    assert set(health.load_health(env)) == {"http://127.0.0.1:%s" % url.rsplit(":", 1)[1].strip("/")}


def test_recent_failures_demote_a_mirror_until_it_succeeds(servers, env):
    a, b, c = servers.respond(), servers.respond(), servers.respond()
    servers.start()
    now = 10000.0
    health.record_result(a + "spkg/upstream/x/x.tgz", False, "checksum mismatch", env=env,
                    clock=lambda: now)
    ranked = health.rank_cached([a, b, c], env=env, clock=lambda: now + 60, want=None, deadline=5)
    assert ranked[-1].mirror.url == a and ranked[-1].ok
    # A day later the failure no longer counts.
    records = health.load_health(env)
    assert not health.is_unhealthy(records[urls.origin_key(a)], now + 86400)
    assert health.demote_unhealthy(ranked, records, now + 86400) == ranked
    # A success clears it at once.
    health.record_result(a, True, None, env=env, clock=lambda: now + 120)
    assert not health.is_unhealthy(health.load_health(env)[urls.origin_key(a)], now + 130)


def test_demotion_keeps_the_order_otherwise():
    rs = [probe.Ranked(mirrorlist.Mirror("https://m%d.example/" % i), probe.OK, 0.01 * i) for i in range(4)]
    rs += [probe.Ranked(mirrorlist.Mirror("https://skip.example/"), probe.SKIPPED, None, "not measured"),
           probe.Ranked(mirrorlist.Mirror("https://dead.example/"), probe.FAILED, None, "timed out")]
    records = {"https://m1.example:443": {"ok": False, "last": 100.0, "reason": "bad bytes"},
               "https://m2.example:443": {"ok": True, "last": 100.0, "reason": None},
               "https://m3.example:443": {"ok": False, "last": 100.0 - 90000, "reason": "old"},
               "https://dead.example:443": {"ok": False, "last": 100.0, "reason": "x"}}
    order = [r.mirror.url for r in health.demote_unhealthy(rs, records, 100.0 + 5)]
    # Behind everything not known bad, ahead of what cannot be reached now.
    assert order == ["https://m0.example/", "https://m2.example/", "https://m3.example/",
                     "https://skip.example/", "https://m1.example/", "https://dead.example/"]


def test_health_records_count_failures_and_keep_the_reason(env):
    url = "https://m.example/spkg/upstream/a/a.tgz"
    for t in (1.0, 2.0):
        health.record_result(url, False, "HTTP 404", env=env, clock=lambda: t)
    rec = health.load_health(env)["https://m.example:443"]
    assert (rec["ok"], rec["reason"], rec["failures"], rec["last"]) == (False, "HTTP 404", 2, 2.0)


def test_health_recording_is_quiet_when_the_cache_cannot_be_written(tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("")
    assert health.record_result("https://m.example/", False, "x",
                           env={"HOME": str(tmp_path), "XDG_CACHE_HOME": str(blocker)}) is False


# -- the table ---------------------------------------------------------------------
def test_format_table_shows_latency_health_and_last_result():
    now = 100000.0
    ranked = [probe.Ranked(mirrorlist.Mirror("https://a.example/", "Alpha, Utah", region="na"), probe.OK, 0.0123),
              probe.Ranked(mirrorlist.Mirror("https://b.example/", "Beta"), probe.SKIPPED, None, "not measured"),
              probe.Ranked(mirrorlist.Mirror("https://c.example/", "Εθνικό", region="e"), probe.FAILED, None,
                       "timed out after 1.2 s connecting")]
    records = {"https://a.example:443": {"ok": True, "last": now - 7200, "reason": None},
               "https://c.example:443": {"ok": False, "last": now - 300,
                                         "reason": "checksum mismatch"}}
    text = cli.format_table(ranked, records, now=now)
    # Two lines a mirror, within 80 columns (issue 15: it was ~190 wide).
    assert text.splitlines() == [
        "#  latency  health   url",
        "1  12 ms    ok       https://a.example/",
        "   Alpha, Utah (na); last: ok, 2 h ago",
        "2  -        unknown  https://b.example/",
        "   Beta",
        "3  failed   failing  https://c.example/",
        u"   Εθνικό (e); probe: timed out after 1.2 s connecting; last: checksum misma...",
    ]
    assert all(len(line) <= 79 for line in text.splitlines())
