"""The pytest fixtures: a fault server with known files, and ways to run the CLI.

The CLI is exercised three ways (STYLE.md): in-process through
``sagedl.cli.main``, as ``python -m sagedl`` in a subprocess, and as the built
pyz under every interpreter (tests/test_zipapp.py, tests/test_matrix.py).
The helpers themselves live in tests/helpers.py; test files import them
from there, never from conftest or from one another.
"""

import os
import sys

import pytest

TESTS = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, TESTS)
sys.path.insert(0, os.path.dirname(TESTS))

from faultserver import FaultServer  # noqa: E402
from helpers import (REPO, CliResult, Payload, assert_one_line_error, clean_env,  # noqa: E402,F401
                     make_data, run_in_process, run_module, size_of, wait_until)


@pytest.fixture
def payload():
    return Payload("f.bin", make_data(1 << 20))


@pytest.fixture
def server(payload):
    with FaultServer({payload.name: payload.data}) as s:
        yield s
        assert not s.errors, s.errors


@pytest.fixture
def run_cli(tmp_path, monkeypatch):
    """Run sagedl.cli.main in-process; returns CliResult(code, out, err)."""
    def run(*argv, **kw):
        env = kw.pop("env", None) or clean_env(tmp_path)
        cwd = kw.pop("cwd", None)
        if cwd:
            monkeypatch.chdir(cwd)
        return run_in_process(argv, env)
    return run


@pytest.fixture
def mirror(tree):
    """A fault server holding the files of the test module's own ``tree``
    fixture (a helpers.Tree), as a Sage mirror serves them."""
    with FaultServer(tree.files) as s:
        yield s


# -- the mirror tests' loopback world (tests/loopback.py) -------------------------
@pytest.fixture
def servers():
    from loopback import LoopbackServers
    s = LoopbackServers()
    yield s
    s.close()


@pytest.fixture
def env(tmp_path):
    """An environment with private config/cache dirs and no proxies."""
    return {"HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "XDG_CONFIG_HOME": str(tmp_path / "config")}


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    from loopback import make_tls_files
    return make_tls_files(tmp_path_factory.mktemp("tls"))
