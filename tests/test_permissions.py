"""Files and directories sagedl may not read, search or remove -- another
user's, or its own with the permissions gone -- and what other users may
read of its output.

The rule: one clear line and a documented exit code (6 for permissions, 2
for a name too long), each file's failure counted in a bulk run's exit
code, and never "internal error" or a worker thread dying with a traceback
while the run exits 0.

Tests run as root and take the privilege away for the child: ``setpriv``
drops CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH and CAP_FOWNER from the bounding
set, so the child (still uid 0) obeys file modes and the sticky bit like
any user; "another user's" files belong to ``nobody``.  Everything lives in
the test's temp dir.  The built pyz runs under 2.7, 3.6, 3.11, 3.13 and
PyPy3.
"""

import hashlib
import json
import os
import pwd
import shutil
import subprocess

import pytest

from faultserver import FaultServer
from helpers import Tree, assert_one_line_error, clean_env, make_data
from pyz import interpreter_params, pyz_path, require_interpreter
from sagedl.errors import EXIT_DISK, EXIT_LOCK, EXIT_OK, EXIT_USAGE

LABELS = ("2.7", "3.6", "3.11", "3.13", "pypy3")
DROP = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]


def require_setpriv():
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("needs root and setpriv -- required when CI=true", pytrace=False)
        pytest.skip("needs root and setpriv")


def nobody():
    return pwd.getpwnam("nobody").pw_uid


class Result(object):
    def __init__(self, p):
        self.code = p.returncode
        self.out = p.stdout.decode("utf-8", "replace")
        self.err = p.stderr.decode("utf-8", "replace")

    def __repr__(self):
        return "Result(%r, out=%r, err=%r)" % (self.code, self.out[-500:], self.err[-1500:])


def run(label, argv, env, unprivileged=True, timeout=120):
    python = require_interpreter(label)
    cmd = (DROP if unprivileged else []) + [python, pyz_path()] + [str(a) for a in argv]
    return Result(subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 timeout=timeout))


@pytest.fixture
def world(tmp_path):
    """A Sage tree of two packages, a loopback mirror with their tarballs,
    and an environment pointing at both, the distfiles in tmp_path/dist."""
    require_setpriv()
    tree = Tree(tmp_path / "sage")
    names = [tree.add("foo", "1.0", "foo-VERSION.tar.gz", make_data(30000, 1)),
             tree.add("bar", "2.0", "bar-VERSION.tar.gz", make_data(40000, 2))]
    dist = tmp_path / "dist"
    dist.mkdir()
    with FaultServer(tree.files) as s:
        env = clean_env(tmp_path, SAGE_ROOT=str(tree.root), SAGE_DISTFILES=str(dist),
                        SAGEDL_MIRRORS=s.url + "/ok/")
        yield tree, names, dist, env, s


def assert_no_internal_error(r):
    assert "Traceback" not in r.err and "internal error" not in r.err, r
    assert "Exception in thread" not in r.err, r


# -- a bulk run's failures, one per file, counted ------------------------------------------

@pytest.mark.parametrize("label", interpreter_params(LABELS))
@pytest.mark.parametrize("jobs", ["1", "4"])
def test_a_distfiles_directory_without_search_permission_fails_each_file(label, jobs, world):
    """Mode 000: every name in it is unreachable.  The workers once died
    with "Exception in thread", the summary said "2 not started", stdout was
    empty and the exit code 0 (-j 1: "internal error", exit 1)."""
    tree, names, dist, env, s = world
    os.chmod(str(dist), 0)
    r = run(label, ["download", "--on-error", "warn", "-j", jobs, "foo", "bar"], env)
    assert r.code == EXIT_DISK, r
    assert_no_internal_error(r)
    assert r.out == ""
    assert "2 failed" in r.err, r
    for name in names:
        assert "failed: %s: cannot access %s" % (name, dist / name) in r.err, r
    assert "not started" not in r.err
    assert s.requests == []


