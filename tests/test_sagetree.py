"""The test helpers that stand in for a machine: real Sage trees from PyPI
(tests/sagetree.py) and network namespaces (tests/netns.py).

Missing data or a missing permission skips locally with the reason and
fails under CI=true, where a skip would hide a broken machine.  The sdists'
copies become Sage's symlinks only where the bytes are the target's, and
an sdist member outside sage_root, or that is not a plain file or
directory, is refused before anything is unpacked.
"""

import io
import os
import tarfile

import pytest

import netns
import sagetree
from sagetree import TreeError


def outcome(call, *args):
    """The pytest outcome ``call`` raised (Skipped, Failed), or None; caught
    here so that a skip where a failure is due fails this test instead of
    skipping it."""
    try:
        call(*args)
    except BaseException as e:     # pytest's outcomes are BaseExceptions
        return type(e)
    return None


def enter_namespace(dns_hole):
    with netns.offline(dns_hole):
        pass


@pytest.fixture
def unobtainable(monkeypatch):
    def fail(name="sage-conf"):
        raise TreeError("pip download %s failed (exit 1): no network" % name)
    monkeypatch.setattr(sagetree, "pypi_tree", fail)


def test_require_tree_skips_with_the_reason_locally(unobtainable, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception) as info:
        sagetree.require_tree("passagemath-conf")
    assert "no network" in str(info.value) and "\n" not in str(info.value)


