"""A bulk run counts every file's failure, whatever raised it.

A worker thread once died of an exception nobody translated (an OSError
from a directory it could not search): "Exception in thread sagedl-N", its
files summed up as "not started", and the run exited 0.  Now anything a
file's fetch or its output step raises, except Ctrl-C, is that file's
failure, with its message, in the summary and the exit code.  The real
permission cases are in tests/test_permissions.py; here the exceptions are
injected, so that a bug of any kind is covered.
"""

import errno
import threading

import pytest

from helpers import Tree, clean_env, make_data, run_in_process
from sagedl.commands import bulk
from sagedl.engine import download
from sagedl.errors import EXIT_DISK, EXIT_FAILURE, DiskError, SagedlError


class FakeTarball(object):
    def __init__(self, name):
        self.filename = name


def jobs_of(n):
    return [bulk.Job(i, FakeTarball("f%d" % i), "/nowhere/f%d" % i, []) for i in range(n)]


def raising(kinds):
    def fetch_one(job, local):
        kind = kinds[job.index]
        if kind == "bug":
            raise RuntimeError("boom %d" % job.index)
        if kind == "os":
            raise OSError(errno.EACCES, "Permission denied", job.path)
        return "ok %d" % job.index
    return fetch_one


@pytest.mark.timeout(60)
@pytest.mark.parametrize("nworkers", [1, 3])
def test_an_exception_in_a_worker_is_that_files_failure(nworkers):
    jobs = jobs_of(6)
    kinds = ["ok", "bug", "os", "ok", "bug", "ok"]
    emitted = []
    before = threading.active_count()
    bulk.run_jobs(jobs, raising(kinds), nworkers, None, False, emitted.append)
    assert [j.index for j in emitted] == list(range(6))      # every job, in order
    for job, kind in zip(jobs, kinds):
        if kind == "ok":
            assert job.result == "ok %d" % job.index and job.error is None
        elif kind == "bug":
            assert isinstance(job.error, SagedlError) and job.error.exit_code == EXIT_FAILURE
            assert str(job.error) == "internal error: RuntimeError: boom %d" % job.index
        else:
            assert isinstance(job.error, DiskError)
            assert str(job.error) == "%s: Permission denied" % job.path
    assert threading.active_count() == before


@pytest.mark.timeout(60)
def test_an_exception_while_emitting_is_that_files_failure():
    """make-mirror places each file as it is emitted: a DiskError there
    failed the worker, not the file."""
    jobs = jobs_of(3)

    def emit(job):
        if job.index == 1:
            raise DiskError("cannot write /mirror/f1: No space left on device")
    bulk.run_jobs(jobs, raising(["ok"] * 3), 2, None, False, emit)
    assert [j.error is None for j in jobs] == [True, False, True]
    assert jobs[1].result is None and "No space left" in str(jobs[1].error)


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path / "sage")
    t.add("foo", "1.0", "foo-VERSION.tar.gz", make_data(1000, 1))
    t.add("bar", "1.0", "bar-VERSION.tar.gz", make_data(1000, 2))
    return t


@pytest.mark.timeout(60)
@pytest.mark.parametrize("jobs", ["1", "4"])
def test_a_bulk_run_with_a_crashing_fetch_never_exits_0(tree, tmp_path, monkeypatch, jobs):
    def crash(*args, **kwargs):
        raise RuntimeError("boom")
    monkeypatch.setattr(download, "fetch", crash)
    env = clean_env(tmp_path, SAGE_ROOT=str(tree.root), SAGEDL_MIRRORS="http://127.0.0.1:9/")
    r = run_in_process(["download", "--on-error", "warn", "-j", jobs, "foo", "bar"], env)
    assert r.code == EXIT_FAILURE, r
    assert r.out == ""
    assert "2 failed" in r.err and "not started" not in r.err, r
    assert "failed: bar-1.0.tar.gz: internal error: RuntimeError: boom" in r.err, r
    assert "Exception in thread" not in r.err


@pytest.mark.timeout(60)
def test_a_bulk_run_counts_a_disk_error_of_any_origin(tree, tmp_path, monkeypatch):
    def deny(*args, **kwargs):
        raise OSError(errno.EACCES, "Permission denied", "/somewhere")
    monkeypatch.setattr(download, "fetch", deny)
    env = clean_env(tmp_path, SAGE_ROOT=str(tree.root), SAGEDL_MIRRORS="http://127.0.0.1:9/")
    r = run_in_process(["download", "-j", "2", "foo", "bar"], env)
    assert r.code == EXIT_DISK, r
    assert "sagedl: error: /somewhere: Permission denied" in r.err, r
