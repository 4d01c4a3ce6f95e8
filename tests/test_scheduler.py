"""The multi-mirror scheduler's rules, each provoked on loopback mirrors.

Several FaultServers stand for several mirrors (their URL paths name how
each misbehaves); the client is ``sagedl download`` with every mirror in
SAGEDL_MIRRORS, so files and ranges are spread over them (sagedl/plan/scheduler.py,
sagedl/engine/rangefile.py).  Trickling mirrors keep a transfer going long enough
for the others to take part; no test measures time.
"""

import json
import os
import signal
import subprocess
import sys

import pytest

from faultserver import FaultServer
from helpers import REPO, Tree, clean_env, make_data, run_in_process, wait_until
from pyz import interpreter_params, pyz_path, require_interpreter

MIB = 1 << 20
BLOCK = 256 * 1024
# Each of these runs in a few seconds; a broken rule must fail, not hang.
pytestmark = pytest.mark.timeout(90)


def tree_with(tmp_path, sizes):
    t = Tree(tmp_path / "sage")
    t.names = [t.add("p%d" % i, "1.%d" % i, "p%d-VERSION.tar.gz" % i, make_data(size, 40 + i))
               for i, size in enumerate(sizes)]
    return t


def env_for(tmp_path, tree, mirrors, **extra):
    return clean_env(tmp_path, SAGE_ROOT=str(tree.root), SAGEDL_MIRRORS=" ".join(mirrors),
                     **extra)


def assert_fetched(tree):
    for name in tree.names:
        path = tree.root / "upstream" / name
        assert path.read_bytes() == tree.files[name], name
        assert not os.path.exists(str(path) + ".part")
        assert not os.path.exists(str(path) + ".part.json")


def starts_at(request):
    """The first byte a GET asked for (0 without Range)."""
    return int((request.range or "bytes=0-").split("=", 1)[1].split("-", 1)[0])


def starts(server, name):
    return [starts_at(r) for r in server.requests_for(name)]


def test_a_large_file_is_split_over_the_mirrors(tmp_path):
    tree = tree_with(tmp_path, [4 * MIB])
    name = tree.names[0]
    with FaultServer(tree.files) as a, FaultServer(tree.files) as b:
        r = run_in_process(["download", ":all:", "-v"],
                           env_for(tmp_path, tree, [a.url + "/trickle-1000000/",
                                                    b.url + "/trickle-1000000/"]))
        assert r.code == 0, r
        assert_fetched(tree)
        # Both mirrors sent part of it, and together little more than the
        # file: what was in flight when a range was taken over (this
        # server trickles in 100 kB bursts; bench/mirrors.py measures the
        # overhead against mirrors with shaped uplinks).
        sent = [sum(q.body_bytes for q in s.requests_for(name)) for s in (a, b)]
        assert all(sent), sent
        assert sum(sent) <= 1.25 * len(tree.files[name]), sent
    # -v names the mirror of each range.
    assert "from 127.0.0.1:%d" % a.port in r.err and "from 127.0.0.1:%d" % b.port in r.err, r.err


def test_a_mirror_that_corrupts_a_range_is_found_named_and_recorded(tmp_path):
    tree = tree_with(tmp_path, [2 * MIB])
    name = tree.names[0]
    size = len(tree.files[name])
    with FaultServer(tree.files) as liar, FaultServer(tree.files) as honest:
        # The honest mirror is slow, so the liar, fast, takes over all
        # but the first bytes, the corrupt middle byte with them.
        env = env_for(tmp_path, tree, [liar.url + "/corrupt/", honest.url + "/trickle-300000/"])
        r = run_in_process(["download", ":all:"], env)
        assert r.code == 0, r
        assert_fetched(tree)
        label = "127.0.0.1:%d" % liar.port
        assert "did not match" in r.err and label + " is not used any more" in r.err, r.err
        # The good ranges were kept: nobody was asked for the whole file
        # again (a restart from zero), only the liar's ranges were.
        whole = [q for s in (liar, honest) for q in s.requests_for(name)
                 if q.range in (None, "bytes=0-")]
        assert len(whole) <= 1, whole
        assert sum(q.body_bytes for q in honest.requests_for(name)) <= 1.25 * size
    health = json.loads((tmp_path / "cache" / "sagedl" / "health.json").read_text())
    record = health["mirrors"]["http://" + label]
    assert record["ok"] is False and "corrupt" in record["reason"], record


