"""The engine against a hostile server: every fault ends with the right bytes
or a clear failure, and never a wrong file under the final name."""

import json
import os

import pytest

from helpers import assert_one_line_error, make_data
from sagedl.errors import (EXIT_CHECKSUM, EXIT_NETWORK, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE)


def fetch(run_cli, dest, payload, *urls, **kw):
    """sagedl URL DEST --sha256 ... with extra URLs given as --mirror bases."""
    first, rest = urls[0], urls[1:]
    argv = [first, dest, "--sha256", payload.sha256, "--progress", "lines"]
    for u in rest:
        argv += ["--mirror", u.rsplit("/", 1)[0] + "/"]
    argv += kw.pop("extra", [])
    return run_cli(*argv, **kw)


def only_final(tmp_path, name):
    """The destination directory holds the final file and nothing else."""
    return sorted(os.listdir(tmp_path / "out")) == [name]


@pytest.fixture
def out(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def test_plain_download_verifies_and_leaves_only_the_file(run_cli, server, payload, out, tmp_path):
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin"))
    assert r.code == EXIT_OK, r
    assert (out / "f.bin").read_bytes() == payload.data
    assert only_final(tmp_path, "f.bin")
    req = server.requests_for("f.bin")[0]
    assert req.headers.get("accept-encoding") == "identity"


def test_second_run_uses_the_verified_file_without_network(run_cli, server, payload, out):
    assert fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin")).code == 0
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin"))
    assert r.code == 0, r
    assert len(server.requests_for("f.bin")) == 1
    assert r.err.startswith("Using cached file %s" % (out / "f.bin"))


def test_reset_midway_resumes_from_next_source_with_range(run_cli, server, payload, out):
    r = fetch(run_cli, out / "f.bin", payload,
              server.url_for("f.bin", "reset-at-300000"), server.url_for("f.bin", "ok"))
    assert r.code == EXIT_OK, r
    assert (out / "f.bin").read_bytes() == payload.data
    second = server.requests_for("f.bin")[1]
    assert second.range is not None and second.range.startswith("bytes=")
    offset = int(second.range[len("bytes="):-1])
    assert 0 < offset <= 300000
    assert second.status == 206


def test_reset_on_only_source_keeps_partial_and_next_run_resumes(run_cli, server, payload, out):
    url = server.url_for("f.bin", "reset-at-400000,once")
    r = fetch(run_cli, out / "f.bin", payload, url)
    assert r.code == EXIT_NETWORK, r
    assert_one_line_error(r.err)
    assert not (out / "f.bin").exists()
    assert (out / "f.bin.part").exists() and (out / "f.bin.part.json").exists()
    r = fetch(run_cli, out / "f.bin", payload, url)
    assert r.code == EXIT_OK, r
    assert (out / "f.bin").read_bytes() == payload.data
    resumed = server.requests_for("f.bin")[1]
    assert resumed.range == "bytes=%d-" % os.path.getsize(out / "f.bin") or resumed.range.startswith("bytes=")
    assert resumed.headers.get("if-range")  # same URL: the validator is sent
    assert resumed.status == 206 and resumed.start > 0


def test_truncated_body_is_a_failure_not_a_file(run_cli, server, payload, out):
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "close-at-1000"))
    assert r.code == EXIT_NETWORK or r.code == 1, r
    assert "short body" in r.err
    assert not (out / "f.bin").exists()


def test_truncated_body_then_good_source(run_cli, server, payload, out):
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "close-at-5000"),
              server.url_for("f.bin"))
    assert r.code == 0, r
    assert (out / "f.bin").read_bytes() == payload.data


def test_stalled_source_is_abandoned_for_the_next(run_cli, server, payload, out):
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "stall-at-1000"),
              server.url_for("f.bin"), extra=["--timeout", "1"])
    assert r.code == 0, r
    assert "read timeout" in r.err
    assert (out / "f.bin").read_bytes() == payload.data


