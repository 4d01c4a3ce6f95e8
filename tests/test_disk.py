"""Disks that say no: full, read-only, and a destination on another
filesystem than the working and temporary directories.

Each test mounts a small tmpfs (or a read-only bind mount) under its own
tmp_path and unmounts it in teardown, so it needs root.  Without root the
tests skip -- except in CI (CI=true), where a skip would hide a broken
runner and fails instead."""

import os
import subprocess
import sys

import pytest

from helpers import REPO, assert_one_line_error, clean_env, size_of, wait_until
from sagedl.errors import EXIT_DISK, EXIT_OK


def require_root():
    if os.geteuid() == 0:
        return
    message = "needs root to mount a tmpfs"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " -- required when CI=true", pytrace=False)
    pytest.skip(message)


def mount(*args):
    subprocess.run(["mount"] + [str(a) for a in args], check=True,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def unmount(path):
    # -l: a process a failing test left behind must not keep the mount.
    subprocess.run(["umount", "-l", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


class Mounts(object):
    """Mounts under one test's tmp_path, each undone in teardown."""

    def __init__(self, root):
        self.root = root
        self.points = []

    def _mount(self, *args):
        point = self.root / ("mnt%d" % len(self.points))
        point.mkdir()
        try:
            mount(*(args + (point,)))
        except (subprocess.CalledProcessError, OSError) as e:
            message = "cannot mount here: %s" % getattr(e, "stderr", e)
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        self.points.append(point)
        return point

    def tmpfs(self, size, *options):
        return self._mount("-t", "tmpfs", "-o", ",".join(("size=" + size,) + options), "tmpfs")

    def read_only_bind(self, source):
        point = self._mount("--bind", source)
        mount("-o", "remount,ro,bind", point)   # a bind mount turns read-only in a second step
        return point

    def undo(self):
        for point in reversed(self.points):
            unmount(point)


@pytest.fixture
def mounts(tmp_path):
    require_root()
    m = Mounts(tmp_path)
    yield m
    m.undo()


def test_full_disk_fails_clearly_keeps_the_partial_and_resumes_when_space_is_freed(
        run_cli, server, payload, mounts):
    small = mounts.tmpfs("512k")
    url = server.url_for(payload.name)
    r = run_cli(url, small / payload.name, "--sha256", payload.sha256, "--progress", "none")
    assert r.code == EXIT_DISK, r
    assert_one_line_error(r.err, "No space left on device")
    assert "sagedl: hint: free some space and run again" in r.err
    assert not (small / payload.name).exists()
    kept = size_of(small / (payload.name + ".part"))
    assert 0 < kept < payload.size
    assert payload.data.startswith((small / (payload.name + ".part")).read_bytes())

    mount("-o", "remount,size=4m", small)
    r = run_cli(url, small / payload.name, "--sha256", payload.sha256, "--progress", "none")
    assert r.code == EXIT_OK, r
    resumed = server.requests_for(payload.name)[-1]
    assert resumed.range == "bytes=%d-" % kept and resumed.status == 206
    assert (small / payload.name).read_bytes() == payload.data
    assert not (small / (payload.name + ".part")).exists()


@pytest.mark.parametrize("kind", ["tmpfs-ro", "bind-ro"])
def test_read_only_destination_is_a_clear_disk_error(run_cli, server, payload, mounts, tmp_path, kind):
    if kind == "tmpfs-ro":
        d = mounts.tmpfs("1m", "ro")
    else:
        (tmp_path / "writable").mkdir()
        d = mounts.read_only_bind(tmp_path / "writable")
    with pytest.raises(OSError):
        open(str(d / "probe"), "w")            # root, yet refused: really read-only
    r = run_cli(server.url_for(payload.name), d / payload.name, "--sha256", payload.sha256)
    assert r.code == EXIT_DISK, r
    assert_one_line_error(r.err, "Read-only file system")
    assert os.listdir(str(d)) == []
    assert server.requests == []               # refused before any network I/O


def test_destination_on_another_filesystem_keeps_the_partial_beside_it(server, payload, mounts, tmp_path):
    dest_dir = mounts.tmpfs("8m")
    work, tmp = tmp_path / "work", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    assert os.stat(str(dest_dir)).st_dev != os.stat(str(work)).st_dev
    N = 300000
    url = server.url_for(payload.name, "stall-at-%d" % N)
    env = clean_env(tmp_path, TMPDIR=str(tmp), PYTHONPATH=REPO)
    p = subprocess.Popen([sys.executable, "-m", "sagedl", url, str(dest_dir / payload.name),
                          "--sha256", payload.sha256, "-q"], env=env, cwd=str(work),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        part = dest_dir / (payload.name + ".part")
        wait_until(lambda: size_of(part) == N)
        # Mid-transfer: the partial is in the destination directory, on its
        # filesystem, so the final rename is atomic; nothing in cwd or TMPDIR.
        assert os.stat(str(part)).st_dev == os.stat(str(dest_dir)).st_dev
        assert not (dest_dir / payload.name).exists()
        assert os.listdir(str(work)) == [] and os.listdir(str(tmp)) == []
        inode = os.stat(str(part)).st_ino
        server.release()
        stdout, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == EXIT_OK, stderr
    assert (dest_dir / payload.name).read_bytes() == payload.data
    # The very file that was the partial became the target: a rename, not a copy.
    assert os.stat(str(dest_dir / payload.name)).st_ino == inode
    assert not part.exists()
    assert os.listdir(str(work)) == [] and os.listdir(str(tmp)) == []


def fill(directory):
    """Fill a tmpfs to the last byte: a new empty file still gets an inode,
    the first data page of any file does not."""
    fd = os.open(str(directory / "filler"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)


def test_a_full_disk_before_the_partial_record_leaves_nothing_and_promises_nothing(
        run_cli, server, payload, mounts):
    """ENOSPC on NAME.part.json: an empty NAME.part was left behind, and the
    hint spoke of a partial download kept, which there was not."""
    small = mounts.tmpfs("64k")
    fill(small)
    r = run_cli(server.url_for(payload.name), small / payload.name, "--sha256", payload.sha256,
                "--progress", "none")
    assert r.code == EXIT_DISK, r
    assert_one_line_error(r.err, "%s.part.json: No space left on device" % payload.name)
    assert "sagedl: hint: free some space and run again\n" in r.err, r
    assert sorted(os.listdir(str(small))) == ["filler"]


def test_a_full_disk_at_a_resumes_record_keeps_the_partial_and_says_how_much(
        run_cli, server, payload, mounts):
    small = mounts.tmpfs("1m")
    url = server.url_for(payload.name, "reset-at-100000")
    r = run_cli(url, small / payload.name, "--sha256", payload.sha256, "--progress", "none")
    assert r.code != EXIT_OK, r
    kept = size_of(small / (payload.name + ".part"))
    assert kept > 0
    fill(small)
    r = run_cli(url, small / payload.name, "--sha256", payload.sha256, "--progress", "none")
    assert r.code == EXIT_DISK, r
    assert "the partial download (%d bytes) is kept and resumes" % kept in r.err, r
    assert size_of(small / (payload.name + ".part")) == kept
