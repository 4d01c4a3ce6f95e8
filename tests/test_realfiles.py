"""Real upstream files (fetched from PyPI by tests/realfiles.py and checked
against the Sage tree's sha256), served by a real nginx in Sage's mirror
layout, downloaded by the built pyz against the real 2026 Sage metadata."""

import os
import shutil
import subprocess
import sys

import pytest

from helpers import clean_env
from nginx import Nginx, require_tool
from realfiles import require_real_files, sage_pkgs_dir


@pytest.fixture(scope="module")
def files():
    return require_real_files()


@pytest.fixture
def nginx_mirror(tmp_path, files):
    require_tool("nginx")
    root = tmp_path / "mirror"
    for f in files:
        d = root / "spkg" / "upstream" / f["package"]
        d.mkdir(parents=True)
        shutil.copy(f["path"], str(d / f["tarball"]))
    with Nginx(str(root)) as n:
        yield n


def test_real_files_through_nginx_with_the_pyz(tmp_path, files, nginx_mirror):
    from pyz import pyz_path
    dist = tmp_path / "upstream"
    env = clean_env(tmp_path, SAGE_ROOT=sage_pkgs_dir(), SAGE_DISTFILES=str(dist),
                    SAGEDL_MIRRORS=nginx_mirror.url + "/")
    pkgs = [f["package"] for f in files]
    p = subprocess.run([sys.executable, pyz_path(), "download", "-q"] + pkgs, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    assert p.returncode == 0, p.stderr
    # One path per package, packages in sorted order (as sage_bootstrap).
    assert p.stdout.decode().splitlines() == [str(dist / f["tarball"]) for f in
                                              sorted(files, key=lambda f: f["package"])]
    for f in files:
        with open(str(dist / f["tarball"]), "rb") as got, open(f["path"], "rb") as want:
            assert got.read() == want.read()


def test_real_file_by_tarball_name_then_cached(tmp_path, files, nginx_mirror, run_cli):
    f = files[0]
    dist = tmp_path / "upstream"
    env = clean_env(tmp_path, SAGE_ROOT=sage_pkgs_dir(), SAGE_DISTFILES=str(dist),
                    SAGEDL_MIRRORS=nginx_mirror.url + "/")
    r = run_cli(f["tarball"], env=env)
    assert r.code == 0, r
    # Resume against nginx: cut the file, keep the metadata, fetch again.
    os.rename(str(dist / f["tarball"]), str(dist / (f["tarball"] + ".part")))
    with open(str(dist / (f["tarball"] + ".part")), "r+b") as part:
        part.truncate(f["size"] // 2)
    import json
    (dist / (f["tarball"] + ".part.json")).write_text(json.dumps(
        {"url": "elsewhere", "sha256": f["sha256"], "sha1": f["sha1"], "total": f["size"]}))
    r = run_cli(f["tarball"], "--progress", "lines", env=env)
    assert r.code == 0, r
    assert "resuming %s at byte %d" % (f["tarball"], f["size"] // 2) in r.err
    with open(str(dist / f["tarball"]), "rb") as got, open(f["path"], "rb") as want:
        assert got.read() == want.read()
