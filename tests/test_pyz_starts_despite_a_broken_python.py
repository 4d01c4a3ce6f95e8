"""sagedl.pyz must start while a half-installed Sage is in the way: a broken
python3/python first on PATH, or a PYTHONPATH whose functools.py and
contextlib.py cannot be imported ("ImportError: No module named _functools")."""
import os
import re
import shutil
import zipfile

import pytest

import sagedl
from pyz import (CPYTHON_LABELS, REPO, clean_env, interpreter_params, interpreter_version,
                 make_broken_stdlib, pyz_path, require_interpreter, run)

PREAMBLE = os.path.join(REPO, "zipapp", "preamble.sh")
BROKEN_PYTHON = '#!/bin/sh\necho "ImportError: No module named _functools" >&2\nexit 1\n'
FALLBACK_LOOP = "for sagedl_py in /usr/bin/python3 /usr/local/bin/python3; do"
# PyPy names itself too: "sagedl 0.1.0 (PyPy 7.3.11, Python 3.9.16)".
VERSION_RE = re.compile(r"^sagedl %s \((?:PyPy [0-9.]+, )?Python (\d+\.\d+\.\d+)\)$"
                        % re.escape(sagedl.__version__))


def reported_version(proc):
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    match = VERSION_RE.match(proc.stdout.strip())
    assert match, proc.stdout
    return match.group(1)


@pytest.fixture
def broken_bin(tmp_path):
    """A PATH directory whose python3 and python die like a half-installed Sage python."""
    d = tmp_path / "sage local" / "bin"
    d.mkdir(parents=True)
    for name in ("python3", "python"):
        (d / name).write_text(BROKEN_PYTHON)
        (d / name).chmod(0o755)
    return str(d)


@pytest.fixture
def app(tmp_path):
    """The archive at a path with spaces."""
    d = tmp_path / "my tools"
    d.mkdir()
    path = str(d / "sagedl app.pyz")
    shutil.copy2(pyz_path(), path)
    return path


def test_direct_run_skips_a_broken_python_first_on_path(app, broken_bin):
    proc = run([app, "--version"], env=clean_env(PATH=broken_bin + os.pathsep + os.environ["PATH"]))
    reported_version(proc)
    assert proc.stderr == ""


def test_direct_run_skips_a_program_that_exits_0_but_is_no_python(app, tmp_path):
    """A stand-in python3 that prints something and exits 0 (as a Sage python
    faked to answer the sys_tags question might) is not taken for a Python."""
    d = tmp_path / "fake" / "bin"
    d.mkdir(parents=True)
    for name in ("python3", "python"):
        (d / name).write_text('#!/bin/sh\necho cp311-cp311-manylinux_2_17_x86_64\nexit 0\n')
        (d / name).chmod(0o755)
    proc = run([app, "--version"], env=clean_env(PATH=str(d) + os.pathsep + os.environ["PATH"]))
    reported_version(proc)


def test_direct_run_tries_every_match_along_path_not_just_the_first(app, broken_bin, tmp_path):
    python = require_interpreter("3.8")
    good = tmp_path / "other python" / "bin"
    good.mkdir(parents=True)
    (good / "python3").symlink_to(python)
    path = os.pathsep.join([broken_bin, str(good), os.environ["PATH"]])
    assert reported_version(run([app, "--version"], env=clean_env(PATH=path))) == interpreter_version(python)


def test_direct_run_prefers_sagedl_python(app, broken_bin):
    python = require_interpreter("3.6")
    env = clean_env(PATH=broken_bin + os.pathsep + os.environ["PATH"], SAGEDL_PYTHON=python)
    assert reported_version(run([app, "--version"], env=env)) == interpreter_version(python)


def test_direct_run_says_so_when_sagedl_python_is_broken_and_falls_back(app, broken_bin):
    env = clean_env(PATH=broken_bin + os.pathsep + os.environ["PATH"],
                    SAGEDL_PYTHON=os.path.join(broken_bin, "python3"))
    proc = run([app, "--version"], env=env)
    reported_version(proc)
    assert proc.stderr == "sagedl: SAGEDL_PYTHON=%s does not work; looking for another Python\n" % (
        os.path.join(broken_bin, "python3"),)


