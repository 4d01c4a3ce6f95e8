"""Field conditions: offline, DNS that never answers, dead mirrors,
endless bodies -- one test per row of bench/README.md's "Broken networks"
table, each in a network namespace of its own (tests/netns.py) holding only
loopback, so nothing here can reach a real mirror even when it uses the
shipped mirror list.

The timing figures ("within 3 s") are measured by bench/field.py; these
tests assert the behaviour that makes them true instead: connection attempts
and DNS questions counted, the dead mirror contacted once, the number of
lines, the exit code, the cause named in the message.
"""

import hashlib
import os
import subprocess
import sys

import pytest

import netns
from helpers import REPO, clean_env, make_data
from faultserver import FaultServer
from sagedl.errors import EXIT_NETWORK, EXIT_OK
from sagedl.mirrors.mirrorlist import load_shipped

TIMEOUT = 120   # per sagedl run: a safety net, never a measure of speed


class Tree(object):
    """A small Sage tree: packages with checksums.ini (sha256 only: no size,
    as in Sage), and their tarballs for a loopback mirror to serve."""

    def __init__(self, root, count=1, size=20000, upstream=None):
        self.root = root
        self.files = {}
        self.names = []
        pkgs = root / "build" / "pkgs"
        pkgs.mkdir(parents=True)
        for i in range(count):
            pkg = "pkg%02d" % i
            data = make_data(size, 100 + i)
            name = "%s-1.0.tar.gz" % pkg
            d = pkgs / pkg
            d.mkdir()
            lines = ["tarball=%s-VERSION.tar.gz" % pkg,
                     "sha256=%s" % hashlib.sha256(data).hexdigest()]
            if upstream:
                lines.append("upstream_url=%s%s-VERSION.tar.gz" % (upstream, pkg))
            (d / "checksums.ini").write_text("\n".join(lines) + "\n")
            (d / "package-version.txt").write_text("1.0\n")
            (d / "type").write_text("standard\n")
            self.files[name] = data
            self.names.append(name)
        self.distfiles = root / "upstream"
        self.distfiles.mkdir()

    def cache(self, name):
        (self.distfiles / name).write_bytes(self.files[name])


def sagedl(*argv):
    return [sys.executable, "-m", "sagedl"] + [str(a) for a in argv]


def env_for(tmp_path, tree, **extra):
    env = clean_env(tmp_path, SAGE_ROOT=str(tree.root), PYTHONPATH=REPO)
    env.update(extra)
    return env


def mirrors_file(tmp_path, urls):
    path = tmp_path / "mirrors.toml"
    path.write_text("".join('[[mirror]]\nurl = "%s"\nname = "m%d"\npriority = %d\n'
                            % (u, i, 100 - i) for i, u in enumerate(urls)))
    return path


def error_lines(err):
    return [l for l in err.splitlines() if l.startswith("sagedl: error:")]


# -- tarball already verified in SAGE_DISTFILES: no network at all -----------------

def test_verified_cached_tarball_makes_no_dns_query_and_no_connection(tmp_path):
    tree = Tree(tmp_path / "sage")
    tree.cache(tree.names[0])
    with netns.offline(dns_hole=True) as net:
        r = net.run(sagedl(tree.names[0]), env_for(tmp_path, tree), timeout=TIMEOUT)
        assert r.code == EXIT_OK, r
        assert net.dns.queries == 0, net.dns.names
        assert net.attempts() == 0
    assert "Using cached file" in r.err, r
    assert "probe" not in r.err, r


def test_verified_cached_tarball_does_not_even_load_the_network_machinery(tmp_path):
    tree = Tree(tmp_path / "sage")
    tree.cache(tree.names[0])
    # -S: without site, whose .pth files may import threading themselves.
    p = subprocess.run([sys.executable, "-S", "-X", "importtime", "-m", "sagedl", tree.names[0]],
                       env=env_for(tmp_path, tree), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=TIMEOUT)
    assert p.returncode == EXIT_OK, p.stderr
    imported = set(line.split("|")[-1].strip() for line in p.stderr.decode().splitlines()
                   if line.startswith("import time:"))
    assert "sagedl.engine.download" in imported          # the import log works
    assert not imported & set(["sagedl.mirrors.probe", "sagedl.mirrors.health", "ssl", "threading"]), imported


