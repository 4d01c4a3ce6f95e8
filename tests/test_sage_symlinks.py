"""Packages whose checksums.ini is a symlink to another package's.

In Sage's tree three are: gap_packages -> gap, gfortran -> gcc, pplpy_doc ->
pplpy; passagemath adds the gap_pkg_* -> gap.  Sage attributes the file to the owner when it
uploads, but a stock ``sage-package download pplpy_doc`` asks mirrors for
``spkg/upstream/pplpy_doc/FILE``.  So ``make-mirror`` serves the file under
every name, and sagedl asks for both paths, owner first.

Both real trees (sage-conf's and passagemath-conf's sdists) are copied with
their symlinks restored (tests/sagetree.py);
pplpy's checksums.ini is pointed at a generated file (pplpy_doc follows
through the link).  The stock client is Sage's own sage-package, run
against a real nginx serving the site mirror.
"""

import hashlib
import os
import subprocess
import sys

import pytest

from helpers import clean_env, make_data
from faultserver import FaultServer
from nginx import Nginx, require_tool
from sagetree import TREES, copy_tree, require_tree, serve_only_sage_server

DATA = make_data(40000, 77)
NAME = "passagemath_ppl-0.0.1.tar.gz"


@pytest.fixture(scope="module", params=TREES)
def tree(tmp_path_factory, request):
    source = require_tree(request.param)
    root = str(tmp_path_factory.mktemp("symlinks") / "sage")
    copy_tree(root, source)
    pkgs = os.path.join(root, "build", "pkgs")
    assert os.readlink(os.path.join(pkgs, "pplpy_doc", "checksums.ini")) == "../pplpy/checksums.ini"
    with open(os.path.join(pkgs, "pplpy", "checksums.ini"), "w") as f:
        # sha1 too: Sage 10.7's sage_bootstrap compares it even after sha256 matched.
        f.write("tarball=passagemath_ppl-VERSION.tar.gz\nsha1=%s\nsha256=%s\n"
                % (hashlib.sha1(DATA).hexdigest(), hashlib.sha256(DATA).hexdigest()))
    with open(os.path.join(pkgs, "pplpy", "package-version.txt"), "w") as f:
        f.write("0.0.1\n")
    serve_only_sage_server(root)
    return root


def gets(nginx):
    with open(os.path.join(nginx.tmp, "access.log")) as f:
        return [(line.split('"')[1].split()[1], line.split('"')[2].split()[0]) for line in f]


def test_make_mirror_serves_the_file_under_every_linked_name(run_cli, tmp_path, tree):
    site = tmp_path / "site"
    with FaultServer({NAME: DATA}) as upstream:
        env = clean_env(tmp_path, SAGE_ROOT=tree, SAGE_DISTFILES=str(tmp_path / "dist"),
                        SAGEDL_MIRRORS=upstream.url + "/ok/")
        r = run_cli("make-mirror", site, "pplpy", "-q", env=env)   # the owner only
        assert r.code == 0, r
        assert len(upstream.requests_for(NAME)) == 1
    for pkg in ("pplpy", "pplpy_doc"):
        assert (site / "spkg" / "upstream" / pkg / NAME).read_bytes() == DATA
    sums = (site / "SHA256SUMS").read_text().splitlines()
    assert sums == ["%s  spkg/upstream/%s/%s" % (hashlib.sha256(DATA).hexdigest(), pkg, NAME)
                    for pkg in ("pplpy", "pplpy_doc")]
    r = run_cli("verify", site, "pplpy", "pplpy_doc", env=env)
    assert r.code == 0 and "2 verified, 0 missing" in r.err, r
    os.unlink(str(site / "spkg" / "upstream" / "pplpy_doc" / NAME))
    r = run_cli("verify", site, "pplpy", env=env)
    assert r.code != 0 and "missing  spkg/upstream/pplpy_doc/" + NAME in r.out, r


def test_a_stock_sage_client_finds_the_linked_name_on_a_site_mirror(run_cli, tmp_path, tree):
    require_tool("nginx")
    require_tool("curl")       # sage_bootstrap downloads with curl when it is there
    site = tmp_path / "site"
    (tmp_path / "dist").mkdir()
    with open(str(tmp_path / "dist" / NAME), "wb") as f:
        f.write(DATA)
    env = clean_env(tmp_path, SAGE_ROOT=tree, SAGE_DISTFILES=str(tmp_path / "dist"),
                    SAGEDL_MIRRORS="http://127.0.0.1:9/")   # all cached: never asked
    r = run_cli("make-mirror", site, "pplpy_doc", "-q", env=env)     # the linked name only
    assert r.code == 0, r
    with Nginx(str(site)) as nginx:
        bin_dir = os.path.join(tree, "build", "bin")
        stock_env = clean_env(tmp_path, SAGE_ROOT=tree, SAGE_SERVER=nginx.url,
                              SAGE_DISTFILES=str(tmp_path / "stock"),
                              PATH=bin_dir + os.pathsep + os.path.dirname(sys.executable)
                              + os.pathsep + os.environ.get("PATH", ""))
        p = subprocess.run([os.path.join(bin_dir, "sage-package"), "download", "pplpy_doc"],
                           env=stock_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=120)
        assert p.returncode == 0, p.stderr.decode()
        assert p.stdout.decode().strip() == str(tmp_path / "stock" / NAME)
        assert gets(nginx) == [("/spkg/upstream/pplpy_doc/" + NAME, "200")]


@pytest.mark.parametrize("served_as", ["pplpy", "pplpy_doc"])
def test_sagedl_asks_for_the_owner_then_the_linked_name(run_cli, tmp_path, tree, served_as):
    require_tool("nginx")
    site = tmp_path / "site" / "spkg" / "upstream" / served_as
    site.mkdir(parents=True)
    (site / NAME).write_bytes(DATA)
    with Nginx(str(tmp_path / "site")) as nginx:
        env = clean_env(tmp_path, SAGE_ROOT=tree, SAGE_DISTFILES=str(tmp_path / "dist"),
                        SAGEDL_MIRRORS=nginx.url + "/")
        r = run_cli("download", "pplpy_doc", env=env)
        assert r.code == 0, r
        assert r.out == str(tmp_path / "dist" / NAME) + "\n"
        want = [("/spkg/upstream/pplpy/" + NAME, "200")]
        if served_as == "pplpy_doc":
            want = [("/spkg/upstream/pplpy/" + NAME, "404"),
                    ("/spkg/upstream/pplpy_doc/" + NAME, "200")]
        assert [g for g in gets(nginx) if g[0].endswith(NAME)] == want
