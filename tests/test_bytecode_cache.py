"""The pyz's compiled-code cache: used when it can be, harmless when it can't."""

import os
import subprocess

import pytest

from pyz import clean_env, interpreter_params, pyz_path, require_interpreter

LABELS = ("2.7", "3.6", "3.12", "3.13", "pypy3")


def run(python, args, env):
    return subprocess.run([python, pyz_path()] + args, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=120)


def cache_files(root):
    found = []
    for top, _, files in os.walk(str(root)):
        found.extend(os.path.join(top, f) for f in files)
    return sorted(found)


@pytest.mark.parametrize("label", interpreter_params(LABELS))
def test_cache_is_written_then_used_and_package_data_still_loads(label, tmp_path):
    python = require_interpreter(label)
    env = clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"), HOME=str(tmp_path))
    first = run(python, ["list-mirrors", "--no-probe"], env)
    assert first.returncode == 0, first.stderr
    # The shipped mirrors.toml came through pkgutil.get_data from inside the pyz.
    assert len(first.stdout.splitlines()) > 30
    files = cache_files(tmp_path / "cache")
    names = [os.path.basename(f) for f in files]
    assert any(n.startswith("sagedl.cli.") for n in names), names
    assert any(n.startswith("sagedl.mirrorlist.") for n in names), names
    stamps = [os.stat(f).st_mtime_ns for f in files]
    second = run(python, ["list-mirrors", "--no-probe"], env)
    assert second.stdout == first.stdout
    assert [os.stat(f).st_mtime_ns for f in files] == stamps   # read, not rewritten


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.13")))
def test_corrupt_cache_is_ignored_and_replaced(label, tmp_path):
    python = require_interpreter(label)
    env = clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"), HOME=str(tmp_path))
    assert run(python, ["--version"], env).returncode == 0
    files = cache_files(tmp_path / "cache")
    for f in files:
        with open(f, "wb") as out:
            out.write(b"SDL1garbage\x00\x01")
    r = run(python, ["--version"], env)
    assert r.returncode == 0, r.stderr
    assert b"sagedl" in r.stdout
    for f in files:
        with open(f, "rb") as got:
            assert got.read() != b"SDL1garbage\x00\x01"


def test_unwritable_cache_and_opt_out(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    env = clean_env(XDG_CACHE_HOME=str(blocker), HOME=str(tmp_path))
    r = subprocess.run(["python3", pyz_path(), "--version"], env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0 and r.stderr == b"", r.stderr
    env = clean_env(XDG_CACHE_HOME=str(tmp_path / "c"), HOME=str(tmp_path),
                    SAGEDL_NO_BYTECODE_CACHE="1")
    r = subprocess.run(["python3", pyz_path(), "--version"], env=env, stdout=subprocess.PIPE,
                       timeout=60)
    assert r.returncode == 0
    assert not (tmp_path / "c").exists()
