"""What the tests share: data, environments, ways to run the CLI, a Sage tree.

One module for the helpers the test files use, so no test file imports
another (conftest.py holds the pytest fixtures and builds them from these).
Topic helpers have their own modules: faultserver.py (the fault-injecting
server), nginx.py, squid.py, pyz.py (the built artefact under each
interpreter), realfiles.py, loopback.py (raw sockets for the mirror probe).
"""

import hashlib
import io
import os
import random
import subprocess
import sys
import time

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)


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


def run_in_process(argv, env, cwd=None):
    """sagedl.cli.main in this process; returns CliResult(code, out, err).
    ``cwd``: the caller changes directory (monkeypatch.chdir) first."""
    from sagedl import cli
    out, err = io.StringIO(), io.StringIO()
    code = cli.main([str(a) for a in argv], env=env, stdout=out, stderr=err)
    return CliResult(code, out.getvalue(), err.getvalue())


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


def interruptible():
    """preexec_fn for a child that a test sends SIGINT, as a terminal's
    Ctrl-C would: SIGINT back to its default.  A command started in the
    background by a non-interactive shell (``pytest ... &`` in a script)
    inherits SIGINT ignored, and so would every Python it starts, which then
    never sees the signal: that, not load, made the Ctrl-C tests fail when
    the suite ran in the background."""
    import signal
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def wait_until(predicate, timeout=20.0):
    """Poll a condition that lives in another process (a file's size), with a
    deadline; conditions inside the test server use FaultServer.wait_for."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %ss" % timeout)
        time.sleep(0.01)


def wait_until_client_has_read(server, name, nbytes, timeout=60.0):
    """Wait until a client process has *read* the first nbytes of name's body
    from server (a FaultServer parked by stall-at-nbytes), even if it holds
    them in memory and has written nothing yet.

    The server has handed nbytes to its kernel; then /proc/net/tcp must show
    the server's end of the connection with nothing unacknowledged (tx_queue
    0: the client's kernel has it all) and the client's end with nothing
    unread (rx_queue 0: the client process took it all).  Loopback IPv4 only.
    """
    assert server.wait_for(lambda s: any(r.body_bytes >= nbytes
                                         for r in s.requests_for(name)), timeout), \
        "the server never sent %d bytes of %s" % (nbytes, name)
    port = "%04X" % server.port

    def drained():
        ends = []
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                local, remote, state, queues = fields[1], fields[2], fields[3], fields[4]
                if state != "01":                   # ESTABLISHED
                    continue
                tx, rx = (int(q, 16) for q in queues.split(":"))
                if local.endswith(":" + port):
                    ends.append(tx)                 # the server's end
                elif remote.endswith(":" + port):
                    ends.append(rx)                 # the client's end
        return len(ends) == 2 and not any(ends)
    wait_until(drained, timeout)


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path``, making its directory; returns path."""
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w", encoding="utf-8") as f:
        f.write(text)
    return path


def size_of(path):
    """A file's size, or -1 when it does not exist."""
    try:
        return os.path.getsize(str(path))
    except OSError:
        return -1


def mirror_env(tmp_path, tree, mirror, **extra):
    """clean_env for a Tree whose only mirror is ``mirror`` (a FaultServer)."""
    env = clean_env(tmp_path, SAGE_ROOT=str(tree.root), SAGEDL_MIRRORS=mirror.url + "/ok/")
    env.update(extra)
    return env


class Tree(object):
    """A Sage tree with packages whose tarballs a loopback mirror serves."""

    def __init__(self, root):
        self.root = root
        self.files = {}
        self.pkgs = root / "build" / "pkgs"
        self.pkgs.mkdir(parents=True)
        (root / "build" / "bin").mkdir()

    def add(self, pkg, version, tarball_template, data, ptype="standard", sha1=True,
            upstream_url=None, extra=()):
        """A package; ``extra``: empty files beside checksums.ini (for --has-file)."""
        d = self.pkgs / pkg
        d.mkdir()
        lines = ["tarball=%s" % tarball_template,
                 "sha256=%s" % hashlib.sha256(data).hexdigest()]
        if sha1:
            lines.append("sha1=%s" % hashlib.sha1(data).hexdigest())
        if upstream_url:
            lines.append("upstream_url=%s" % upstream_url)
        (d / "checksums.ini").write_text("\n".join(lines) + "\n")
        (d / "package-version.txt").write_text(version + "\n")
        (d / "type").write_text(ptype + "\n")
        for extra_name in extra:
            (d / extra_name).write_text("")
        name = tarball_template.replace("VERSION", version.split(".p")[0])
        self.files[name] = data
        return name
