"""Bad input and hostile output channels end in one line and a documented
exit code, never an internal error (a traceback tells a user nothing); a
DESTINATION that is a
device or FIFO is streamed into, verified, and never renamed or replaced.

Device nodes are made with mknod in the test's temp dir (/dev/null's and
/dev/full's numbers), never the real /dev.  Runs go through ``python -m
sagedl`` under the test's Python, 2.7 and PyPy3, each with a timeout.
"""

import os
import stat
import subprocess
import sys
import threading

import pytest

from conftest import REPO, Payload, make_data, clean_env, assert_one_line_error
from faultserver import FaultServer
from pyz import require_interpreter
from sagedl.errors import EXIT_CHECKSUM, EXIT_DISK, EXIT_USAGE

RUNNERS = ("3.x", "2.7", "pypy3")


def python_for(runner):
    return sys.executable if runner == "3.x" else require_interpreter(runner)


def sagedl(runner, argv, env, stdout=subprocess.PIPE, timeout=60, **kw):
    env = dict(env, PYTHONPATH=REPO)
    p = subprocess.run([python_for(runner), "-m", "sagedl"] + [str(a) for a in argv], env=env,
                       stdout=stdout, stderr=subprocess.PIPE, timeout=timeout, **kw)
    p.err = p.stderr.decode("utf-8", "replace")
    return p


@pytest.fixture(scope="module")
def served():
    p = Payload("f.tar.gz", make_data(300000, 4))
    with FaultServer({p.name: p.data}) as s:
        yield s, p


def no_internal_error(p):
    assert "internal error" not in p.err and "Traceback" not in p.err, p.err


# -- arguments -----------------------------------------------------------------------
@pytest.mark.parametrize("value", ["-1", "nan", "inf", "0", "-inf", "abc", "1e400"])
@pytest.mark.parametrize("option", ["--timeout", "--low-speed-time", "--lock-timeout"])
def test_bad_durations_are_usage_errors(option, value, served, tmp_path):
    s, p = served
    r = sagedl("3.x", [s.url_for(p.name), tmp_path / "x", option, value], clean_env(tmp_path))
    assert r.returncode == EXIT_USAGE, r.err
    assert_one_line_error(r.err, option)


@pytest.mark.parametrize("runner", RUNNERS)
def test_nan_timeout_on_every_interpreter(runner, served, tmp_path):
    s, p = served
    r = sagedl(runner, [s.url_for(p.name), tmp_path / "x", "--timeout=nan"], clean_env(tmp_path))
    assert r.returncode == EXIT_USAGE, r.err
    no_internal_error(r)


@pytest.mark.parametrize("runner", RUNNERS)
def test_empty_destination_is_a_usage_error(runner, served, tmp_path):
    s, p = served
    r = sagedl(runner, [s.url_for(p.name), ""], clean_env(tmp_path), cwd=str(tmp_path))
    assert r.returncode == EXIT_USAGE, r.err
    assert_one_line_error(r.err, "DESTINATION is empty")
    assert sorted(os.listdir(str(tmp_path))) == []


@pytest.mark.parametrize("runner", RUNNERS)
def test_missing_directory_destination_is_not_saved_as_a_file(runner, served, tmp_path):
    s, p = served
    r = sagedl(runner, [s.url_for(p.name), "newdir/"], clean_env(tmp_path), cwd=str(tmp_path))
    assert r.returncode == EXIT_DISK, r.err
    assert_one_line_error(r.err, "newdir/")
    assert not os.path.exists(str(tmp_path / "newdir"))


# -- stdout that cannot be written -------------------------------------------------------
def mknod(path, minor):
    os.mknod(str(path), stat.S_IFCHR | 0o666, os.makedev(1, minor))
    return path


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("form", ["content", "path"])
def test_stdout_on_a_full_device(runner, form, served, tmp_path):
    """/dev/full (a private node): ENOSPC on stdout is exit 6, one line."""
    s, p = served
    full = mknod(tmp_path / "full", 7)
    argv = [s.url_for(p.name)] if form == "content" else ["--print-fastest-mirror", "--mirror",
                                                         s.url + "/ok/"]
    with open(str(full), "wb") as out:
        r = sagedl(runner, argv, clean_env(tmp_path), stdout=out)
    assert r.returncode == EXIT_DISK, r.err
    assert_one_line_error(r.err, "standard output")


@pytest.mark.parametrize("runner", RUNNERS)
def test_closed_stdout(runner, served, tmp_path):
    """``>&-``: content for stdout is exit 6; a download to a file succeeds,
    and the file sagedl opens never lands on fd 1."""
    s, p = served
    close = dict(stdout=None, pass_fds=(), preexec_fn=lambda: os.close(1))
    r = sagedl(runner, [s.url_for(p.name)], clean_env(tmp_path), **close)
    assert r.returncode == EXIT_DISK, r.err
    assert_one_line_error(r.err, "standard output")
    dest = tmp_path / "out.tar.gz"
    r = sagedl(runner, [s.url_for(p.name), dest, "--sha256", p.sha256, "--progress", "lines"],
               clean_env(tmp_path), **close)
    assert r.returncode == 0, r.err
    assert dest.read_bytes() == p.data


