"""What the pyz imports for ``--version`` and for a file that is already
there: start-up is paid by every call in a ``make -j`` build, and a module
pulled in by accident costs milliseconds on every one (urllib.parse alone
was about 20 ms on 3.13).  Speed itself lives in bench/; this pins the
modules, on every interpreter."""

import hashlib
import os
import subprocess

import pytest

from pyz import clean_env, interpreter_params, pyz_path, require_interpreter

LABELS = ("2.7", "3.6", "3.11", "3.13", "pypy3")

# Runs the archive as "python sagedl.pyz ARGS" does (runpy), and prints the
# modules that were not loaded before it.  pkgutil is runpy.run_path's own.
DRIVER = r'''
import runpy, sys, pkgutil
before = set(sys.modules)
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
sys.stderr.write("\nIMPORTED " + " ".join(sorted(
    n for n, m in sys.modules.items() if n not in before and m is not None)) + "\n")
'''

# Modules costing milliseconds that neither command needs.
NEVER_FOR_VERSION = {"re", "urllib.parse", "urlparse", "socket", "ssl", "argparse", "json",
                     "shutil", "threading", "hashlib", "enum", "ipaddress", "locale", "shlex",
                     "tempfile", "subprocess", "base64", "zipfile", "typing", "binascii"}
NEVER_FOR_A_CACHED_FILE = {"http.client", "httplib", "email", "tempfile", "subprocess", "random",
                           "zipfile", "urllib.request", "urllib2", "difflib", "unicodedata",
                           "sagedl.net.tls", "sagedl.mirrors.probe", "sagedl.mirrors.health",
                           "sagedl.mirrors.mirrorlist", "sagedl.mirrors.tomlreader",
                           "sagedl.commands.bulk"}

VERSION_MODULES = [
    "sagedl", "sagedl.cli", "sagedl.compat", "sagedl.engine", "sagedl.engine.fsutil",
    "sagedl.errors", "sagedl.options"]
# The transport (and http1.py with it) is made by Session.fetch before the
# engine knows whether a transfer is needed.
CACHED_FILE_MODULES = VERSION_MODULES + [
    "sagedl.commands", "sagedl.commands.single", "sagedl.commands.targets",
    "sagedl.engine.download", "sagedl.engine.lock", "sagedl.engine.retry", "sagedl.engine.verify",
    "sagedl.net", "sagedl.net.http1", "sagedl.net.reachability", "sagedl.net.transport",
    "sagedl.net.urls", "sagedl.plan", "sagedl.plan.output", "sagedl.plan.sources",
    "sagedl.plan.spread", "sagedl.sage", "sagedl.sage.names", "sagedl.session", "sagedl.text",
    "sagedl.ui", "sagedl.ui.progress", "sagedl.ui.progresstext"]
# PyPy also collects start-up's garbage before the command works (nursery.py).
PYPY_CACHED_FILE_MODULES = ["sagedl.engine.nursery"]


def imported(python, args, tmp_path):
    env = clean_env(XDG_CACHE_HOME=str(tmp_path / "cache"), HOME=str(tmp_path), LC_ALL="C")
    for _ in range(2):    # the second run loads from the bytecode cache
        r = subprocess.run([python, "-c", DRIVER, pyz_path()] + args, env=env, cwd=str(tmp_path),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=120)
    lines = [l for l in r.stderr.splitlines() if l.startswith("IMPORTED ")]
    assert lines, r.stderr
    return r, set(lines[-1].split()[1:])


@pytest.mark.parametrize("label", interpreter_params(LABELS))
def test_version_imports_only_what_it_prints(label, tmp_path):
    r, mods = imported(require_interpreter(label), ["--version"], tmp_path)
    assert r.stdout.startswith("sagedl "), r.stderr
    assert sorted(m for m in mods if m.startswith("sagedl")) == VERSION_MODULES
    assert not mods & NEVER_FOR_VERSION, sorted(mods & NEVER_FOR_VERSION)


@pytest.mark.parametrize("label", interpreter_params(LABELS))
def test_a_file_already_there_imports_only_the_pinned_modules(label, tmp_path):
    data = b"already here\n" * 1000
    (tmp_path / "f.tar.gz").write_bytes(data)
    # Port 9 (discard) on loopback: never contacted, the file verifies first.
    r, mods = imported(require_interpreter(label),
                       ["http://127.0.0.1:9/f.tar.gz", "f.tar.gz", "--sha256",
                        hashlib.sha256(data).hexdigest()], tmp_path)
    assert "Using cached file" in r.stderr, r.stderr
    pinned = CACHED_FILE_MODULES + (PYPY_CACHED_FILE_MODULES if label == "pypy3" else [])
    assert sorted(m for m in mods if m.startswith("sagedl")) == sorted(pinned)
    assert not mods & NEVER_FOR_A_CACHED_FILE, sorted(mods & NEVER_FOR_A_CACHED_FILE)
