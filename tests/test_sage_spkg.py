"""The real build/bin/sage-spkg of passagemath's Sage tree, through the drop-in.

The tests share one copy of the tree (symlinks restored, the ``.in``
configure outputs written, contrib/sage/install.sh run) and a site mirror
served by a real nginx on loopback as SAGE_SERVER.
Its files are real upstream files whose sha256 matches the tree's: the
sdist decorator-5.2.1.tar.gz and rpds_py's CPython 3.12 x86_64 manylinux
wheel (rpds_py is one of the packages made only of per-platform wheels).

Nothing can leave loopback: .upstream.d holds upstream Sage's SAGE_SERVER
line only, sagedl's mirror list (XDG_CONFIG_HOME/sagedl/mirrors.toml) names
a closed loopback port, and http_proxy/https_proxy point at that port for
everything but 127.0.0.1 (an upstream_url under -o, say).

The forms Sage's trees use:
(a) ``sage-spkg PKG`` whose Sage python answers the sys_tags question, so
    sage-spkg runs ``sage-package download --tags <tags> -- PKG``: for the
    wheel package one wheel comes down, the one of the first matching tag;
    for the sdist its tarball.  Only the download step has to succeed (the
    build after it has no compiler settings here).
(b) ``sage-spkg -d PKG`` with a broken python3/python first on PATH and a
    PYTHONPATH whose functools, contextlib, argparse and hashlib raise
    ImportError (the seed): with Sage's own sage-package it "succeeds"
    having downloaded nothing; with the drop-in the file is there.
(c) upstream Sage's sage-spkg line, ``sage-package download $OPTS PKG``
    (no ``--``), with and without ``-o`` (``--allow-upstream`` in $OPTS).
"""

import os
import shutil
import subprocess

import pytest

from helpers import clean_env
from nginx import Nginx, require_tool
from pyz import pyz_path
from realfiles import RealFileError, real_files
from sagetree import (RPDS_WHEEL, configure_outputs, copy_tree, install_dropin, real_wheel,
                      require_tree, serve_only_sage_server)

DEAD = "http://127.0.0.1:9/"

# What packaging's sys_tags() says for CPython 3.12 on x86_64 glibc 2.39,
# abridged (the first tag matching one of rpds_py's sections is the second).
TAGS = ("cp312-cp312-manylinux_2_39_x86_64 cp312-cp312-manylinux_2_17_x86_64 "
        "cp312-cp312-manylinux2014_x86_64 cp312-abi3-manylinux_2_17_x86_64 "
        "cp312-none-any py3-none-any")

SAGE_PYTHON = """#!/bin/sh
# A stand-in for Sage's python3 with packaging installed: it answers
# sage-spkg's sys_tags question, and is an ordinary Python otherwise.
case "$*" in
    *sys_tags*) echo "%s"; exit 0;;
esac
exec %s "$@"
"""

BROKEN_PYTHON = """#!/bin/sh
# Sage's half-installed python: dies on start-up.
echo 'Fatal Python error: init_import_site: Failed to import the site module' >&2
echo "ModuleNotFoundError: No module named '_functools'" >&2
exit 1
"""


def _python():
    for candidate in ("/usr/bin/python3", shutil.which("python3")):
        if candidate and os.path.exists(candidate):
            return candidate
    pytest.skip("no python3")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """{package: file name} of the site mirror's real files, and its directory."""
    require_tool("nginx")
    try:
        sdist = [f for f in real_files() if f["package"] == "decorator"][0]
        wheel = real_wheel()
    except RealFileError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip("real upstream files not available: %s" % e)
    root = tmp_path_factory.mktemp("site")
    for pkg, path in (("decorator", sdist["path"]), ("rpds_py", wheel)):
        d = root / "spkg" / "upstream" / pkg
        d.mkdir(parents=True)
        shutil.copy(path, str(d))
    return root


@pytest.fixture(scope="module")
def nginx(site):
    with Nginx(str(site)) as n:
        yield n


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = copy_tree(str(tmp_path_factory.mktemp("sage-spkg") / "sage"),
                     require_tree("passagemath-conf"))
    configure_outputs(root)
    install_dropin(root, pyz_path())
    serve_only_sage_server(root)
    return root


def spkg_env(tmp_path, tree, nginx, path_first=()):
    (tmp_path / "home").mkdir(exist_ok=True)
    config = tmp_path / "config" / "sagedl"
    config.mkdir(parents=True, exist_ok=True)
    (config / "mirrors.toml").write_text('[[mirror]]\nurl = "%s"\nname = "closed port"\n' % DEAD)
    path = list(path_first) + [os.path.join(tree, "build", "bin"), os.path.join(tree, "src", "bin"),
                               "/usr/local/bin", "/usr/bin", "/bin"]
    # Any other host goes to a closed port (an upstream_url under -o, say).
    return clean_env(tmp_path, SAGE_ROOT=tree, SAGE_SERVER=nginx.url,
                     SAGE_DISTFILES=str(tmp_path / "upstream"), MAKE="make",
                     PATH=os.pathsep.join(path), http_proxy=DEAD, https_proxy=DEAD,
                     no_proxy="127.0.0.1,localhost")