def test_direct_run_without_any_working_python_fails_with_one_line_and_exit_2(tmp_path, broken_bin):
    # The real preamble with its last-resort fallbacks pointed at nothing, since
    # this machine's /usr/bin/python3 works.
    with open(pyz_path(), "rb") as f:
        data = f.read()
    assert data.count(FALLBACK_LOOP.encode()) == 1
    data = data.replace(FALLBACK_LOOP.encode(), FALLBACK_LOOP.replace("/usr/", str(tmp_path / "none") + "/").encode())
    app = tmp_path / "no python.pyz"
    app.write_bytes(data)
    app.chmod(0o755)
    proc = run([str(app), "--version"], env=clean_env(PATH=broken_bin))
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.startswith("sagedl: no working Python 2.7 or 3.6+ found")
    assert proc.stderr.count("\n") == 1  # exited before the shell reached the zip bytes


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_preamble_is_posix_sh(shell):
    if shutil.which(shell) is None:
        pytest.skip("%s not installed" % shell)
    cmd = [shell, "-n", PREAMBLE] if shell == "dash" else [shell, "--posix", "-n", PREAMBLE]
    proc = run(cmd)
    assert proc.returncode == 0, proc.stderr


def test_preamble_version_check_matches_the_root_main():
    """The preamble's inline check must reject exactly what __main__ rejects."""
    with open(PREAMBLE) as f:
        expression = re.search(r"sys\.exit\((.*)\)' </dev/null", f.read()).group(1)
    namespace = {}
    with open(os.path.join(REPO, "zipapp", "__main__.py")) as f:
        exec(compile(f.read(), "__main__.py", "exec"), {"__name__": "root_main"}, namespace)
    for version in [(2, 6, 9), (2, 7, 0), (3, 0, 1), (3, 5, 9), (3, 6, 0), (3, 13, 0), (4, 0, 0)]:
        fake_sys = type("fake_sys", (), {"version_info": version})
        assert bool(eval(expression, {"sys": fake_sys})) is namespace["too_old"](version), version


@pytest.mark.parametrize("label", interpreter_params())
def test_direct_run_with_each_interpreter_ignores_a_broken_pythonpath(label, app, broken_bin, tmp_path):
    python = require_interpreter(label)
    env = clean_env(PATH=broken_bin + os.pathsep + os.environ["PATH"], SAGEDL_PYTHON=python,
                    PYTHONPATH=make_broken_stdlib(str(tmp_path / "sage lib")))
    assert reported_version(run([app, "--version"], env=env)) == interpreter_version(python)


PYPY_RUNPY_FIRST = ("PyPy's app_main imports runpy before it puts the archive on sys.path, so "
                    "no file in the archive can run first; use ./sagedl.pyz or pypy3 -E")


@pytest.mark.parametrize("label", [
    pytest.param(label, id=label, marks=[pytest.mark.xfail(strict=True, reason=PYPY_RUNPY_FIRST)]
                 if label == "pypy3" else [])
    for label in CPYTHON_LABELS + ("pypy3",)])
def test_interpreter_runs_the_archive_despite_a_broken_pythonpath(label, tmp_path):
    python = require_interpreter(label)
    env = clean_env(PYTHONPATH=make_broken_stdlib(str(tmp_path / "sage lib")))
    # Absolute, and relative as typed in the archive's directory (3.6-3.8 keep
    # sys.path[0] relative then).
    assert reported_version(run([python, pyz_path(), "--version"], env=env)) == interpreter_version(python)
    proc = run([python, os.path.basename(pyz_path()), "--version"], env=env, cwd=os.path.dirname(pyz_path()))
    assert reported_version(proc) == interpreter_version(python)


@pytest.mark.parametrize("label", interpreter_params(("3.6", "3.7", "3.8", "3.9", "3.10", "3.11")))
def test_without_the_shims_those_interpreters_die_before_main(label, tmp_path):
    """The premise of the shims: a plain zip app cannot even reach __main__."""
    python = require_interpreter(label)
    plain = str(tmp_path / "plain.pyz")
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("__main__.py", "print('reached')\n")
    proc = run([python, plain], env=clean_env(PYTHONPATH=make_broken_stdlib(str(tmp_path / "lib"))))
    assert proc.returncode != 0
    assert "Could not import runpy module" in proc.stderr
    assert "reached" not in proc.stdout


def test_pypy3_is_rescued_by_ignoring_the_environment(tmp_path):
    """What the xfail above recommends really works."""
    python = require_interpreter("pypy3")
    env = clean_env(PYTHONPATH=make_broken_stdlib(str(tmp_path / "lib")))
    assert reported_version(run([python, "-E", pyz_path(), "--version"], env=env)) == interpreter_version(python)
