"""sage-package properties/list/tarball/name answered by sagedl: Sage's rules
on small fixture trees (quirks included), errors as one line, and the seed
case on the real scripts: contrib/sage/install.sh into a copy of a real
Sage tree, then a broken python3/python first on PATH and a poisoned
PYTHONPATH, under which Sage's own sage-package fails and the wrapper must not.

The whole-tree comparison with sage_bootstrap is tests/test_sage_package_diff.py.
"""

import os
import subprocess

import pytest

from helpers import assert_one_line_error, clean_env
from pyz import interpreter_params, pyz_path, require_interpreter
from quirktree import make_quirk_tree, write
from sagetree import copy_tree, install_dropin, require_tree

TIMEOUT = 120
BROKEN_PYTHON = '#!/bin/sh\necho "ImportError: No module named _functools" >&2\nexit 1\n'
BROKEN_MODULE = 'raise ImportError("No module named _functools")\n'
POISONED_MODULES = ("functools.py", "contextlib.py", "argparse.py", "hashlib.py")


@pytest.fixture
def tree(tmp_path):
    return make_quirk_tree(tmp_path / "sage")


def run(run_cli, tree, *argv):
    return run_cli(*argv, env=clean_env(tree.parent, SAGE_ROOT=str(tree)))


def test_properties_shell_quotes_like_shlex_and_prints_bools_as_words(run_cli, tree):
    r = run(run_cli, tree, "properties", "--format=shell", "pipped")
    assert r.code == 0, r
    assert r.out.splitlines() == [
        "path_pipped=%s/build/pkgs/pipped" % tree,
        "version_with_patchlevel_pipped=5",
        "type_pipped=experimental",
        "source_pipped=pip",
        "trees_pipped=SAGE_VENV",
        "purl_pipped=pkg:pypi/pipped-dist",
        "description_pipped='\u00e9l\u00e8ve \"quoted\" it'\"'\"'s'",
        "uses_python_package_check_pipped=False",
    ]


def test_properties_rules_for_version_source_trees_and_purl(run_cli, tree):
    r = run(run_cli, tree, "properties", "--format", "shell", "midpatch", "scripted", "bare",
            "wheels", "plain")
    assert r.code == 0, r
    got = dict(line.split("=", 1) for line in r.out.splitlines())
    assert got["version_with_patchlevel_midpatch"] == "2.3.p1"
    assert got["version_with_patchlevel_bare"] == "none"
    assert got["version_with_patchlevel_plain"] == "1.2.3.p4"
    assert got["source_scripted"] == "script" and got["source_bare"] == "none"
    assert got["source_wheels"] == "wheel" and got["source_plain"] == "normal"
    assert got["trees_scripted"] == "SAGE_VENV" and got["trees_plain"] == "SAGE_LOCAL"
    assert got["purl_scripted"] == "pkg:generic/other-name"
    assert got["uses_python_package_check_scripted"] == "True"
    assert got["description_plain"] == "'a plain package'"
    assert got["description_bare"] == "''"


def test_any_format_but_plain_is_shell_and_plain_has_headers_for_several(run_cli, tree):
    shell = run(run_cli, tree, "properties", "--format=shell", "bare", "plain").out
    assert run(run_cli, tree, "properties", "--format=json", "bare", "plain").out == shell
    plain = run(run_cli, tree, "properties", "bare", "plain").out.splitlines()
    assert plain[0] == "bare:"
    assert plain[1] == "        path:                        %s/build/pkgs/bare" % tree
    assert plain[7] == "        description:                 "
    one = run(run_cli, tree, "properties", "bare").out.splitlines()
    assert one[0].startswith("        path:")


def test_tarball_substitutes_until_no_variable_is_left_in_file_order(run_cli, tree):
    assert run(run_cli, tree, "tarball", "midpatch").out == "midpatch-2-3-2.3.zip\n"
    assert run(run_cli, tree, "tarball", "wheels").out == "wheels-1.0-b.whl\nwheels-1.0-a.whl\n"
    r = run(run_cli, tree, "tarball", "bare")
    assert (r.code, r.out) == (0, "")