@pytest.mark.timeout(60)   # without the stall rule this transfer trickles for minutes
def test_trickling_source_is_abandoned_by_the_stall_rule(run_cli, server, payload, out):
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "trickle-200"),
              server.url_for("f.bin"),
              extra=["--low-speed-limit", "100000", "--low-speed-time", "1"])
    assert r.code == 0, r
    assert "stalled" in r.err
    assert (out / "f.bin").read_bytes() == payload.data


def test_held_connection_times_out_on_the_response_head(run_cli, server, payload, out):
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "slow-headers"),
              extra=["--timeout", "1"])
    assert r.code == EXIT_NETWORK, r
    assert_one_line_error(r.err)
    assert not (out / "f.bin").exists()


def test_corrupt_source_fails_checksum_then_next_source(run_cli, server, payload, out, tmp_path):
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "corrupt"),
              server.url_for("f.bin"))
    assert r.code == 0, r
    assert "checksum mismatch" in r.err
    assert (out / "f.bin").read_bytes() == payload.data
    assert only_final(tmp_path, "f.bin")
    # The corrupt partial was discarded: the good source sent the file from 0.
    assert server.requests_for("f.bin")[1].range is None


def test_corrupt_everywhere_exits_checksum_and_leaves_nothing(run_cli, server, payload, out):
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "corrupt"))
    assert r.code == EXIT_CHECKSUM, r
    assert_one_line_error(r.err, "checksum mismatch")
    assert "expected %s" % payload.sha256 in r.err
    assert os.listdir(out) == []


def test_checksum_failure_after_resume_starts_from_scratch(run_cli, server, payload, out):
    # A poisoned partial: right length prefix, wrong bytes.
    (out / "f.bin.part").write_bytes(b"\0" * 100000)
    (out / "f.bin.part.json").write_text(json.dumps(
        {"url": "x", "sha256": payload.sha256, "sha1": None, "total": payload.size}))
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin"))
    assert r.code == 0, r
    assert (out / "f.bin").read_bytes() == payload.data
    reqs = server.requests_for("f.bin")
    assert reqs[0].range == "bytes=100000-"
    assert reqs[1].range is None  # the retry from scratch


def test_server_ignoring_range_restarts_from_zero(run_cli, server, payload, out):
    (out / "f.bin.part").write_bytes(payload.data[:50000])
    (out / "f.bin.part.json").write_text(json.dumps(
        {"url": "x", "sha256": payload.sha256, "sha1": None, "total": payload.size}))
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "no-range"))
    assert r.code == 0, r
    assert "ignored the range" in r.err
    assert (out / "f.bin").read_bytes() == payload.data


@pytest.mark.parametrize("fault", ["bad-content-range", "wrong-total"])
def test_lying_content_range_is_refused_and_partial_kept(run_cli, server, payload, out, fault):
    (out / "f.bin.part").write_bytes(payload.data[:50000])
    (out / "f.bin.part.json").write_text(json.dumps(
        {"url": "x", "sha256": payload.sha256, "sha1": None, "total": payload.size}))
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", fault))
    assert r.code != 0, r
    assert_one_line_error(r.err, "Content-Range")
    assert not (out / "f.bin").exists()
    assert (out / "f.bin.part").read_bytes() == payload.data[:50000]
    # ... and a good source continues the same partial.
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin"))
    assert r.code == 0, r
    assert server.requests_for("f.bin")[-1].range == "bytes=50000-"
    assert (out / "f.bin").read_bytes() == payload.data


def test_416_for_a_complete_partial_is_verified_not_trusted(run_cli, server, payload, out):
    (out / "f.bin.part").write_bytes(payload.data)
    (out / "f.bin.part.json").write_text(json.dumps(
        {"url": "x", "sha256": payload.sha256, "sha1": None, "total": payload.size}))
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "always-416"))
    assert r.code == 0, r
    assert (out / "f.bin").read_bytes() == payload.data


