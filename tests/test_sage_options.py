"""Every option of sage_bootstrap's ``download`` command line, with Sage's meaning.

build/sage_bootstrap/cmdline.py and app.py of Sage's tree are the
reference: ``--tags`` (nargs='*', each tag takes the first remaining
``[section]`` whose name contains it; no match or no tags: every tarball),
``--exclude A B`` (nargs='*', repeatable), ``--has-file/--no-file`` with
``a|b`` disjunctions (filters on classes only), ``--tree`` (parsed, not
applied by download), ``--on-error warn`` (exit 0 with a warning),
``--allow-upstream``, ``--no-check-certificate``; packages in sorted order;
a cached file says "Using cached file PATH" first on stderr, with no network.
"""

import hashlib
import os
import subprocess

import pytest

import helpers
from helpers import REPO, clean_env, make_data
from pyz import interpreter_params, pyz_path, require_interpreter
from sagedl.commands import bulk
from sagedl.errors import EXIT_CHECKSUM
from sagedl.sage.tree import SageTree
from sagetree import require_tree

# What packaging.tags.sys_tags() gives for CPython 3.12 on x86_64 glibc 2.39,
# in its order (abridged: each manylinux level down to 2_5, then the older
# aliases, then abi3, none, and the py3* tags).
CP312_LINUX_TAGS = (
    ["cp312-cp312-manylinux_2_%d_x86_64" % m for m in range(39, 4, -1)]
    + ["cp312-cp312-manylinux2014_x86_64", "cp312-cp312-manylinux2010_x86_64",
       "cp312-cp312-manylinux1_x86_64", "cp312-cp312-linux_x86_64"]
    + ["cp312-abi3-manylinux_2_%d_x86_64" % m for m in range(39, 4, -1)]
    + ["cp312-abi3-linux_x86_64", "cp312-none-linux_x86_64"]
    + ["cp311-abi3-manylinux_2_17_x86_64", "cp39-abi3-manylinux_2_17_x86_64",
       "py3-none-manylinux_2_17_x86_64", "cp312-none-any", "py3-none-any"])

WHEELS = ["wheelpkg-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
          "wheelpkg-1.0-cp312-cp312-macosx_11_0_arm64.whl",
          "wheelpkg-1.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
          "wheelpkg-1.0-cp312-cp312-musllinux_1_2_x86_64.whl"]


class Tree(helpers.Tree):
    """A small Sage tree: sdists, a wheel-only package, and a package without tarball."""

    def __init__(self, root):
        helpers.Tree.__init__(self, root)
        self.ntl = self.add("ntl", "11.6.0", "ntl-VERSION.tar.gz", make_data(30000, 11), sha1=False)
        self.pari = self.add("pari", "2.17.4", "pari-VERSION.tar.gz", make_data(20000, 12),
                             sha1=False)
        self.opt = self.add("foo_opt", "1.0", "foo_opt-VERSION.tar.bz2", make_data(5000, 13),
                            ptype="optional", sha1=False, extra=("spkg-configure.m4",))
        lines = []
        for i, name in enumerate(WHEELS):
            data = make_data(3000 + i, 40 + i)
            self.files[name] = data
            lines += ["[%s]" % name, "tarball=%s" % name,
                      "sha256=%s" % hashlib.sha256(data).hexdigest(), ""]
        d = self.pkgs / "wheelpkg"
        d.mkdir()
        (d / "checksums.ini").write_text("\n".join(lines))
        (d / "package-version.txt").write_text("1.0\n")
        (d / "type").write_text("standard\n")
        (self.pkgs / "sagelib").mkdir()
        (self.pkgs / "sagelib" / "type").write_text("standard\n")

    def path(self, name):
        return str(self.root / "upstream" / name)


@pytest.fixture
def tree(tmp_path):
    return Tree(tmp_path / "sage")


env_for = helpers.mirror_env


def names(out):
    return [os.path.basename(p) for p in out.splitlines()]


