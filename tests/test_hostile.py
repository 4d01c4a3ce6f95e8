"""Hostile input: redirects, credentials, names and paths, and servers that
lie about framing -- each refused with one clear line, nothing written
outside the destination, and never a traceback.

FaultServer covers the faults it knows (tests/test_download.py has the
common ones: huge headers, slow headers, trickle, gzip, HTML, long body).
RawServer below answers with any bytes a test scripts: a
Content-Disposition, a Location to a foreign scheme, an endless head, a
control character in a header, an https server redirecting to http."""

import base64
import os
import socket
import subprocess
import sys
import threading

import pytest

from helpers import REPO, assert_one_line_error, clean_env
from faultserver import TLS_CA, FaultServer, tls_server_context
from sagedl.errors import (EXIT_NETWORK, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE, SourceFailure,
                           UsageError)
from sagedl.net import urls
from sagedl.net.transport import MAX_REDIRECTS, Transport


class RawRequest(object):
    def __init__(self, method, target, headers):
        self.method = method
        self.target = target
        self.headers = headers      # lower-case names


class RawServer(object):
    """One request per connection, answered by ``handler(request, server)``:
    bytes, or an iterable of bytes sent until the client hangs up or the
    server stops (``server.stopping`` is an Event a pacing handler waits on).
    ``requests`` lists what arrived, in order."""

    def __init__(self, handler, ssl_context=None, host="127.0.0.1"):
        self.handler = handler
        self.ssl_context = ssl_context
        self.host = host
        self.requests = []
        self.errors = []
        self.stopping = threading.Event()
        self._threads = []
        self._socks = []
        self._lock = threading.Lock()

    @property
    def url(self):
        return "%s://%s:%d" % ("https" if self.ssl_context else "http", self.host, self.port)

    def __enter__(self):
        self.listener = socket.socket()
        self.listener.bind((self.host, 0))
        self.listener.listen(32)
        self.port = self.listener.getsockname()[1]
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        try:
            socket.create_connection((self.host, self.port), 5).close()   # wakes accept()
        except OSError:
            pass
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                socket.socket.shutdown(s, socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self._threads):
            t.join(10)
        self.listener.close()
        assert not self.errors, self.errors

    def _accept(self):
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            if self.stopping.is_set():
                sock.close()
                return
            t = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            with self._lock:
                self._socks.append(sock)
                self._threads.append(t)
            t.start()

    def _serve(self, sock):
        try:
            if self.ssl_context is not None:
                sock.settimeout(10)
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
                with self._lock:
                    self._socks.append(sock)
            sock.settimeout(30)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = sock.recv(65536)
                if not chunk:
                    return
                data += chunk
            lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            request = RawRequest(method, target, headers)
            with self._lock:
                self.requests.append(request)
            answer = self.handler(request, self)
            if isinstance(answer, bytes):
                answer = [answer]
            for block in answer:
                if self.stopping.is_set():
                    break
                sock.sendall(block)
        except (OSError, ValueError):
            pass                    # the client hung up: what hostile tests provoke
        except Exception:
            import traceback
            self.errors.append(traceback.format_exc())
        finally:
            try:
                sock.close()
            except OSError:
                pass


def response(status="200 OK", headers=(), body=b"", length=True):
    head = ["HTTP/1.1 " + status] + list(headers)
    if length:
        head.append("Content-Length: %d" % len(body))
    head.append("Connection: close")
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def redirect(location, status="302 Found"):
    return lambda req, srv: response(status, ["Location: " + location])


NAME = "f.bin"


