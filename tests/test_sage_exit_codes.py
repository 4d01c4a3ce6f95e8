"""Exit codes: sage_bootstrap's through contrib/sage's wrappers, sagedl's own otherwise.

Sage's build scripts were written against sage_bootstrap, whose
sage-download-file and sage-package download exit 0 (success, or nothing
to download), 1 (any failure) or 2 (bad arguments).  The wrappers set
SAGEDL_EXIT_CODES=sage; ``sagedl`` itself keeps its finer table
(errors.EXIT_CODES).  Each case runs twice, through the real installed
wrapper and as ``sagedl``, against a loopback mirror in Sage's layout.

Also here: what a bulk download does with one package whose checksums.ini
sagedl refuses (it fails that package, not the run before it starts).
"""

import os
import shutil
import subprocess

import pytest

from helpers import REPO, Tree, make_data, mirror_env
from pyz import pyz_path
from sagedl import errors
from sagedl.cli import arguments_refused

TIMEOUT = 120


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path / "sage")
    t.ntl = t.add("ntl", "11.6.0", "ntl-VERSION.tar.gz", make_data(30000, 11))
    t.pari = t.add("pari", "2.17.4.p1", "pari-VERSION.tar.gz", make_data(20000, 12))
    t.zlib = t.add("zlib", "1.3.1", "zlib-VERSION.tar.gz", make_data(10000, 13))
    t.opt = t.add("foo_opt", "1.0", "foo_opt-VERSION.tar.bz2", make_data(5000, 14),
                  ptype="optional")
    (t.pkgs / "sagelib").mkdir()                       # no checksums.ini: nothing to download
    (t.pkgs / "sagelib" / "type").write_text("standard\n")
    subprocess.run(["sh", os.path.join(REPO, "contrib", "sage", "install.sh"), str(t.root),
                    pyz_path()], check=True, stdout=subprocess.PIPE, timeout=TIMEOUT)
    return t


def run(tmp_path, tree, mirror, argv, wrapper):
    """(exit code, stdout lines, stderr): through build/bin/WRAPPER, or the pyz."""
    env = mirror_env(tmp_path, tree, mirror)
    if wrapper:
        cmd = [str(tree.root / "build" / "bin" / wrapper)] + argv
    else:
        cmd = [pyz_path()] + argv
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=TIMEOUT)
    err = p.stderr.decode()
    assert "Traceback" not in err, err
    return p.returncode, p.stdout.decode().splitlines(), err


def fresh(tree):
    shutil.rmtree(str(tree.root / "upstream"), ignore_errors=True)


DL = "sage-download-file"
PKG = "sage-package"


@pytest.mark.timeout(300)
def test_wrappers_answer_with_sage_bootstraps_codes_sagedl_with_its_own(tmp_path, tree, mirror):
    mirror.add(tree.zlib, b"not the zlib tarball at all")       # corrupt on the only mirror
    del mirror._files[tree.pari]                                  # missing from it
    # (argv for the wrapper, wrapper, argv for sagedl, code through the wrapper, sagedl's code)
    cases = [
        ([tree.ntl], DL, [tree.ntl], 0, 0),
        ([tree.pari], DL, [tree.pari], 1, errors.EXIT_NOT_FOUND),
        ([tree.zlib], DL, [tree.zlib], 1, errors.EXIT_CHECKSUM),
        ([mirror.url + "/ok/nothing-here.tar.gz", str(tmp_path / "dest")], DL,
         [mirror.url + "/ok/nothing-here.tar.gz", str(tmp_path / "dest")],
         1, errors.EXIT_NOT_FOUND),
        (["--timeout", "soon", tree.ntl], DL, ["--timeout", "soon", tree.ntl], 2, 2),
        (["--quiet"], DL, ["--quiet"], 2, 2),
        (["download", "ntl"], PKG, ["download", "ntl"], 0, 0),
        (["download", "pari"], PKG, ["download", "pari"], 1, errors.EXIT_NOT_FOUND),
        (["download", "zlib"], PKG, ["download", "zlib"], 1, errors.EXIT_CHECKSUM),
        (["download", "no_such_package"], PKG, ["download", "no_such_package"], 1, 3),
        (["download", "--bogus", "ntl"], PKG, ["download", "--bogus", "ntl"], 2, 2),
        (["download"], PKG, ["download"], 2, 2),
        # `make download`: the standard packages, some of them missing from the mirror
        # (sagedl: one job at a time, so it stops at pari's 404 before zlib's corrupt bytes)
        (["download", ":standard:"], PKG, ["download", "--jobs", "1", ":standard:"], 1,
         errors.EXIT_NOT_FOUND),
    ]
    for wargv, wrapper, argv, sage_code, own_code in cases:
        fresh(tree)
        got = run(tmp_path, tree, mirror, wargv, wrapper)
        assert got[0] == sage_code, (wrapper, wargv, got)
        fresh(tree)
        got = run(tmp_path, tree, mirror, argv, None)
        assert got[0] == own_code, (argv, got)