def test_name_gives_the_owner_of_a_symlinked_checksums_ini(run_cli, tree):
    r = run(run_cli, tree, "name", "/some/dir/plain-1.2.3.tar.gz")
    assert (r.code, r.out) == (0, "plain\n"), r
    assert run(run_cli, tree, "name", "wheels-1.0-a.whl").out == "wheels\n"


def test_list_selectors_filters_and_excludes(run_cli, tree):
    def names(*argv):
        r = run(run_cli, tree, "list", *argv)
        assert r.code == 0, r
        return r.out.split()
    everything = ["bare", "linked", "midpatch", "pipped", "plain", "scripted", "wheels"]
    assert names() == everything                       # notype/ has no type file
    assert names(":all:") == everything
    assert names(":standard:") == ["plain", "scripted"]
    assert names(":optional:", ":experimental:") == ["linked", "midpatch", "pipped", "wheels"]
    assert names("--has-file", "checksums.ini") == ["linked", "midpatch", "plain", "wheels"]
    assert names("--has-file=spkg-install.in|requirements.txt") == ["pipped", "scripted"]
    assert names("--no-file", "checksums.ini", ":standard:") == ["scripted"]
    assert names("--tree", "SAGE_VENV") == ["pipped", "scripted"]
    assert names("--exclude", "plain", "wheels", "--exclude", "bare") == [
        "linked", "midpatch", "pipped", "scripted"]
    # Names are printed as given, unchecked, and the file filters skip them.
    assert names("nosuch", "plain", "--has-file", "nothing") == ["nosuch", "plain"]
    assert names("pkg:pypi/pipped-dist", "generic/other_name") == ["pipped", "scripted"]


def test_list_dependencies(run_cli, tree):
    pkgs = tree / "build" / "pkgs"
    write(pkgs / "plain" / "dependencies", "bare $(BLAS) $(PYTHON) | scripted\n")
    write(pkgs / "wheels" / "dependencies", "plain nosuch\n")
    assert run(run_cli, tree, "list", "wheels", "--include-dependencies").out.split() == [
        "bare", "plain", "wheels"]
    # Sage's exclude walk dies on $(BLAS) (not a package name): so does this one.
    r = run(run_cli, tree, "list", ":all:", "--exclude-dependencies")
    assert (r.code, r.out) == (1, ""), r
    assert_one_line_error(r.err, "lowercase")
    write(pkgs / "plain" / "dependencies", "bare\n")
    assert run(run_cli, tree, "list", "wheels", "bare", "plain",
               "--exclude-dependencies").out.split() == ["wheels"]


@pytest.mark.parametrize("argv, code, text", [
    (("properties", "nosuch"), 1, "no package nosuch"),
    (("tarball", "nosuch"), 1, "no package nosuch"),
    (("tarball", "Plain"), 1, "lowercase"),
    (("properties", "pl-ain"), 1, "underscores"),
    (("list", "a:b"), 1, "colon"),
    (("list", "pkg:pypi/nosuch"), 1, "no package for PURL pkg:pypi/nosuch"),
    (("properties", "genericish"), 1, "neither a package name nor a PURL"),
    (("name", "nosuch-1.0.tar.gz"), 1, "not referenced by any Sage package"),
    (("properties",), 2, "arguments are required"),
    (("tarball", "a", "b"), 2, "unrecognized arguments"),
    (("list", "--bogus"), 2, "unrecognized arguments"),
])
def test_bad_input_is_one_line_and_sage_bootstraps_exit_code(run_cli, tree, argv, code, text):
    r = run(run_cli, tree, *argv)
    assert (r.code, r.out) == (code, ""), r
    assert_one_line_error(r.err, text)


def test_broken_metadata_is_one_line_exit_1(run_cli, tree):
    write(tree / "build" / "pkgs" / "bad" / "type", "sometimes\n")
    r = run(run_cli, tree, "list")           # Sage's Package.all() dies on it too
    assert (r.code, r.out) == (1, ""), r
    assert_one_line_error(r.err, "the type must be one of")
    write(tree / "build" / "pkgs" / "bad" / "type", "optional\n")
    write(tree / "build" / "pkgs" / "bad" / "checksums.ini", "[x.whl]\nsha256=00\n")
    r = run(run_cli, tree, "name", "x.whl")
    assert r.code == 1, r
    assert_one_line_error(r.err, "has no tarball=")