@pytest.fixture
def out(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def tree_of(root):
    """Every path under root (the parent of out/ and of the working dirs)."""
    found = set()
    for d, dirs, files in os.walk(str(root)):
        for n in dirs + files:
            found.add(os.path.relpath(os.path.join(d, n), str(root)))
    return found


# -- redirects --------------------------------------------------------------------------

@pytest.mark.parametrize("location", [
    "file:///etc/passwd", "ftp://127.0.0.1/f.bin", "gopher://127.0.0.1/f.bin",
    "data:text/plain,hello", "javascript:alert(1)"])
def test_only_http_and_https_redirects_are_followed(run_cli, server, payload, out, location):
    with RawServer(redirect(location)) as raw:
        r = run_cli(raw.url + "/" + NAME, out / NAME, "--sha256", payload.sha256,
                    "--mirror", server.url + "/ok/", "--progress", "lines")
        assert len(raw.requests) == 1
    assert r.code == EXIT_OK, r
    assert "redirect refused: refusing URL scheme" in r.err
    assert (out / NAME).read_bytes() == payload.data        # from the next source


def test_redirect_hops_are_counted_exactly(server, payload):
    t = Transport(timeout=10)
    with pytest.raises(SourceFailure) as e:
        t.open(server.url_for(NAME, "redirect-loop"), max_redirects=3)
    assert "too many redirects (more than 3)" in str(e.value)
    assert len(server.requests_for(NAME)) == 4
    with pytest.raises(SourceFailure):
        t.open(server.url_for(NAME, "redirect-loop,retry-after-1"))
    assert len(server.requests_for(NAME)) == 4 + MAX_REDIRECTS + 1
    t.close()


@pytest.fixture
def tls_to_http(server):
    """An https server whose every answer is a redirect to the http FaultServer."""
    target = server.url_for(NAME)
    with RawServer(redirect(target), ssl_context=tls_server_context(), host="127.0.0.1") as raw:
        yield raw.url.replace("127.0.0.1", "localhost") + "/" + NAME


def test_https_to_http_downgrade_is_refused_without_a_checksum(run_cli, server, out, tls_to_http):
    r = run_cli(tls_to_http, out / NAME, "--ca-bundle", TLS_CA)
    assert r.code != EXIT_OK, r
    assert_one_line_error(r.err, "redirect from https to http refused")
    assert "checksum" in r.err
    assert server.requests == []
    assert os.listdir(out) in ([], [NAME + ".lock"])


def test_https_to_http_downgrade_is_followed_when_a_checksum_pins_the_bytes(
        run_cli, server, payload, out, tls_to_http):
    r = run_cli(tls_to_http, out / NAME, "--ca-bundle", TLS_CA, "--sha256", payload.sha256)
    assert r.code == EXIT_OK, r
    assert (out / NAME).read_bytes() == payload.data


USER, PASSWORD = "alice", "hunter2-secret"
CREDS = "%s:%s@" % (USER, PASSWORD)


def assert_no_credentials(r):
    text = r.out + r.err
    assert USER not in text and PASSWORD not in text, text
    assert "Traceback" not in text, text


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", [
    "connect-refused", "redirect-loop", "404", "corrupt", "success-with-progress",
    "invalid-port", "slash-in-password", "no-file-name", "tls-untrusted",
    "redirect-to-credentials-then-404", "redirect-to-foreign-scheme-with-credentials",
    "https-to-http-with-credentials"])
def test_credentials_never_appear_in_any_message(run_cli, server, payload, out, case):
    base = server.url.replace("http://", "http://" + CREDS)
    argv = ["--sha256", payload.sha256, "--progress", "lines"]
    if case == "connect-refused":
        url = "http://%s127.0.0.1:%d/%s" % (CREDS, closed_port(), NAME)
    elif case in ("redirect-loop", "404", "corrupt"):
        url = base + "/%s/%s" % (case, NAME)
    elif case == "success-with-progress":
        url = base + "/ok/" + NAME
    elif case == "invalid-port":
        url = "http://%s127.0.0.1:99999/%s" % (CREDS, NAME)
    elif case == "slash-in-password":
        url = "http://%s:pass/%s@127.0.0.1:%d/%s" % (USER, PASSWORD, server.port, NAME)
    elif case == "no-file-name":
        url, argv = base + "/", []
    elif case == "tls-untrusted":
        with FaultServer({NAME: payload.data}, ssl_context=tls_server_context()) as tls_server:
            r = run_cli(tls_server.url.replace("https://", "https://" + CREDS) + "/" + NAME,
                        out / NAME, *argv)
        assert r.code == EXIT_NETWORK, r
        return assert_no_credentials(r)
    else:
        location = {
            "redirect-to-credentials-then-404": base + "/404/" + NAME,
            "redirect-to-foreign-scheme-with-credentials": "ftp://%s127.0.0.1/%s" % (CREDS, NAME),
        }.get(case)
        if case == "https-to-http-with-credentials":
            with RawServer(redirect(base + "/ok/" + NAME), ssl_context=tls_server_context()) as raw:
                url = raw.url.replace("https://127.0.0.1", "https://%slocalhost" % CREDS) + "/" + NAME
                r = run_cli(url, out / NAME, "--ca-bundle", TLS_CA, "--progress", "lines")
            assert "redirect from https to http refused" in r.err, r
            return assert_no_credentials(r)
        with RawServer(redirect(location)) as raw:
            r = run_cli(raw.url + "/" + NAME, out / NAME, *argv)
        assert r.code != EXIT_OK, r
        return assert_no_credentials(r)
    r = run_cli(url, out / NAME, *argv)
    if case == "success-with-progress":
        assert r.code == EXIT_OK, r
    else:
        assert r.code != EXIT_OK, r
        assert_one_line_error(r.err)
    assert_no_credentials(r)