def test_verified_cached_package_download_makes_no_connection(tmp_path):
    tree = Tree(tmp_path / "sage", count=3)
    for name in tree.names:
        tree.cache(name)
    with netns.offline(dns_hole=True) as net:
        r = net.run(sagedl("download", ":all:"), env_for(tmp_path, tree), timeout=TIMEOUT)
        assert r.code == EXIT_OK, r
        assert net.dns.queries == 0, net.dns.names
        assert net.attempts() == 0
    assert len(r.out.splitlines()) == 3, r


# -- not cached, the default (shipped) mirror list, offline ------------------------

@pytest.mark.parametrize("dns_hole", [False, True], ids=["no-network", "dns-never-answers"])
def test_offline_with_the_default_list_says_the_network_looks_unreachable(tmp_path, dns_hole):
    tree = Tree(tmp_path / "sage")
    with netns.offline(dns_hole=dns_hole) as net:
        r = net.run(sagedl(tree.names[0], "--progress", "lines"), env_for(tmp_path, tree),
                    timeout=TIMEOUT)
    assert r.code == EXIT_NETWORK, r
    errors = error_lines(r.err)
    assert len(errors) == 1, r
    assert "network looks unreachable" in errors[0], r
    cause = "DNS lookups time out" if dns_hole else "DNS lookups fail"
    assert cause in errors[0], r
    # One line for the error (and a hint): not a line per mirror.
    assert len(r.err_lines) <= 3, r
    assert not (tree.distfiles / (tree.names[0] + ".part")).exists()


def test_a_probe_where_nothing_answered_is_believed_by_the_next_run(tmp_path):
    tree = Tree(tmp_path / "sage")
    env = env_for(tmp_path, tree)
    with netns.offline(dns_hole=True) as net:
        first = net.run(sagedl(tree.names[0]), env, timeout=TIMEOUT)
        asked = net.dns.queries
        second = net.run(sagedl(tree.names[0]), env, timeout=TIMEOUT)
        asked_again = net.dns.queries - asked
    assert asked > 0
    assert asked_again == 0, "the next run probed the dead network again"
    assert first.code == second.code == EXIT_NETWORK, (first, second)
    assert error_lines(first.err) == error_lines(second.err), (first, second)


def test_the_connect_deadline_is_shorter_than_the_read_timeout():
    from sagedl.net.transport import CONNECT_TIMEOUT, Transport
    assert Transport(timeout=30).connect_timeout == CONNECT_TIMEOUT < 30
    assert Transport(timeout=2).connect_timeout == 2


def test_connect_timeout_bounds_a_connect_separately_from_the_read_timeout(tmp_path):
    tree = Tree(tmp_path / "sage")
    with netns.offline() as net:
        hole = net.blackhole()
        r = net.run(sagedl(tree.names[0], "--mirror", hole.url, "--connect-timeout", "1",
                           "--timeout", "60"), env_for(tmp_path, tree), timeout=TIMEOUT)
        tried = net.attempts(hole.port)
    assert r.code == EXIT_NETWORK, r
    assert "timed out connecting to 127.0.0.1:%d (1s)" % hole.port in r.err, r
    assert tried == 1


def tree_with_upstream(tmp_path, name, line):
    """A fixture Sage tree whose .upstream.d/NAME holds one source line."""
    tree = Tree(tmp_path / "sage")
    (tree.root / ".upstream.d").mkdir()
    (tree.root / ".upstream.d" / name).write_text(line + "\n")
    return tree