def run_spkg(tree, env, *args, **kw):
    spkg = kw.pop("spkg", os.path.join(tree, "build", "bin", "sage-spkg"))
    p = subprocess.run(["bash", spkg] + list(args), env=env, cwd=tree, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=300)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def requested(nginx, name):
    with open(os.path.join(nginx.tmp, "access.log")) as f:
        return [line.split('"')[1] for line in f if name in line]


def sage_python(prefix):
    """$SAGE_LOCAL/bin/python3: sage-spkg asks it for the platform tags."""
    bindir = os.path.join(prefix, "bin")
    os.makedirs(bindir)
    with open(os.path.join(bindir, "python3"), "w") as f:
        f.write(SAGE_PYTHON % (TAGS, _python()))
    os.chmod(os.path.join(bindir, "python3"), 0o755)


@pytest.mark.parametrize("pkg", ["rpds_py", "decorator"])
def test_a_sage_spkg_with_a_tag_reporting_python_downloads(tmp_path, tree, nginx, site, pkg):
    env = spkg_env(tmp_path, tree, nginx)
    # A SAGE_LOCAL of this test's own: sage-spkg's second argument is the tree.
    prefix = str(tmp_path / "local")
    sage_python(prefix)
    code, out = run_spkg(tree, env, pkg, prefix)
    name = os.listdir(str(site / "spkg" / "upstream" / pkg))[0]
    assert "Error downloading tarball" not in out, out
    # The step after the download ran: the tarball was found and unpacked.
    assert "Setting up build directory" in out, out
    assert os.listdir(str(tmp_path / "upstream")) == [name], out
    if pkg == "rpds_py":
        assert name == RPDS_WHEEL[2]
        # Exactly that wheel was asked for: --tags chose one of 103.
        assert [r.split()[1] for r in requested(nginx, "rpds_py-")][-1:] == [
            "/spkg/upstream/rpds_py/" + name]


def test_b_sage_spkg_download_only_under_the_seed(tmp_path, tree, nginx, site):
    broken = tmp_path / "broken-bin"
    broken.mkdir()
    for name in ("python3", "python"):
        (broken / name).write_text(BROKEN_PYTHON)
        (broken / name).chmod(0o755)
    poison = tmp_path / "poison"
    poison.mkdir()
    for module in ("functools", "contextlib", "argparse", "hashlib"):
        (poison / (module + ".py")).write_text("raise ImportError('poisoned %s')\n" % module)
    env = spkg_env(tmp_path, tree, nginx, path_first=[str(broken)])
    env["PYTHONPATH"] = str(poison)
    # The poison works: Python itself cannot import them from this PYTHONPATH.
    p = subprocess.run([_python(), "-c", "import argparse"], env=env, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode != 0 and b"poisoned" in p.stderr
    # Sage's own sage-package (kept as .orig) dies, and sage-spkg -d exits 0
    # having downloaded nothing: the failure this drop-in fixes.  (The
    # wrapper runs $SAGEDL_PYZ; pointed at the original, it is as if sagedl
    # were not installed.)
    original = tmp_path / "original-sage-package"
    original.write_text('#!/bin/sh\nexec "%s" "$@"\n'
                        % os.path.join(tree, "build", "bin", "sage-package.orig"))
    original.chmod(0o755)
    env_orig = dict(env, SAGEDL_PYZ=str(original), SAGE_DISTFILES=str(tmp_path / "upstream-orig"))
    code, out = run_spkg(tree, env_orig, "-d", "decorator")
    assert code == 0, out
    assert not os.path.exists(str(tmp_path / "upstream-orig" / "decorator-5.2.1.tar.gz")), out
    # Through the drop-in: downloaded.
    code, out = run_spkg(tree, env, "-d", "decorator")
    assert code == 0, out
    assert os.listdir(str(tmp_path / "upstream")) == ["decorator-5.2.1.tar.gz"], out


def test_c_upstream_sages_download_line_without_double_dash(tmp_path, tree, nginx, site):
    spkg = os.path.join(tree, "build", "bin", "sage-spkg")
    with open(spkg) as f:
        text = f.read()
    ours = 'sage-package download $SAGE_DOWNLOAD_FILE_OPTIONS -- $PKG_BASE'
    assert ours in text
    upstream = tmp_path / "sage-spkg-upstream"
    upstream.write_text(text.replace(ours, 'sage-package download $SAGE_DOWNLOAD_FILE_OPTIONS $PKG_BASE'))
    env = spkg_env(tmp_path, tree, nginx)
    for options in (["-d"], ["-d", "-o"]):
        code, out = run_spkg(tree, env, *(options + ["decorator"]), spkg=str(upstream))
        assert code == 0, out
        assert os.listdir(str(tmp_path / "upstream")) == ["decorator-5.2.1.tar.gz"], out
    assert len(requested(nginx, "decorator-5.2.1")) >= 1
