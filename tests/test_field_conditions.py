"""Field conditions (issue 11): offline, DNS that never answers, dead mirrors,
endless bodies -- one test per row of the issue's table, each in a network
namespace of its own (tests/netns.py) holding only loopback, so nothing here
can reach a real mirror even when it uses the shipped mirror list.

The issue's timing targets ("within 3 s") are README figures, measured; these
tests assert the behaviour that makes them true instead: connection attempts
and DNS questions counted, the dead mirror contacted once, the number of
lines, the exit code, the cause named in the message.
"""

import hashlib
import os
import socket
import subprocess
import sys

import netns
from conftest import REPO, clean_env, make_data
from faultserver import FaultServer
from sagedl.errors import EXIT_OK

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


# -- a dead mirror, remembered -------------------------------------------------------

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


# -- an endless body, sha256 known, no size ---------------------------------------------

class EndlessServer(object):
    """Answers every GET with 200, no Content-Length, and bytes until hung up."""

    def __init__(self):
        import threading
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.url = "http://127.0.0.1:%d/" % self.listener.getsockname()[1]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            try:
                conn.settimeout(10)
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Connection: close\r\n\r\n")
                block = b"\0" * 65536
                while not self.stop.is_set():
                    conn.sendall(block)
            except OSError:
                pass
            finally:
                conn.close()

    def close(self):
        self.stop.set()
        self.listener.close()
        self.thread.join(10)


def test_endless_body_of_unknown_size_is_capped_and_discarded(tmp_path):
    tree = Tree(tmp_path / "sage")
    name = tree.names[0]
    endless = EndlessServer()
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