def test_not_a_tree_is_one_line_exit_1(run_cli, tmp_path):
    r = run_cli("list", env=clean_env(tmp_path, SAGE_ROOT=str(tmp_path)))
    assert (r.code, r.out) == (1, ""), r
    assert_one_line_error(r.err, "not a Sage tree")


def test_sage_root_is_used_verbatim_else_found_by_walking_up(run_cli, tree, tmp_path):
    env = clean_env(tmp_path, SAGE_ROOT=str(tree) + "/./")
    r = run_cli("properties", "--format=shell", "bare", env=env)
    assert "path_bare=%s/./build/pkgs/bare\n" % tree in r.out, r
    r = run_cli("tarball", "plain", env=clean_env(tmp_path), cwd=str(tree / "build" / "pkgs"))
    assert r.out == "plain-1.2.3.tar.gz\n", r


def test_leading_log_sage_root_and_debug_options(run_cli, tree, tmp_path):
    want = run(run_cli, tree, "list", ":standard:")
    assert want.out == "plain\nscripted\n", want
    assert run(run_cli, tree, "--log", "DEBUG", "list", ":standard:").out == want.out
    assert run(run_cli, tree, "--log=INFO", "--debug", "list", ":standard:").out == want.out
    r = run_cli("--sage-root", str(tree), "tarball", "plain", env=clean_env(tmp_path))
    assert (r.code, r.out) == (0, "plain-1.2.3.tar.gz\n"), r
    r = run_cli("--sage-root=%s" % tree, "list", ":standard:", env=clean_env(tmp_path))
    assert r.out == want.out, r


# ---------------------------------------------------------------------------
# The seed case, on the real scripts of a real Sage tree

def sage_env(tmp_path, **extra):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "LC_ALL": "C.UTF-8",
           "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.update(extra)
    return env


def sh(argv, env, cwd=None):
    return subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=TIMEOUT)


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A copy of passagemath's Sage tree (symlinks restored) with the drop-in installed."""
    root = tmp_path_factory.mktemp("seed") / "sage root"
    copy_tree(str(root), require_tree("passagemath-conf"))
    install_dropin(str(root), pyz_path())
    return root


SEED_QUERIES = [
    ("properties", "--format=shell", "gap"),
    ("properties", "--format=shell", "cython"),
    ("list", ":standard:"),
    ("list", "--has-file", "spkg-configure.m4", "--exclude", "gap"),
    ("tarball", "pari"),
    ("name", "pari-2.17.4.tar.gz"),
    ("--log=WARNING", "list", ":optional:"),     # sage-package's global option first
    ("--log", "INFO", "tarball", "gap"),
]


def seed_env(tmp_path, root):
    """A broken python3/python first on PATH, a PYTHONPATH that poisons
    functools, contextlib, argparse and hashlib; build/bin on PATH, as in
    sage-spkg's environment."""
    broken = tmp_path / "sage local" / "bin"
    poisoned = tmp_path / "sage local" / "lib" / "python3.12"
    for name in ("python3", "python"):
        write(broken / name, BROKEN_PYTHON)
        (broken / name).chmod(0o755)
    for name in POISONED_MODULES:
        write(poisoned / name, BROKEN_MODULE)
    return sage_env(tmp_path, PATH=os.pathsep.join([str(broken), str(root / "build" / "bin"),
                                                    "/usr/bin", "/bin"]),
                    PYTHONPATH=str(poisoned), SAGE_ROOT=str(root))