@pytest.mark.timeout(120)
def test_nothing_to_download_is_a_silent_success_through_the_wrapper(tmp_path, tree, mirror):
    # sage_bootstrap prints nothing and exits 0 for a package without checksums.ini ...
    assert run(tmp_path, tree, mirror, ["download", "sagelib"], PKG) == (0, [], "")
    assert run(tmp_path, tree, mirror, ["download", ":optional:", "--has-file", "nope"],
               PKG) == (0, [], "")
    # ... which sagedl itself reports
    code, out, err = run(tmp_path, tree, mirror, ["download", "sagelib"], None)
    assert (code, out) == (errors.EXIT_NOT_FOUND, []) and "no tarball" in err, err
    # a directory without a type file is no package for Sage: a failure
    (tree.pkgs / "notype").mkdir()
    assert run(tmp_path, tree, mirror, ["download", "notype"], PKG)[0] == 1
    assert mirror.requests == []


@pytest.mark.timeout(120)
def test_a_bulk_download_lists_what_it_fetched_before_failing(tmp_path, tree, mirror):
    del mirror._files[tree.pari]
    code, out, err = run(tmp_path, tree, mirror, ["download", "--jobs", "1", ":standard:"], PKG)
    # Sorted like Sage: ntl, pari (missing: stops), zlib never started.
    assert code == 1 and out == [str(tree.root / "upstream" / tree.ntl)], err
    assert "1 fetched" in err and "1 failed" in err and "1 not started" in err, err
    assert not (tree.root / "upstream" / tree.zlib).exists()


def break_checksums(tree):
    ini = tree.pkgs / "pari" / "checksums.ini"
    ini.write_text(ini.read_text() + "sha256=%s\n" % ("0" * 63))   # the last value wins: unsafe


@pytest.mark.timeout(120)
@pytest.mark.parametrize("wrapper", [PKG, None])
def test_one_malformed_checksums_ini_fails_its_package_only_with_warn(tmp_path, tree, mirror,
                                                                      wrapper):
    break_checksums(tree)
    code, out, err = run(tmp_path, tree, mirror, ["download", "--on-error", "warn", ":all:"],
                         wrapper)
    upstream = tree.root / "upstream"
    assert out == [str(upstream / n) for n in (tree.opt, tree.ntl, tree.zlib)], err
    assert code == (1 if wrapper else errors.EXIT_METADATA), err
    assert "pari/checksums.ini:4: sha256= must be 64" in err, err


@pytest.mark.timeout(120)
@pytest.mark.parametrize("wrapper", [PKG, None])
def test_one_malformed_checksums_ini_stops_the_run_there_with_stop(tmp_path, tree, mirror,
                                                                   wrapper):
    break_checksums(tree)
    code, out, err = run(tmp_path, tree, mirror, ["download", "--jobs", "1", ":standard:"],
                         wrapper)
    # ntl comes before pari, zlib after it: never started
    assert out == [str(tree.root / "upstream" / tree.ntl)], err
    assert code == (1 if wrapper else errors.EXIT_METADATA), err
    assert "pari/checksums.ini:4" in err and mirror.requests_for(tree.zlib) == [], err


def test_sage_exit_code_folds_the_table():
    assert [errors.sage_exit_code(c, False) for c in (0, 1, 2, 3, 4, 5, 6, 7, 130)] == \
        [0, 1, 1, 1, 1, 1, 1, 1, 130]
    assert [errors.sage_exit_code(c, True) for c in (1, 2, 3)] == [2, 2, 2]


@pytest.mark.parametrize("argv, refused", [
    ([], True),
    (["--quiet"], True),
    (["--timeout", "-1", "x.tar.gz"], True),
    (["--bogus", "x.tar.gz"], True),
    (["x.tar.gz"], False),
    (["--print-fastest-mirror"], False),
    (["download"], True),
    (["download", "--on-error", "sometimes", "gap"], True),
    (["download", "--exclude", "a", "b", "--", "gap"], False),
    (["properties"], True),
    (["tarball", "gap"], False),
    (["--log=WARNING", "list", "--bogus"], True),
    (["download", "--help"], False),
])
def test_arguments_refused_tells_bad_arguments_from_failures(argv, refused):
    assert arguments_refused(argv) == refused


@pytest.mark.timeout(120)
def test_a_mirror_list_named_in_upstream_d_is_cached_where_sage_keeps_it(tmp_path, tree, mirror):
    """Sage's MirrorList writes the list an .upstream.d line names to
    SAGE_DISTFILES/mirror_list, a Python list literal its tools read back."""
    import ast
    from helpers import clean_env
    base = mirror.url + "/ok/"
    mirror.add("mirror_list", ("# test list\n[%r]\n" % base).encode())
    (tree.root / ".upstream.d").mkdir()
    (tree.root / ".upstream.d" / "20-list").write_text(mirror.url + "/ok/mirror_list\n")
    env = clean_env(tmp_path, SAGE_ROOT=str(tree.root))
    p = subprocess.run([str(tree.root / "build" / "bin" / PKG), "download", "ntl"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    cached = tree.root / "upstream" / "mirror_list"
    assert ast.literal_eval(cached.read_text()) == [base]
    # never through a symlink planted there
    cached.unlink()
    os.symlink(str(tmp_path / "elsewhere"), str(cached))
    (tree.root / "upstream" / tree.ntl).unlink()
    p = subprocess.run([str(tree.root / "build" / "bin" / PKG), "download", "ntl"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    assert os.path.islink(str(cached)) and not (tmp_path / "elsewhere").exists()