# -- --tags and wheel-only packages -----------------------------------------------
def test_without_tags_a_wheel_only_package_gives_every_wheel(run_cli, tmp_path, tree, mirror):
    r = run_cli("download", "wheelpkg", env=env_for(tmp_path, tree, mirror))
    assert r.code == 0, r
    assert names(r.out) == WHEELS       # checksums.ini order, one path each


def test_tags_take_the_first_section_containing_each_tag(run_cli, tmp_path, tree, mirror):
    env = env_for(tmp_path, tree, mirror)
    r = run_cli("download", "--tags", *(CP312_LINUX_TAGS + ["--", "wheelpkg"]), env=env)
    assert r.code == 0, r
    assert names(r.out) == [WHEELS[2]]
    assert [q.path.rsplit("/", 1)[1] for q in mirror.requests if q.method == "GET"] == [WHEELS[2]]
    # Each tag that matches takes one more wheel, in the order of the tags;
    # a tag is a substring test against the whole [section] name.
    r = run_cli("download", "--tags", "musllinux_1_2", "cp311", "macosx_99", "--", "wheelpkg",
                env=env)
    assert r.code == 0, r
    assert names(r.out) == [WHEELS[3], WHEELS[0]]


def test_tags_matching_nothing_take_every_wheel(run_cli, tmp_path, tree, mirror):
    r = run_cli("download", "--tags", "cp27-cp27mu-linux_armv6l", "--", "wheelpkg",
                env=env_for(tmp_path, tree, mirror))
    assert r.code == 0, r
    assert names(r.out) == WHEELS


def test_tags_leave_an_sdist_package_alone(run_cli, tmp_path, tree, mirror):
    r = run_cli("download", "--tags", *(CP312_LINUX_TAGS + ["--", "ntl"]),
                env=env_for(tmp_path, tree, mirror))
    assert r.code == 0, r
    assert r.out == tree.path(tree.ntl) + "\n"


def test_classes_include_wheel_only_packages(run_cli, tmp_path, tree, mirror):
    env = env_for(tmp_path, tree, mirror)
    r = run_cli("download", ":standard:", "-q", env=env)
    assert r.code == 0, r
    assert names(r.out) == [tree.ntl, tree.pari] + WHEELS
    r = run_cli("download", "-q", "--tags", "cp312-cp312-manylinux_2_17_x86_64", "--", ":all:",
                env=env)
    assert r.code == 0, r
    assert names(r.out) == [tree.opt, tree.ntl, tree.pari, WHEELS[2]]


def test_real_tree_wheel_packages_pick_one_wheel_for_a_real_tag_list():
    root = require_tree("passagemath-conf")     # the tree with wheel-only packages
    tree = SageTree(root)
    counts = dict((p, len(tree.tarballs(p))) for p in ("rpds_py", "cylp", "clarabel"))
    assert counts == {"rpds_py": 103, "cylp": 34, "clarabel": 5}
    picked = [t.filename for p in ("rpds_py", "cylp", "clarabel", "argon2_cffi", "gap")
              for t in bulk.by_tags(tree.tarballs(p), CP312_LINUX_TAGS)]
    assert picked == [
        "rpds_py-2026.6.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "cylp-0.94.0-cp312-cp312-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        "clarabel-0.11.1-cp39-abi3-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        "argon2_cffi-25.1.0-py3-none-any.whl",
        tree.tarballs("gap")[0].filename]