@pytest.mark.parametrize("label", interpreter_params(LABELS))
def test_an_unreadable_cached_file_is_exit_6_for_download_verify_and_make_mirror(label, world,
                                                                                 tmp_path):
    """Another user's 0600 file at a tarball's name, with a known checksum:
    it cannot be verified, so it is a disk error -- not "internal error"."""
    tree, names, dist, env, s = world
    for name in names:
        (dist / name).write_bytes(tree.files[name])
    os.chown(str(dist / names[1]), nobody(), -1)
    os.chmod(str(dist / names[1]), 0o600)
    r = run(label, [names[1]], env)
    assert r.code == EXIT_DISK, r
    assert_one_line_error(r.err, "cannot read %s: Permission denied" % (dist / names[1]))
    r = run(label, ["verify", dist], env)
    assert r.code == EXIT_DISK, r
    assert_no_internal_error(r)
    assert "unreadable %s (cannot read" % names[1] in r.out, r
    assert "1 verified" in r.err and "1 unreadable" in r.err, r
    r = run(label, ["make-mirror", tmp_path / "mirror", "foo", "bar"], env)
    assert r.code == EXIT_DISK, r
    assert_no_internal_error(r)
    assert "failed: %s: cannot read" % names[1] in r.err, r
    assert s.requests == []


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.13", "pypy3")))
def test_a_mirror_directory_verify_cannot_list_is_exit_6(label, world, tmp_path):
    tree, names, dist, env, s = world
    pkg = tmp_path / "mirror" / "spkg" / "upstream" / "foo"
    pkg.mkdir(parents=True)
    os.chmod(str(pkg), 0)
    r = run(label, ["verify", tmp_path / "mirror"], env)
    assert r.code == EXIT_DISK, r
    assert_one_line_error(r.err, "cannot list %s: Permission denied" % pkg)


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.6", "3.13", "pypy3")))
def test_a_destination_name_too_long_is_a_usage_error(label, world, tmp_path):
    tree, names, dist, env, s = world
    dest = tmp_path / ("a" * 300 + ".tar.gz")
    sha256 = hashlib.sha256(tree.files[names[0]]).hexdigest()
    r = run(label, [s.url_for(names[0]), dest, "--sha256", sha256], env,
            unprivileged=False)
    assert r.code == EXIT_USAGE, r
    assert_one_line_error(r.err, "file name too long")


# -- another user's NAME.lock -------------------------------------------------------------

def plant_lock(dist, name, mode=0o644):
    lock = dist / (name + ".lock")
    lock.write_bytes(b"")
    os.chown(str(lock), nobody(), -1)
    os.chmod(str(lock), mode)
    return lock


@pytest.mark.parametrize("label", interpreter_params(LABELS))
def test_a_stale_lock_of_another_user_is_removed_when_the_directory_allows(label, world):
    """A shared, group-writable distfiles directory (no sticky bit): the
    stale lock a killed run of another user left is removed, not an exit 6
    on every run."""
    tree, names, dist, env, s = world
    os.chmod(str(dist), 0o777)
    plant_lock(dist, names[0])
    r = run(label, [names[0]], env)
    assert r.code == EXIT_OK, r
    assert (dist / names[0]).read_bytes() == tree.files[names[0]]
    assert sorted(os.listdir(str(dist))) == [names[0]]


