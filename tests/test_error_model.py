"""One error model: what each source did decides the final message, hint and
exit code in one place (errors.failure_error), from typed kinds and causes,
never from the words of a message; errors are not changed once made."""

import os
import re

import pytest

from helpers import assert_one_line_error
from sagedl import errors
from sagedl.errors import (CAUSE_BUSY, CAUSE_DNS_FAILED, CAUSE_REFUSED, CAUSE_SILENT,
                           EXIT_CHECKSUM, EXIT_FAILURE, EXIT_METADATA, EXIT_NETWORK,
                           EXIT_NOT_FOUND, MetadataError, SourceFailure, UsageError,
                           explain, failure_error, network_hint)

pytestmark = pytest.mark.timeout(60)

SAGEDL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "sagedl")
F = SourceFailure


def failure(kind, message="x", **kw):
    return F(kind, message, **kw)


NOT_FOUND = failure(F.KIND_NOT_FOUND, "HTTP 404 Not Found")
CHECKSUM = failure(F.KIND_CHECKSUM, "checksum mismatch: sha256 1234...",
                   detail="sha256 expected aaaa, got bbbb")
NETWORK = failure(F.KIND_NETWORK, "cannot connect to h:80: Connection refused", cause=CAUSE_REFUSED)
BUSY = failure(F.KIND_TRANSIENT, "HTTP 503 Service Unavailable", cause=CAUSE_BUSY)
HTTP = failure(F.KIND_HTTP, "HTTP 500 Internal Server Error")


@pytest.mark.parametrize("failures, code", [
    ([], EXIT_NOT_FOUND),
    ([NOT_FOUND, NOT_FOUND], EXIT_NOT_FOUND),
    ([CHECKSUM, CHECKSUM], EXIT_CHECKSUM),
    # Every source that had the file served wrong bytes: the bytes are the problem.
    ([NOT_FOUND, CHECKSUM], EXIT_CHECKSUM),
    # The source that did not answer may have had the right bytes: not "checksum".
    ([NETWORK, CHECKSUM], EXIT_FAILURE),
    ([NETWORK, BUSY], EXIT_NETWORK),
    ([NOT_FOUND, NETWORK], EXIT_FAILURE),
    ([HTTP], EXIT_FAILURE),
])
def test_the_exit_code_follows_what_every_source_did(failures, code):
    e = failure_error([("s%d" % i, f) for i, f in enumerate(failures)], "f.tar.gz")
    assert e.exit_code == code
    assert str(e).startswith("could not download f.tar.gz") or not failures


def test_wrong_bytes_beside_a_network_failure_still_carry_the_digests():
    e = failure_error([("a", NETWORK), ("b", CHECKSUM)], "f.tar.gz")
    assert e.hint.startswith("sha256 expected aaaa, got bbbb; ")


def test_the_network_hint_comes_from_the_cause_not_the_words():
    # "refused" in a message is no cause: a proxy refusing CONNECT is not a closed port.
    worded = failure(F.KIND_NETWORK, "proxy refused CONNECT to h:443: 403 Forbidden")
    assert network_hint([worded]) == errors.GENERIC_NETWORK_HINT
    typed = failure(F.KIND_NETWORK, "whatever the words", cause=CAUSE_REFUSED)
    assert network_hint([typed]) == errors.CAUSE_ADVICE[CAUSE_REFUSED]
    assert "did not resolve" in network_hint([failure(F.KIND_NETWORK, cause=CAUSE_DNS_FAILED)])
    # Causes whose advice differs: the generic hint.
    mixed = [typed, failure(F.KIND_NETWORK, cause=CAUSE_SILENT)]
    assert network_hint(mixed) == errors.GENERIC_NETWORK_HINT


def test_a_hint_every_failure_gives_wins():
    tls = [failure(F.KIND_NETWORK, hint="use --ca-bundle FILE", cause=CAUSE_REFUSED)] * 2
    assert network_hint(tls) == "use --ca-bundle FILE"


