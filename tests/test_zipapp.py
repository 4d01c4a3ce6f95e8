"""The one-file sagedl.pyz: reproducible build, layout, start-up under every
interpreter, the root __main__'s checks and re-exec, and the stdlib shims."""
import os
import shutil
import stat
import struct
import subprocess
import sys
import time
import zipfile

import pytest

import sagedl
from pyz import (REPO, build_module, build_pyz, clean_env, interpreter_params,
                 interpreter_version, make_broken_stdlib, probe_pyz_path, pyz_path,
                 require_interpreter, run, run_probe)

ZIPAPP = os.path.join(REPO, "zipapp")
ROOT_MAIN = os.path.join(ZIPAPP, "__main__.py")


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def load_root_main():
    """The root __main__'s functions, without running it."""
    namespace = {"__name__": "sagedl_root_main", "__file__": ROOT_MAIN}
    exec(compile(read_bytes(ROOT_MAIN), ROOT_MAIN, "exec"), namespace)
    return namespace


def expected_version_line(version, python=None):
    """PyPy says so, with its own version (a bug report needs it)."""
    if python is not None and "pypy" in os.path.basename(python):
        pypy = subprocess.check_output(
            [python, "-c", "import sys; print('%d.%d.%d' % sys.pypy_version_info[:3])"],
            universal_newlines=True, timeout=60).strip()
        return "sagedl %s (PyPy %s, Python %s)" % (sagedl.__version__, pypy, version)
    return "sagedl %s (Python %s)" % (sagedl.__version__, version)


# --- the build -------------------------------------------------------------

