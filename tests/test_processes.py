"""Behaviour across processes: kill -9 and resume, the make -j race, locks, signals."""

import os
import signal
import subprocess
import sys

import pytest

from helpers import REPO, clean_env, interruptible, make_data, run_module, size_of, wait_until
from faultserver import FaultServer
from sagedl.errors import EXIT_INTERRUPTED, EXIT_LOCK


def spawn(argv, env, **kw):
    env = dict(env)
    env["PYTHONPATH"] = REPO
    return subprocess.Popen([sys.executable, "-m", "sagedl"] + [str(a) for a in argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=interruptible, **kw)


def test_sigkill_mid_transfer_then_next_run_sends_range_and_finishes(tmp_path, payload):
    out = tmp_path / "out"
    out.mkdir()
    N = 300000
    with FaultServer({payload.name: payload.data}) as s:
        url = s.url_for("f.bin", "stall-at-%d,once" % N)
        env = clean_env(tmp_path)
        p = spawn([url, out / "f.bin", "--sha256", payload.sha256, "-q"], env)
        try:
            assert s.wait_for(lambda srv: any(r.body_bytes >= N for r in srv.requests_for("f.bin")))
            wait_until(lambda: size_of(out / "f.bin.part") == N)
        finally:
            p.kill()   # SIGKILL: no cleanup code runs
            p.wait()
        assert p.returncode == -signal.SIGKILL
        assert not (out / "f.bin").exists()
        r = run_module([url, out / "f.bin", "--sha256", payload.sha256, "-q"], env)
        assert r.code == 0, r
        resumed = s.requests_for("f.bin")[-1]
        assert resumed.range == "bytes=%d-" % N
        assert resumed.status == 206
        s.release()
    assert (out / "f.bin").read_bytes() == payload.data


def test_twelve_processes_one_transfer(tmp_path):
    data = make_data(8 << 20, seed=3)
    import hashlib
    sha = hashlib.sha256(data).hexdigest()
    out = tmp_path / "out"
    out.mkdir()
    env = clean_env(tmp_path)
    with FaultServer({"t.tar.gz": data}) as s:
        procs = [spawn([s.url_for("t.tar.gz"), out / "t.tar.gz", "--sha256", sha, "-q"], env)
                 for _ in range(12)]
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        for p in procs:
            p.stdout.close()
            p.stderr.close()
        assert [code for code, _ in results] == [0] * 12, results
        assert s.full_gets("t.tar.gz") == 1
        assert len([r for r in s.requests_for("t.tar.gz") if r.method == "GET"]) == 1
    assert (out / "t.tar.gz").read_bytes() == data
    assert sorted(os.listdir(out)) == ["t.tar.gz"]


def test_lock_wait_times_out_with_a_message_naming_the_file(tmp_path, run_cli, server, payload):
    from sagedl.engine.lock import FileLock
    out = tmp_path / "out"
    out.mkdir()
    with FileLock(str(out / "f.bin.lock"), 5, "f.bin"):
        r = run_cli(server.url_for("f.bin"), out / "f.bin", "--sha256", payload.sha256,
                    "--lock-timeout", "0.3")
    assert r.code == EXIT_LOCK, r
    assert "waiting for another sagedl to finish f.bin" in r.err
    assert "timed out" in r.err and "f.bin" in r.err
    assert server.requests_for("f.bin") == []


def test_lock_of_a_killed_process_does_not_block(tmp_path, run_cli, server, payload):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys; sys.path.insert(0, %r)\n"
         "from sagedl.engine.lock import FileLock\n"
         "l = FileLock(%r, 5).acquire(); print('locked', flush=True); sys.stdin.read()"
         % (REPO, str(out / "f.bin.lock"))],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert holder.stdout.readline().strip() == b"locked"
    holder.kill()
    holder.wait()
    assert (out / "f.bin.lock").exists()   # the file stays, the lock does not
    r = run_cli(server.url_for("f.bin"), out / "f.bin", "--sha256", payload.sha256,
                "--lock-timeout", "5")
    assert r.code == 0, r
    assert "waiting" not in r.err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signals_end_with_a_message_and_a_resumable_partial(tmp_path, payload, sig):
    out = tmp_path / "out"
    out.mkdir()
    N = 200000
    env = clean_env(tmp_path)
    with FaultServer({payload.name: payload.data}) as s:
        url = s.url_for("f.bin", "stall-at-%d,once" % N)
        p = spawn([url, out / "f.bin", "--sha256", payload.sha256, "--progress", "lines"], env)
        assert s.wait_for(lambda srv: any(r.body_bytes >= N for r in srv.requests_for("f.bin")))
        wait_until(lambda: size_of(out / "f.bin.part") == N)
        p.send_signal(sig)
        _, err = p.communicate(timeout=30)
        assert p.returncode == EXIT_INTERRUPTED, err
        err = err.decode()
        assert "Traceback" not in err
        assert "interrupted" in err and "resume" in err
        assert size_of(out / "f.bin.part") == N
        assert not (out / "f.bin").exists()
        r = run_module([url, out / "f.bin", "--sha256", payload.sha256, "-q"], env)
        assert r.code == 0, r
        assert s.requests_for("f.bin")[-1].range == "bytes=%d-" % N
        s.release()
    assert (out / "f.bin").read_bytes() == payload.data