def test_redact_hides_every_spelling_of_a_password():
    for url in ["http://alice:hunter2-secret@h/f", "http://alice:hunter2-secret@h:99999/f",
                "http://alice:hunter2/secret@h/f", "http://alice:hunter2-secret@[::1/f",
                "https://alice:hunter2:secret@h:1/f", "http://alice@h/f"]:
        shown = urls.redact(url)
        assert "hunter2" not in shown and "alice" not in shown, (url, shown)


def _basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def test_authorization_is_not_forwarded_to_another_origin(run_cli, server, payload, out):
    # Same host, another port: another origin (RFC 6454), like curl.
    with RawServer(redirect(server.url_for(NAME))) as raw:
        url = raw.url.replace("http://", "http://" + CREDS) + "/" + NAME
        r = run_cli(url, out / NAME, "--sha256", payload.sha256)
        assert raw.requests[0].headers["authorization"] == _basic(USER, PASSWORD)
    assert r.code == EXIT_OK, r
    assert "authorization" not in server.requests_for(NAME)[0].headers


def test_authorization_stays_on_a_same_origin_redirect(run_cli, payload, out):
    def handler(req, srv):
        if req.target == "/first/" + NAME:
            return response("301 Moved Permanently", ["Location: /second/" + NAME])
        return response("200 OK", ["Content-Type: application/octet-stream"], payload.data)
    with RawServer(handler) as raw:
        url = raw.url.replace("http://", "http://" + CREDS) + "/first/" + NAME
        r = run_cli(url, out / NAME, "--sha256", payload.sha256)
        assert [q.headers.get("authorization") for q in raw.requests] == [_basic(USER, PASSWORD)] * 2
    assert r.code == EXIT_OK, r


def test_caller_credential_headers_are_dropped_on_a_cross_origin_redirect(server):
    sent = {"Authorization": "Bearer t0ken", "Cookie": "session=1", "Range": "bytes=0-"}
    with RawServer(redirect(server.url_for(NAME).replace("127.0.0.1", "localhost"))) as raw:
        resp = Transport(timeout=10).open(raw.url + "/" + NAME, headers=sent)
        resp.close()
        assert raw.requests[0].headers["authorization"] == "Bearer t0ken"
    got = server.requests_for(NAME)[0].headers
    assert "authorization" not in got and "cookie" not in got
    assert got["range"] == "bytes=0-"          # not a credential: kept


# -- hostile names and paths ------------------------------------------------------------

HOSTILE_NAMES = ["../evil.tar.gz", "/etc/passwd", "a/b.tar.gz", "..", ".", "x\x00y.tar.gz",
                 "x\ny.tar.gz", "x\ry.tar.gz", "x\x1b[2Jy.tar.gz", "\u202egz.tar.evil",
                 "a\\b.tar.gz", " lead.tar.gz"]


