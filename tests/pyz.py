"""Test helper: the built sagedl.pyz, and the interpreters to run it under.

    pyz_path()              the archive, built once per test session
    probe_pyz_path()        the same archive around a probe sagedl.cli that
                            prints, as JSON, what the final process sees
    interpreters()          [(label, path or None)] for 2.7, 3.6 ... 3.13, pypy3
    interpreter_params()    for pytest.mark.parametrize("label", ...)
    require_interpreter(l)  its path; skip when missing, fail when CI=true
"""
import atexit
import glob
import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD_SCRIPT = os.path.join(REPO, "zipapp", "build.py")
CPYTHON_LABELS = ("2.7", "3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13")
LABELS = CPYTHON_LABELS + ("pypy3",)
# Safety net so a hung child fails the test instead of the whole run; never
# a measure of speed.
TIMEOUT = 120

PROBE_CLI = '''\
"""Probe CLI for tests: reports what the process that finally runs sees."""
import json
import sys


def main(argv=None, env=None):
    import contextlib
    import functools
    sys.stdout.write(json.dumps({
        "argv": sys.argv[1:],
        "ignore_environment": sys.flags.ignore_environment,
        "no_user_site": sys.flags.no_user_site,
        "path": sys.path,
        "executable": sys.executable,
        "version": list(sys.version_info[:3]),
        "functools": functools.__file__,
        "contextlib": contextlib.__file__,
        "has_partial": hasattr(functools, "partial"),
        "has_contextmanager": hasattr(contextlib, "contextmanager"),
    }))
    return 0
'''

_cache = {}


def _session_dir():
    if "dir" not in _cache:
        d = tempfile.mkdtemp(prefix="sagedl-pyz-")
        atexit.register(shutil.rmtree, d, True)
        _cache["dir"] = d
    return _cache["dir"]


def build_module():
    """zipapp/build.py as a module (the folder is not a package, and its name
    would clash with the standard library's zipapp)."""
    if "build" not in _cache:
        spec = importlib.util.spec_from_file_location("sagedl_zipapp_build", BUILD_SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _cache["build"] = module
    return _cache["build"]


def build_pyz(output, repo_root=REPO, environ=None):
    """Build an archive; environ defaults to empty so SOURCE_DATE_EPOCH in the
    test runner's environment cannot change the bytes."""
    return build_module().build(output, repo_root=repo_root, environ={} if environ is None else environ)


def pyz_path():
    """The real archive, built once per session into a temporary directory."""
    if "pyz" not in _cache:
        _cache["pyz"] = build_pyz(os.path.join(_session_dir(), "sagedl.pyz"))
    return _cache["pyz"]


def probe_pyz_path():
    """An archive with the real root __main__, shims and preamble, whose
    sagedl.cli.main prints JSON (see PROBE_CLI) instead of working."""
    if "probe" not in _cache:
        root = os.path.join(_session_dir(), "probe-repo")
        os.makedirs(os.path.join(root, "sagedl"))
        with open(os.path.join(root, "sagedl", "__init__.py"), "w") as f:
            f.write('__version__ = "0.0.0-probe"\n')
        with open(os.path.join(root, "sagedl", "cli.py"), "w") as f:
            f.write(PROBE_CLI)
        _cache["probe"] = build_pyz(os.path.join(_session_dir(), "probe.pyz"), repo_root=root)
    return _cache["probe"]


def _version_key(path):
    version = path.split(os.sep)[-3]
    return [int(p) if p.isdigit() else -1 for p in re.split(r"[.]", version)]


def _find(label):
    if label == "pypy3":
        return shutil.which("pypy3")
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = [p for p in glob.glob(os.path.join(root, "versions", label + ".*", "bin", "python"))
             if re.match(re.escape(label) + r"\.\d+$", p.split(os.sep)[-3]) and os.access(p, os.X_OK)]
    return max(found, key=_version_key) if found else None


def interpreters():
    """[(label, path or None)] in LABELS order."""
    return [(label, _find(label)) for label in LABELS]


def interpreter_params(labels=LABELS):
    """Parameters for pytest.mark.parametrize("label", ...), ids = labels.
    The test calls require_interpreter(label) to get the path."""
    return [pytest.param(label, id=label) for label in labels]


def require_interpreter(label):
    path = _find(label)
    if path is None:
        message = "interpreter %s not found (pyenv or PATH)" % label
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message + "; in CI every interpreter must be present")
        pytest.skip(message)
    return path


def interpreter_version(path):
    """'X.Y.Z' as the interpreter itself reports it."""
    key = ("version", path)
    if key not in _cache:
        out = subprocess.check_output(
            [path, "-E", "-s", "-c", "import sys; sys.stdout.write('%d.%d.%d' % sys.version_info[:3])"],
            timeout=TIMEOUT)
        _cache[key] = out.decode("ascii")
    return _cache[key]


BROKEN_MODULE = 'raise ImportError("No module named _functools")\n'


def make_broken_stdlib(directory):
    """A PYTHONPATH entry like a half-installed Sage's: functools.py and
    contextlib.py that cannot be imported.  Returns the directory."""
    os.makedirs(directory)
    for name in ("functools.py", "contextlib.py"):
        with open(os.path.join(directory, name), "w") as f:
            f.write(BROKEN_MODULE)
    return directory


def clean_env(**extra):
    """os.environ without anything that steers Python or the preamble, plus extra."""
    env = dict((k, v) for k, v in os.environ.items()
               if not k.startswith("PYTHON") and k != "SAGEDL_PYTHON")
    env.update(extra)
    return env


def run(cmd, env=None, cwd=None):
    """Run cmd; return CompletedProcess with text stdout/stderr."""
    return subprocess.run(cmd, env=clean_env() if env is None else env, cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=TIMEOUT)


def run_probe(cmd, env=None, cwd=None):
    """Run a probe archive; return (CompletedProcess, parsed JSON report)."""
    proc = run(cmd, env=env, cwd=cwd)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    return proc, json.loads(proc.stdout)