def test_after_a_conclusive_verdict_other_sources_get_short_deadlines(tmp_path):
    from sagedl.net.reachability import PROBATION_CONNECT
    tree = tree_with_upstream(tmp_path, "20-releases", "https://releases.example.org/${SPKG}/")
    with netns.offline(dns_hole=True) as net:
        r = net.run(sagedl(tree.names[0]), env_for(tmp_path, tree), timeout=TIMEOUT)
    assert r.code == EXIT_NETWORK, r
    assert "timed out resolving releases.example.org (%gs)" % PROBATION_CONNECT in r.err, r
    assert "network looks unreachable: DNS lookups time out" in r.err, r


def test_offline_the_release_hosts_are_not_spread_over(tmp_path):
    # Two release lines: enough sources for the multi-mirror scheduler.
    # The probe's verdict (DNS dead) keeps them out of it: the one-source
    # engine alone tries them, on short deadlines, and words the one error
    # -- no scheduler notes about hosts an offline run cannot reach.
    from sagedl.net.reachability import PROBATION_CONNECT
    tree = tree_with_upstream(tmp_path, "20-releases", "https://releases.example.org/10.7/\n"
                              "https://releases.example.org/10.6/")
    with netns.offline(dns_hole=True) as net:
        r = net.run(sagedl(tree.names[0]), env_for(tmp_path, tree), timeout=TIMEOUT)
    assert r.code == EXIT_NETWORK, r
    assert "timed out resolving releases.example.org (%gs)" % PROBATION_CONNECT in r.err, r
    assert "not used any more in this run" not in r.err, r


def test_the_live_mirror_list_gives_up_its_lookup_sooner_than_a_download(tmp_path):
    from sagedl.plan.mirrorchoice import SMALL_DOCUMENT_CONNECT
    tree = tree_with_upstream(tmp_path, "30-mirror_list", "https://lists.example.org/mirror_list")
    with netns.offline(dns_hole=True) as net:
        r = net.run(sagedl("--print-fastest-mirror"),
                    env_for(tmp_path, tree, SAGEDL_CALLED_AS="sage-download-file"),
                    timeout=TIMEOUT)
    assert r.code == EXIT_OK, r          # as Sage: a URL from the shipped list, exit 0
    assert "timed out resolving lists.example.org (%gs)" % SMALL_DOCUMENT_CONNECT in r.err, r


# -- download :all: --on-error warn, offline ----------------------------------------

@pytest.mark.parametrize("dns_hole", [False, True], ids=["no-network", "dns-never-answers"])
def test_bulk_download_offline_stops_early_in_few_lines(tmp_path, dns_hole):
    tree = Tree(tmp_path / "sage", count=40)
    with netns.offline(dns_hole=dns_hole) as net:
        r = net.run(sagedl("download", ":all:", "--on-error", "warn"), env_for(tmp_path, tree),
                    timeout=TIMEOUT)
        queries = net.dns.queries if dns_hole else None
    assert r.code == EXIT_NETWORK, r
    assert len(r.err_lines) <= 30, r
    assert "network looks unreachable" in r.err, r
    assert r.out == "", r
    # The cause is said once for the files (and once in the final error), not per file.
    shipped = len(load_shipped())
    assert len([l for l in r.err_lines if "of %d mirrors" % shipped in l]) <= 2, r
    if dns_hole:
        # Each mirror host is asked about a bounded number of times, not once per file.
        assert queries <= 4 * 2 * shipped, queries


# -- a mirror list of 2 blackholed + 2 mute mirrors ---------------------------------

def test_blackholed_and_mute_mirrors_fail_with_network_exit_and_few_attempts(tmp_path):
    tree = Tree(tmp_path / "sage")
    with netns.offline() as net:
        dead = [net.blackhole(), net.blackhole(), net.mute(), net.mute()]
        mfile = mirrors_file(tmp_path, [d.url for d in dead])
        r = net.run(sagedl(tree.names[0], "--mirrors-file", mfile, "--progress", "lines"),
                    env_for(tmp_path, tree), timeout=TIMEOUT)
        per_mirror = [net.attempts(d.port) for d in dead]
    assert r.code == EXIT_NETWORK, r
    assert len(error_lines(r.err)) == 1, r
    # The probe's one attempt, and at most one more on short deadlines.
    assert all(1 <= n <= 2 for n in per_mirror), per_mirror
    from sagedl.net.reachability import PROBATION_CONNECT, PROBATION_HEAD
    assert "connecting to 127.0.0.1:%d (%gs)" % (dead[0].port, PROBATION_CONNECT) in r.err, r
    assert "must arrive within %gs" % PROBATION_HEAD in r.err, r
    assert "network looks unreachable" in r.err or "did not answer" in r.err, r