def test_real_tree_wheel_packages_with_this_machines_own_tags():
    """The full sys_tags() of the Python running the tests (pip's packaging,
    hundreds of tags): Sage's rule gives exactly one wheel of each wheel-only
    package, and one this Python could install."""
    root = require_tree("passagemath-conf")
    try:
        from pip._vendor.packaging.tags import sys_tags
    except ImportError:
        pytest.skip("pip's vendored packaging is not importable")
    tags = ["%s-%s-%s" % (t.interpreter, t.abi, t.platform) for t in sys_tags()]
    tree = SageTree(root)
    for pkg in ("rpds_py", "cylp", "clarabel"):
        picked = bulk.by_tags(tree.tarballs(pkg), tags)
        if len(picked) == len(tree.tarballs(pkg)):
            pytest.skip("%s has no wheel for this Python (nothing matched: all taken)" % pkg)
        assert len(picked) == 1, (pkg, [t.filename for t in picked])
        py, abi, plat = picked[0].filename[:-len(".whl")].split("-")[-3:]
        assert any("%s-%s-%s" % (x, y, z) in tags for x in py.split(".")
                   for y in abi.split(".") for z in plat.split(".")), picked[0].filename


# -- the other options ------------------------------------------------------------
def test_exclude_takes_several_names_and_repeats(run_cli, tmp_path, tree, mirror):
    env = env_for(tmp_path, tree, mirror)
    r = run_cli("download", ":all:", "--exclude", "wheelpkg", "pari", "--exclude", "foo_opt",
                "-q", env=env)
    assert r.code == 0, r
    assert names(r.out) == [tree.ntl]
    r = run_cli("download", "-q", "--exclude", "wheelpkg", "ntl", "--", ":standard:", env=env)
    assert r.code == 0, r
    assert names(r.out) == [tree.pari]


def test_has_file_and_no_file_filter_classes_with_disjunctions(run_cli, tmp_path, tree, mirror):
    env = env_for(tmp_path, tree, mirror)
    r = run_cli("download", ":all:", "--has-file", "nothing|spkg-configure.m4", "-q", env=env)
    assert (r.code, names(r.out)) == (0, [tree.opt]), r
    r = run_cli("download", ":all:", "--no-file", "spkg-configure.m4|nothing", "--exclude",
                "wheelpkg", "-q", env=env)
    assert (r.code, names(r.out)) == (0, [tree.ntl, tree.pari]), r
    # As in Sage, the filters apply to what a class adds, not to named packages.
    r = run_cli("download", "ntl", "--has-file", "spkg-configure.m4", env=env)
    assert (r.code, names(r.out)) == (0, [tree.ntl]), r


def test_tree_is_accepted_and_like_sage_not_applied(run_cli, tmp_path, tree, mirror):
    r = run_cli("download", "--tree", "SAGE_VENV", "ntl", env=env_for(tmp_path, tree, mirror))
    assert (r.code, names(r.out)) == (0, [tree.ntl]), r


def test_packages_come_out_sorted_as_in_sage(run_cli, tmp_path, tree, mirror):
    r = run_cli("download", "pari", "ntl", "pari", env=env_for(tmp_path, tree, mirror))
    assert (r.code, names(r.out)) == (0, [tree.ntl, tree.pari]), r


def test_on_error_warn_exits_0_for_a_file_no_mirror_has(run_cli, tmp_path, tree, mirror):
    del mirror._files[tree.pari]
    env = env_for(tmp_path, tree, mirror)
    r = run_cli("download", "pari", "--on-error", "warn", env=env)
    assert r.code == 0, r
    assert r.out == "" and "unable to download tarball of pari" in r.err
    r = run_cli("download", "pari", "ntl", "--on-error", "warn", env=env)
    assert (r.code, names(r.out)) == (0, [tree.ntl]), r
    r = run_cli("download", "pari", env=env)
    assert r.code != 0, r


def test_on_error_warn_still_fails_on_corrupt_bytes(run_cli, tmp_path, tree, mirror):
    env = env_for(tmp_path, tree, mirror, SAGEDL_MIRRORS=mirror.url + "/corrupt/")
    r = run_cli("download", "ntl", "--on-error", "warn", env=env)
    assert r.code == EXIT_CHECKSUM, r


def test_allow_upstream_and_no_check_certificate_are_taken(run_cli, tmp_path, tree, mirror):
    r = run_cli("download", "--allow-upstream", "--no-check-certificate", "--log", "info",
                "--", "ntl", env=env_for(tmp_path, tree, mirror))
    assert (r.code, names(r.out)) == (0, [tree.ntl]), r