@pytest.mark.parametrize("name", HOSTILE_NAMES)
@pytest.mark.parametrize("with_dest", [False, True], ids=["cwd", "dest-dir"])
def test_hostile_tarball_names_are_refused_before_any_io(run_cli, server, tmp_path, out, name, with_dest):
    work = tmp_path / "work"
    work.mkdir()
    before = tree_of(tmp_path)
    argv = [name] + ([out] if with_dest else []) + ["--mirror", server.url + "/ok/"]
    r = run_cli(*argv, cwd=work)
    assert r.code == EXIT_USAGE, r
    assert_one_line_error(r.err, "unsafe")
    assert server.requests == []
    assert tree_of(tmp_path) == before


@pytest.mark.parametrize("path", ["%2e%2e", "..%2Fevil.tar.gz", "%2Fetc%2Fpasswd", "x%00y.tar.gz",
                                  "x%0Ay.tar.gz", "%E2%80%AEgz.tar.evil", "a%5Cb.tar.gz"])
def test_hostile_url_file_names_are_refused_before_any_io(run_cli, server, tmp_path, out, path):
    before = tree_of(tmp_path)
    r = run_cli(server.url + "/ok/" + path, out)
    assert r.code == EXIT_USAGE, r
    assert_one_line_error(r.err)
    assert server.requests == []
    assert tree_of(tmp_path) == before


FOREIGN = ["file:///etc/passwd", "ftp://127.0.0.1/f.bin", "gopher://127.0.0.1/f.bin",
           "data:text/plain,hello", "javascript:alert(1)"]


@pytest.mark.parametrize("url", FOREIGN)
def test_foreign_schemes_are_refused_as_argument_mirror_and_environment(run_cli, server, tmp_path, out, url):
    before = tree_of(tmp_path)
    r = run_cli(url, out, "--mirror", server.url + "/ok/")
    assert r.code == EXIT_USAGE, r
    assert_one_line_error(r.err, "refusing URL scheme")
    r = run_cli("f.bin", out, "--mirror", url)
    assert r.code == EXIT_USAGE, r
    assert_one_line_error(r.err, "refusing URL scheme")
    r = run_cli("f.bin", out, env=clean_env(tmp_path, SAGEDL_MIRRORS=url))
    assert r.code == EXIT_USAGE, r
    assert_one_line_error(r.err, "refusing URL scheme")
    with pytest.raises(UsageError):
        Transport().open(url)
    assert server.requests == []
    assert tree_of(tmp_path) == before


EVIL_HEADERS = ['Content-Disposition: attachment; filename="../../evil"',
                "Content-Disposition: attachment; filename*=UTF-8''..%2F..%2Fevil2"]


@pytest.fixture
def disposition_server(payload):
    with RawServer(lambda req, srv: response(
            "200 OK", ["Content-Type: application/octet-stream"] + EVIL_HEADERS, payload.data)) as raw:
        yield raw


def test_content_disposition_never_names_the_file(run_cli, payload, tmp_path, disposition_server):
    dest = tmp_path / "a" / "b" / "out"
    dest.mkdir(parents=True)
    r = run_cli(disposition_server.url + "/dir/" + NAME, dest, "--sha256", payload.sha256)
    assert r.code == EXIT_OK, r
    assert (dest / NAME).read_bytes() == payload.data
    assert sorted(os.listdir(dest)) in ([NAME], sorted([NAME, NAME + ".lock"]))
    assert not [p for p in tree_of(tmp_path) if "evil" in p]