# -- download -j4 of 12 files, mirrors [blackhole, good] -----------------------------

def test_a_dead_mirror_is_dropped_for_the_rest_of_the_run(tmp_path):
    tree = Tree(tmp_path / "sage", count=12)
    with netns.offline() as net:
        hole = net.blackhole()
        with FaultServer(tree.files) as good:
            r = net.run(sagedl("download", ":all:", "-j4", "--mirror", hole.url,
                               "--mirror", good.url + "/ok/", "--timeout", "5"),
                        env_for(tmp_path, tree), timeout=TIMEOUT)
            # Every file from the good mirror (one GET each, or more when a
            # range or the size was asked while the dead one was tried).
            served = len(set(q.name for q in good.requests if q.method == "GET"))
        tried = net.attempts(hole.port)
    assert r.code == EXIT_OK, r
    assert len(r.out.splitlines()) == 12, r
    assert served == 12
    assert tried == 1, "the dead mirror was tried %d times" % tried


def test_the_health_record_carries_a_dead_mirror_to_the_next_run(tmp_path):
    tree = Tree(tmp_path / "sage", count=2)
    with netns.offline() as net:
        hole = net.blackhole()
        with FaultServer(tree.files) as good:
            mfile = mirrors_file(tmp_path, [hole.url, good.url + "/ok/"])
            env = env_for(tmp_path, tree)
            r1 = net.run(sagedl(tree.names[0], "--mirrors-file", mfile), env, timeout=TIMEOUT)
            first = net.attempts(hole.port)
            r2 = net.run(sagedl(tree.names[1], "--mirrors-file", mfile), env, timeout=TIMEOUT)
            second = net.attempts(hole.port) - first
    assert r1.code == EXIT_OK and r2.code == EXIT_OK, (r1, r2)
    assert second == 0, "the next run tried the dead mirror %d times" % second


# -- --upstream-only, make-mirror and verify from complete distfiles: no probe -------

def test_upstream_only_does_not_probe_the_mirrors(tmp_path):
    with netns.offline(dns_hole=True) as net:
        with FaultServer({}) as up:
            tree = Tree(tmp_path / "sage", upstream=up.url + "/ok/")
            for name, data in tree.files.items():
                up.add(name, data)
            r = net.run(sagedl(tree.names[0], "--upstream-only"), env_for(tmp_path, tree),
                        timeout=TIMEOUT)
            assert r.code == EXIT_OK, r
            assert net.dns.queries == 0, net.dns.names
            assert net.attempts() == 1     # the upstream server, once


@pytest.mark.parametrize("command", ["make-mirror", "verify"])
def test_site_mirror_commands_from_complete_distfiles_make_no_connection(tmp_path, command):
    tree = Tree(tmp_path / "sage", count=3)
    for name in tree.names:
        tree.cache(name)
    target = tmp_path / "site"
    env = env_for(tmp_path, tree)
    with netns.offline(dns_hole=True) as net:
        if command == "verify":
            r = net.run(sagedl("make-mirror", target), env, timeout=TIMEOUT)
            assert r.code == EXIT_OK, r
        r = net.run(sagedl(command, target), env, timeout=TIMEOUT)
        assert r.code == EXIT_OK, r
        assert net.dns.queries == 0, net.dns.names
        assert net.attempts() == 0


# -- an endless body, sha256 known, no size ---------------------------------------------

