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
    assert any(n.startswith("sagedl.mirrors.mirrorlist.") for n in names), names
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


# Code planted in a cache entry: it leaves a mark, then lets the import fail.
PLANT = r'''
import marshal, sys
path, mark = sys.argv[1], sys.argv[2]
with open(path, "rb") as f:
    header = f.read(12)          # b"SDL1" and the source size: still a valid entry
code = compile("open(%r, 'w').write('planted code ran')" % mark, "planted", "exec")
with open(path, "wb") as f:
    f.write(header + marshal.dumps(code))
'''


def _planted(python, tmp_path):
    """A warm cache whose sagedl.cli entry holds planted code; returns
    (env, entry, mark)."""
    env = clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"), HOME=str(tmp_path))
    assert run(python, ["--version"], env).returncode == 0
    entry = [f for f in cache_files(tmp_path / "cache")
             if os.path.basename(f).startswith("sagedl.cli.")][0]
    mark = tmp_path / "mark"
    subprocess.run([python, "-c", PLANT, entry, str(mark)], check=True, timeout=60)
    return env, entry, mark


def _snapshot(root):
    return [(f, os.stat(f).st_mtime_ns, open(f, "rb").read()) for f in cache_files(root)]


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.13", "pypy3")))
def test_directories_are_private_and_a_private_entry_is_used(label, tmp_path):
    """The control for the cases below: planting works, and an entry that
    only we could have written is trusted."""
    python = require_interpreter(label)
    env, entry, mark = _planted(python, tmp_path)
    for d in (os.path.dirname(entry), os.path.dirname(os.path.dirname(entry))):
        assert os.stat(d).st_mode & 0o777 == 0o700, d
    run(python, ["--version"], env)
    assert mark.exists()


@pytest.mark.parametrize("how", ["entry-group-writable", "dir-0777", "root-0777",
                                 "entry-owned-by-nobody", "dir-owned-by-nobody"])
@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.13", "pypy3")))
def test_code_another_user_could_have_written_is_never_run(label, how, tmp_path):
    """Marshal data is code: an entry another user could have written (the
    file, or a directory up to the cache root, is theirs or writable by
    them) is not loaded.  Nothing is written into such a directory; in our
    own, the entry is replaced."""
    python = require_interpreter(label)
    env, entry, mark = _planted(python, tmp_path)
    tag_dir = os.path.dirname(entry)
    target = {"entry": entry, "dir": tag_dir, "root": os.path.dirname(tag_dir)}[how.split("-")[0]]
    if how.endswith("nobody"):
        if os.geteuid() != 0:
            pytest.skip("needs root to give a file to another user")
        os.chown(target, 65534, -1)
    elif how == "entry-group-writable":
        os.chmod(target, 0o664)
    else:
        os.chmod(target, 0o777)
    before = _snapshot(tmp_path / "cache")
    r = run(python, ["--version"], env)
    assert r.returncode == 0 and r.stdout.startswith(b"sagedl "), r.stderr
    assert not mark.exists()
    if target == entry:
        # The directories are ours: the entry is replaced by our own code.
        st = os.lstat(entry)
        assert (st.st_uid, st.st_mode & 0o777) == (os.geteuid(), 0o600)
        assert [f for f, _, _ in _snapshot(tmp_path / "cache")] == [f for f, _, _ in before]
    else:
        assert _snapshot(tmp_path / "cache") == before
