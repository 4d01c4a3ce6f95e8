"""The README's first command works on a fresh clone, with nothing beside it.

It builds the pyz and fetches one package of examples/sage-tree by name from
PyPI's file host, printing the verified file's path.  What is checked here,
without leaving loopback:

* the README's set-up block is exactly two commands: that one, and the
  test suite;
* the example tree is real Sage metadata: each checksums.ini is sage-conf
  10.7's, except that upstream_url names the file's permanent address on
  files.pythonhosted.org (Sage 10.7's /packages/source/... form is a
  redirect that PyPI mirrors need not serve);
* the command, run with the real file already in place (the same bytes as
  PyPI's, tests/realfiles.py), verifies it and prints its path;
* run in a network namespace with nothing cached, the only name it looks up
  is files.pythonhosted.org: no Sage mirror is contacted.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

import netns
from helpers import REPO, clean_env
from pyz import pyz_path
from realfiles import require_real_files
from sagetree import require_tree

EXAMPLE = os.path.join(REPO, "examples", "sage-tree")
TIMEOUT = 120


def setup_block():
    """The commands of the README's first code block."""
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        text = f.read()
    block = re.search(r"\n\n((?:    .*\n)+)", text).group(1)
    return [line[4:] for line in block.splitlines() if line.strip()]


def first_command():
    """The README's first command, after the build: its argv, without the pyz."""
    build, run = setup_block()[0].split(" && ")
    assert build == "python3 zipapp/build.py"
    argv = shlex.split(run)
    assert argv[:2] == ["python3", "dist/sagedl.pyz"], run
    return argv[2:]


def with_root(argv, root):
    argv = list(argv)
    argv[argv.index("--sage-root") + 1] = root
    return argv


def package_of(argv):
    return argv[-1]


def read_ini(path):
    with open(path, encoding="utf-8") as f:
        return dict(line.split("=", 1) for line in f.read().splitlines() if "=" in line)


def test_the_readme_starts_with_two_commands_the_main_job_and_the_suite():
    commands = setup_block()
    assert len(commands) == 2, commands
    assert commands[1] == "bash tools/test.sh"
    argv = first_command()
    assert argv[0] == "download" and "--upstream-only" in argv   # never a Sage mirror
    assert argv[argv.index("--sage-root") + 1] == "examples/sage-tree"
    assert os.path.isdir(os.path.join(EXAMPLE, "build", "pkgs", package_of(argv)))


def test_the_example_tree_is_sage_conf_10_7s_metadata_fetched_from_pypi():
    real = os.path.join(require_tree("sage-conf"), "build", "pkgs")
    packages = sorted(os.listdir(os.path.join(EXAMPLE, "build", "pkgs")))
    assert len(packages) >= 3
    for pkg in packages:
        ours = os.path.join(EXAMPLE, "build", "pkgs", pkg)
        for name in ("package-version.txt", "type"):
            with open(os.path.join(ours, name)) as a, open(os.path.join(real, pkg, name)) as b:
                assert a.read() == b.read(), (pkg, name)
        mine, sage = read_ini(os.path.join(ours, "checksums.ini")), \
            read_ini(os.path.join(real, pkg, "checksums.ini"))
        url = mine.pop("upstream_url")
        sage.pop("upstream_url")
        assert mine == sage, pkg
        with open(os.path.join(ours, "package-version.txt")) as f:
            tarball = mine["tarball"].replace("VERSION", f.read().strip())
        assert url.startswith("https://files.pythonhosted.org/packages/"), url
        assert url.rsplit("/", 1)[1] == tarball, (url, tarball)


def run_pyz(argv, env, command=()):
    p = subprocess.run(list(command) + [sys.executable, pyz_path()] + list(argv), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def copy_example(root):
    """The example tree as git has it: without the upstream/ that running the
    README's first command in this clone leaves behind (ignored by git)."""
    shutil.copytree(EXAMPLE, root, ignore=lambda d, names: ["upstream"] if d == EXAMPLE else [])


def test_the_first_command_verifies_the_file_and_prints_its_path(tmp_path):
    argv = first_command()
    real = dict((f["package"], f) for f in require_real_files())
    pkg = package_of(argv)
    if pkg not in real:
        pytest.skip("tests/realfiles.py does not fetch %s" % pkg)
    root = str(tmp_path / "sage-tree")
    copy_example(root)
    os.makedirs(os.path.join(root, "upstream"))
    shutil.copy(real[pkg]["path"], os.path.join(root, "upstream"))
    # Any attempt at the network would go to a closed loopback port and fail.
    env = clean_env(tmp_path, https_proxy="http://127.0.0.1:9/", http_proxy="http://127.0.0.1:9/")
    code, out, err = run_pyz(with_root(argv, root), env)
    assert code == 0, err
    assert out == os.path.join(root, "upstream", real[pkg]["tarball"]) + "\n", (out, err)


def test_the_first_command_asks_only_pypis_file_host(tmp_path):
    """Offline, with nothing cached: the one host it looks up is PyPI's."""
    argv = first_command()
    root = str(tmp_path / "sage-tree")
    copy_example(root)
    env = clean_env(tmp_path)
    with netns.offline(dns_hole=True) as net:
        code, out, err = run_pyz(with_root(argv, root) + ["--connect-timeout", "1"], env,
                                 command=net.command([]))
        names = set(net.dns.names)
        connects = net.attempts()
    assert code == 5 and out == "", err
    assert names and {n.rstrip(".") for n in names} == {"files.pythonhosted.org"}, names
    assert connects == 0    # nothing resolved, so nothing to connect to
