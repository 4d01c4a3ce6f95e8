"""The scheduler on the default path: Sage's public mirror list, probed and
ranked, the release hosts named before it in .upstream.d, and $SAGE_SERVER
(sagedl/plan/spread.py's pool).

The tree is a real Sage tree's shape: an .upstream.d line names the
mirror_list, which a loopback server serves; the mirrors it lists are
loopback FaultServers (their URL paths name how each behaves).  Nothing
names a mirror on the command line or in $SAGEDL_MIRRORS.  Trickling
mirrors keep a transfer going long enough for the others to take part; no
test measures time.
"""

import socket
import subprocess

import pytest

from faultserver import FaultServer
from helpers import Tree, clean_env, make_data, run_in_process
from pyz import interpreter_params, pyz_path, require_interpreter

MIB = 1 << 20
pytestmark = pytest.mark.timeout(90)


def tree_with(tmp_path, sizes):
    t = Tree(tmp_path / "sage")
    t.names = [t.add("p%d" % i, "1.%d" % i, "p%d-VERSION.tar.gz" % i, make_data(size, 70 + i))
               for i, size in enumerate(sizes)]
    return t


class MirrorList(object):
    """A loopback server for Sage's mirror_list, named by the tree's
    .upstream.d as Sage's own tree names www.sagemath.org's.  The user's
    mirrors.toml (clean_env's XDG_CONFIG_HOME) lists the same mirrors: Sage's order
    reaches the configured list after that one, and it must never be the
    shipped list of real mirrors."""

    def __init__(self, tree, mirrors, configured=None):
        text = "# Sage's mirror list, for a test\n[%s]\n" % ", ".join("'%s'" % m for m in mirrors)
        self.server = FaultServer({"mirror_list": text.encode("ascii")})
        self.tree = tree
        self.mirrors = mirrors
        self.configured = mirrors if configured is None else configured
        self.config = tree.root.parent / "config" / "sagedl"

    def __enter__(self):
        self.server.__enter__()
        d = self.tree.root / ".upstream.d"
        d.mkdir(exist_ok=True)
        (d / "30-mirror_list").write_text(self.server.url + "/mirror_list\n")
        self.config.mkdir(parents=True, exist_ok=True)
        (self.config / "mirrors.toml").write_text("".join(
            '[[mirror]]\nurl = "%s"\nname = "m%d"\npriority = %d\n' % (u, i, 100 - i)
            for i, u in enumerate(self.configured)))
        return self.server

    def __exit__(self, *exc):
        return self.server.__exit__(*exc)


def release_lines(tree, *bases):
    """Release hosts in Sage's flat layout (base + file name), named before
    the mirror_list as Sage's tree names GitHub's release pages."""
    d = tree.root / ".upstream.d"
    d.mkdir(exist_ok=True)
    (d / "20-releases").write_text("".join(b + "\n" for b in bases))


def env_for(tmp_path, tree, **extra):
    # No SAGEDL_MIRRORS: the default path.
    return clean_env(tmp_path, SAGE_ROOT=str(tree.root), **extra)


def closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gets(server, name):
    return [r for r in server.requests_for(name) if r.method == "GET"]


def sent(server, name):
    return sum(r.body_bytes for r in gets(server, name))


def assert_fetched(tree):
    for name in tree.names:
        assert (tree.root / "upstream" / name).read_bytes() == tree.files[name], name


def test_one_large_file_is_split_over_the_ranked_public_mirrors(tmp_path):
    tree = tree_with(tmp_path, [4 * MIB])
    name = tree.names[0]
    with FaultServer(tree.files) as a, FaultServer(tree.files) as b, \
            FaultServer(tree.files) as c:
        mirrors = [s.url + "/trickle-700000/" for s in (a, b, c)]
        with MirrorList(tree, mirrors):
            r = run_in_process(["download", name, "-v"], env_for(tmp_path, tree))
        assert r.code == 0, r
        assert_fetched(tree)
        shares = [sent(s, name) for s in (a, b, c)]
    # Every listed mirror sent part of the one file, and -v says which
    # mirror served which range.
    assert all(shares), shares
    for s in (a, b, c):
        assert "from 127.0.0.1:%d" % s.port in r.err, r.err


def test_a_dead_mirror_in_the_list_is_skipped(tmp_path):
    tree = tree_with(tmp_path, [2 * MIB])
    name = tree.names[0]
    dead = "http://127.0.0.1:%d/" % closed_port()
    with FaultServer(tree.files) as a, FaultServer(tree.files) as b:
        listed = [dead, a.url + "/trickle-700000/", b.url + "/trickle-700000/"]
        with MirrorList(tree, listed):
            r = run_in_process(["download", name, "-v"], env_for(tmp_path, tree))
        assert r.code == 0, r
        assert_fetched(tree)
        assert sent(a, name) and sent(b, name)
    assert dead.split("//")[1].rstrip("/") not in r.err.replace("sources for", ""), r.err


