"""The test servers do what their faults say (so other tests can trust them)."""

import gzip
import hashlib
import http.client
import os
import socket
import ssl
import subprocess
import sys
import threading
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import faultserver  # noqa: E402
import nginx  # noqa: E402
import realfiles  # noqa: E402
from faultserver import FaultServer  # noqa: E402

# Not a repeating pattern, so a wrong offset cannot go unnoticed.
DATA = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(3125))
SIZE = len(DATA)  # 100000
CLIENT_TIMEOUT = 10  # a deadline so a broken server fails a test, not hangs it


@pytest.fixture
def server():
    with FaultServer({"f.bin": DATA, "g.bin": DATA[:5000]}) as srv:
        yield srv
    assert srv.errors == []


def fetch(server, path, headers=None, method="GET"):
    conn = http.client.HTTPConnection("127.0.0.1", server.port,
                                      timeout=CLIENT_TIMEOUT)
    try:
        conn.request(method, path, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    finally:
        conn.close()


def raw(server, path, headers=""):
    """Send a GET on a bare socket; return (head, body, error) as received."""
    sock = socket.create_connection(("127.0.0.1", server.port),
                                    timeout=CLIENT_TIMEOUT)
    sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n"
                  % (path, headers)).encode())
    data, error = b"", None
    try:
        while True:
            block = sock.recv(1 << 16)
            if not block:
                break
            data += block
    except OSError as exc:
        error = exc
    finally:
        sock.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body, error


def in_thread(function, *args):
    """Run function in a thread; the returned dict gets 'result'/'error'."""
    outcome = {}

    def run():
        try:
            outcome["result"] = function(*args)
        except Exception as exc:  # reported to the test through outcome
            outcome["error"] = exc
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def server_threads():
    return [t for t in threading.enumerate()
            if t.name.startswith("faultserver")]


# -- ok ------------------------------------------------------------------------

def test_ok_serves_file_with_validators(server):
    status, headers, body = fetch(server, "/ok/f.bin")
    assert (status, body) == (200, DATA)
    assert headers["Content-Length"] == str(SIZE)
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["ETag"].startswith('"')  # strong
    assert headers["Last-Modified"].endswith("GMT")


def test_plain_and_mirror_layout_paths_serve_the_last_component(server):
    for path in ("/f.bin", "/spkg/upstream/foo/f.bin",
                 "/ok/spkg/upstream/foo/f.bin", "/ok/f.bin?x=1"):
        assert fetch(server, path)[::2] == (200, DATA), path
    assert [r.name for r in server.requests] == ["f.bin"] * 4
    assert server.requests[1].path == "/spkg/upstream/foo/f.bin"


def test_missing_file_is_404(server):
    assert fetch(server, "/ok/nope.bin")[0] == 404


@pytest.mark.parametrize("header, first, last", [
    ("bytes=10-19", 10, 19),
    ("bytes=99990-", 99990, SIZE - 1),
    ("bytes=-5", SIZE - 5, SIZE - 1),
    ("bytes=50000-999999", 50000, SIZE - 1),
])
def test_range_returns_requested_bytes(server, header, first, last):
    status, headers, body = fetch(server, "/ok/f.bin", {"Range": header})
    assert status == 206
    assert headers["Content-Range"] == "bytes %d-%d/%d" % (first, last, SIZE)
    assert body == DATA[first:last + 1]
    assert server.requests[0].range == header


def test_unsatisfiable_range_is_416_with_total(server):
    status, headers, _ = fetch(server, "/ok/f.bin", {"Range": "bytes=%d-" % SIZE})
    assert status == 416
    assert headers["Content-Range"] == "bytes */%d" % SIZE