def test_content_disposition_is_ignored_when_writing_to_stdout(payload, tmp_path, disposition_server):
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    env = clean_env(tmp_path, TMPDIR=str(tmp), PYTHONPATH=REPO)
    p = subprocess.run([sys.executable, "-m", "sagedl", disposition_server.url + "/" + NAME,
                        "--sha256", payload.sha256, "-q"], env=env, cwd=str(work),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == payload.data
    assert not [q for q in tree_of(tmp_path) if "evil" in q]
    assert os.listdir(str(work)) == [] and os.listdir(str(tmp)) == []


def test_a_redirect_never_renames_the_file(run_cli, server, payload, out, tmp_path):
    with RawServer(redirect("/x/../../../evil.tar.gz")) as raw, \
            RawServer(redirect(server.url_for(NAME) + "?name=../../evil")) as raw2:
        r = run_cli(raw.url + "/" + NAME, out / NAME, "--mirror", raw2.url + "/")
    assert r.code == EXIT_OK, r
    assert (out / NAME).read_bytes() == payload.data
    assert not [p for p in tree_of(tmp_path) if "evil" in p]


# -- hostile servers --------------------------------------------------------------------

def endless(head, unit):
    def handler(req, srv):
        yield head
        while not srv.stopping.is_set():
            yield unit
    return handler


def run_against(run_cli, handler, out, payload, *extra, **kw):
    with RawServer(handler) as raw:
        r = run_cli(raw.url + "/" + NAME, out / NAME, "--sha256", payload.sha256,
                    "--progress", "lines", *extra, **kw)
        r.raw_requests = list(raw.requests)
    return r


def test_endless_stream_of_header_lines_ends_at_the_head_limit(run_cli, out, payload):
    r = run_against(run_cli, endless(b"HTTP/1.1 200 OK\r\n", b"X-Flood: yes\r\n" * 64), out, payload)
    assert r.code != EXIT_OK, r
    assert_one_line_error(r.err, "response head too large")
    assert not (out / NAME).exists()


def test_endless_header_line_ends_at_the_line_limit(run_cli, out, payload):
    r = run_against(run_cli, endless(b"HTTP/1.1 200 OK\r\nX-Long: ", b"a" * 4096), out, payload)
    assert_one_line_error(r.err, "line too long in the response head")


def test_endless_status_line_ends_at_the_line_limit(run_cli, out, payload):
    r = run_against(run_cli, endless(b"HTTP/1.1 200 ", b"O" * 4096), out, payload)
    assert_one_line_error(r.err, "line too long in the response head")


def test_dribbled_headers_end_at_the_head_deadline(run_cli, out, payload):
    # A header line every 0.1 s: every recv returns well within --timeout 1,
    # and the lines stay under the head limits; only the deadline on the
    # whole head ends it.
    def handler(req, srv):
        yield b"HTTP/1.1 200 OK\r\n"
        while not srv.stopping.wait(0.1):
            yield b"X-Drip: 1\r\n"
    r = run_against(run_cli, handler, out, payload, "--timeout", "1")
    assert r.code == EXIT_NETWORK, r
    assert_one_line_error(r.err, "the whole head must arrive within 1s")


def test_endless_interim_responses_are_bounded(run_cli, out, payload):
    r = run_against(run_cli, endless(b"", b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n"), out, payload)
    assert_one_line_error(r.err, "interim (1xx) responses")


def test_interim_responses_are_skipped(run_cli, out, payload):
    def handler(req, srv):
        return (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                + response("200 OK", [], payload.data))
    r = run_against(run_cli, handler, out, payload)
    assert r.code == EXIT_OK, r
    assert (out / NAME).read_bytes() == payload.data


def test_endless_body_is_cut_off_at_the_known_size(run_cli, out, payload):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    r = run_against(run_cli, endless(head + payload.data, b"X" * 65536), out, payload,
                    "--size", str(payload.size))
    assert r.code != EXIT_OK, r
    assert_one_line_error(r.err, "server sent more than the expected %d bytes" % payload.size)
    assert not (out / NAME).exists()
    assert os.path.getsize(str(out / (NAME + ".part"))) <= payload.size


def test_content_length_beyond_the_known_size_is_refused_before_the_body(run_cli, out, payload):
    head = ("HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
            % (payload.size + 1)).encode()
    r = run_against(run_cli, endless(head + payload.data, b"X" * 65536), out, payload,
                    "--size", str(payload.size))
    assert_one_line_error(r.err, "size %d, expected %d" % (payload.size + 1, payload.size))
    assert not (out / NAME).exists() and not (out / (NAME + ".part")).exists()


@pytest.mark.parametrize("value", ["5, 7", "+5", "0x5", "5_0", "-1", "5 5", "\xb2"])
def test_ambiguous_content_length_is_refused(run_cli, out, payload, value):
    r = run_against(run_cli, lambda req, srv: response(
        "200 OK", ["Content-Length: " + value], b"12345", length=False), out, payload)
    assert_one_line_error(r.err, "invalid Content-Length")


def test_repeated_equal_content_length_is_accepted(run_cli, out, payload):
    n = payload.size
    r = run_against(run_cli, lambda req, srv: response(
        "200 OK", ["Content-Length: %d" % n, "Content-Length: %d" % n], payload.data, length=False),
        out, payload)
    assert r.code == EXIT_OK, r


@pytest.mark.parametrize("body, words", [
    (b"5\r\n0123456789\r\n0\r\n\r\n", "chunk longer than its declared size"),
    (b"-5\r\n01234\r\n0\r\n\r\n", "bad chunk header"),
    (b"0x5\r\n01234\r\n0\r\n\r\n", "bad chunk header"),
    (b"5\r\n01234\r\n0\r\n" + b"X-Trailer: 1\r\n" * 6000 + b"\r\n", "chunked trailers too large"),
])
def test_lying_chunked_framing_is_refused(run_cli, out, payload, body, words):
    r = run_against(run_cli, lambda req, srv: response(
        "200 OK", ["Transfer-Encoding: chunked"], body, length=False), out, payload)
    assert_one_line_error(r.err, words)


@pytest.mark.parametrize("line", ["X-Split: a\rInjected: 1", "X-Nul: a\x00b", "X-Esc: \x1b[2J"])
def test_control_characters_in_headers_are_refused(run_cli, out, payload, line):
    r = run_against(run_cli, lambda req, srv: response("200 OK", [line], payload.data), out, payload)
    assert_one_line_error(r.err, "control character in header line")


def test_reason_phrase_cannot_drive_the_terminal(run_cli, out, payload):
    r = run_against(run_cli, lambda req, srv: response("404 \x1b[2J\x9bGone", [], b""), out, payload)
    assert r.code == 3, r
    assert "\x1b" not in r.err and "\x9b" not in r.err
    assert "HTTP 404 ?[2J?Gone" in r.err


def test_bytes_after_a_body_are_never_read_as_the_next_response(payload):
    # A keep-alive response followed by garbage: the pooled connection must
    # not be reused (its next "response" would be the garbage).
    def handler(req, srv):
        yield (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"
               b"helloHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nevil")
        srv.stopping.wait(30)
    t = Transport(timeout=10)
    with RawServer(handler) as raw:
        for _ in range(2):
            resp = t.open(raw.url + "/" + NAME)
            assert resp.read_all() == b"hello"
            resp.close()
        assert len(raw.requests) == 2
        t.close()


def test_unsafe_characters_in_urls_and_locations_are_percent_encoded(run_cli, out, payload):
    # A Location with raw UTF-8 and a space; the user's URL with a space.
    def handler(req, srv):
        if req.target == "/a%20b/" + NAME:
            return response("302 Found", [("Location: /d\u00c3\u00bc x/" + NAME)])
        return response("200 OK", [], payload.data)
    with RawServer(handler) as raw:
        r = run_cli(raw.url + "/a b/" + NAME, out / NAME, "--sha256", payload.sha256)
        targets = [q.target for q in raw.requests]
    assert r.code == EXIT_OK, r
    assert targets == ["/a%20b/" + NAME, "/d%C3%BC%20x/" + NAME]


def test_control_characters_in_a_url_are_a_usage_error(run_cli, out):
    r = run_cli("http://127.0.0.1:1/a\rb/f.bin", out / NAME)
    assert r.code == EXIT_USAGE, r
    assert_one_line_error(r.err, "control character")


@pytest.mark.parametrize("headers", [{"If-Range": '"e"\r\nX-Injected: 1'}, {"X\r\nY": "1"},
                                     {"Range": "bytes=0-\x00"}, {"If-Range": "\u2603"}])
def test_request_headers_cannot_inject_lines(server, headers):
    # e.g. an ETag stored in NAME.part.json by an earlier run, then edited.
    with pytest.raises(SourceFailure) as e:
        Transport(timeout=10).open(server.url_for(NAME), headers=headers)
    assert "invalid characters" in str(e.value)
    assert server.requests == []


def test_a_hanging_name_resolver_is_bounded_by_the_timeout(run_cli, tmp_path, monkeypatch):
    """No real lookup happens: getaddrinfo is replaced for names (address
    literals still resolve), and the stand-in hangs until the test ends."""
    import socket
    import threading
    real = socket.getaddrinfo
    release = threading.Event()
    asked = []

    def hanging(host, port, *args):
        if len(args) >= 4 and args[3] & socket.AI_NUMERICHOST:
            return real(host, port, *args)
        asked.append(host)
        release.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "released by the test")
    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    try:
        r = run_cli("http://mirror.invalid/f.tar.gz", str(tmp_path / "f.tar.gz"), "--timeout", "0.5")
    finally:
        release.set()
    assert r.code == 5, r
    assert asked and asked[0] in (b"mirror.invalid", "mirror.invalid")
    assert "timed out resolving mirror.invalid" in r.err
    assert "Traceback" not in r.err


# -- redirects that lead nowhere are the source's network failure (exit 5) -------------

@pytest.mark.parametrize("handler", ["loop", "foreign-scheme", "port-0", "https-to-http"])
def test_a_redirect_that_leads_nowhere_is_exit_5(run_cli, server, out, tls_to_http, handler):
    """No way to the file: like a server that cannot be reached, not a bug
    of sagedl's (exit 1 said "failure" with nothing to act on)."""
    if handler == "https-to-http":
        r = run_cli(tls_to_http, out / NAME, "--ca-bundle", TLS_CA)
    elif handler == "loop":
        r = run_cli(server.url_for(NAME, "redirect-loop"), out / NAME)
    else:
        location = {"foreign-scheme": "ftp://127.0.0.1/f.bin",
                    "port-0": "http://127.0.0.1:0/f.bin"}[handler]
        with RawServer(redirect(location)) as raw:
            r = run_cli(raw.url + "/" + NAME, out / NAME)
    assert r.code == EXIT_NETWORK, r
    assert_one_line_error(r.err, "redirect")
    assert "sagedl: hint: the server redirects" in r.err
    assert not (out / NAME).exists()


def test_port_0_in_a_url_is_refused_not_port_80(run_cli, out, monkeypatch):
    """urlsplit's port 0 is falsy: it once became the scheme's default port."""
    connects = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connects.append(a))
    r = run_cli("http://127.0.0.1:0/" + NAME, out / NAME)
    assert r.code == EXIT_USAGE, r
    assert_one_line_error(r.err, "has port 0")
    assert connects == []
    assert urls.url_problem("http://127.0.0.1:0/") == "has port 0"
    with pytest.raises(ValueError):
        urls.parse_proxy("http://proxy:0")


@pytest.mark.parametrize("argv", [
    ["http://127.0.0.1:9/f.bin", "f.bin", "--size", "-1"],
    ["download", "--jobs", "0", "six"],
    ["download", "--jobs", "-3", "six"],
    ["download", "-j0", "six"],
    ["make-mirror", "--jobs", "0", "m"]])
def test_impossible_sizes_and_job_counts_are_usage_errors(run_cli, argv):
    r = run_cli(*argv)
    assert r.code == EXIT_USAGE, r
    assert_one_line_error(r.err, "invalid")


def test_retries_of_a_busy_source_are_bounded_in_time(server, payload, tmp_path):
    """--retries 100000000 against a 503 with Retry-After: 0 once retried for
    ever; past max_retry_time the source counts as failed."""
    from sagedl.engine.download import Options, Source, fetch
    from sagedl.engine.retry import Retry
    from sagedl.engine.verify import Expected
    from sagedl.errors import NetworkError
    from sagedl.ui.progress import make_progress
    opts = Options(retry=Retry(total=100000000), max_retry_time=0.5, timeout=10)
    t = Transport(timeout=10)
    try:
        with pytest.raises(NetworkError) as e:
            fetch(str(tmp_path / NAME), [Source(server.url_for(NAME, "503"))],
                  Expected(None, payload.sha256), t, make_progress("none", sys.stderr), opts)
    finally:
        t.close()
    assert "HTTP 503" in str(e.value) and "gave up after" in str(e.value), e.value
    assert 1 < len(server.requests_for(NAME)) < 100000000


def test_an_empty_sagedl_mirrors_means_no_mirrors(run_cli, tmp_path):
    """Set but empty: no mirror at all, never the shipped list of real ones
    (--no-probe: nothing is measured, so no network either way)."""
    r = run_cli("list-mirrors", "--no-probe", env=clean_env(tmp_path, SAGEDL_MIRRORS=""))
    assert r.code == EXIT_OK, r
    assert len(r.out.splitlines()) == 1 and r.out.startswith("#  latency"), r.out
    r = run_cli("--print-fastest-mirror", env=clean_env(tmp_path, SAGEDL_MIRRORS=" "))
    assert r.code == EXIT_NOT_FOUND, r
    assert_one_line_error(r.err, "SAGEDL_MIRRORS is set and empty")
    r = run_cli("list-mirrors", "--no-probe", env=clean_env(tmp_path))
    assert len(r.out.splitlines()) > 10, r.out             # unset: the shipped list


# -- transfer codings and multipart answers ------------------------------------------------

def _gzip(data):
    import gzip
    import io
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def _chunked(data):
    return b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data) if data else b"0\r\n\r\n"