def test_416_for_a_bad_partial_restarts(run_cli, server, payload, out):
    bad = bytearray(payload.data)
    bad[10] ^= 1
    (out / "f.bin.part").write_bytes(bytes(bad))
    (out / "f.bin.part.json").write_text(json.dumps(
        {"url": "x", "sha256": payload.sha256, "sha1": None, "total": payload.size}))
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "always-416"))
    assert r.code == 0, r
    assert (out / "f.bin").read_bytes() == payload.data
    assert server.requests_for("f.bin")[-1].range is None


def test_if_range_mismatch_gets_full_body(run_cli, server, payload, out):
    url = server.url_for("f.bin")
    (out / "f.bin.part").write_bytes(payload.data[:1000])
    (out / "f.bin.part.json").write_text(json.dumps(
        {"url": url, "etag": '"stale"', "sha256": payload.sha256, "sha1": None,
         "total": payload.size}))
    r = fetch(run_cli, out / "f.bin", payload, url)
    assert r.code == 0, r
    req = server.requests_for("f.bin")[0]
    assert req.headers["if-range"] == '"stale"' and req.status == 200
    assert (out / "f.bin").read_bytes() == payload.data


def test_404_everywhere_is_not_found(run_cli, server, payload, out):
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "404"),
              server.url_for("f.bin", "410"))
    assert r.code == EXIT_NOT_FOUND, r
    assert_one_line_error(r.err, "HTTP 410")
    # What each source did, each said once: the first in the failover note,
    # the last in the error, which refers to the note.
    assert r.err.count("HTTP 404") == 1 and r.err.count("HTTP 410") == 1, r.err
    assert "(and the failure above)" in r.err
    assert os.listdir(out) == []
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "404"),
              server.url_for("f.bin", "410"), extra=["-q"])
    assert_one_line_error(r.err, "HTTP 404")     # -q shows no notes: the error lists all
    assert "HTTP 410" in r.err and "above" not in r.err


def test_503_is_retried_on_the_same_source(run_cli, server, payload, out):
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "503,once"))
    assert r.code == 0, r
    statuses = [q.status for q in server.requests_for("f.bin")]
    assert statuses == [503, 200]


def test_429_retries_are_bounded_then_failover(run_cli, server, payload, out):
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "429"),
              server.url_for("f.bin"), extra=["--retries", "2"])
    assert r.code == 0, r
    statuses = [q.status for q in server.requests_for("f.bin")]
    assert statuses == [429, 429, 429, 200]


def test_html_page_instead_of_file_is_a_source_failure(run_cli, server, payload, out):
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "html"),
              server.url_for("f.bin"))
    assert r.code == 0, r
    assert "HTML page" in r.err
    assert (out / "f.bin").read_bytes() == payload.data


def test_body_longer_than_expected_is_cut_off(run_cli, server, payload, out):
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "no-length,long-5000"),
              extra=["--size", str(payload.size)])
    assert r.code != 0, r
    assert_one_line_error(r.err, "more than")
    assert not (out / "f.bin").exists()


def test_gzip_encoding_is_not_decoded(run_cli, server, payload, out):
    # The bytes hashed are the bytes served: a gzip-encoded body fails the checksum.
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "gzip"),
              server.url_for("f.bin"))
    assert r.code == 0, r
    assert "checksum mismatch" in r.err
    assert (out / "f.bin").read_bytes() == payload.data


def test_huge_headers_are_refused(run_cli, server, payload, out):
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "huge-headers"),
              server.url_for("f.bin"))
    assert r.code == 0, r
    assert "head too large" in r.err


def test_redirect_is_followed_and_loop_is_bounded(run_cli, server, payload, out):
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin", "redirect"))
    assert r.code == 0, r
    r = fetch(run_cli, out / "g.bin", payload, server.url_for("f.bin", "redirect-loop"))
    assert r.code != 0
    assert_one_line_error(r.err, "too many redirects")


def test_existing_bad_file_is_set_aside_and_refetched(run_cli, server, payload, out):
    (out / "f.bin").write_bytes(b"not the file")
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin"))
    assert r.code == 0, r
    assert (out / "f.bin").read_bytes() == payload.data
    assert (out / "f.bin.bad").read_bytes() == b"not the file"