def snapshot_repo(dest):
    """Copy what the build reads, so a build compared with another one cannot
    see the working tree change in between; returns the copy's build.py."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ZIPAPP, os.path.join(dest, "zipapp"), ignore=ignore)
    shutil.copytree(os.path.join(REPO, "sagedl"), os.path.join(dest, "sagedl"), ignore=ignore)
    return os.path.join(dest, "zipapp", "build.py")


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    """(build.py of a copy of the repo, the archive it builds with this Python)."""
    build_py = snapshot_repo(str(tmp_path_factory.mktemp("snapshot")))
    out = str(tmp_path_factory.mktemp("reference") / "sagedl.pyz")
    proc = run([sys.executable, build_py, "-o", out])
    assert proc.returncode == 0, proc.stderr
    return build_py, read_bytes(out)


def test_building_twice_from_any_directory_gives_identical_bytes(snapshot, tmp_path):
    build_py, reference = snapshot
    for name in ("a", "b"):
        cwd = tmp_path / name
        cwd.mkdir()
        proc = run([sys.executable, build_py, "-o", "out.pyz"], cwd=str(cwd))
        assert proc.returncode == 0, proc.stderr
        assert read_bytes(str(cwd / "out.pyz")) == reference


def test_default_output_is_dist_under_the_repo_root():
    assert build_module().DEFAULT_OUTPUT == os.path.join(REPO, "dist", "sagedl.pyz")


@pytest.mark.parametrize("label", interpreter_params())
def test_every_interpreter_builds_the_same_bytes(label, snapshot, tmp_path):
    python = require_interpreter(label)
    build_py, reference = snapshot
    out = str(tmp_path / "sagedl.pyz")
    zlib_of = "import sys, zlib; sys.stdout.write(getattr(zlib, 'ZLIB_RUNTIME_VERSION', zlib.ZLIB_VERSION))"
    theirs = run([python, "-E", "-c", zlib_of]).stdout
    ours = run([sys.executable, "-E", "-c", zlib_of]).stdout
    if theirs != ours:
        pytest.skip("deflate output is only comparable with the same zlib (%s vs %s)" % (theirs, ours))
    proc = run([python, build_py, "-o", out])
    assert proc.returncode == 0, proc.stderr
    assert read_bytes(out) == reference


def test_build_leaves_only_the_archive_in_the_output_directory(tmp_path):
    build_pyz(str(tmp_path / "x.pyz"))
    assert os.listdir(str(tmp_path)) == ["x.pyz"]


def test_archive_is_executable_and_starts_with_the_sh_preamble():
    path = pyz_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o755
    preamble = read_bytes(os.path.join(ZIPAPP, "preamble.sh"))
    assert preamble.startswith(b"#!/bin/sh\n")
    assert read_bytes(path).startswith(preamble + b"PK\x03\x04")


def test_zip_offsets_are_absolute_so_the_preamble_is_no_extra_data():
    data = read_bytes(pyz_path())
    eocd = data.rindex(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack("<II", data[eocd + 12:eocd + 20])
    assert cd_offset + cd_size == eocd
    assert data[cd_offset:cd_offset + 4] == b"PK\x01\x02"


def test_archive_holds_root_main_shims_and_every_package_source_sorted():
    with zipfile.ZipFile(pyz_path()) as zf:
        names = zf.namelist()
        shim = read_bytes(os.path.join(ZIPAPP, "stdlib_shim.py"))
        assert zf.read("__main__.py") == read_bytes(ROOT_MAIN)
        assert zf.read("functools.py") == shim
        assert zf.read("contextlib.py") == shim
        infos = zf.infolist()
    assert names == sorted(names)
    assert names[:4] == ["__main__.py", "_sagedl_bytecode.py", "contextlib.py", "functools.py"]
    with zipfile.ZipFile(pyz_path()) as zf:
        assert zf.read("_sagedl_bytecode.py") == read_bytes(os.path.join(ZIPAPP, "bytecode_cache.py"))
    tracked = subprocess.run(["git", "-C", REPO, "ls-files", "--", "sagedl"], timeout=60,
                             stdout=subprocess.PIPE, universal_newlines=True).stdout.split()
    expected = set(n for n in tracked if n.endswith((".py", ".toml", ".pem"))
                   and os.path.exists(os.path.join(REPO, n)))
    assert "sagedl/mirrors.toml" in expected
    assert set(names[4:]) == expected
    for info in infos:
        assert info.date_time == (1980, 1, 1, 0, 0, 0)
        assert info.compress_type == zipfile.ZIP_DEFLATED
        assert info.create_system == 3
        assert info.external_attr >> 16 == stat.S_IFREG | 0o644


def test_no_bytecode_in_the_archive():
    with zipfile.ZipFile(pyz_path()) as zf:
        names = zf.namelist()
    assert not [n for n in names if n.endswith((".pyc", ".pyo")) or "__pycache__" in n]


def test_build_takes_the_package_py_and_toml_only(tmp_path):
    """The shipped list is package data (sagedl/mirrors.toml), as pip
    installs it; a mirrors.toml beside the package is not taken."""
    root = tmp_path / "repo"
    for rel, text in [("sagedl/__init__.py", ""), ("sagedl/sub/mod.py", ""),
                      ("sagedl/sub/data.toml", ""), ("sagedl/notes.txt", ""),
                      ("sagedl/__pycache__/cli.cpython-311.pyc", ""), ("sagedl/.#cli.py", ""),
                      ("sagedl/mirrors.toml", "[x]\n"), ("mirrors.toml", "[root]\n"),
                      ("README.md", "")]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    out = build_pyz(str(tmp_path / "t.pyz"), repo_root=str(root))
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == ["__main__.py", "_sagedl_bytecode.py", "contextlib.py", "functools.py",
                                 "sagedl/__init__.py", "sagedl/mirrors.toml",
                                 "sagedl/sub/data.toml", "sagedl/sub/mod.py"]
        assert zf.read("sagedl/mirrors.toml") == b"[x]\n"


def test_in_a_git_checkout_only_tracked_files_are_archived(tmp_path):
    """An untracked scratch file under sagedl/ never ships; outside git (an
    sdist) the walk above is the fallback."""
    root = tmp_path / "repo"
    for rel in ("sagedl/__init__.py", "sagedl/cli.py", "sagedl/mirrors.toml"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("# %s\n" % rel)
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(git[:3] + ["init", "-q"], check=True, timeout=60)
    subprocess.run(git + ["add", "sagedl"], check=True, timeout=60)
    (root / "sagedl" / "scratch.py").write_text("print('not for users')\n")
    (root / "sagedl" / "cli.py").unlink()       # tracked, deleted: not archived either
    out = build_pyz(str(tmp_path / "t.pyz"), repo_root=str(root))
    with zipfile.ZipFile(out) as zf:
        assert [n for n in zf.namelist() if n.startswith("sagedl/")] == [
            "sagedl/__init__.py", "sagedl/mirrors.toml"]


def test_source_date_epoch_stamps_entries_and_is_clamped_to_1980():
    zip_date_time = build_module().zip_date_time
    assert zip_date_time({}) == (1980, 1, 1, 0, 0, 0)
    assert zip_date_time({"SOURCE_DATE_EPOCH": "1700000000"}) == time.gmtime(1700000000)[:6]
    assert zip_date_time({"SOURCE_DATE_EPOCH": "0"}) == (1980, 1, 1, 0, 0, 0)
    with pytest.raises(build_module().BuildError):
        zip_date_time({"SOURCE_DATE_EPOCH": "yesterday"})


def test_source_date_epoch_reaches_the_archive(tmp_path):
    out = build_pyz(str(tmp_path / "t.pyz"), environ={"SOURCE_DATE_EPOCH": "1700000000"})
    with zipfile.ZipFile(out) as zf:
        # zip times have a 2-second resolution
        assert {i.date_time for i in zf.infolist()} == {(2023, 11, 14, 22, 13, 20)}


# --- start-up under every interpreter ---------------------------------------

@pytest.mark.parametrize("label", interpreter_params())
def test_root_main_parses_under_every_interpreter(label):
    python = require_interpreter(label)
    proc = run([python, "-E", "-c",
                "import sys; compile(open(sys.argv[1]).read(), sys.argv[1], 'exec')", ROOT_MAIN])
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("label", interpreter_params())
def test_version_runs_under_every_interpreter(label):
    python = require_interpreter(label)
    proc = run([python, pyz_path(), "--version"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected_version_line(interpreter_version(python), python)


@pytest.mark.parametrize("label", interpreter_params())
def test_version_runs_through_a_symlink(label, tmp_path):
    python = require_interpreter(label)
    link = tmp_path / "sagedl"
    link.symlink_to(pyz_path())
    proc = run([python, str(link), "--version"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected_version_line(interpreter_version(python), python)
    # Directly, through the preamble, pinned to this interpreter.
    proc = run([str(link), "--version"], env=clean_env(SAGEDL_PYTHON=python))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == expected_version_line(interpreter_version(python), python)


# --- the root __main__ --------------------------------------------------------

@pytest.mark.parametrize("version, rejected", [
    ((2, 6, 9), True), ((3, 0, 1), True), ((3, 5, 10), True),
    ((2, 7, 18), False), ((3, 6, 0), False), ((3, 13, 0), False), ((4, 0, 0), False),
])
def test_too_old_accepts_2_7_and_3_6_up(version, rejected):
    assert load_root_main()["too_old"](version) is rejected


@pytest.mark.parametrize("version", [(2, 6, 9, "final", 0), (3, 5, 10, "final", 0)])
def test_too_old_interpreter_gets_a_clear_message_and_exit_2(version):
    launcher = ("import sys; sys.version_info = %r; src = open(sys.argv[1]).read(); "
                "exec(compile(src, sys.argv[1], 'exec'), {'__name__': '__main__'})" % (version,))
    proc = run([sys.executable, "-E", "-c", launcher, ROOT_MAIN])
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == load_root_main()["TOO_OLD"] % (version[0], version[1], sys.executable)
    assert proc.stderr.startswith("sagedl needs Python 2.7 or 3.6+; this is Python %d.%d (" % version[:2])


def test_needs_isolation_only_when_pythonpath_or_pythonhome_is_set_and_not_ignored():
    needs = load_root_main()["needs_isolation"]
    assert not needs({}, 0)
    assert not needs({"PYTHONPATH": "", "PYTHONHOME": ""}, 0)
    assert needs({"PYTHONPATH": "/sage/lib"}, 0)
    assert needs({"PYTHONHOME": "/sage"}, 0)
    assert not needs({"PYTHONPATH": "/sage/lib"}, 1)


def test_isolated_argv_keeps_the_arguments():
    argv = load_root_main()["isolated_argv"]("/py", "/x/sagedl.pyz", ["/x/sagedl.pyz", "a b", "--c"])
    assert argv == ["/py", "-E", "-s", "/x/sagedl.pyz", "a b", "--c"]


@pytest.mark.parametrize("label", interpreter_params())
def test_clean_environment_runs_without_re_exec(label):
    python = require_interpreter(label)
    _, seen = run_probe([python, probe_pyz_path(), "x", "a b"])
    assert seen["ignore_environment"] == 0  # the re-exec would have added -E
    assert seen["argv"] == ["x", "a b"]


@pytest.mark.parametrize("label", interpreter_params())
def test_empty_pythonpath_runs_without_re_exec(label):
    python = require_interpreter(label)
    _, seen = run_probe([python, probe_pyz_path()], env=clean_env(PYTHONPATH=""))
    assert seen["ignore_environment"] == 0


@pytest.mark.parametrize("label", interpreter_params())
def test_pythonpath_makes_it_re_exec_isolated_with_the_same_arguments(label, tmp_path):
    python = require_interpreter(label)
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    _, seen = run_probe([python, probe_pyz_path(), "x", "a b", "--flag"],
                        env=clean_env(PYTHONPATH=str(shadow)))
    assert seen["ignore_environment"] == 1
    assert seen["no_user_site"] == 1
    assert seen["argv"] == ["x", "a b", "--flag"]
    assert str(shadow) not in seen["path"]
    assert seen["version"] == [int(p) for p in interpreter_version(python).split(".")]


@pytest.mark.parametrize("label", interpreter_params())
def test_pythonhome_makes_it_re_exec_isolated(label):
    python = require_interpreter(label)
    prefix = run([python, "-E", "-c", "import sys; sys.stdout.write(sys.prefix)"]).stdout
    _, seen = run_probe([python, probe_pyz_path()], env=clean_env(PYTHONHOME=prefix))
    assert seen["ignore_environment"] == 1


@pytest.mark.parametrize("label", interpreter_params())
def test_unusable_sys_executable_warns_and_carries_on(label, tmp_path):
    python = require_interpreter(label)
    launcher = ("import runpy, sys; sys.executable = ''; sys.argv = [sys.argv[1], 'x']; "
                "runpy.run_path(sys.argv[0], run_name='__main__')")
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    proc, seen = run_probe([python, "-c", launcher, probe_pyz_path()], env=clean_env(PYTHONPATH=str(shadow)))
    assert seen["ignore_environment"] == 0
    assert seen["argv"] == ["x"]
    assert "cannot restart" in proc.stderr


# --- the stdlib shims ----------------------------------------------------------

SHIM_CHECK = r'''
import os, sys
pyz = sys.argv[1]
for name in ("functools", "contextlib"):
    sys.modules.pop(name, None)
sys.path.insert(0, pyz)
before = list(sys.path)
import functools, contextlib
@contextlib.contextmanager
def cm():
    yield 42
with cm() as value:
    pass
import json  # only now: it imports functools itself
sys.stdout.write(json.dumps({
    "functools": functools.__file__, "contextlib": contextlib.__file__,
    "stdlib": os.path.dirname(os.__file__),
    "in_sys_modules": sys.modules["functools"] is functools and sys.modules["contextlib"] is contextlib,
    "path_restored": sys.path == before,
    "partial": functools.partial(max, 1)(2), "wraps": hasattr(functools, "wraps"),
    "lru_cache": hasattr(functools, "lru_cache"), "contextmanager": value,
}))
'''


def _check_shims(python, pyz, env, cwd=None):
    proc, seen = run_probe([python, "-s", "-c", SHIM_CHECK, pyz], env=env, cwd=cwd)
    assert os.path.dirname(seen["functools"]) == seen["stdlib"]
    assert os.path.dirname(seen["contextlib"]) == seen["stdlib"]
    assert seen["in_sys_modules"] and seen["path_restored"]
    assert seen["partial"] == 2 and seen["wraps"] and seen["contextmanager"] == 42
    return seen


@pytest.mark.parametrize("label", interpreter_params())
def test_shims_yield_the_real_stdlib_modules(label, tmp_path):
    """With the archive as sys.path[0], its functools.py/contextlib.py are
    found first; the importer must still get the standard library's."""
    python = require_interpreter(label)
    with zipfile.ZipFile(pyz_path()) as zf:
        assert {"functools.py", "contextlib.py"} <= set(zf.namelist())
    seen = _check_shims(python, pyz_path(), clean_env())
    if label != "2.7":
        assert seen["lru_cache"]  # 3.2+


@pytest.mark.parametrize("label", interpreter_params())
def test_shims_hide_a_broken_pythonpath_and_a_relative_archive_path(label, tmp_path):
    python = require_interpreter(label)
    broken_stdlib_dir = make_broken_stdlib(str(tmp_path / "broken"))
    # sys.path[0] is relative ("sagedl.pyz") when 3.6-3.8 run "python sagedl.pyz".
    _check_shims(python, os.path.basename(pyz_path()), clean_env(PYTHONPATH=broken_stdlib_dir),
                 cwd=os.path.dirname(pyz_path()))