@pytest.mark.parametrize("query", SEED_QUERIES, ids=lambda q: " ".join(q))
def test_seed_wrapper_answers_as_sage_would_with_a_broken_python(installed, tmp_path, query):
    root = installed
    orig = str(root / "build" / "bin" / "sage-package.orig")
    wrapper = str(root / "build" / "bin" / "sage-package")
    clean = sage_env(tmp_path, PATH=os.pathsep.join([str(root / "build" / "bin"), "/usr/bin",
                                                     "/bin"]),
                     PYTHONPATH=str(root / "build"), SAGE_ROOT=str(root))
    expected = sh([orig] + list(query), clean)
    assert expected.returncode == 0 and expected.stdout, expected
    seed = seed_env(tmp_path, root)
    # The problem: Sage's own sage-package cannot answer under the seed.
    broken = sh([orig] + list(query), seed)
    assert broken.returncode != 0 and broken.stdout == b"", broken
    got = sh([wrapper] + list(query), seed)
    assert (got.returncode, got.stdout) == (0, expected.stdout), got
    assert got.stderr == b"", got


def test_seed_wrapper_without_sage_root_uses_its_own_tree(installed, tmp_path):
    root = installed
    env = seed_env(tmp_path, root)
    del env["SAGE_ROOT"]
    got = sh([str(root / "build" / "bin" / "sage-package"), "properties", "--format=shell",
              "gap"], env, cwd=str(tmp_path))
    assert got.returncode == 0, got
    assert ("path_gap='%s/build/pkgs/gap'\n" % root).encode() in got.stdout


def test_seed_sage_spkg_style_eval_gets_the_variables(installed, tmp_path):
    """sage-spkg's own line: eval $(sage-package properties --format=shell $PKG_BASE)."""
    root = installed
    script = ('eval $(sage-package properties --format=shell "$1")\n'
              'eval echo "\\$type_$1 \\$source_$1 \\$version_with_patchlevel_$1"\n')
    got = sh(["sh", "-c", script, "sh", "pari"], seed_env(tmp_path, root))
    version = (root / "build" / "pkgs" / "pari" / "package-version.txt").read_text().strip()
    assert got.stdout.decode() == "standard normal %s\n" % version, got


@pytest.mark.parametrize("argv", [("config",), ("dependencies", "gap", "--runtime"),
                                  ("apropos", "pari"), ("--log=INFO", "config")],
                         ids=lambda a: " ".join(a))
def test_wrapper_sends_other_subcommands_to_the_original(installed, tmp_path, argv):
    root = installed
    bin_dir = root / "build" / "bin"
    env = sage_env(tmp_path, PATH=os.pathsep.join([str(bin_dir), "/usr/bin", "/bin"]),
                   PYTHONPATH=str(root / "build"), SAGE_ROOT=str(root))
    want = sh([str(bin_dir / "sage-package.orig")] + list(argv), env)
    assert want.returncode == 0 and want.stdout, want
    got = sh([str(bin_dir / "sage-package")] + list(argv), env)
    assert (got.returncode, got.stdout) == (0, want.stdout), got


# ---------------------------------------------------------------------------
# Bad input through the pyz, on every interpreter, in the C and a UTF-8 locale

BAD_INPUTS = [
    (("properties", "\u00e9"), 1, b""),
    (("tarball", "\u00e9"), 1, b""),
    (("name", "\u00e9.tar.gz"), 1, b""),
    (("properties", "--format=shell", "pkg:pypi/\u00e9"), 1, b""),
    (("list", ":\u00e9:"), 1, b""),
    (("tarball",), 2, b""),
    (("list", "\u00e9"), 0, "\u00e9\n".encode("utf-8")),   # Sage prints any name back
    (("list", "--has-file", "\u00e9", ":standard:"), 0, b""),
]


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.6", "3.13", "pypy3")))
def test_bad_input_through_the_pyz_is_one_line_on_every_interpreter(label, tree, tmp_path):
    python = require_interpreter(label)
    for locale in ("C", "C.UTF-8"):
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LC_ALL": locale,
               "XDG_CACHE_HOME": str(tmp_path / "cache"), "SAGE_ROOT": str(tree)}
        for argv, code, out in BAD_INPUTS:
            p = sh([python, pyz_path()] + list(argv), env)
            assert (p.returncode, p.stdout) == (code, out), (locale, argv, p)
            err = p.stderr.decode("utf-8", "replace")
            assert "Warning" not in err, (locale, argv, err)
            if code:
                assert_one_line_error(err)
