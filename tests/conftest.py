"""Shared fixtures: a fault server with known files, and ways to run the CLI.

The CLI is exercised three ways (STYLE.md): in-process through
``sagedl.cli.main``, as ``python -m sagedl`` in a subprocess, and as the built
pyz under every interpreter (tests/test_zipapp.py, tests/test_matrix.py).
"""

import hashlib
import io
import os
import random
import subprocess
import sys
import time

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
sys.path.insert(0, TESTS)
sys.path.insert(0, REPO)

from faultserver import FaultServer  # noqa: E402


def make_data(size, seed=1):
    """Deterministic pseudo-random bytes (incompressible, so gzip faults show)."""
    return random.Random(seed).randbytes(size)


class Payload(object):
    def __init__(self, name, data):
        self.name = name
        self.data = data
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.sha1 = hashlib.sha1(data).hexdigest()
        self.size = len(data)


@pytest.fixture
def payload():
    return Payload("f.bin", make_data(1 << 20))


@pytest.fixture
def server(payload):
    with FaultServer({payload.name: payload.data}) as s:
        yield s
        assert not s.errors, s.errors


class CliResult(object):
    def __init__(self, code, out, err):
        self.code = code
        self.out = out
        self.err = err

    def __repr__(self):
        return "CliResult(code=%r, out=%r, err=%r)" % (self.code, self.out[:300], self.err[-1500:])


def clean_env(tmp_path, **extra):
    """An environment that cannot reach real mirrors or user caches."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path / "home"),
           "XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "LC_ALL": "C.UTF-8"}
    env.update(extra)
    return env


@pytest.fixture
def run_cli(tmp_path, monkeypatch):
    """Run sagedl.cli.main in-process; returns CliResult(code, out, err)."""
    from sagedl import cli

    def run(*argv, **kw):
        env = kw.pop("env", None) or clean_env(tmp_path)
        cwd = kw.pop("cwd", None)
        if cwd:
            monkeypatch.chdir(cwd)
        out, err = io.StringIO(), io.StringIO()
        code = cli.main([str(a) for a in argv], env=env, stdout=out, stderr=err)
        return CliResult(code, out.getvalue(), err.getvalue())
    return run


def run_module(argv, env, cwd=None, python=sys.executable, **popen):
    """python -m sagedl in a subprocess (the source tree on PYTHONPATH)."""
    env = dict(env)
    env["PYTHONPATH"] = REPO
    p = subprocess.run([python, "-m", "sagedl"] + [str(a) for a in argv], env=env, cwd=cwd,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120, **popen)
    return CliResult(p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace"))


def assert_one_line_error(err, code_text=None):
    """Errors are one 'sagedl: error:' line (plus an optional hint), never a traceback."""
    assert "Traceback" not in err, err
    lines = [l for l in err.splitlines() if l.startswith("sagedl: error:")]
    assert len(lines) == 1, err
    if code_text:
        assert code_text in lines[0], err


def wait_until(predicate, timeout=20.0):
    """Poll a condition that lives in another process (a file's size), with a
    deadline; conditions inside the test server use FaultServer.wait_for."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %ss" % timeout)
        time.sleep(0.01)


def size_of(path):
    """A file's size, or -1 when it does not exist."""
    try:
        return os.path.getsize(str(path))
    except OSError:
        return -1
