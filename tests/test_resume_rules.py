"""Each resume rule of the engine (transfer.py), provoked exactly: a loopback server whose
replies are scripted raw bytes, and the engine called in-process.

A partial is made the real way (a first run whose body ends early), then a
second run meets the fault.  Every test here fails when the rule it names
is removed from transfer.py (checked by removing each; the list of rules
and their tests is in transfer.py's docstring).
"""

import hashlib
import os
import socket
import threading

import pytest

from helpers import make_data
from sagedl.engine import download
from sagedl.engine.download import Options, Source
from sagedl.engine.retry import Retry
from sagedl.engine.verify import Expected
from sagedl.errors import SagedlError
from sagedl.net.transport import Transport
from sagedl.ui.progress import Progress

DATA = make_data(100000, 77)
SHA256 = hashlib.sha256(DATA).hexdigest()
HALF = 40000
LAST_MODIFIED = "Sat, 28 Nov 2026 08:00:00 GMT"
ETAG = '"strong-1"'


# -- a server that says exactly what each test scripts ---------------------------------
class Request(object):
    def __init__(self, line, headers):
        self.line = line
        self.headers = headers            # lower-case name -> value

    @property
    def range(self):
        return self.headers.get("range")


class Scripted(object):
    """Answers request k with ``replies[k](request)`` (raw response bytes),
    then closes the connection; records every request.  A request past the
    script gets a 404."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.requests = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.url = "http://127.0.0.1:%d/f.bin" % self.sock.getsockname()[1]
        self._stop = False
        self._thread = threading.Thread(target=self._serve)
        self._thread.daemon = True
        self._thread.start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            with conn:
                conn.settimeout(10)
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                lines = head.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
                headers = dict((k.strip().lower(), v.strip())
                               for k, _, v in (l.partition(":") for l in lines[1:]))
                request = Request(lines[0], headers)
                self.requests.append(request)
                k = len(self.requests) - 1
                reply = self.replies[k](request) if k < len(self.replies) else NOT_FOUND
                try:
                    conn.sendall(reply)
                except OSError:
                    pass

    def close(self):
        self._stop = True
        self._thread.join(10)
        self.sock.close()


NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


def response(status, body, **headers):
    lines = ["HTTP/1.1 %s" % status, "Connection: close"]
    headers.setdefault("Content_Length", str(len(body)))
    for k, v in headers.items():
        if v is not None:
            lines.append("%s: %s" % (k.replace("_", "-"), v))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def short_200(etag=ETAG, last_modified=LAST_MODIFIED):
    """A 200 announcing the whole file whose body ends after HALF bytes:
    the engine keeps a partial of HALF bytes and its metadata."""
    return lambda req: response("200 OK", DATA[:HALF], Content_Length=str(len(DATA)), ETag=etag,
                                Last_Modified=last_modified)


def full_200(req):
    return response("200 OK", DATA, ETag=ETAG, Last_Modified=LAST_MODIFIED)


def partial_206(start, end, total=len(DATA), length=None, etag=ETAG):
    body = DATA[start:end + 1]
    return lambda req: response("206 Partial Content", body,
                                Content_Range="bytes %d-%d/%d" % (start, end, total),
                                Content_Length=str(len(body) if length is None else length),
                                ETag=etag, Last_Modified=LAST_MODIFIED)


class Run(object):
    def __init__(self, error, failures, notes):
        self.error = error
        self.failures = failures
        self.notes = notes


@pytest.fixture
def dest(tmp_path):
    return tmp_path / "f.bin"


def fetch(dest, urls, expected=Expected(None, SHA256), transport=None):
    failures, notes = [], []

    def on_result(url, ok, reason):
        if not ok:
            failures.append(reason)
    error = None
    t = transport or Transport(timeout=10)
    try:
        download.fetch(str(dest), [Source(u) for u in urls], expected, t, Progress(),
                       Options(timeout=10, retry=Retry(total=0)), on_result=on_result,
                       notify=notes.append)
    except SagedlError as e:
        error = e
    finally:
        t.close()
    return Run(error, failures, notes)


def partial_of(dest):
    with open(str(dest) + ".part", "rb") as f:
        return f.read()


def with_partial(dest, *script, **kw):
    """A server scripted with a short first answer, then ``script``; the
    first run leaves a partial of HALF bytes."""
    first = kw.pop("first", short_200())
    server = Scripted([first] + list(script))
    run = fetch(dest, [server.url], **kw)
    assert run.error is not None and partial_of(dest) == DATA[:HALF]
    return server


@pytest.fixture
def scripted():
    servers = []

    def make(*args, **kw):
        s = with_partial(*args, **kw)
        servers.append(s)
        return s
    yield make
    for s in servers:
        s.close()


def assert_refused_and_partial_kept(run, dest, words):
    assert run.error is not None and words in str(run.error), run.error
    assert partial_of(dest) == DATA[:HALF]      # nothing of the bad answer was appended
    assert not dest.exists()


# -- the rules ---------------------------------------------------------------------------
def test_a_good_resume_appends_after_a_matching_206(scripted, dest):
    server = scripted(dest, partial_206(HALF, len(DATA) - 1))
    run = fetch(dest, [server.url])
    assert run.error is None and dest.read_bytes() == DATA
    assert server.requests[1].range == "bytes=%d-" % HALF
    assert server.requests[1].headers.get("if-range") == ETAG


def test_content_range_end_must_be_the_last_byte(scripted, dest):
    # bytes 40000-99998/100000: one byte short of the end the total implies
    server = scripted(dest, partial_206(HALF, len(DATA) - 2))
    assert_refused_and_partial_kept(fetch(dest, [server.url]), dest, "does not match the request")


def test_content_range_start_must_be_the_offset_asked_for(scripted, dest):
    server = scripted(dest, partial_206(HALF + 100, len(DATA) - 1))
    assert_refused_and_partial_kept(fetch(dest, [server.url]), dest, "does not match the request")


def test_content_range_total_must_be_the_known_total(scripted, dest):
    server = scripted(dest, partial_206(HALF, len(DATA) + 99, total=len(DATA) + 100))
    assert_refused_and_partial_kept(fetch(dest, [server.url]), dest, "does not match the request")


def test_malformed_content_range_is_refused(scripted, dest):
    bad = lambda req: response("206 Partial Content", DATA[HALF:],  # noqa: E731
                               Content_Range="bytes %d-/%d" % (HALF, len(DATA)))
    server = scripted(dest, bad)
    assert_refused_and_partial_kept(fetch(dest, [server.url]), dest, "bad Content-Range")


def test_content_length_must_agree_with_content_range(scripted, dest):
    # The range claims the rest of the file; the body (Content-Length) is shorter.
    server = scripted(dest, lambda req: response(
        "206 Partial Content", DATA[HALF:HALF + 30000],
        Content_Range="bytes %d-%d/%d" % (HALF, len(DATA) - 1, len(DATA)), ETag=ETAG))
    assert_refused_and_partial_kept(fetch(dest, [server.url]), dest, "disagrees with Content-Range")


def test_206_to_a_request_without_range_is_refused(dest, tmp_path):
    server = Scripted([partial_206(0, len(DATA) - 1)])
    try:
        run = fetch(dest, [server.url])
    finally:
        server.close()
    assert run.error is not None and "without Range" in str(run.error), run.error
    assert not dest.exists()


def test_a_weak_etag_is_never_sent_in_if_range(scripted, dest):
    # RFC 7233 3.2: If-Range takes a strong validator; a weak ETag is
    # replaced by the Last-Modified date.
    server = scripted(dest, partial_206(HALF, len(DATA) - 1), first=short_200(etag='W/"weak-1"'))
    run = fetch(dest, [server.url])
    assert run.error is None and dest.read_bytes() == DATA
    assert server.requests[1].headers.get("if-range") == LAST_MODIFIED


def test_if_range_goes_only_to_the_url_the_partial_came_from(scripted, dest):
    other = Scripted([partial_206(HALF, len(DATA) - 1)])
    scripted(dest)
    try:
        run = fetch(dest, [other.url.replace("/f.bin", "/x/f.bin")])
    finally:
        other.close()
    assert run.error is None and dest.read_bytes() == DATA
    assert other.requests[0].range == "bytes=%d-" % HALF    # the checksum pins the content
    assert "if-range" not in other.requests[0].headers       # but not that mirror's validator


def test_a_206_without_the_validator_sent_restarts_from_zero(scripted, dest):
    server = scripted(dest, partial_206(HALF, len(DATA) - 1, etag='"new-version"'), full_200)
    run = fetch(dest, [server.url])
    assert run.error is None and dest.read_bytes() == DATA
    assert server.requests[2].range is None and not run.failures


def test_a_200_to_a_range_request_starts_from_zero(scripted, dest):
    server = scripted(dest, full_200)
    run = fetch(dest, [server.url])
    assert run.error is None and dest.read_bytes() == DATA and not run.failures
    assert server.requests[1].range == "bytes=%d-" % HALF


def test_a_partial_of_other_content_is_not_continued(scripted, dest):
    # NAME.part.json records the digests it was fetched for: another
    # checksum means other content, so the partial starts again from zero.
    server = scripted(dest, full_200)
    other = hashlib.sha256(b"other").hexdigest()
    run = fetch(dest, [server.url], expected=Expected(None, other))
    assert server.requests[1].range is None
    assert run.error is not None and "checksum" in str(run.error)


def test_without_a_checksum_only_the_same_url_is_resumed(scripted, dest):
    scripted(dest, expected=Expected())
    other = Scripted([full_200])
    try:
        run = fetch(dest, [other.url.replace("/f.bin", "/y/f.bin")], expected=Expected())
    finally:
        other.close()
    assert run.error is None and dest.read_bytes() == DATA
    assert other.requests[0].range is None


def test_a_partial_longer_than_the_total_starts_again(scripted, dest):
    server = scripted(dest, full_200)
    with open(str(dest) + ".part", "ab") as f:
        f.write(b"x" * (len(DATA) - HALF + 10))      # now longer than the whole file
    run = fetch(dest, [server.url])
    assert run.error is None and dest.read_bytes() == DATA
    assert server.requests[1].range is None


def test_a_total_other_than_the_expected_size_fails_before_any_byte(dest):
    # A server announcing 10 MB for a file known to be 100 kB is refused at
    # its head, not after streaming what it sends.
    huge = len(DATA) * 100
    server = Scripted([lambda req: response("200 OK", DATA, Content_Length=str(huge))])
    try:
        run = fetch(dest, [server.url], expected=Expected(len(DATA), SHA256))
    finally:
        server.close()
    assert run.error is not None and "size %d, expected %d" % (huge, len(DATA)) in str(run.error)
    assert not os.path.exists(str(dest) + ".part")


class _Shrinking(Transport):
    """Truncates NAME.part while a resume request is on the wire: the
    partial on disk is then shorter than the offset asked for."""

    def __init__(self, part, **kw):
        Transport.__init__(self, **kw)
        self.part = part

    def open(self, url, method="GET", headers=None, **kw):
        if headers and "Range" in headers:
            with open(self.part, "r+b") as f:
                f.truncate(HALF // 2)
        return Transport.open(self, url, method, headers, **kw)


def test_a_partial_that_shrank_restarts_from_zero(scripted, dest):
    server = scripted(dest, partial_206(HALF, len(DATA) - 1), full_200)
    run = fetch(dest, [server.url], transport=_Shrinking(str(dest) + ".part", timeout=10))
    assert run.error is None and dest.read_bytes() == DATA
    # Restarted before a byte was appended: no failed transfer, no checksum error.
    assert not run.failures, run.failures
    assert server.requests[2].range is None


def test_416_is_done_only_when_the_partial_verifies(dest):
    # A partial holding the whole file, then 416: verified, not fetched again.
    server = Scripted([short_200(), lambda req: response(
        "416 Range Not Satisfiable", b"", Content_Range="bytes */%d" % len(DATA))])
    try:
        fetch(dest, [server.url])
        with open(str(dest) + ".part", "ab") as f:
            f.write(DATA[HALF:])
        run = fetch(dest, [server.url])
    finally:
        server.close()
    assert run.error is None and dest.read_bytes() == DATA
    assert len(server.requests) == 2


def test_416_without_a_checksum_is_never_done(scripted, dest):
    # Nothing can verify the partial: a 416 claiming it is complete is not
    # believed, the transfer starts again.
    server = scripted(dest, lambda req: response(
        "416 Range Not Satisfiable", b"", Content_Range="bytes */%d" % HALF), full_200,
        expected=Expected())
    run = fetch(dest, [server.url], expected=Expected())
    assert run.error is None and dest.read_bytes() == DATA
    assert server.requests[2].range is None


def test_416_for_a_partial_that_does_not_verify_restarts(scripted, dest):
    server = scripted(dest, lambda req: response(
        "416 Range Not Satisfiable", b"", Content_Range="bytes */%d" % HALF), full_200)
    run = fetch(dest, [server.url])
    assert run.error is None and dest.read_bytes() == DATA
    assert server.requests[2].range is None


def test_a_checksum_failure_after_a_resume_earns_a_try_from_scratch(scripted, dest):
    # The partial's old bytes may be the bad ones: this source gets one more
    # try from byte zero before it counts as failed.
    server = scripted(dest, partial_206(HALF, len(DATA) - 1), full_200)
    with open(str(dest) + ".part", "r+b") as f:
        f.write(b"\0" * 10)                          # the partial was corrupt
    run = fetch(dest, [server.url])
    assert run.error is None and dest.read_bytes() == DATA
    assert [r.range for r in server.requests[1:]] == ["bytes=%d-" % HALF, None]