@pytest.mark.parametrize("coding", ["gzip", "gzip, chunked", "chunked, gzip", "deflate",
                                    "chunked, chunked"])
def test_a_transfer_coding_sagedl_cannot_decode_is_refused(run_cli, out, payload, coding):
    """Without a checksum, gzip bytes once reached the final name, exit 0."""
    body = _gzip(payload.data)
    if coding.endswith("chunked"):
        body = _chunked(body)
    handler = lambda req, srv: response(headers=["Transfer-Encoding: " + coding], body=body,
                                        length=False)
    with RawServer(handler) as raw:
        r = run_cli(raw.url + "/" + NAME, out / NAME)
    assert r.code not in (EXIT_OK, 2), r
    assert_one_line_error(r.err, "unsupported Transfer-Encoding")
    assert os.listdir(str(out)) == []


@pytest.mark.parametrize("coding", ["chunked", "identity", "identity, chunked"])
def test_the_transfer_codings_sagedl_decodes_still_work(run_cli, out, payload, coding):
    body = _chunked(payload.data) if coding.endswith("chunked") else payload.data
    handler = lambda req, srv: response(headers=["Transfer-Encoding: " + coding], body=body,
                                        length=False)
    with RawServer(handler) as raw:
        r = run_cli(raw.url + "/" + NAME, out / NAME, "--sha256", payload.sha256)
    assert r.code == EXIT_OK, r
    assert (out / NAME).read_bytes() == payload.data