def test_explain_makes_the_error_again_with_the_callers_facts():
    e = failure_error([("a", CHECKSUM)], "f.tar.gz")
    assert e.hint.endswith(errors.SAGE_CHECKSUM_ADVICE)
    url = explain(e, errors.URL_CHECKSUM_ADVICE)
    assert url is not e and url.hint.endswith(errors.URL_CHECKSUM_ADVICE)
    assert (str(url), url.exit_code) == (str(e), e.exit_code)
    assert e.hint.endswith(errors.SAGE_CHECKSUM_ADVICE)        # the first one is unchanged
    offline = explain(failure_error([("a", NETWORK)], "f"), verdict="the network looks unreachable")
    assert offline.hint.startswith("the network looks unreachable; ")
    plain = UsageError("bad")
    assert explain(plain, verdict="v") is plain


def test_a_malformed_metadata_file_is_not_a_usage_error():
    e = MetadataError("/t/build/pkgs/x/checksums.ini", 2, "junk")
    assert not isinstance(e, UsageError) and e.exit_code == EXIT_METADATA
    assert str(e) == "/t/build/pkgs/x/checksums.ini:2: junk"
    with_hint = e.with_hint("fix it")
    assert (str(with_hint), with_hint.hint, e.hint) == (str(e), "fix it", None)


# Attributes of errors and failures that used to be set after construction
# and read back with getattr: all are constructor arguments now.
ERROR_FIELDS = ("hint", "brief", "cause", "detail", "failed", "exit_code")


def test_no_error_is_changed_after_it_is_made():
    offences = []
    assign = re.compile(r"\b(?!self\b)(\w+)\.(%s)\s*=(?!=)" % "|".join(ERROR_FIELDS))
    read_back = re.compile(r"getattr\([^,]+,\s*[\"'](%s)[\"']" % "|".join(ERROR_FIELDS))
    found = [os.path.relpath(os.path.join(top, n), SAGEDL)
             for top, _, files in os.walk(SAGEDL) for n in files]
    for name in sorted(found):
        if name.endswith(".py"):
            with open(os.path.join(SAGEDL, name)) as f:
                for lineno, line in enumerate(f, 1):
                    if assign.search(line) or read_back.search(line):
                        offences.append("%s:%d: %s" % (name, lineno, line.strip()))
    assert offences == []


def test_no_failure_is_classified_by_its_words():
    # The causes are typed where a failure happens; errors.py matches no text.
    with open(os.path.join(SAGEDL, "errors.py")) as f:
        source = f.read()
    assert not re.search(r"\bin\s+(str\(\w+\)|text|message)\b", source)
    assert ".lower()" not in source


# -- the same, end to end ---------------------------------------------------------
def fetch(run_cli, out, payload, *urls):
    argv = [urls[0], out / "f.bin", "--sha256", payload.sha256, "--progress", "none"]
    for u in urls[1:]:
        argv += ["--mirror", u.rsplit("/", 1)[0] + "/"]
    return run_cli(*argv)


def test_a_404_and_wrong_bytes_exit_4_and_say_what_each_source_did(run_cli, server, payload,
                                                                   tmp_path):
    r = fetch(run_cli, tmp_path, payload, server.url_for("f.bin", "404"),
              server.url_for("f.bin", "corrupt"))
    assert r.code == EXIT_CHECKSUM, r
    assert_one_line_error(r.err, "could not download f.bin")
    assert "HTTP 404" in r.err and "checksum mismatch" in r.err
    assert not (tmp_path / "f.bin").exists()


def test_wrong_bytes_and_a_dead_server_exit_1(run_cli, server, payload, tmp_path):
    r = fetch(run_cli, tmp_path, payload, "http://127.0.0.1:9/f.bin",
              server.url_for("f.bin", "corrupt"))
    assert r.code == EXIT_FAILURE, r
    assert "checksum mismatch" in r.err and "127.0.0.1:9" in r.err
    assert "expected %s" % payload.sha256 in r.err       # the digests, in the hint
