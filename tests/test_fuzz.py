"""Fuzzing the parsers of untrusted input: checksums.ini, mirrors.toml, the
online mirror list, and HTTP response heads, bodies and redirects.

The property is the same for each: any input either parses into a
well-formed value or raises the project's own error (MetadataError /
UsageError for metadata, SourceFailure for HTTP) -- never an IndexError,
UnicodeError, RecursionError or anything else that would become an
"internal error" instead of a one-line message.

Each strategy mixes arbitrary text or bytes with near-valid documents built
from the format's own pieces, which reach far deeper into a parser than
random characters do.  CI runs a short fuzz (300 examples per target);
docs/FUZZING.md describes the long run (HYPOTHESIS_PROFILE=long).
"""

import errno
import os
import socket
import threading

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from sagedl.compat import compat_monotonic
from sagedl.errors import MetadataError, SourceFailure, UsageError
from sagedl.mirrors import mirrorlist, tomlreader
from sagedl.net import http1, transport, urls
from sagedl.sage import checksums

# -- profiles ---------------------------------------------------------------------------
# Registered here, loaded nowhere globally: other modules keep their settings.
settings.register_profile("fuzz-ci", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz-long", max_examples=100000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
PROFILE = "fuzz-long" if os.environ.get("HYPOTHESIS_PROFILE") == "long" else "fuzz-ci"
_examples = os.environ.get("SAGEDL_FUZZ_EXAMPLES")
FUZZ = settings(settings.get_profile(PROFILE),
                **({"max_examples": int(_examples)} if _examples else {}))

HEX = "0123456789abcdefABCDEF"
NEWLINES = st.sampled_from(["\n", "\r\n", "\r"])


def joined(parts, separators=NEWLINES):
    return st.builds(lambda items, sep: sep.join(items), parts, separators)


# -- checksums.ini ------------------------------------------------------------------------

ini_key = st.sampled_from(["tarball", "sha256", "sha1", "upstream_url", "md5", "cksum",
                           "TARBALL", "Sha256", "x y", "", "sha256 ", "tarball\x00"])
ini_value = st.one_of(
    st.text(alphabet=HEX, min_size=64, max_size=64),
    st.text(alphabet=HEX, min_size=40, max_size=40),
    st.text(alphabet=HEX + "g ", max_size=70),
    st.sampled_from(["pkg-VERSION.tar.gz", "pkg-${VERSION_MAJOR}.tgz", "../x", "a/b", "",
                     "https://example.org/VERSION/x.tar.gz", "${UNKNOWN}", "\u00e9\u202e"]),
    st.text(max_size=20),
)
ini_line = st.one_of(
    st.builds(lambda k, eq, v: k + eq + v, ini_key, st.sampled_from(["=", " = ", "= ", "=="]), ini_value),
    st.builds(lambda name: "[" + name + "]", st.one_of(ini_value, st.text(max_size=10))),
    st.sampled_from(["", "   ", "# comment", "; comment", "[]", "[ ]", "=", "[[x]]", "\ufeff", "\t"]),
    st.text(max_size=40),
)
ini_documents = st.one_of(
    st.text(max_size=200),
    st.builds(lambda bom, doc: bom + doc, st.sampled_from(["", "\ufeff"]),
              joined(st.lists(ini_line, max_size=12))),
)


@FUZZ
@given(ini_documents)
def test_checksums_ini_parser_returns_records_or_raises_metadata_error(text):
    try:
        records = [r for r, _, _ in checksums.parse_checksums_ini(text, "fuzz/checksums.ini")]
    except (MetadataError, UsageError):
        return
    for record in records:
        assert record["tarball"] and isinstance(record["tarball"], str)
        assert len(record["sha256"]) == 64 and set(record["sha256"]) <= set("0123456789abcdef")
        assert record["sha1"] is None or (len(record["sha1"]) == 40
                                          and set(record["sha1"]) <= set("0123456789abcdef"))
        assert record["upstream_url"] is None or isinstance(record["upstream_url"], str)


# -- mirrors.toml ---------------------------------------------------------------------------

toml_string = st.one_of(
    st.builds(lambda s: '"%s"' % s, st.text(alphabet="abc:/.-_ \\u00e9\"'\\tnU0123456789", max_size=20)),
    st.builds(lambda s: "'%s'" % s, st.text(alphabet="abc:/.-_ \"\\", max_size=20)),
    st.sampled_from(['"https://m.example/sage/"', '"http://m.example"', '"ftp://m.example/"',
                     '"https://user@m.example/"', '"https://m.example/?q"', "'https://m.example/'",
                     '"\\u00e9"', '"\\uD800"', '"""x"""', '"unterminated']),
)
toml_value = st.one_of(
    toml_string,
    st.sampled_from(["1", "-1", "+5", "0", "01", "1.5", "1e3", "true", "false", "True", "nan",
                     "99999999999999999999", "9223372036854775808", "[]", '["a", "b"]', "[1, 2]",
                     "{}", "{a = 1}", "[[]]", "1979-05-27", "0x10", ""]),
    st.builds(lambda items: "[" + ", ".join(items) + "]", st.lists(toml_string, max_size=3)),
)
toml_line = st.one_of(
    st.builds(lambda k, v: "%s = %s" % (k, v),
              st.sampled_from(["url", "name", "country", "region", "priority", "other", "a.b",
                               '"q"', "", "x y", "url "]), toml_value),
    st.sampled_from(["[[mirror]]", "[mirror]", "[[ mirror ]]", "[[mirror]] # c", "[other]",
                     "[[other]]", "[", "[[", "]]", "", "# comment", "  ", "\t", "=", "\x00", "\x7f"]),
    st.text(max_size=30),
)
toml_documents = st.one_of(st.text(max_size=200), joined(st.lists(toml_line, max_size=14)))


@FUZZ
@given(toml_documents)
def test_mirrors_toml_readers_return_mirrors_or_raise_metadata_error(text):
    for reader in (tomlreader.loads_subset, tomlreader.loads):
        for document in (text, text.encode("utf-8", "surrogatepass")):
            try:
                data = reader(document, "fuzz/mirrors.toml")
            except MetadataError:
                continue
            assert isinstance(data, dict)
            try:
                found = mirrorlist.mirrors_from_data(data, "fuzz/mirrors.toml")
            except MetadataError:
                continue
            assert found and all(urls.base_url_problem(m.url) is None and m.url.endswith("/")
                                 for m in found)


@FUZZ
@given(st.binary(max_size=300))
def test_mirrors_toml_from_arbitrary_bytes_raises_only_metadata_error(data):
    try:
        mirrorlist.parse_mirrors_toml(data, "fuzz/mirrors.toml")
    except MetadataError:
        pass


# -- the online mirror list ----------------------------------------------------------------

list_token = st.one_of(
    st.sampled_from(["[", "]", ",", " ", "\n", "\t", "# comment\n", "#", "'", '"', "u", "U",
                     "'https://a.example/sage/'", '"http://b.example"', "u'https://c.example/'",
                     "'ftp://d.example/'", "'https://e.example/?x'", "'https://u@f.example/'",
                     "'https://g.example:99999/'", "'https://[::1/'", "'https://h.example/a b'",
                     "'https://i.example/\\n'", "'\u00e9'", "''", "None", "(", ")"]),
    st.text(max_size=8),
)
list_documents = st.one_of(st.text(max_size=200),
                           joined(st.lists(list_token, max_size=20), st.just("")))


@FUZZ
@given(st.one_of(list_documents, list_documents.map(lambda t: t.encode("utf-8", "surrogatepass")),
                 st.binary(max_size=200)))
def test_mirror_list_parser_returns_urls_or_raises_metadata_error(text):
    try:
        found = mirrorlist.parse_mirror_list(text, "https://www.sagemath.org/mirror_list")
    except MetadataError:
        return
    assert found and len(set(found)) == len(found)
    assert all(urls.base_url_problem(u) is None and u.endswith("/") for u in found)


# -- HTTP response heads and bodies ---------------------------------------------------------

status_lines = st.one_of(
    st.sampled_from([b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK", b"HTTP/1.1 206 Partial Content",
                     b"HTTP/1.1 302 Found", b"HTTP/1.1 100 Continue", b"HTTP/1.1 204",
                     b"HTTP/1.1 304 Not Modified", b"HTTP/1.1 +200 OK", b"HTTP/1.1 2000 OK",
                     b"HTTP/1.1 20 OK", b"HTTP/1.1 \xd9\xa2\xd9\xa0\xd9\xa0 OK", b"HTTP/1.1",
                     b"ICY 200 OK", b"HTTP/1.1 200 \x1b[2J\x9b", b"", b" HTTP/1.1 200 OK"]),
    st.binary(max_size=30),
)
header_lines = st.one_of(
    st.builds(lambda name, value: name + b": " + value,
              st.sampled_from([b"Content-Length", b"Transfer-Encoding", b"Connection", b"Location",
                               b"Content-Range", b"ETag", b"content-length", b"X-Other", b""]),
              st.one_of(st.sampled_from([b"0", b"5", b"10", b"-1", b"+5", b"5, 5", b"5, 6", b"0x5",
                                         b"99999999999999999999999", b"chunked", b"gzip",
                                         b"gzip, chunked", b"chunked, gzip", b"close",
                                         b"keep-alive", b"bytes 0-4/5", b"\"e\"", b"a\rb"]),
                        st.binary(max_size=12))),
    st.sampled_from([b" folded", b"\tfolded", b"no colon", b":", b"X:\x00"]),
    st.binary(max_size=20),
)
chunk_pieces = st.one_of(
    st.sampled_from([b"5\r\nhello\r\n", b"0\r\n\r\n", b"0\r\nX-T: 1\r\n\r\n", b"a;ext=1\r\n0123456789\r\n",
                     b"-1\r\n", b"ffffffffffffffffff\r\n", b"3\r\nabcdef\r\n", b"\r\n", b"1_0\r\n"]),
    st.binary(max_size=20),
)
bodies = st.one_of(st.binary(max_size=40), st.builds(b"".join, st.lists(chunk_pieces, max_size=6)))
heads = st.builds(
    lambda status, headers, sep, body: sep.join([status] + headers) + sep + sep + body,
    status_lines, st.lists(header_lines, max_size=8), st.sampled_from([b"\r\n", b"\n"]), bodies)


def parse_response(data):
    """Feed ``data`` through a socketpair into the real head and body readers."""
    ours, theirs = socket.socketpair()
    try:
        theirs.sendall(data)
        theirs.shutdown(socket.SHUT_WR)
        conn = http1.Connection(None, None, ours, 5.0)
        status, reason, headers = conn.read_head(compat_monotonic() + 5.0)
        response = http1.Response(conn, "GET", "http://fuzz.invalid/f", status, reason, headers)
        return status, reason, headers, response.read_all(1 << 16)
    finally:
        ours.close()
        theirs.close()


@FUZZ
@given(st.one_of(heads, st.binary(max_size=400)))
def test_http_response_parser_raises_only_source_failure(data):
    try:
        status, reason, headers, body = parse_response(data)
    except SourceFailure:
        return
    assert 100 <= status <= 999
    assert all(" " <= c <= "~" for c in reason)
    for name, value in headers.items():
        assert name == name.lower()
        assert not any(c in value for c in "\r\n\x00")
    assert isinstance(body, bytes)


def test_http_parser_limits_hold_for_inputs_larger_than_a_fuzz_example():
    # Deterministic: the size limits, which random inputs are too small to reach.
    for data in (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 300 + b"\r\n",
                 b"HTTP/1.1 200 OK\r\nX: " + b"a" * 200000,
                 b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + b"T: x\r\n" * 20000):
        # Send from a thread: these exceed a socketpair's buffer.
        ours, theirs = socket.socketpair()
        sender = threading.Thread(target=_send_quietly, args=(theirs, data))
        sender.start()
        try:
            conn = http1.Connection(None, None, ours, 5.0)
            try:
                status, reason, headers = conn.read_head(compat_monotonic() + 5.0)
                http1.Response(conn, "GET", "http://x/", status, reason, headers).read_all()
            except SourceFailure as e:
                assert "too large" in str(e) or "line too long" in str(e), str(e)
            else:
                raise AssertionError("accepted %r..." % data[:40])
        finally:
            ours.close()
            sender.join(10)
            theirs.close()


def _send_quietly(sock, data):
    try:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


# -- redirects: whatever a Location says, only SourceFailure --------------------------------

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _Redirector(object):
    """A loopback server answering every request with a 302 to ``location``."""

    def __init__(self):
        self.location = b"/"
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.stopping:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            try:
                sock.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                sock.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + self.location
                             + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            finally:
                sock.close()

    def stop(self):
        self.stopping = True
        try:
            socket.create_connection(("127.0.0.1", self.port), 5).close()
        except OSError:
            pass
        self.thread.join(10)
        self.listener.close()


locations = st.one_of(
    st.sampled_from([b"/x", b"//127.0.0.1/x", b"http://127.0.0.1:0/x", b"http://127.0.0.1:99999/",
                     b"https://localhost:1/x", b"file:///etc/passwd", b"ftp://127.0.0.1/",
                     b"javascript:alert(1)", b"data:,x", b"http://[::1", b"http://a b/",
                     b"http://u:p@127.0.0.1:1/", b"\xc3\xbc/x", b"http://\xc3\xbc.example/",
                     b"http://xn--/", b"?q=1", b"#f", b"", b"http:", b"http://", b"//"]),
    st.binary(max_size=40).filter(lambda b: b"\n" not in b),
    st.text(alphabet="/:?#@[].%-_abch0123456789 \u00fc", max_size=30).map(lambda t: t.encode("utf-8")),
)


@FUZZ
@given(locations)
def test_any_redirect_location_ends_in_a_response_or_source_failure(redirector, location):
    redirector.location = location
    t = transport.Transport(timeout=5.0)
    try:
        response = t.open("http://127.0.0.1:%d/f.bin" % redirector.port, max_redirects=2)
    except SourceFailure:
        return
    finally:
        t.close()
    response.close()
    raise AssertionError("a redirect loop ended in a response: %r" % response.status)


_real_create_connection = socket.create_connection


def _loopback_only(address, *args, **kwargs):
    """The sandbox: a fuzzed Location may name any host; only loopback is dialled."""
    if address[0] not in LOOPBACK:
        raise socket.error(errno.ECONNREFUSED, "not loopback (fuzz sandbox)")
    return _real_create_connection(address, *args, **kwargs)


@pytest.fixture(scope="module")
def redirector():
    patcher = pytest.MonkeyPatch()
    patcher.setattr(socket, "create_connection", _loopback_only)
    r = _Redirector()
    try:
        yield r
    finally:
        r.stop()
        patcher.undo()