def test_a_mirror_that_ignores_range_serves_whole_files_only(tmp_path):
    tree = tree_with(tmp_path, [3 * MIB, 300000, 300000, 300000])
    with FaultServer(tree.files) as whole, FaultServer(tree.files) as slow:
        # The slow mirror first: it takes the large file, whose tail the
        # fast one would take over if it could.
        env = env_for(tmp_path, tree, [slow.url + "/trickle-600000/", whole.url + "/no-range/"])
        r = run_in_process(["download", ":all:"], env)
        assert r.code == 0, r
        assert_fetched(tree)
        # It may be asked for a range of the large file once, before it
        # showed it ignores Range (a 200); never after.  (Asked for the
        # tail, it sends the file from byte 0, which is thrown away.)
        big = whole.requests_for(tree.names[0])
        assert len([q for q in big if starts_at(q) > 0]) <= 1, big
        assert len(big) <= 2, big
        assert any(q.status == 200 and q.body_bytes == len(tree.files[q.name])
                   for q in whole.requests)                  # still used for whole files


def test_a_stalled_range_is_taken_over_before_its_deadline(tmp_path):
    tree = tree_with(tmp_path, [3 * MIB])
    with FaultServer(tree.files) as stalls, FaultServer(tree.files) as slow:
        # Deadlines far beyond the test's own timeout: only the take-over
        # can finish the file.
        env = env_for(tmp_path, tree, [stalls.url + "/stall-at-300000/",
                                       slow.url + "/trickle-1500000/"])
        r = run_in_process(["download", ":all:", "--timeout", "900", "--low-speed-time", "900"],
                           env)
        assert r.code == 0, r
        assert_fetched(tree)
        assert any(q.stalled for q in stalls.requests), stalls.requests


def test_retry_after_rests_that_mirror_only(tmp_path):
    tree = tree_with(tmp_path, [2 * MIB])
    with FaultServer(tree.files) as limited, FaultServer(tree.files) as other:
        # "once": asked again, it would answer.  One connection each, so
        # the 429 is its only request in flight.
        env = env_for(tmp_path, tree, [limited.url + "/429,once,retry-after-600/",
                                       other.url + "/trickle-1000000/"])
        r = run_in_process(["download", ":all:", "--max-connections-per-mirror", "1"], env)
        assert r.code == 0, r
        assert_fetched(tree)
        # Asked, told to wait (capped at 30 s, far past the run), and not
        # asked again; the other mirror did the work meanwhile.
        assert [q.status for q in limited.requests] == [429], limited.requests
        assert "HTTP 429" in r.err and "no request to it for 30.0s" in r.err, r.err