def test_if_range_match_resumes_and_mismatch_sends_whole_file(server):
    _, headers, _ = fetch(server, "/ok/f.bin", method="HEAD")
    for validator in (headers["ETag"], headers["Last-Modified"]):
        status, _, body = fetch(server, "/ok/f.bin", {
            "Range": "bytes=100-", "If-Range": validator})
        assert (status, body) == (206, DATA[100:])
    status, _, body = fetch(server, "/ok/f.bin", {
        "Range": "bytes=100-", "If-Range": '"stale"'})
    assert (status, body) == (200, DATA)


def test_head_has_headers_and_no_body(server):
    status, headers, body = fetch(server, "/ok/f.bin", method="HEAD")
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == str(SIZE)


def test_keep_alive_serves_three_requests_on_one_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port,
                                      timeout=CLIENT_TIMEOUT)
    bodies = []
    for path in ("/ok/f.bin", "/g.bin", "/ok/f.bin"):
        conn.request("GET", path, headers={"Range": "bytes=0-99"})
        bodies.append(conn.getresponse().read())
    conn.close()
    assert bodies == [DATA[:100]] * 3
    assert len({r.connection for r in server.requests}) == 1


def test_full_gets_counts_only_transfers_from_byte_zero(server):
    fetch(server, "/ok/f.bin")                                 # counts
    fetch(server, "/ok/f.bin", {"Range": "bytes=1000-"})       # resume
    fetch(server, "/ok/f.bin", {"Range": "bytes=0-"})          # counts
    fetch(server, "/ok/f.bin", method="HEAD")
    fetch(server, "/404/f.bin")
    fetch(server, "/html/f.bin")
    fetch(server, "/ok/g.bin")
    assert server.full_gets("f.bin") == 2
    assert server.full_gets("g.bin") == 1
    assert len(server.requests_for("f.bin")) == 6


def test_unknown_fault_is_400(server):
    status, _, body = fetch(server, "/reset-at-x/f.bin")
    assert status == 400 and b"reset-at-x" in body


def test_wait_for_returns_false_at_deadline(server):
    assert server.wait_for(lambda s: s.requests, timeout=0.01) is False


# -- cut faults ----------------------------------------------------------------

def test_reset_at_n_sends_n_bytes_then_rst(server):
    head, body, error = raw(server, "/reset-at-1000/f.bin")
    assert "Content-Length: %d" % SIZE in head
    assert body == DATA[:1000]
    assert isinstance(error, ConnectionResetError)
    assert server.requests[0].body_bytes == 1000


def test_close_at_n_sends_short_body_then_clean_close(server):
    head, body, error = raw(server, "/close-at-1000/f.bin")
    assert "Content-Length: %d" % SIZE in head
    assert (body, error) == (DATA[:1000], None)


def test_cut_counts_from_the_start_of_a_ranged_body(server):
    _, body, error = raw(server, "/reset-at-10/f.bin", "Range: bytes=500-\r\n")
    assert body == DATA[500:510] and isinstance(error, ConnectionResetError)


def test_stall_at_n_holds_until_release(server):
    client = in_thread(fetch, server, "/stall-at-2000/f.bin")
    assert server.wait_for(lambda s: s.requests and s.requests[0].stalled)
    record = server.requests[0]
    assert (record.body_bytes, record.finished) == (2000, False)
    server.release()
    client["thread"].join(CLIENT_TIMEOUT)
    assert client["result"][::2] == (200, DATA)
    assert server.wait_for(lambda s: s.requests[0].finished)


def test_hold_sends_nothing_until_release(server):
    client = in_thread(fetch, server, "/hold/f.bin")
    assert server.wait_for(lambda s: s.requests and s.requests[0].stalled)
    assert server.requests[0].status is None
    server.release()
    client["thread"].join(CLIENT_TIMEOUT)
    assert client["result"][::2] == (200, DATA)


def test_release_does_not_pre_release_later_stalls(server):
    server.release()
    client = in_thread(fetch, server, "/stall-at-10/f.bin")
    assert server.wait_for(lambda s: s.requests and s.requests[0].stalled)
    server.release()
    client["thread"].join(CLIENT_TIMEOUT)
    assert client["result"][2] == DATA