def test_a_mirror_the_probe_did_not_wait_for_gets_no_request(tmp_path):
    # Three mirrors answer the ranking probe at once; the fourth holds every
    # request, so the probe stops without it (an early stop, not a
    # failure): never in the pool, where a connection hung on it would hold
    # the file it took.
    # Large enough for more ranges than the three have connections.
    tree = tree_with(tmp_path, [12 * MIB])
    name = tree.names[0]
    with FaultServer(tree.files) as a, FaultServer(tree.files) as b, \
            FaultServer(tree.files) as c, FaultServer(tree.files) as slow:
        # /hold/probe/: the probe's HEAD of the base URL is held too.
        listed = [s.url + "/trickle-700000/" for s in (a, b, c)] + [slow.url + "/hold/probe/"]
        with MirrorList(tree, listed):
            r = run_in_process(["download", name], env_for(tmp_path, tree))
        slow.release()
        assert r.code == 0, r
        assert_fetched(tree)
        assert gets(slow, name) == []


def test_the_next_list_is_not_probed_when_the_first_gave_two_mirrors(tmp_path):
    tree = tree_with(tmp_path, [2 * MIB])
    with FaultServer(tree.files) as a, FaultServer(tree.files) as b, \
            FaultServer(tree.files) as spare:
        with MirrorList(tree, [a.url + "/", b.url + "/"], configured=[spare.url + "/"]):
            r = run_in_process(["download", tree.names[0]], env_for(tmp_path, tree))
        assert r.code == 0, r
        assert_fetched(tree)
        assert spare.requests == []


def test_the_bulk_line_counts_the_public_mirrors_sending(tmp_path, monkeypatch):
    from sagedl.ui.aggregate import AggregateProgress
    counts = []
    original = AggregateProgress.set_mirrors

    def recorded(self, count):
        counts.append(count)
        original(self, count)
    monkeypatch.setattr(AggregateProgress, "set_mirrors", recorded)
    tree = tree_with(tmp_path, [2 * MIB, 2 * MIB])
    with FaultServer(tree.files) as a, FaultServer(tree.files) as b:
        listed = [a.url + "/trickle-700000/", b.url + "/trickle-700000/"]
        with MirrorList(tree, listed):
            r = run_in_process(["download", ":all:"], env_for(tmp_path, tree))
    assert r.code == 0, r
    assert_fetched(tree)
    assert max(counts) == 2, counts


def test_sage_server_that_has_the_file_costs_no_probe_of_the_public_list(tmp_path):
    tree = tree_with(tmp_path, [2 * MIB])
    name = tree.names[0]
    with FaultServer(tree.files) as site, FaultServer(tree.files) as a, \
            FaultServer(tree.files) as b:
        with MirrorList(tree, [a.url + "/", b.url + "/"]) as listing:
            r = run_in_process(["download", name],
                               env_for(tmp_path, tree, SAGE_SERVER=site.url + "/ok/"))
        assert r.code == 0, r
        assert_fetched(tree)
        assert sent(site, name) == len(tree.files[name])
        # Neither the list nor its mirrors heard a word: no fetch, no probe.
        assert listing.requests == [] and a.requests == [] and b.requests == []
    assert not (tmp_path / "cache" / "sagedl" / "ranking.json").exists()


def test_a_release_host_ahead_of_the_list_takes_part(tmp_path):
    tree = tree_with(tmp_path, [4 * MIB])
    name = tree.names[0]
    with FaultServer(tree.files) as release, FaultServer(tree.files) as a, \
            FaultServer(tree.files) as b:
        release_lines(tree, release.url + "/trickle-700000/")
        with MirrorList(tree, [a.url + "/trickle-700000/", b.url + "/trickle-700000/"]) as listing:
            r = run_in_process(["download", name, "-v"], env_for(tmp_path, tree))
        assert r.code == 0, r
        assert_fetched(tree)
        # The release host sent part of the file, asked in its own layout.
        assert sent(release, name), r.err
        assert {q.path for q in gets(release, name)} == {"/trickle-700000/" + name}
        # The list is fetched and probed all the same (spread.py says why).
        assert listing.requests


def test_what_a_release_host_lacks_comes_from_the_mirrors_asking_it_once(tmp_path):
    tree = tree_with(tmp_path, [2 * MIB])
    name = tree.names[0]
    with FaultServer(tree.files) as release, FaultServer(tree.files) as a, \
            FaultServer(tree.files) as b:
        release_lines(tree, release.url + "/404/")
        with MirrorList(tree, [a.url + "/trickle-700000/", b.url + "/trickle-700000/"]):
            r = run_in_process(["download", name], env_for(tmp_path, tree))
        assert r.code == 0, r
        assert_fetched(tree)
        # Whether its 404 answered the opening request or the size probe,
        # it is not asked for that file again, nor by download.py.
        assert len(gets(release, name)) == 1
        assert sent(a, name) + sent(b, name) >= len(tree.files[name])


def test_a_line_after_the_mirror_list_stays_a_fallback(tmp_path):
    tree = tree_with(tmp_path, [2 * MIB])
    name = tree.names[0]
    with FaultServer(tree.files) as later, FaultServer(tree.files) as a, \
            FaultServer(tree.files) as b:
        (tree.root / ".upstream.d").mkdir()
        (tree.root / ".upstream.d" / "40-after-the-list").write_text(later.url + "/\n")
        with MirrorList(tree, [a.url + "/", b.url + "/"]):
            r = run_in_process(["download", name], env_for(tmp_path, tree))
        assert r.code == 0, r
        assert_fetched(tree)
        # Sage asks it only after the mirrors: the mirrors had the file.
        assert later.requests == []