def test_cached_file_says_so_first_and_needs_no_network(run_cli, tmp_path, tree, mirror):
    (tree.root / "upstream").mkdir()
    (tree.root / "upstream" / tree.ntl).write_bytes(tree.files[tree.ntl])
    # No explicit mirror: a run that planned sources would probe this list.
    mfile = tmp_path / "mirrors.toml"
    mfile.write_text('[[mirror]]\nurl = "%s/ok/"\nname = "probe me"\n' % mirror.url)
    env = clean_env(tmp_path, SAGE_ROOT=str(tree.root))
    for argv in (["download", "ntl"], [tree.ntl]):
        r = run_cli(*(argv + ["--mirrors-file", mfile]), env=env)
        assert r.code == 0, r
        assert r.err.startswith("Using cached file %s\n" % tree.path(tree.ntl)), r
    assert mirror.requests == []


# -- through the installed drop-in, in sage-spkg's and upstream Sage's forms -----
@pytest.fixture
def installed(tree):
    from pyz import pyz_path
    subprocess.run(["sh", os.path.join(REPO, "contrib", "sage", "install.sh"), str(tree.root),
                    pyz_path()], check=True, stdout=subprocess.PIPE, timeout=60)
    return tree.root / "build" / "bin"


@pytest.mark.parametrize("form", ["sage-spkg", "sage-spkg-with-tags", "upstream-sage", "bootstrap"])
def test_sage_package_download_forms_through_the_wrapper(tmp_path, tree, mirror, installed, form):
    env = env_for(tmp_path, tree, mirror)
    env["PATH"] = str(installed) + os.pathsep + env["PATH"]
    env["OPTS"] = " --allow-upstream"          # what sage-spkg -o puts there
    script = {
        "sage-spkg": 'PKG_SRC=$(sage-package download $OPTS -- "$1") || exit 9',
        "sage-spkg-with-tags": 'OPTS="$OPTS --tags $TAGS"; '
                               'PKG_SRC=$(sage-package download $OPTS -- "$1") || exit 9',
        "upstream-sage": 'PKG_SRC=$(sage-package download $OPTS "$1") || exit 9',
        # Sage's bootstrap script, with BOOTSTRAP_QUIET=yes.
        "bootstrap": 'PKG_SRC=$(sage-package download --log=WARNING "$1") || exit 9',
    }[form] + '; printf "%s" "$PKG_SRC"'
    env["TAGS"] = " ".join(CP312_LINUX_TAGS)
    pkg = "wheelpkg" if form == "sage-spkg-with-tags" else "ntl"
    p = subprocess.run(["sh", "-c", script, "sh", pkg], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    want = WHEELS[2] if pkg == "wheelpkg" else tree.ntl
    assert p.stdout.decode() == tree.path(want)


# -- every interpreter the pyz supports ------------------------------------------
@pytest.mark.parametrize("label", interpreter_params())
def test_sage_download_options_under_every_interpreter(label, tmp_path, tree, mirror):
    python = require_interpreter(label)
    env = env_for(tmp_path, tree, mirror)

    def run(*argv):
        p = subprocess.run([python, pyz_path()] + list(argv), env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        return p.returncode, names(p.stdout.decode()), p.stderr.decode()

    code, out, err = run("download", "--tags", *(CP312_LINUX_TAGS + ["--", "wheelpkg", "ntl"]))
    assert (code, out) == (0, [tree.ntl, WHEELS[2]]), err
    code, out, err = run("download", "-q", "--exclude", "wheelpkg", "ntl", "--has-file",
                         "spkg-configure.m4|type", "--tree", "SAGE_LOCAL", "--", ":all:")
    assert (code, out) == (0, [tree.opt, tree.pari]), err
    code, out, err = run("download", "ntl")
    assert (code, out) == (0, [tree.ntl]) and err.startswith("Using cached file"), err