def test_trickle_paces_until_release(server):
    # At 1 byte/s, 100 kB cannot arrive during this test unless release()
    # lifts the pacing: that proves pacing without measuring time.
    client = in_thread(fetch, server, "/trickle-1/f.bin")
    assert server.wait_for(lambda s: s.requests and s.requests[0].body_bytes)
    assert server.requests[0].body_bytes < SIZE
    server.release()
    client["thread"].join(CLIENT_TIMEOUT)
    assert client["result"][::2] == (200, DATA)


def test_stop_ends_stalled_and_held_connections_and_threads():
    srv = FaultServer({"f.bin": DATA}).start()
    clients = [in_thread(fetch, srv, path)
               for path in ("/stall-at-10/f.bin", "/hold/f.bin",
                            "/trickle-1/f.bin")]
    idle = socket.create_connection(("127.0.0.1", srv.port),
                                    timeout=CLIENT_TIMEOUT)  # idle keep-alive
    assert srv.wait_for(lambda s: len(s.requests) == 3 and all(
        r.stalled or r.body_bytes for r in s.requests))
    srv.stop()
    for client in clients:
        client["thread"].join(CLIENT_TIMEOUT)
        assert "error" in client  # cut short, not completed
    try:
        # Closed either way: EOF once accepted, RST while still in the backlog.
        assert idle.recv(10) == b""
    except ConnectionResetError:
        pass
    idle.close()
    assert server_threads() == []
    assert srv.errors == []


def test_once_faults_only_the_first_request_per_name(server):
    _, body, error = raw(server, "/reset-at-10,once/f.bin")
    assert body == DATA[:10] and error is not None
    assert fetch(server, "/reset-at-10,once/f.bin")[::2] == (200, DATA)
    assert raw(server, "/reset-at-10,once/g.bin")[1] == DATA[:10]


def test_stall_then_reset_combine_in_offset_order(server):
    client = in_thread(raw, server, "/stall-at-100,reset-at-300/f.bin")
    assert server.wait_for(lambda s: s.requests and s.requests[0].stalled)
    server.release()
    client["thread"].join(CLIENT_TIMEOUT)
    _, body, error = client["result"]
    assert body == DATA[:300] and isinstance(error, ConnectionResetError)


def test_client_hanging_up_mid_body_leaves_server_serving():
    big = DATA * 100  # 10 MB: more than the socket buffers hold
    with FaultServer({"big": big}) as srv:
        for _ in range(3):
            conn = http.client.HTTPConnection("127.0.0.1", srv.port)
            conn.request("GET", "/big")
            assert conn.getresponse().read(10) == big[:10]
            conn.close()
        assert fetch(srv, "/ok/big")[2] == big
        assert srv.wait_for(lambda s: all(r.finished for r in s.requests))
    assert srv.errors == []


# -- header and body faults ----------------------------------------------------

