"""make-mirror's SHA256SUMS and mirror_list describe what the directory
serves, whatever one run fetched (once, a one-package run turned a
6-file mirror's index into one line, a failed run left it empty, and
mirror_list silently said http://localhost/).  Through the pyz.
"""
import hashlib
import os
import subprocess
import sys

import pytest

from faultserver import FaultServer
from helpers import Tree, clean_env, make_data
from pyz import pyz_path

TIMEOUT = 120


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path / "sage")
    for i in range(6):
        t.add("pkg%d" % i, "1.%d" % i, "pkg%d-VERSION.tar.gz" % i, make_data(20000 + i, 120 + i))
    return t


def make_mirror(tree, site, mirror, *args):
    env = clean_env(tree.root.parent, SAGE_ROOT=str(tree.root),
                    SAGE_DISTFILES=str(tree.root.parent / ("dist-" + mirror.rsplit("/", 2)[-2])),
                    SAGEDL_MIRRORS=mirror)
    return subprocess.run([sys.executable, pyz_path(), "make-mirror", str(site)] + list(args),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=TIMEOUT)


def served(site):
    """{key: sha256} of every file under site/spkg/upstream."""
    found = {}
    top = site / "spkg" / "upstream"
    for pkg in sorted(os.listdir(str(top))):
        for name in sorted(os.listdir(str(top / pkg))):
            found["spkg/upstream/%s/%s" % (pkg, name)] = \
                hashlib.sha256((top / pkg / name).read_bytes()).hexdigest()
    return found


def index(site):
    sums = {}
    for line in (site / "SHA256SUMS").read_text().splitlines():
        digest, key = line.split("  ", 1)
        sums[key] = digest
    return sums


def test_a_partial_run_keeps_the_whole_index(tree, tmp_path):
    site = tmp_path / "site"
    with FaultServer(tree.files) as s:
        r = make_mirror(tree, site, s.url + "/ok/", ":all:", "--base-url", "https://m.example/sage")
        assert r.returncode == 0, r.stderr
        assert len(index(site)) == 6 and index(site) == served(site)
        mirror_list = (site / "mirror_list").read_text()
        assert "['https://m.example/sage/']" in mirror_list
        # One package, no --base-url: the index still lists all six files,
        # and the mirror_list stays as it was.
        r = make_mirror(tree, site, s.url + "/ok/", "pkg3")
        assert r.returncode == 0, r.stderr
    assert index(site) == served(site) and len(index(site)) == 6
    # (A second run re-placing a hard link of the same file used to leave
    # NAME.part beside it: rename(2) over the same inode does nothing.)
    assert not [k for k in served(site) if k.endswith(".part")]
    assert (site / "mirror_list").read_text() == mirror_list
    assert "warning" not in r.stderr


def test_a_failed_run_does_not_empty_a_good_index(tree, tmp_path):
    site = tmp_path / "site"
    with FaultServer(tree.files) as s:
        r = make_mirror(tree, site, s.url + "/ok/", ":all:", "--base-url", "https://m.example/")
        assert r.returncode == 0, r.stderr
    before = (site / "SHA256SUMS").read_bytes(), (site / "mirror_list").read_bytes()
    # Another tree version: new tarballs nobody serves (404 everywhere).
    tree2 = Tree(tmp_path / "sage2")
    tree2.add("pkg0", "2.0", "pkg0-VERSION.tar.gz", make_data(1000, 130))
    with FaultServer({}) as s:
        r = make_mirror(tree2, site, s.url + "/404/", ":all:")
    assert r.returncode == 3, r.stderr
    assert ((site / "SHA256SUMS").read_bytes(), (site / "mirror_list").read_bytes()) == before


def test_without_base_url_no_mirror_list_is_guessed(tree, tmp_path):
    site = tmp_path / "site"
    with FaultServer(tree.files) as s:
        r = make_mirror(tree, site, s.url + "/ok/", "pkg1", "-q")
    assert r.returncode == 0, r.stderr
    assert not (site / "mirror_list").exists()
    assert r.stderr == ("sagedl: warning: no %s written: give --base-url URL, the URL this "
                        "directory is served at\n" % (site / "mirror_list"))
    assert "localhost" not in r.stderr
    assert index(site) == served(site) and len(index(site)) == 1


def test_files_already_served_without_an_index_are_hashed_in(tree, tmp_path):
    site = tmp_path / "site"
    extra = site / "spkg" / "upstream" / "old" / "old-0.1.tar.gz"
    extra.parent.mkdir(parents=True)
    extra.write_bytes(b"an older tarball this mirror still serves")
    with FaultServer(tree.files) as s:
        r = make_mirror(tree, site, s.url + "/ok/", "pkg2", "--base-url", "https://m.example/")
    assert r.returncode == 0, r.stderr
    assert index(site) == served(site)
    assert "spkg/upstream/old/old-0.1.tar.gz" in index(site)