def test_without_checksum_a_url_downloads_and_resumes_only_from_same_url(run_cli, server, payload, out):
    url = server.url_for("f.bin", "reset-at-200000,once")
    r = run_cli(url, out / "f.bin")
    assert r.code == EXIT_NETWORK
    r = run_cli(url, out / "f.bin")
    assert r.code == 0, r
    assert (out / "f.bin").read_bytes() == payload.data
    assert server.requests_for("f.bin")[1].range.startswith("bytes=")


def test_url_without_destination_writes_content_to_stdout(tmp_path, server, payload):
    from helpers import clean_env
    import subprocess
    env = clean_env(tmp_path)
    env["PYTHONPATH"] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run([__import__("sys").executable, "-m", "sagedl", server.url_for("f.bin"),
                        "--sha256", payload.sha256, "-q"], env=env, cwd=str(tmp_path),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout == payload.data
    assert p.stderr == b""


def test_quiet_prints_nothing_on_success(run_cli, server, payload, out):
    r = run_cli(server.url_for("f.bin"), out / "f.bin", "--sha256", payload.sha256, "--quiet")
    assert (r.code, r.out, r.err) == (0, "", "")


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x.tar.gz",
                                 "gopher://127.0.0.1/x", "http://127.0.0.1:99999/x"])
def test_foreign_or_invalid_urls_are_usage_errors(run_cli, url, out):
    r = run_cli(url, out / "x")
    assert r.code == EXIT_USAGE, r
    assert_one_line_error(r.err)
    assert os.listdir(out) == []


def test_credentials_never_appear_in_messages(run_cli, server, payload, out):
    url = server.url_for("f.bin", "404").replace("http://", "http://user:s3cret@")
    r = run_cli(url, out / "f.bin")
    assert r.code == EXIT_NOT_FOUND
    assert "s3cret" not in r.err and "user" not in r.err


def test_bad_arguments_are_one_line_usage_errors(run_cli):
    r = run_cli("--timeout", "abc", "x.tar.gz")
    assert r.code == EXIT_USAGE
    assert_one_line_error(r.err)
    r = run_cli("--sha256", "xyz", "http://127.0.0.1:1/f.bin", "/tmp/x")
    assert r.code == EXIT_USAGE
    assert_one_line_error(r.err, "sha256")


def test_large_file_streams_in_blocks(run_cli, out):
    from faultserver import FaultServer
    import hashlib
    data = make_data(12 << 20, seed=7)
    with FaultServer({"big.bin": data}) as s:
        r = run_cli(s.url_for("big.bin"), out / "big.bin", "--sha256",
                    hashlib.sha256(data).hexdigest(), "-q")
    assert r.code == 0, r
    assert (out / "big.bin").read_bytes() == data


def test_verified_file_is_used_without_taking_the_lock(run_cli, server, payload, out, monkeypatch):
    # (A read-only distfiles directory could not even create the lock file;
    # root ignores chmod, so prove directly that no lock is taken.)
    import sagedl.engine.download

    class NoLock(object):
        def __init__(self, *a, **kw):
            raise AssertionError("a verified file must not need the lock")
    monkeypatch.setattr(sagedl.engine.download, "FileLock", NoLock)
    (out / "f.bin").write_bytes(payload.data)
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin"))
    assert r.code == 0, r
    assert server.requests_for("f.bin") == []


def test_a_bad_existing_file_is_hashed_once(run_cli, server, payload, out, monkeypatch):
    import sagedl.engine.download
    hashed = []
    real = sagedl.engine.download.verify_file

    def counted(path, expected):
        hashed.append(path)
        return real(path, expected)
    monkeypatch.setattr(sagedl.engine.download, "verify_file", counted)
    (out / "f.bin").write_bytes(b"x" * 1000)
    r = fetch(run_cli, out / "f.bin", payload, server.url_for("f.bin"))
    assert r.code == 0, r
    assert hashed == [str(out / "f.bin")]      # before the lock; under it, reused
    assert (out / "f.bin.bad").read_bytes() == b"x" * 1000