@pytest.mark.parametrize("runner", RUNNERS)
def test_broken_pipe_on_stdout(runner, served, tmp_path):
    """``sagedl URL | head -c1``: the reader is gone; exit 6, one line (2.7
    once showed an internal error, IOError EPIPE)."""
    s, p = served
    rfd, wfd = os.pipe()
    os.close(rfd)
    try:
        r = sagedl(runner, [s.url_for(p.name)], clean_env(tmp_path), stdout=wfd)
    finally:
        os.close(wfd)
    assert r.returncode == EXIT_DISK, r.err
    no_internal_error(r)
    assert_one_line_error(r.err, "standard output")


# -- a DESTINATION that is not a regular file ------------------------------------------------
@pytest.mark.parametrize("runner", RUNNERS)
def test_device_destination_is_streamed_into_and_left_alone(runner, served, tmp_path):
    s, p = served
    null = mknod(tmp_path / "null", 3)
    before = os.lstat(str(null))
    r = sagedl(runner, [s.url_for(p.name), null, "--sha256", p.sha256], clean_env(tmp_path))
    assert r.returncode == 0, r.err
    after = os.lstat(str(null))
    assert (after.st_ino, after.st_mode, after.st_rdev) == (before.st_ino, before.st_mode, before.st_rdev)
    assert not [n for n in os.listdir(str(tmp_path)) if n.startswith("null.")]


@pytest.mark.parametrize("runner", RUNNERS)
def test_device_destination_with_a_bad_checksum_is_exit_4(runner, served, tmp_path):
    s, p = served
    full = mknod(tmp_path / "full", 7)      # a write would fail: nothing may be written
    r = sagedl(runner, [s.url_for(p.name), full, "--sha256", "0" * 64], clean_env(tmp_path))
    assert r.returncode == EXIT_CHECKSUM, r.err
    assert stat.S_ISCHR(os.lstat(str(full)).st_mode)


@pytest.mark.parametrize("runner", RUNNERS)
def test_full_device_destination_is_exit_6(runner, served, tmp_path):
    s, p = served
    full = mknod(tmp_path / "full", 7)
    r = sagedl(runner, [s.url_for(p.name), full, "--sha256", p.sha256], clean_env(tmp_path))
    assert r.returncode == EXIT_DISK, r.err
    assert_one_line_error(r.err, "full")
    assert stat.S_ISCHR(os.lstat(str(full)).st_mode)


@pytest.mark.parametrize("runner", RUNNERS)
def test_fifo_destination_receives_verified_bytes(runner, served, tmp_path):
    s, p = served
    fifo = tmp_path / "pipe"
    os.mkfifo(str(fifo))
    got = []

    def reader():
        with open(str(fifo), "rb") as f:      # blocks until sagedl opens it
            got.append(f.read())
    t = threading.Thread(target=reader)
    t.daemon = True
    t.start()
    try:
        r = sagedl(runner, [s.url_for(p.name), fifo, "--sha256", p.sha256], clean_env(tmp_path))
    finally:
        if t.is_alive() and not got:          # sagedl never opened it: unblock the reader
            os.close(os.open(str(fifo), os.O_WRONLY | os.O_NONBLOCK))
        t.join(30)
    assert r.returncode == 0, r.err
    assert got == [p.data]
    assert stat.S_ISFIFO(os.lstat(str(fifo)).st_mode)


@pytest.mark.parametrize("runner", RUNNERS)
def test_proc_self_fd_1_destination_is_stdout(runner, served, tmp_path):
    """/proc/self/fd/1 (what /dev/stdout links to) on a pipe: the content goes
    to stdout; nothing is renamed or hashed there."""
    s, p = served
    r = sagedl(runner, [s.url_for(p.name), "/proc/self/fd/1", "--sha256", p.sha256],
               clean_env(tmp_path))
    assert r.returncode == 0, r.err
    assert r.stdout == p.data


@pytest.mark.parametrize("runner", RUNNERS)
def test_socket_destination_is_refused(runner, served, tmp_path):
    import socket
    s, p = served
    path = str(tmp_path / "sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    try:
        r = sagedl(runner, [s.url_for(p.name), path, "--sha256", p.sha256], clean_env(tmp_path))
    finally:
        sock.close()
    assert r.returncode == EXIT_DISK, r.err
    assert_one_line_error(r.err, "socket")
    assert stat.S_ISSOCK(os.lstat(path).st_mode)


@pytest.mark.parametrize("runner", RUNNERS)
def test_a_closed_stdout_descriptor_is_never_reused_for_a_file(runner, tmp_path):
    """With fd 1 closed, the first file opened would get fd 1 and receive
    whatever is printed; guard_std_fds puts /dev/null there first."""
    code = ("import os, sys; sys.path.insert(0, %r); from sagedl.engine import fsutil; "
            "closed = fsutil.guard_std_fds(); "
            "fd = os.open(%r, os.O_CREAT | os.O_WRONLY, 0o600); "
            "sys.stderr.write('%%r %%d' %% (sorted(closed), fd))" % (REPO, str(tmp_path / "f")))
    p = subprocess.run([python_for(runner), "-c", code], stdout=None, stderr=subprocess.PIPE,
                       preexec_fn=lambda: os.close(1), timeout=60)
    assert p.returncode == 0, p.stderr
    closed, fd = p.stderr.decode().rsplit(" ", 1)
    assert closed == "[1]" and int(fd) > 2, p.stderr
