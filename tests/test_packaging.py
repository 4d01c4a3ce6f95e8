"""`pip install .` gives a working sagedl, and the package metadata is honest.

The install goes into a fresh virtual environment made from the test's own
interpreter, from a copy of what the build reads (pip's in-tree build would
otherwise drop build/ and *.egg-info into the checkout while other tests
run).  The build backend is the setuptools that tools/test.sh installs with
the test libraries (requirements-test.txt), so pip builds the wheel without
an isolated build environment and the fresh venv installs it with
--no-index: test traffic stays on this machine (a user's `pip install .`
differs only in fetching setuptools into an isolated environment first).
"""
import glob
import os
import shutil
import subprocess
import sys

import pytest

from faultserver import FaultServer
from helpers import REPO, Tree, clean_env, make_data
from netns import require_offline

TIMEOUT = 300


def copy_source(dest):
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(os.path.join(REPO, "sagedl"), os.path.join(dest, "sagedl"), ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(os.path.join(REPO, name), dest)
    return dest


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """bin/ of a fresh venv where `pip install .` has put sagedl."""
    base = tmp_path_factory.mktemp("pip")
    src = copy_source(str(base / "src"))
    venv = str(base / "venv")
    wheels = str(base / "wheels")
    quiet = ["-q", "--disable-pip-version-check", "--no-index"]
    p = subprocess.run([sys.executable, "-m", "pip", "wheel"] + quiet
                       + ["--no-build-isolation", "--no-deps", "-w", wheels, src],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=TIMEOUT)
    assert p.returncode == 0, p.stdout
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=TIMEOUT)
    python = os.path.join(venv, "bin", "python")
    p = subprocess.run([python, "-m", "pip", "install"] + quiet + glob.glob(os.path.join(wheels, "*.whl")),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                       timeout=TIMEOUT)
    assert p.returncode == 0, p.stdout
    # The copy is gone: the installed sagedl must not read anything from it.
    shutil.rmtree(src)
    return os.path.join(venv, "bin")


def run(cmd, env, cwd=None):
    return subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=TIMEOUT)