def test_endless_body_of_unknown_size_is_capped_and_discarded(tmp_path):
    tree = Tree(tmp_path / "sage")
    name = tree.names[0]
    endless = netns.Endless()
    try:
        p = subprocess.run(sagedl(name, "--mirror", endless.url, "--max-size", "3M",
                                  "--progress", "none"),
                           env=env_for(tmp_path, tree), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT)
    finally:
        endless.close()
    err = p.stderr.decode()
    assert p.returncode != EXIT_OK, err
    assert "--max-size" in err, err
    left = sorted(os.listdir(str(tree.distfiles)))
    assert left == [], left           # no final file, no partial kept for "resume"


def test_max_size_leaves_bodies_of_stated_size_alone(tmp_path):
    tree = Tree(tmp_path / "sage", size=3 << 20)
    name = tree.names[0]
    with FaultServer(tree.files) as good:
        p = subprocess.run(sagedl(name, "--mirror", good.url + "/no-length/", "--max-size", "4M"),
                           env=env_for(tmp_path, tree), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT)
        assert p.returncode == EXIT_OK, p.stderr
        p = subprocess.run(sagedl(name, "--mirror", good.url + "/ok/", "--max-size", "1M",
                                  "--force"),
                           env=env_for(tmp_path, tree), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT)
        assert p.returncode == EXIT_OK, p.stderr   # Content-Length states it: no cap


# -- --print-fastest-mirror --mirror A --mirror B: measures them ------------------------

def test_print_fastest_mirror_measures_the_given_mirrors(tmp_path):
    tree = Tree(tmp_path / "sage")
    with netns.offline() as net:
        hole = net.blackhole()
        with FaultServer({}) as good:
            r = net.run(sagedl("--print-fastest-mirror", "--mirror", hole.url,
                               "--mirror", good.url + "/ok/"), env_for(tmp_path, tree),
                        timeout=TIMEOUT)
            assert net.attempts(hole.port) == 1
            probed = [q for q in good.requests if q.method == "HEAD"]
    assert r.code == EXIT_OK, r
    assert r.out == good.url + "/ok/\n", r
    assert probed, "the given mirrors were not measured"


# -- the verdict, pure ---------------------------------------------------------------

def ranked_failures(*causes):
    from sagedl.mirrors.mirrorlist import Mirror
    from sagedl.mirrors.probe import FAILED, Ranked
    return [Ranked(Mirror("http://m%d.example/" % i), FAILED, None, "failed", c)
            for i, c in enumerate(causes)]


def test_a_probe_failing_on_dns_everywhere_is_conclusive_and_drops_every_mirror():
    from sagedl.net.reachability import DNS_TIMEOUT, WORDS
    from sagedl.plan.sources import bases_and_verdict
    bases, v = bases_and_verdict(ranked_failures(DNS_TIMEOUT, DNS_TIMEOUT, DNS_TIMEOUT))
    assert bases == [] and v.conclusive
    assert "the network looks unreachable: %s (3 of 3 mirrors" % WORDS[DNS_TIMEOUT] in v.sentence()


def test_timeouts_are_not_conclusive_and_keep_three_mirrors_on_probation():
    from sagedl.net.reachability import CONNECT_TIMEOUT, REFUSED, SILENT
    from sagedl.plan.sources import MAX_DEAD_MIRRORS, bases_and_verdict
    ranked = ranked_failures(CONNECT_TIMEOUT, SILENT, REFUSED, CONNECT_TIMEOUT, None)
    bases, v = bases_and_verdict(ranked)
    assert not v.conclusive and v.cause == CONNECT_TIMEOUT and v.failed == 2
    assert bases == [r.mirror.url for r in ranked[:MAX_DEAD_MIRRORS]]


def test_one_mirror_answering_means_no_verdict():
    from sagedl.mirrors.mirrorlist import Mirror
    from sagedl.mirrors.probe import OK, Ranked
    from sagedl.net.reachability import DNS_FAILED
    from sagedl.plan.sources import bases_and_verdict
    ranked = ranked_failures(DNS_FAILED) + [Ranked(Mirror("http://ok.example/"), OK, 0.01)]
    assert bases_and_verdict(ranked) == (["http://ok.example/"], None)