def test_require_tree_fails_under_ci(unobtainable, monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert outcome(sagetree.require_tree) is pytest.fail.Exception


@pytest.fixture
def no_namespaces(monkeypatch):
    monkeypatch.setitem(netns._checked, "why", "unshare -n -m is not permitted here: EPERM")


def test_netns_skips_locally_without_namespaces(no_namespaces, monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert outcome(netns.require_offline) is pytest.skip.Exception
    assert outcome(enter_namespace, False) is pytest.skip.Exception


def test_netns_fails_under_ci_without_namespaces(no_namespaces, monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert outcome(netns.require_offline) is pytest.fail.Exception
    assert outcome(enter_namespace, True) is pytest.fail.Exception


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def small_tree(root):
    """gcc and gfortran (identical files, as an sdist holds them), gap and a
    gap_packages whose checksums.ini differs from gap's."""
    pkgs = os.path.join(root, "build", "pkgs")
    for pkg in ("gcc", "gfortran"):
        write(os.path.join(pkgs, pkg, "checksums.ini"), "tarball=gcc-VERSION.tar.gz\n")
        write(os.path.join(pkgs, pkg, "patches", "a.patch"), "--- a\n")
    write(os.path.join(pkgs, "gfortran", "type"), "standard\n")
    write(os.path.join(pkgs, "gap", "checksums.ini"), "tarball=gap-VERSION.tar.gz\n")
    write(os.path.join(pkgs, "gap_packages", "checksums.ini"), "tarball=other.tar.gz\n")
    return root


def test_restore_symlinks_links_only_copies_of_their_target(tmp_path):
    root = small_tree(str(tmp_path / "sage"))
    pkgs = os.path.join(root, "build", "pkgs")
    assert sagetree.restore_symlinks(root) == 2
    assert os.readlink(os.path.join(pkgs, "gfortran", "checksums.ini")) == "../gcc/checksums.ini"
    assert os.readlink(os.path.join(pkgs, "gfortran", "patches")) == "../gcc/patches"
    assert not os.path.islink(os.path.join(pkgs, "gfortran", "type"))          # not listed
    assert not os.path.islink(os.path.join(pkgs, "gap_packages", "checksums.ini"))  # differs
    assert sagetree.restore_symlinks(root) == 0                                # idempotent


def test_copy_tree_gives_real_symlinks_or_gits_stand_ins_from_either(tmp_path):
    source = small_tree(str(tmp_path / "sage"))
    sagetree.restore_symlinks(source)
    flat = sagetree.copy_tree(str(tmp_path / "flat"), source, stand_ins=True)
    assert sagetree.tree_symlinks(flat) == {}
    stand_in = os.path.join(flat, "build", "pkgs", "gfortran", "checksums.ini")
    with open(stand_in) as f:
        assert f.read() == "../gcc/checksums.ini"               # git's form: no newline
    assert len(sagetree.symlink_stand_ins(flat)) == 2
    linked = sagetree.copy_tree(str(tmp_path / "linked"), flat)
    assert sagetree.symlink_stand_ins(linked) == {}
    assert sorted(os.path.relpath(p, linked) for p in sagetree.tree_symlinks(linked)) == [
        "build/pkgs/gfortran/checksums.ini", "build/pkgs/gfortran/patches"]
    assert os.stat(os.path.join(linked, "build", "pkgs", "gap", "checksums.ini")).st_mode & 0o200


def sdist(path, members):
    """A .tar.gz holding ``members``: [(name, TarInfo type, data or link target)]."""
    with tarfile.open(path, "w:gz") as t:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = payload
                t.addfile(info)
            else:
                info.size = len(payload)
                t.addfile(info, io.BytesIO(payload))
    return path


@pytest.mark.parametrize("bad", [
    ("sage_conf-10.7/sage_root/build/pkgs/x/checksums.ini", tarfile.SYMTYPE, "/etc/passwd"),
    ("sage_conf-10.7/sage_root/../../escape", tarfile.REGTYPE, b"x"),
    ("sage_conf-10.7/sage_root/build/fifo", tarfile.FIFOTYPE, b""),
])
def test_unpacking_refuses_links_devices_and_escapes(tmp_path, bad):
    good = ("sage_conf-10.7/sage_root/build/bin/sage-spkg", tarfile.REGTYPE, b"#!/bin/sh\n")
    path = sdist(str(tmp_path / "sage_conf-10.7.tar.gz"), [good, bad])
    final = str(tmp_path / "cache" / "tree")
    os.makedirs(os.path.dirname(final))
    with pytest.raises(TreeError):
        sagetree._unpack("sage-conf", path, final)
    assert not os.path.exists(final)
    assert os.listdir(os.path.dirname(final)) == []       # no scratch directory left


def test_unpacking_keeps_sage_root_only_and_loops_back_the_dead_proxy(tmp_path):
    path = sdist(str(tmp_path / "sage_conf-10.7.tar.gz"), [
        ("sage_conf-10.7/setup.py", tarfile.REGTYPE, b"ignored\n"),
        ("sage_conf-10.7/sage_root/build/bin/sage-spkg", tarfile.REGTYPE,
         b"export http_proxy=http://192.0.2.0:5187/\n")])
    final = str(tmp_path / "tree")
    sagetree._unpack("sage-conf", path, final)
    assert os.listdir(final) == ["build"]
    with open(os.path.join(final, "build", "bin", "sage-spkg")) as f:
        assert f.read() == "export http_proxy=http://127.0.0.1:9/\n"


@pytest.mark.parametrize("name", sagetree.TREES)
def test_the_real_trees_have_sages_symlinks_and_no_dead_proxy_off_loopback(name):
    root = sagetree.require_tree(name)
    pkgs = os.path.join(root, "build", "pkgs")
    for link, target in (("gfortran/checksums.ini", "../gcc/checksums.ini"),
                         ("pplpy_doc/checksums.ini", "../pplpy/checksums.ini"),
                         ("gap_packages/checksums.ini", "../gap/checksums.ini")):
        assert os.readlink(os.path.join(pkgs, link)) == target
    if name == "passagemath-conf":
        assert os.readlink(os.path.join(pkgs, "gap_pkg_float", "checksums.ini")) == \
            "../gap/checksums.ini"
    with open(os.path.join(root, "build", "bin", "sage-spkg")) as f:
        spkg = f.read()
    assert "192.0.2.0" not in spkg and "http://127.0.0.1:9/" in spkg
