"""A site mirror: make-mirror writes Sage's layout, nginx serves it, a second
tree fetches everything from it; verify reports missing, extra and bad files."""

import os

import pytest

from helpers import Tree, clean_env, make_data
from faultserver import FaultServer
from nginx import Nginx, require_tool
from sagedl.errors import EXIT_CHECKSUM, EXIT_NOT_FOUND


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path / "sage")
    for i in range(6):
        t.add("pkg%d" % i, "1.%d" % i, "pkg%d-VERSION.tar.gz" % i, make_data(30000 + i, 100 + i),
              ptype="standard" if i < 4 else "optional")
    return t


def test_make_mirror_serve_with_nginx_and_fetch_everything_from_it(run_cli, tmp_path, tree):
    require_tool("nginx")
    site = tmp_path / "site"
    with FaultServer(tree.files) as upstream:
        env = clean_env(tmp_path, SAGE_ROOT=str(tree.root), SAGEDL_MIRRORS=upstream.url + "/ok/")
        r = run_cli("make-mirror", site, "--base-url", "http://mirror.example/sage", "-q", env=env)
    assert r.code == 0, r
    for name, data in tree.files.items():
        pkg = name.split("-")[0]
        assert (site / "spkg" / "upstream" / pkg / name).read_bytes() == data
    assert "['http://mirror.example/sage/']" in (site / "mirror_list").read_text()
    sums = (site / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == len(tree.files)

    # A second machine: same metadata, empty distfiles, SAGE_SERVER -> nginx.
    with Nginx(str(site)) as nginx:
        dist = tmp_path / "dist2"
        env2 = clean_env(tmp_path, SAGE_ROOT=str(tree.root), SAGE_DISTFILES=str(dist),
                         SAGE_SERVER=nginx.url + "/", SAGEDL_MIRRORS="http://127.0.0.1:9/")
        r = run_cli("download", ":all:", "--jobs", "3", env=env2)
        assert r.code == 0, r
        assert len(r.out.splitlines()) == len(tree.files)
        assert "6 fetched" in r.err
        for name, data in tree.files.items():
            assert (dist / name).read_bytes() == data
    r = run_cli("verify", dist, env=env2)
    assert r.code == 0, r
    assert "6 verified, 0 missing, 0 bad, 0 extra" in r.err
    r = run_cli("verify", site, env=env2)
    assert r.code == 0, r


def test_verify_reports_missing_extra_and_bad(run_cli, tmp_path, tree):
    dist = tmp_path / "dist"
    dist.mkdir()
    names = sorted(tree.files)
    (dist / names[0]).write_bytes(tree.files[names[0]])
    (dist / names[1]).write_bytes(b"corrupt")
    (dist / "stray.tar.gz").write_bytes(b"?")
    env = clean_env(tmp_path, SAGE_ROOT=str(tree.root))
    r = run_cli("verify", dist, env=env)
    assert r.code == EXIT_CHECKSUM, r
    assert "bad      %s" % names[1] in r.out
    assert "extra    stray.tar.gz" in r.out
    assert "missing  %s" % names[2] in r.out
    assert "1 verified, 4 missing, 1 bad, 1 extra" in r.err
    (dist / names[1]).unlink()
    r = run_cli("verify", dist, ":optional:", env=env)
    assert r.code == EXIT_NOT_FOUND, r
    assert "extra" not in r.out.replace("extra    stray.tar.gz", "")


def test_verify_under_q_is_silent_on_success_and_still_counts_a_failure(run_cli, tmp_path, tree):
    # As wget -q and curl -s: nothing on stderr when all is well.
    dist = tmp_path / "dist"
    dist.mkdir()
    for name, data in tree.files.items():
        (dist / name).write_bytes(data)
    env = clean_env(tmp_path, SAGE_ROOT=str(tree.root))
    r = run_cli("verify", dist, "-q", env=env)
    assert (r.code, r.out, r.err) == (0, "", ""), r
    (dist / sorted(tree.files)[0]).write_bytes(b"corrupt")
    r = run_cli("verify", dist, "-q", env=env)
    assert r.code == EXIT_CHECKSUM and "1 bad" in r.err, r


def test_bulk_skips_files_that_verify_and_keeps_going_on_warn(run_cli, tmp_path, tree):
    names = sorted(tree.files)
    dist = tree.root / "upstream"
    dist.mkdir()
    (dist / names[0]).write_bytes(tree.files[names[0]])
    served = dict(tree.files)
    del served[names[1]]
    with FaultServer(served) as s:
        env = clean_env(tmp_path, SAGE_ROOT=str(tree.root), SAGEDL_MIRRORS=s.url + "/ok/")
        r = run_cli("download", ":all:", "--on-error", "warn", "--jobs", "4", env=env)
        assert r.code == 0, r      # Sage: a file no mirror has is a warning under warn
        assert s.requests_for(names[0]) == []
    assert "4 fetched" in r.err and "1 already present" in r.err and "1 failed" in r.err
    assert "failed: %s" % names[1] in r.err
    assert len(r.out.splitlines()) == 5


def test_bulk_reuses_one_connection_per_worker(run_cli, tmp_path, tree):
    with FaultServer(tree.files) as s:
        env = clean_env(tmp_path, SAGE_ROOT=str(tree.root), SAGEDL_MIRRORS=s.url + "/ok/")
        r = run_cli("download", ":all:", "--jobs", "1", "-q", env=env)
        assert r.code == 0, r
        gets = [q for q in s.requests if q.method == "GET"]
        assert len(gets) == len(tree.files)
        assert len(set(q.connection for q in gets)) == 1      # keep-alive
        shutil_rm = __import__("shutil").rmtree
        shutil_rm(str(tree.root / "upstream"))
        r = run_cli("download", ":all:", "--jobs", "2", "-q", env=env)
        assert r.code == 0, r
        gets = [q for q in s.requests if q.method == "GET"][len(tree.files):]
        assert len(set(q.connection for q in gets)) <= 2


def add_wheel_only_package(tree):
    """Like the real tree's rpds_py: [section] records, per-platform wheels only."""
    import hashlib
    d = tree.pkgs / "wheelpkg"
    d.mkdir()
    lines, names = [], []
    for i, plat in enumerate(("manylinux_2_17_x86_64", "macosx_11_0_arm64")):
        name = "wheelpkg-1.0-cp311-cp311-%s.whl" % plat
        data = make_data(2000 + i, 200 + i)
        tree.files[name] = data
        names.append(name)
        lines += ["[%s]" % name, "tarball=%s" % name,
                  "sha256=%s" % hashlib.sha256(data).hexdigest(), ""]
    (d / "checksums.ini").write_text("\n".join(lines))
    (d / "package-version.txt").write_text("1.0\n")
    (d / "type").write_text("standard\n")
    return names


def test_wheel_only_packages_in_class_selections(run_cli, tmp_path, tree):
    wheels = add_wheel_only_package(tree)
    with FaultServer(tree.files) as s:
        env = clean_env(tmp_path, SAGE_ROOT=str(tree.root), SAGEDL_MIRRORS=s.url + "/ok/")
        # download without --tags: every wheel, as Sage (one path each).
        r = run_cli("download", ":standard:", "-q", env=env)
        assert r.code == 0, r
        assert len(r.out.splitlines()) == 4 + len(wheels)
        r = run_cli("download", "wheelpkg", env=env)
        assert r.code == 0 and [p.rsplit("/", 1)[1] for p in r.out.splitlines()] == wheels, r
        r = run_cli("download", wheels[1], env=env)
        assert r.code == 0 and r.out.strip().endswith(wheels[1]), r
        # make-mirror: a site mirror carries every platform's wheel.
        site = tmp_path / "site"
        r = run_cli("make-mirror", site, "-q", env=env)
        assert r.code == 0, r
        for w in wheels:
            assert (site / "spkg" / "upstream" / "wheelpkg" / w).read_bytes() == tree.files[w]
    r = run_cli("verify", site, env=env)
    assert r.code == 0, r
    # Flat distfiles holding one platform's wheel: that package is not missing.
    # (make-mirror fetched both into the distfiles.)
    (tree.root / "upstream" / wheels[0]).unlink()
    r = run_cli("verify", tree.root / "upstream", ":standard:", env=env)
    assert r.code == 0, r
    assert "wheelpkg" not in r.out
    (tree.root / "upstream" / wheels[1]).unlink()
    r = run_cli("verify", tree.root / "upstream", ":standard:", env=env)
    assert r.code == EXIT_NOT_FOUND, r
    assert "missing  wheelpkg (none of its 2 per-platform wheels)" in r.out