def test_with_sage_server_the_release_hosts_stay_the_fallbacks(tmp_path):
    tree = tree_with(tmp_path, [2 * MIB])
    name = tree.names[0]
    with FaultServer(tree.files) as site, FaultServer(tree.files) as release, \
            FaultServer(tree.files) as a, FaultServer(tree.files) as b:
        release_lines(tree, release.url + "/")
        with MirrorList(tree, [a.url + "/", b.url + "/"]) as listing:
            r = run_in_process(["download", name],
                               env_for(tmp_path, tree, SAGE_SERVER=site.url + "/ok/"))
        assert r.code == 0, r
        assert_fetched(tree)
        assert sent(site, name) == len(tree.files[name])
        assert release.requests == [] and listing.requests == []


def test_sage_server_and_a_named_mirror_share_one_file(tmp_path):
    tree = tree_with(tmp_path, [4 * MIB])
    name = tree.names[0]
    with FaultServer(tree.files) as site, FaultServer(tree.files) as other:
        r = run_in_process(["download", name, "-v"],
                           env_for(tmp_path, tree, SAGE_SERVER=site.url + "/trickle-700000/",
                                   SAGEDL_MIRRORS=other.url + "/trickle-700000/"))
        assert r.code == 0, r
        assert_fetched(tree)
        assert sent(site, name) and sent(other, name)


def test_what_sage_server_lacks_comes_from_the_public_list(tmp_path):
    tree = tree_with(tmp_path, [2 * MIB])
    name = tree.names[0]
    with FaultServer(tree.files) as site, FaultServer(tree.files) as a, \
            FaultServer(tree.files) as b:
        with MirrorList(tree, [a.url + "/", b.url + "/"]):
            r = run_in_process(["download", name],
                               env_for(tmp_path, tree, SAGE_SERVER=site.url + "/404/"))
        assert r.code == 0, r
        assert_fetched(tree)
        assert gets(site, name) and (sent(a, name) or sent(b, name))


def test_everything_present_costs_no_planning_and_no_network(tmp_path):
    tree = tree_with(tmp_path, [MIB, MIB, MIB])
    upstream = tree.root / "upstream"
    upstream.mkdir()
    for name in tree.names:
        (upstream / name).write_bytes(tree.files[name])
    with FaultServer(tree.files) as a, FaultServer(tree.files) as b:
        with MirrorList(tree, [a.url + "/", b.url + "/"]) as listing:
            r = run_in_process(["download", ":all:"], env_for(tmp_path, tree))
            one = run_in_process(["download", tree.names[0]], env_for(tmp_path, tree))
        assert r.code == 0 and one.code == 0, (r, one)
        assert listing.requests == [] and a.requests == [] and b.requests == []
    assert "Using cached file" in one.err, one.err
    assert not (tmp_path / "cache" / "sagedl" / "ranking.json").exists()


@pytest.mark.parametrize("fault,code,words", [("404", 3, "HTTP 404"),
                                              ("corrupt", 4, "checksum mismatch")])
def test_what_no_public_mirror_can_finish_fails_as_before(tmp_path, fault, code, words):
    tree = tree_with(tmp_path, [MIB])
    name = tree.names[0]
    with FaultServer(tree.files) as a, FaultServer(tree.files) as b:
        with MirrorList(tree, [a.url + "/%s/" % fault, b.url + "/%s/" % fault]):
            r = run_in_process(["download", name], env_for(tmp_path, tree))
        # The one-source engine had its turn at each mirror after the
        # scheduler gave up: its words, its exit code.
        assert gets(a, name) and gets(b, name)
    assert r.code == code, r
    assert "could not download %s" % name in r.err and words in r.err, r.err
    assert not (tree.root / "upstream" / name).exists()


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.6", "pypy3")))
def test_the_public_list_pool_under_old_interpreters(label, tmp_path):
    # The pyz under the oldest interpreters and PyPy: the pool from the
    # ranked list, a split over it, and cached files checked by threads.
    python = require_interpreter(label)
    tree = tree_with(tmp_path, [3 * MIB, MIB, MIB])
    upstream = tree.root / "upstream"
    upstream.mkdir()
    for name in tree.names[1:]:
        (upstream / name).write_bytes(tree.files[name])
    with FaultServer(tree.files) as a, FaultServer(tree.files) as b:
        with MirrorList(tree, [a.url + "/trickle-700000/", b.url + "/trickle-700000/"]):
            p = subprocess.run([python, pyz_path(), "download", ":all:", "-v"],
                               env=env_for(tmp_path, tree), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=120)
        assert p.returncode == 0, p.stderr
        assert_fetched(tree)
        assert sent(a, tree.names[0]) and sent(b, tree.names[0])
        assert not gets(a, tree.names[1]) and not gets(b, tree.names[1])