def test_installed_sagedl_lists_the_shipped_mirrors(installed, tmp_path):
    r = run([os.path.join(installed, "sagedl"), "list-mirrors", "--no-probe"],
            clean_env(tmp_path), cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "XMission" in r.stdout, r.stdout
    assert "incompletely" not in r.stderr


# Run inside tools/offline (a network namespace with loopback
# only), server and client together: a SAGE_SERVER fetch also ranks the
# shipped list, whose real mirrors must never be contacted by a test.
SAGE_SERVER_SCRIPT = """
import os, subprocess, sys
sys.path.insert(0, %(tests)r)
from faultserver import FaultServer
exe, root, name, data_path = sys.argv[1:]
with open(data_path, "rb") as f:
    data = f.read()
with FaultServer({name: data}) as s:
    env = dict(os.environ, SAGE_ROOT=root, SAGE_SERVER=s.url + "/ok/")
    p = subprocess.run([exe, "-q", "ntl"], env=env, timeout=120)
sys.exit(p.returncode)
"""


def test_installed_sagedl_fetches_from_a_loopback_mirror(installed, tmp_path):
    tree = Tree(tmp_path / "sage")
    name = tree.add("ntl", "11.6.0", "ntl-VERSION.tar.gz", make_data(100000, 3))
    exe = os.path.join(installed, "sagedl")
    with FaultServer(tree.files) as s:
        env = clean_env(tmp_path, SAGE_ROOT=str(tree.root))
        r = run([exe, "--mirror", s.url + "/ok/", "-q", name], env, cwd=str(tmp_path))
        assert r.returncode == 0, r.stderr
    assert (tree.root / "upstream" / name).read_bytes() == tree.files[name]


def test_installed_sagedl_fetches_from_sage_server_with_the_shipped_list(installed, tmp_path):
    """It used to stop with "the shipped mirror list is missing"."""
    tree = Tree(tmp_path / "sage")
    name = tree.add("ntl", "11.6.0", "ntl-VERSION.tar.gz", make_data(100000, 4))
    (tmp_path / "data").write_bytes(tree.files[name])
    script = SAGE_SERVER_SCRIPT % {"tests": os.path.dirname(os.path.abspath(__file__))}
    r = run(require_offline() + [sys.executable, "-c", script, os.path.join(installed, "sagedl"),
             str(tree.root), name, str(tmp_path / "data")], clean_env(tmp_path), cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert (tree.root / "upstream" / name).read_bytes() == tree.files[name]


def test_installed_version_is_the_package_version(installed, tmp_path):
    import sagedl
    r = run([os.path.join(installed, "sagedl"), "--version"], clean_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("sagedl %s " % sagedl.__version__)


def test_metadata_is_honest():
    try:
        import tomllib
    except ImportError:
        pytest.skip("tomllib is 3.11+")
    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)["project"]
    # setuptools>=77 (the build backend, the first to read an SPDX license
    # string) needs 3.9; the wheel is py3 only.
    assert project["requires-python"] == ">=3.9"
    assert project["license"] == "GPL-2.0-or-later"
    assert not [c for c in project["classifiers"] if c.startswith("License ::")]  # PEP 639
    assert "optional-dependencies" not in project     # no "fast" extra: urllib3 is slower
    assert project["urls"]["Repository"] == "https://github.com/sagedl/sagedl"
    assert project["urls"]["Issues"] == "https://github.com/sagedl/sagedl/issues"
    assert project["license-files"] == ["LICENSE"]
    with open(os.path.join(REPO, "LICENSE"), encoding="utf-8") as f:
        text = f.read()
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 2, June 1991" in text
    assert "END OF TERMS AND CONDITIONS" in text      # the whole text, not a stub
    classifiers = project["classifiers"]
    for minor in range(9, 14):
        assert "Programming Language :: Python :: 3.%d" % minor in classifiers
    assert "Programming Language :: Python :: 2.7" not in classifiers


def test_one_version_in_the_package_the_pyz_and_the_changelog(tmp_path):
    """--version of the pyz, the version built into it, the package's (which
    pip's metadata takes) and the newest CHANGELOG.md heading are one."""
    import re
    import zipfile
    import sagedl
    from pyz import pyz_path
    r = run([sys.executable, pyz_path(), "--version"], clean_env(tmp_path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ["sagedl", sagedl.__version__], r.stdout
    with zipfile.ZipFile(pyz_path()) as z:
        built = z.read("sagedl/__init__.py").decode("utf-8")
    assert re.search(r'^__version__ = "%s"$' % re.escape(sagedl.__version__), built, re.M)
    with open(os.path.join(REPO, "pyproject.toml"), encoding="utf-8") as f:
        assert 'version = { attr = "sagedl.__version__" }' in f.read()
    with open(os.path.join(REPO, "CHANGELOG.md"), encoding="utf-8") as f:
        newest = re.search(r"^## (\S+)", f.read(), re.M).group(1)
    assert newest == sagedl.__version__


DEBIAN_PYTHON = "/usr/bin/python3"


def test_test_venv_works_with_debians_externally_managed_python3(tmp_path):
    """tools/test.sh installs the test libraries into a virtual environment,
    so a stock Debian python3 (PEP 668: no pip install outside a venv)
    first on PATH runs the suite too."""
    if not os.path.exists(DEBIAN_PYTHON):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("tools/install-deps.sh installs Debian's python3; %s is missing" % DEBIAN_PYTHON)
        pytest.skip("no %s" % DEBIAN_PYTHON)
    env = clean_env(tmp_path, PATH="/usr/bin:/bin:" + os.environ.get("PATH", ""),
                    SAGEDL_TEST_VENV=str(tmp_path / "venv"))
    r = run(["bash", os.path.join(REPO, "tools", "test-venv.sh")], env)
    assert r.returncode == 0, r.stderr
    python = r.stdout.strip()
    assert python == str(tmp_path / "venv" / "bin" / "python")
    r = run([python, "-c", "import sys, pytest, hypothesis, trustme; print(sys._base_executable)"],
            env)
    assert r.returncode == 0, r.stderr
    assert os.path.realpath(r.stdout.strip()) == os.path.realpath(DEBIAN_PYTHON)