@pytest.mark.parametrize("label", interpreter_params(LABELS))
def test_a_stale_lock_of_another_user_that_cannot_be_removed_is_locked_as_it_is(label, world):
    """A sticky directory owned by that user: the lock file cannot be
    removed, but flock works on it read-only, so it still serves."""
    tree, names, dist, env, s = world
    os.chown(str(dist), nobody(), -1)
    os.chmod(str(dist), 0o1777)
    lock = plant_lock(dist, names[0])
    r = run(label, [names[0], "--debug"], env)
    assert r.code == EXIT_OK, r
    assert "belongs to user nobody and cannot be removed" in r.err, r
    assert (dist / names[0]).read_bytes() == tree.files[names[0]]
    assert os.stat(str(lock)).st_uid == nobody()


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.11", "pypy3")))
def test_an_unreadable_lock_of_another_user_says_whose_and_what_to_do(label, world):
    tree, names, dist, env, s = world
    os.chmod(str(dist), 0o1777)
    plant_lock(dist, names[0], 0o600)
    r = run(label, [names[0]], env)
    assert r.code == EXIT_DISK, r
    assert_one_line_error(r.err, "lock file of user nobody that this user cannot open")
    assert "sagedl: hint: if no sagedl of nobody is downloading %s, nobody or an " \
           "administrator can remove it" % names[0] in r.err, r
    assert s.requests == []


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.13", "pypy3")))
def test_a_held_lock_of_another_user_is_waited_for_and_named(label, world):
    """The other user's sagedl is running (it holds the flock): wait for it,
    saying whose it is; the lock timeout names the user too."""
    import fcntl
    tree, names, dist, env, s = world
    os.chmod(str(dist), 0o1777)
    lock = plant_lock(dist, names[0])
    fd = os.open(str(lock), os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        r = run(label, [names[0], "--lock-timeout", "0.5", "--progress", "lines"], env)
    finally:
        os.close(fd)
    assert r.code == EXIT_LOCK, r
    assert "waiting for another sagedl (of user nobody) to finish %s" % names[0] in r.err, r
    assert_one_line_error(r.err, "(of user nobody)")


# -- what the mirror commands show, and what they keep --------------------------------------

@pytest.mark.parametrize("label", interpreter_params(LABELS))
def test_a_password_in_a_mirror_url_is_never_shown_or_cached(label, world, tmp_path):
    """list-mirrors printed it on stdout, --print-fastest-mirror on stdout
    and stderr, and ranking.json (mode 0644) kept it in clear."""
    tree, names, dist, env, s = world
    secret = "hunter2-secret"
    env = dict(env, SAGEDL_MIRRORS="%s %s" % (s.url.replace("//", "//alice:%s@" % secret) + "/ok/",
                                                s.url + "/ok/"))
    outputs = []
    for argv in (["list-mirrors"], ["--print-fastest-mirror"], ["-v", "--print-fastest-mirror"],
                 ["-v", "download", "foo"], ["--debug", names[1]]):
        r = run(label, argv, env, unprivileged=False)
        assert r.code == EXIT_OK, (argv, r)
        outputs.append(r.out + r.err)
    text = "\n".join(outputs)
    assert secret not in text and "alice" not in text, text
    assert "http://***@127.0.0.1:%d/ok/" % s.port in text, text
    cache = tmp_path / "cache" / "sagedl"
    cached = [p for p in os.listdir(str(cache)) if p.endswith(".json")]
    assert "ranking.json" in cached
    for p in cached:
        data = (cache / p).read_text()
        assert secret not in data and "alice" not in data, (p, data)
    ranking = json.loads((cache / "ranking.json").read_text())
    assert any(r["url"].startswith("http://***@") for r in ranking["results"]), ranking


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.13", "pypy3")))
def test_make_mirror_counts_a_file_it_cannot_place(label, world, tmp_path):
    """Placing a file in the mirror failed inside a worker thread: it died
    with a traceback, and make-mirror exited 0."""
    tree, names, dist, env, s = world
    pkg = tmp_path / "mirror" / "spkg" / "upstream" / "foo"
    pkg.mkdir(parents=True)
    os.chmod(str(pkg), 0o555)
    r = run(label, ["make-mirror", tmp_path / "mirror", "foo", "bar"], env)
    assert r.code == EXIT_DISK, r
    assert_no_internal_error(r)
    assert "failed: %s: cannot write %s" % (names[0], pkg / names[0]) in r.err, r


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.13", "pypy3")))
def test_a_bulk_run_with_stdout_closed_is_exit_6(label, world):
    """Printing a path failed inside a worker thread: a traceback, exit 0."""
    tree, names, dist, env, s = world
    python = require_interpreter(label)
    p = subprocess.run(["bash", "-c", 'exec "$@" >&-', "sh", python, pyz_path(), "download",
                        "foo", "bar"], env=env, stderr=subprocess.PIPE, timeout=120)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == EXIT_DISK, err
    assert "Traceback" not in err and "Exception in thread" not in err, err
    assert "cannot write to standard output" in err, err