def _meta(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _in_progress(meta_path):
    meta = _meta(meta_path)
    if not meta:
        return False
    started = [r for r in meta["ranges"] if r[2] > r[0]]
    return len(started) >= 2 and any(r[2] < r[1] for r in started)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX")
def test_kill_9_mid_split_then_every_range_resumes(tmp_path):
    tree = tree_with(tmp_path, [4 * MIB])
    name = tree.names[0]
    size = len(tree.files[name])
    before = _split_partial(tmp_path, tree)
    todo = [(s, e, d) for s, e, d, _ in before["ranges"] if d < e]
    have = sum(d - s for s, e, d, _ in before["ranges"])
    assert have > 0 and len(todo) >= 2, before
    with FaultServer(tree.files) as c, FaultServer(tree.files) as d:
        # --split 1: no take-overs, so every byte sent is one the resume asked for.
        r = run_in_process(["download", ":all:", "--split", "1"],
                           env_for(tmp_path, tree, [c.url + "/ok/", d.url + "/ok/"]))
        assert r.code == 0, r
        assert_fetched(tree)
        asked = starts(c, name) + starts(d, name)
        sent = sum(q.body_bytes for s in (c, d) for q in s.requests_for(name))
    # Every unfinished range continued where NAME.part.json said, and at
    # most one block per range came again (one written but not yet noted).
    for s, e, done in todo:
        assert any(done - BLOCK <= x <= done for x in asked), (s, e, done, asked)
    assert sent <= size - have + len(todo) * BLOCK, (sent, size - have)
    assert "resuming %s" % name in r.err


def test_split_1_never_splits(tmp_path):
    tree = tree_with(tmp_path, [3 * MIB])
    name = tree.names[0]
    with FaultServer(tree.files) as a, FaultServer(tree.files) as b:
        r = run_in_process(["download", ":all:", "--split", "1"],
                           env_for(tmp_path, tree, [a.url + "/trickle-3000000/",
                                                    b.url + "/trickle-3000000/"]))
        assert r.code == 0, r
        assert_fetched(tree)
        assert starts(a, name) + starts(b, name) == [0]


def test_throughput_is_remembered_in_the_health_cache(tmp_path):
    tree = tree_with(tmp_path, [2 * MIB, 2 * MIB])
    with FaultServer(tree.files) as a, FaultServer(tree.files) as b:
        r = run_in_process(["download", ":all:"],
                           env_for(tmp_path, tree, [a.url + "/trickle-1000000/",
                                                    b.url + "/trickle-1000000/"]))
        assert r.code == 0, r
    health = json.loads((tmp_path / "cache" / "sagedl" / "health.json").read_text())
    rates = [rec.get("bps") for rec in health["mirrors"].values()]
    assert len(rates) == 2 and all(isinstance(x, float) and x > 0 for x in rates), health


def test_the_bulk_line_says_how_many_mirrors_are_sending():
    from sagedl.ui.progresstext import format_aggregate_line
    line = format_aggregate_line(3, 40, 10 * MIB, 100 * MIB, 5 * MIB, 0, mirrors=4)
    assert "5.0 MiB/s, 4 mirrors" in line, line
    # Too narrow: the count of mirrors goes first, the percentage stays.
    narrow = format_aggregate_line(3, 40, 10 * MIB, 100 * MIB, 5 * MIB, 0, mirrors=4,
                                   width=len(line))
    assert "mirrors" not in narrow and "10%" in narrow, narrow


@pytest.mark.parametrize("fault,code,words", [("404", 3, "HTTP 404"),
                                              ("corrupt", 4, "checksum mismatch")])
def test_what_no_mirror_can_finish_fails_as_the_one_source_engine_says(tmp_path, fault, code,
                                                                        words):
    tree = tree_with(tmp_path, [MIB])
    with FaultServer(tree.files) as a, FaultServer(tree.files) as b:
        r = run_in_process(["download", ":all:"],
                           env_for(tmp_path, tree, [a.url + "/%s/" % fault,
                                                    b.url + "/%s/" % fault]))
    assert r.code == code, r
    assert "could not download %s" % tree.names[0] in r.err and words in r.err, r.err
    assert not (tree.root / "upstream" / tree.names[0]).exists()


def _split_partial(tmp_path, tree):
    """kill -9 a split download once two ranges have started; NAME.part.json's ranges."""
    meta_path = str(tree.root / "upstream" / (tree.names[0] + ".part.json"))
    with FaultServer(tree.files) as a, FaultServer(tree.files) as b:
        env = env_for(tmp_path, tree, [a.url + "/trickle-300000/", b.url + "/trickle-300000/"])
        env["PYTHONPATH"] = REPO
        p = subprocess.Popen([sys.executable, "-m", "sagedl", "download", ":all:"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: _in_progress(meta_path), timeout=60)
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
    return _meta(meta_path)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX")
def test_a_split_partial_met_by_the_one_source_engine_is_never_appended_to(tmp_path):
    # One mirror: download.py's engine, which must not take a file with
    # holes for a prefix to continue.
    tree = tree_with(tmp_path, [4 * MIB])
    assert _split_partial(tmp_path, tree)
    with FaultServer(tree.files) as c:
        r = run_in_process(["download", ":all:"], env_for(tmp_path, tree, [c.url + "/ok/"]))
    assert r.code == 0, r
    assert_fetched(tree)


@pytest.mark.parametrize("label", interpreter_params())
def test_the_split_and_the_liar_hunt_under_every_interpreter(label, tmp_path):
    # The pyz under each interpreter: threads, ranges at offsets, and a
    # checksum failure traced to the mirror that sent the bad range.  The
    # liar spoils every range it sends, so which ranges it ends up with
    # (a matter of timing) does not decide whether there is a hunt.
    python = require_interpreter(label)
    tree = tree_with(tmp_path, [MIB, 300000])
    with FaultServer(tree.files) as liar, FaultServer(tree.files) as honest:
        env = env_for(tmp_path, tree, [liar.url + "/corrupt-every/",
                                       honest.url + "/trickle-600000/"])
        p = subprocess.run([python, pyz_path(), "download", ":all:"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert p.returncode == 0, p.stderr
    assert_fetched(tree)
    assert b"did not match" in p.stderr, p.stderr