def multipart_to_ranges(data):
    """A server that answers any Range with 206 multipart/byteranges (legal,
    RFC 7233 4.1) and a request without Range with the whole file."""
    def handler(req, srv):
        if "range" not in req.headers:
            return response(body=data, headers=["ETag: \"v1\""])
        start = int(req.headers["range"].split("=")[1].split("-")[0])
        part = (b"--SEP\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Range: bytes %d-%d/%d\r\n\r\n" % (start, len(data) - 1, len(data))
                + data[start:] + b"\r\n--SEP--\r\n")
        return response("206 Partial Content", ["Content-Type: multipart/byteranges; boundary=SEP",
                                                "ETag: \"v1\""], part)
    return handler


def plant_partial(out, url, payload, n):
    (out / (NAME + ".part")).write_bytes(payload.data[:n])
    meta = {"url": url, "etag": "\"v1\"", "last_modified": None, "total": payload.size,
            "sha256": payload.sha256, "sha1": None}
    import json
    (out / (NAME + ".part.json")).write_text(json.dumps(meta))


def test_a_multipart_answer_to_a_resume_restarts_from_zero(run_cli, out, payload):
    """It once failed as "bad Content-Range ''" on every run, the partial
    kept: such a mirror could never complete the file."""
    with RawServer(multipart_to_ranges(payload.data)) as raw:
        url = raw.url + "/" + NAME
        plant_partial(out, url, payload, 1000)
        r = run_cli(url, out / NAME, "--sha256", payload.sha256, "--progress", "lines")
        ranges = [q.headers.get("range") for q in raw.requests]
    assert r.code == EXIT_OK, r
    assert (out / NAME).read_bytes() == payload.data
    assert ranges == ["bytes=1000-", None], ranges
    assert "starting from zero" in r.err
    assert sorted(os.listdir(str(out))) == [NAME]