def test_corrupt_flips_one_byte_in_the_middle(server):
    body = fetch(server, "/corrupt/f.bin")[2]
    assert len(body) == SIZE
    assert [i for i in range(SIZE) if body[i] != DATA[i]] == [SIZE // 2]
    tail = fetch(server, "/corrupt/f.bin", {"Range": "bytes=%d-" % (SIZE // 2)})
    assert tail[2] == body[SIZE // 2:]


def test_no_range_ignores_range(server):
    status, headers, body = fetch(server, "/no-range/f.bin",
                                  {"Range": "bytes=10-"})
    assert (status, body) == (200, DATA)
    assert "Accept-Ranges" not in headers


def test_bad_content_range_lies_by_100(server):
    status, headers, body = fetch(server, "/bad-content-range/f.bin",
                                  {"Range": "bytes=1000-"})
    assert status == 206
    assert headers["Content-Range"] == "bytes 1100-%d/%d" % (SIZE - 1, SIZE)
    assert body == DATA[1100:]


def test_wrong_total_claims_another_size(server):
    headers = fetch(server, "/wrong-total/f.bin", {"Range": "bytes=0-9"})[1]
    assert headers["Content-Range"] == "bytes 0-9/%d" % (SIZE + 1000)


def test_ignore_if_range_resumes_a_changed_file(server):
    status, _, body = fetch(server, "/ignore-if-range/f.bin", {
        "Range": "bytes=10-", "If-Range": '"stale"'})
    assert (status, body) == (206, DATA[10:])


def test_always_416(server):
    assert fetch(server, "/always-416/f.bin", {"Range": "bytes=0-"})[0] == 416
    assert fetch(server, "/always-416/f.bin")[0] == 200


@pytest.mark.parametrize("code", [404, 410, 500, 503, 429])
def test_status_faults(server, code):
    status, headers, body = fetch(server, "/%d/f.bin" % code)
    assert status == code and b"<html>" in body
    if code in (503, 429):
        assert headers["Retry-After"] == "0"


def test_retry_after_n(server):
    assert fetch(server, "/503,retry-after-7/f.bin")[1]["Retry-After"] == "7"


def test_html_page_instead_of_the_file(server):
    status, headers, body = fetch(server, "/html/f.bin")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert body.startswith(b"<!DOCTYPE html>")


def test_no_length_ends_body_at_close(server):
    head, body, error = raw(server, "/no-length/f.bin")
    assert "Content-Length" not in head and "Connection: close" in head
    assert (body, error) == (DATA, None)


def test_long_n_sends_extra_bytes_after_the_body(server):
    head, body, _ = raw(server, "/long-50/f.bin")
    assert "Content-Length: %d" % SIZE in head
    assert body[:SIZE] == DATA and len(body) == SIZE + 50


def test_gzip_whatever_accept_encoding_says(server):
    _, headers, body = fetch(server, "/gzip/f.bin",
                             {"Accept-Encoding": "identity"})
    assert headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(body) == DATA


def test_huge_headers(server):
    head, body, _ = raw(server, "/huge-headers/g.bin",
                        "Connection: close\r\n")
    assert len(head) > 1 << 20 and body == DATA[:5000]
    with pytest.raises(http.client.HTTPException):
        fetch(server, "/huge-headers/g.bin")  # http.client caps at 100


def test_slow_headers_send_status_line_first(server):
    sock = socket.create_connection(("127.0.0.1", server.port),
                                    timeout=CLIENT_TIMEOUT)
    sock.sendall(b"GET /slow-headers/g.bin HTTP/1.1\r\nHost: x\r\n"
                 b"Connection: close\r\n\r\n")
    assert sock.recv(17) == b"HTTP/1.1 200 OK\r\n"
    assert server.wait_for(lambda s: s.requests[0].status == 200)
    assert server.requests[0].body_bytes == 0
    server.release()
    data = b""
    while True:
        block = sock.recv(1 << 16)
        if not block:
            break
        data += block
    sock.close()
    assert data.endswith(b"\r\n\r\n" + DATA[:5000])


def test_redirect_and_redirect_loop(server):
    status, headers, _ = fetch(server, "/redirect/spkg/upstream/p/f.bin")
    assert (status, headers["Location"]) == (301, server.url + "/ok/f.bin")
    assert urllib.request.urlopen(server.url + "/redirect/f.bin").read() == DATA
    status, headers, _ = fetch(server, "/redirect-loop/f.bin")
    assert (status, headers["Location"]) == (302,
                                             server.url + "/redirect-loop/f.bin")


# -- TLS, IPv6, CLI --------------------------------------------------------------

def test_tls():
    context = ssl.create_default_context(cafile=faultserver.TLS_CA)
    with FaultServer({"f.bin": DATA},
                     ssl_context=faultserver.tls_server_context()) as srv:
        assert srv.url.startswith("https://127.0.0.1:")
        request = urllib.request.Request(srv.url + "/ok/f.bin",
                                         headers={"Range": "bytes=5-"})
        assert urllib.request.urlopen(request, context=context).read() == DATA[5:]
        with pytest.raises(urllib.error.URLError):  # not a trusted CA
            urllib.request.urlopen(srv.url + "/ok/f.bin",
                                   context=ssl.create_default_context())
    assert srv.errors == []


def test_ipv6_loopback():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        srv = FaultServer({"f.bin": DATA}, host="::1").start()
    except OSError:
        pytest.skip("::1 not configured")
    with srv:
        assert srv.url.startswith("http://[::1]:")
        assert urllib.request.urlopen(srv.url + "/f.bin").read() == DATA


def test_cli_serves_a_directory(tmp_path):
    (tmp_path / "a.tar.gz").write_bytes(DATA)
    (tmp_path / "empty").write_bytes(b"")
    script = os.path.join(os.path.dirname(__file__), "faultserver.py")
    process = subprocess.Popen(
        [sys.executable, script, "--dir", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        request = urllib.request.Request(url + "/ok/spkg/upstream/a/a.tar.gz",
                                         headers={"Range": "bytes=7-"})
        response = urllib.request.urlopen(request, timeout=CLIENT_TIMEOUT)
        assert (response.status, response.read()) == (206, DATA[7:])
        assert urllib.request.urlopen(url + "/empty").read() == b""
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url + "/..")
    finally:
        process.terminate()
        assert process.wait(CLIENT_TIMEOUT) == 0


# -- nginx and real files ------------------------------------------------------

def test_nginx_serves_ranges_with_keep_alive(tmp_path):
    require = nginx.require_tool("nginx")
    (tmp_path / "f.bin").write_bytes(DATA)
    with nginx.Nginx(str(tmp_path), binary=require) as server:
        assert server.url.startswith("http://127.0.0.1:")
        conn = http.client.HTTPConnection("127.0.0.1", server.port,
                                          timeout=CLIENT_TIMEOUT)
        conn.request("GET", "/f.bin", headers={"Range": "bytes=1000-1999"})
        response = conn.getresponse()
        assert response.status == 206
        assert response.headers["Content-Range"] == "bytes 1000-1999/%d" % SIZE
        assert response.read() == DATA[1000:2000]
        conn.request("GET", "/f.bin")  # same connection: keep-alive works
        assert conn.getresponse().read() == DATA
        conn.close()
    assert server.process is None and server.tmp is None


def test_nginx_tls(tmp_path):
    require = nginx.require_tool("nginx")
    (tmp_path / "f.bin").write_bytes(DATA)
    context = ssl.create_default_context(cafile=faultserver.TLS_CA)
    with nginx.Nginx(str(tmp_path), faultserver.TLS_CERT, faultserver.TLS_KEY,
                     binary=require) as server:
        assert urllib.request.urlopen(server.url + "/f.bin",
                                      context=context).read() == DATA


def test_real_files_match_sage_checksums():
    files = realfiles.require_real_files()
    assert len(files) >= 3
    assert any(f["sha1"] is None for f in files)      # [section] form
    assert any(f["tarball"].endswith(".tar.gz") for f in files)  # an sdist
    for info in files:
        with open(info["path"], "rb") as handle:
            content = handle.read()
        assert hashlib.sha256(content).hexdigest() == info["sha256"]
        if info["sha1"]:
            assert hashlib.sha1(content).hexdigest() == info["sha1"]
        assert info["size"] == len(content) < 300 * 1024
        assert os.path.basename(info["path"]) == info["tarball"]


def test_require_tool_skips_locally_but_fails_under_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        nginx.require_tool("sagedl-no-such-tool")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        nginx.require_tool("sagedl-no-such-tool")
    assert nginx.require_tool(sys.executable) == sys.executable
