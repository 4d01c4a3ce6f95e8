"""The receive -> hash -> write pipeline (sagedl/engine/pipeline.py): the threaded
sink, the simple one and the splice one keep the same guarantees.

Every path runs here on small files: in-process by lowering
pipeline.LARGE_TRANSFER (or raising it past the file), in a subprocess with
SAGEDL_PIPELINE=thread|simple|splice.  Speed is measured in bench/, never here.
"""

import errno
import hashlib
import os
import signal
import socket
import stat
import subprocess
import sys

import pytest

from faultserver import FaultServer
from helpers import (REPO, assert_one_line_error, clean_env, interruptible, make_data, run_module,
                     size_of, wait_until, wait_until_client_has_read)
from sagedl.engine import pipeline
from sagedl.engine import splicesink
from sagedl.engine.verify import Expected, Hasher
from sagedl.errors import (EXIT_CHECKSUM, EXIT_DISK, EXIT_INTERRUPTED, EXIT_NETWORK, EXIT_OK,
                           SourceFailure)
from sagedl.net import http1, splice

# thread: the threaded sink handing over each read (CPython's way); whole:
# handing over full bytearray blocks (PyPy's way without _cffi_backend);
# raw: blocks outside the GC written by write(2) itself (PyPy's way);
# simple: one thread; splice: socket -> pipe -> file by splice(2), hashed
# by a worker reading the file back (plain HTTP, Linux, Python 3.10+).
PATHS = ["thread", "whole", "raw", "simple", "splice"]
# A worker that never signals would hang the engine: fail fast instead.
pytestmark = pytest.mark.timeout(90)


needs_splice = pytest.mark.skipif(not splice.AVAILABLE,
                                  reason="no splice(2) (Linux; CPython 3.10+ or PyPy)")


def skip_unless_possible(kind):
    if kind == "raw":
        pytest.importorskip("_cffi_backend")
    if kind == "splice" and not splice.AVAILABLE:
        pytest.skip("no splice(2) (Linux; CPython 3.10+ or PyPy)")


@pytest.fixture(params=PATHS)
def path(request, monkeypatch):
    """Make the engine pick the threaded, the simple or the splice sink for
    any size; the splice one must really be used (plain HTTP, a length)."""
    kind = request.param
    skip_unless_possible(kind)
    threaded = kind != "simple"
    monkeypatch.setattr(pipeline, "LARGE_TRANSFER", 0 if threaded else 1 << 62)
    monkeypatch.setattr(pipeline, "threads_pay", lambda: threaded)
    monkeypatch.setattr(pipeline, "WHOLE_BLOCKS", kind == "whole")
    monkeypatch.setattr(pipeline, "RAW_BLOCKS", kind == "raw")
    monkeypatch.setattr(pipeline, "SPLICE", kind == "splice")
    opened = []
    real_open = pipeline.SpliceSink.open.__func__

    def open_and_count(cls, fd, hasher):
        sink = real_open(cls, fd, hasher)
        opened.append(sink)
        return sink
    monkeypatch.setattr(pipeline.SpliceSink, "open", classmethod(open_and_count))
    yield kind
    assert bool(opened) == (kind == "splice"), opened
    assert None not in opened


def full_disk_write(limit, write=os.write):
    """os.write on a disk that holds limit bytes of the file: as write(2)
    does, a write that does not fit is short, and one with no room is ENOSPC."""
    def fake(fd, data):
        room = limit - os.fstat(fd).st_size
        if room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return write(fd, memoryview(data)[:room])
    return fake


def full_disk_splice(limit, real=splice.move):
    """splice(2) (net.splice.move) into a regular file on a disk that holds limit bytes of
    it, as full_disk_write; splices into a pipe are left alone."""
    def fake(src, dst, count, *args, **kwargs):
        if stat.S_ISREG(os.fstat(dst).st_mode):
            room = limit - os.fstat(dst).st_size
            if room <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            count = min(count, room)
        return real(src, dst, count, *args, **kwargs)
    return fake


def disk_holds(monkeypatch, limit):
    """The disk holds limit bytes of the file, for os.write, os.splice and
    for the write(2) RawBlocks calls (which then fails with ENOSPC, as
    write(2) does)."""
    monkeypatch.setattr(pipeline.os, "write", full_disk_write(limit))
    if splice.AVAILABLE:
        monkeypatch.setattr(splice, "move", full_disk_splice(limit))
    init = pipeline.RawBlocks.__init__

    def small_disk(raw):
        init(raw)
        real, code = raw.write, [0]

        def write(fd, p, n):
            room = limit - os.fstat(fd).st_size
            if room <= 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(fd, p, min(n, room))
        raw.write = write
    monkeypatch.setattr(pipeline.RawBlocks, "__init__", small_disk)


def new_sink(kind, fd, hasher, block):
    skip_unless_possible(kind)
    if kind == "splice":
        return pipeline.SpliceSink.open(fd, hasher)
        return pipeline.ThreadedSink(fd, hasher, block, ring=3, raw=pipeline.RawBlocks())
    if kind != "simple":
        return pipeline.ThreadedSink(fd, hasher, block, ring=3, whole_blocks=kind == "whole")
    return pipeline.Sink(fd, hasher, block)


def feed(sink, data, sizes):
    """Put data into the sink in reads of the given sizes, as the engine
    does: a read never goes past the buffer() it was given."""
    pos = 0
    for n in sizes:
        while n:
            view = sink.buffer()
            k = min(n, len(view))
            if getattr(sink, "spliced", False):
                # Room in a pipe: what Response.splice_into fills.
                assert os.write(view.fd, data[pos:pos + k]) == k
            else:
                view[:k] = data[pos:pos + k]
            sink.put(k)
            pos += k
            n -= k
    return pos


# -- the sinks alone ----------------------------------------------------------

@pytest.mark.parametrize("kind", PATHS)
def test_sink_hashes_and_writes_every_block_in_order(tmp_path, kind):
    block = 4096
    sizes = [block, 1, block, 17, block - 1, block, 3000] * 40
    data = make_data(sum(sizes), seed=7)
    f = tmp_path / "out"
    fd = os.open(str(f), os.O_WRONLY | os.O_CREAT, 0o644)
    hasher = Hasher(Expected(sha256=hashlib.sha256(data).hexdigest(),
                             sha1=hashlib.sha1(data).hexdigest(), size=len(data)))
    sink = new_sink(kind, fd, hasher, block)
    try:
        feed(sink, data, sizes)
        sink.finish()
        assert sink.written == len(data)
    finally:
        sink.close()
        os.close(fd)
    assert hasher.mismatch() is None
    assert f.read_bytes() == data


@pytest.mark.parametrize("kind", PATHS)
def test_a_write_error_surfaces_in_the_callers_thread_and_nothing_is_written_after_it(
        tmp_path, kind, monkeypatch):
    block = 4096
    data = make_data(block * 50, seed=8)
    f = tmp_path / "out"
    fd = os.open(str(f), os.O_WRONLY | os.O_CREAT, 0o644)
    disk_holds(monkeypatch, 10 * block)
    try:
        sink = new_sink(kind, fd, Hasher(Expected()), block)
        with pytest.raises(OSError) as e:
            try:
                feed(sink, data, [block] * 50)
                sink.finish()
            finally:
                sink.close()
        assert e.value.errno == errno.ENOSPC
    finally:
        monkeypatch.undo()
        os.close(fd)
    assert f.read_bytes() == data[:10 * block]     # a prefix, no gap


def test_an_error_in_the_hashing_thread_is_raised_as_itself(tmp_path):
    class BadHasher(object):
        def update(self, data):
            raise ValueError("hash exploded")

    fd = os.open(str(tmp_path / "out"), os.O_WRONLY | os.O_CREAT, 0o644)
    sink = pipeline.ThreadedSink(fd, BadHasher(), 1024, ring=2)
    try:
        with pytest.raises(ValueError, match="hash exploded"):
            feed(sink, b"x" * 4096, [1024] * 4)
            sink.finish()
    finally:
        sink.close()
        os.close(fd)
    assert size_of(tmp_path / "out") == 0


@pytest.mark.parametrize("whole", [False, True])
def test_close_after_the_caller_gives_up_still_writes_what_was_received(tmp_path, whole):
    """A network error mid-transfer: the blocks already received reach the
    partial, the last one too though it is not full, so the next run
    resumes after them."""
    data = make_data(15 * 4096 + 1000, seed=9)
    fd = os.open(str(tmp_path / "out"), os.O_WRONLY | os.O_CREAT, 0o644)
    sink = pipeline.ThreadedSink(fd, Hasher(Expected()), 4096, ring=4, whole_blocks=whole)
    try:
        feed(sink, data, [4096] * 15 + [600, 400])
    finally:
        sink.close()     # no finish(): the caller is leaving with an error
        os.close(fd)
    assert (tmp_path / "out").read_bytes() == data


def test_whole_blocks_reach_hashlib_and_write_as_the_bytearray_itself(tmp_path, monkeypatch):
    """PyPy's way (WHOLE_BLOCKS): the worker gets full blocks and passes the
    buffer itself, never a slice of it, to the hasher and to os.write (PyPy
    copies a slice on every such call); only the last, short block is a
    slice."""
    block = 4096
    data = make_data(5 * block + 100, seed=12)
    seen = []

    class Recorder(object):
        def update(self, chunk):
            seen.append(("hash", type(chunk), len(chunk)))

    def write(fd, chunk, real_write=os.write):
        seen.append(("write", type(chunk), len(chunk)))
        return real_write(fd, chunk)
    monkeypatch.setattr(pipeline.os, "write", write)
    fd = os.open(str(tmp_path / "out"), os.O_WRONLY | os.O_CREAT, 0o644)
    sink = pipeline.ThreadedSink(fd, Recorder(), block, ring=3, whole_blocks=True)
    try:
        feed(sink, data, [1000, 3000, 96, 2048, 2048] + [block] * 3 + [100])
        sink.finish()
    finally:
        sink.close()
        monkeypatch.undo()
        os.close(fd)
    full = [(op, kind) for op, kind, n in seen if n == block]
    assert full == [("hash", bytearray), ("write", bytearray)] * 5
    assert [n for op, kind, n in seen if n != block] == [100, 100]
    assert (tmp_path / "out").read_bytes() == data


@pytest.mark.parametrize("remaining, env, threaded", [
    (1 << 20, {}, False),
    (pipeline.LARGE_TRANSFER, {}, sys.version_info[0] >= 3),
    (None, {}, sys.version_info[0] >= 3),            # unknown size: may be large
    (None, {"SAGEDL_PIPELINE": "simple"}, False),
    (1 << 20, {"SAGEDL_PIPELINE": "thread"}, True),
    (1 << 20, {"SAGEDL_PIPELINE": "whole"}, True),
    (1 << 20, {"SAGEDL_PIPELINE": "raw"}, True),
])
def test_the_choice_of_sink(tmp_path, remaining, env, threaded):
    fd = os.open(str(tmp_path / "out"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        sink = pipeline.open_sink(fd, Hasher(Expected()), 1024, remaining, env)
        sink.close()
    finally:
        os.close(fd)
    assert sink.threaded == threaded


class FakeConnection(object):
    """What http1.Response reads of its connection before the body."""

    def __init__(self, tls=False):
        self.is_tls = tls
        self.timeout = 10


def response(headers, tls=False):
    return http1.Response(FakeConnection(tls), "GET", "http://127.0.0.1/f", 200, "OK", headers)


PLAIN = {"content-length": str(1 << 30)}


@pytest.mark.parametrize("remaining, resp, env, spliced", [
    pytest.param(pipeline.LARGE_TRANSFER, response(PLAIN), {}, True, marks=needs_splice),
    (pipeline.LARGE_TRANSFER, response(PLAIN, tls=True), {}, False),          # TLS: decrypted in Python
    (pipeline.LARGE_TRANSFER, response({"transfer-encoding": "chunked"}), {}, False),
    (None, response({}), {}, False),                                          # no length
    (pipeline.LARGE_TRANSFER, response({}), {}, False),     # --size known, body without a length
    (None, response(PLAIN), {}, False),                     # a caller without a limit
    (1 << 20, response(PLAIN), {}, False),                                    # small: one thread
    pytest.param(1 << 20, response(PLAIN), {"SAGEDL_PIPELINE": "splice"}, True, marks=needs_splice),
    (pipeline.LARGE_TRANSFER, response(PLAIN), {"SAGEDL_PIPELINE": "thread"}, False),
    (pipeline.LARGE_TRANSFER, None, {}, False),                               # no response
])
def test_the_splice_sink_is_chosen_only_for_plain_bodies_of_known_length(
        tmp_path, remaining, resp, env, spliced):
    fd = os.open(str(tmp_path / "out"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        sink = pipeline.open_sink(fd, Hasher(Expected()), 1024, remaining, env, response=resp)
        sink.close()
    finally:
        os.close(fd)
    assert getattr(sink, "spliced", False) == spliced
    assert sink.threaded == (spliced or remaining is None or remaining >= pipeline.LARGE_TRANSFER
                             or env.get("SAGEDL_PIPELINE") == "thread") or not sys.version_info[0] >= 3


@pytest.mark.parametrize("why", ["no splice(2)", "switched off", "python 2"])
def test_without_splice_and_on_python_2_the_large_path_is_unchanged(
        tmp_path, monkeypatch, why):
    """Where Python cannot call splice(2) (CPython < 3.10, not Linux, a PyPy
    without _cffi_backend), with the splice sink switched off, and on 2.7
    (one thread), a large plain body takes the sink it took before."""
    if why == "no splice(2)":
        monkeypatch.setattr(splice, "AVAILABLE", False)
    elif why == "switched off":
        monkeypatch.setattr(pipeline, "SPLICE", False)
    else:
        monkeypatch.setattr(pipeline, "threads_pay", lambda: False)
    fd = os.open(str(tmp_path / "out"), os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        sink = pipeline.open_sink(fd, Hasher(Expected()), 1024, pipeline.LARGE_TRANSFER, {},
                                  response=response(PLAIN))
        sink.close()
    finally:
        os.close(fd)
    assert not getattr(sink, "spliced", False)
    assert sink.threaded == (why != "python 2")


def connected(body_sent, buffered=b"", timeout=10, length=None):
    """A Response whose connection holds ``buffered`` (read with the head)
    and whose peer has sent ``body_sent``; returns (response, peer)."""
    ours, peer = socket.socketpair()
    ours.settimeout(timeout)
    conn = http1.Connection(None, None, ours, timeout)
    conn.buf += buffered
    if body_sent:
        peer.sendall(body_sent)
    if length is None:
        length = len(buffered) + len(body_sent)
    return http1.Response(conn, "GET", "http://127.0.0.1/f", 200, "OK",
                          {"content-length": str(length)}), peer


def drain(pipe, n):
    return os.read(pipe.r, n)


@needs_splice
def test_bytes_read_with_the_head_go_into_the_pipe_first():
    resp, peer = connected(b"B" * 5000, buffered=b"A" * 300)
    pipe = splice.Pipe()
    try:
        assert resp.can_splice()
        n = resp.splice_into(pipe.space())
        assert drain(pipe, n) == b"A" * 300
        got = b""
        while len(got) < 5000:
            n = resp.splice_into(pipe.space()[:1000])     # --limit-rate's smaller reads
            assert 0 < n <= 1000
            got += drain(pipe, n)
        assert got == b"B" * 5000
        assert resp.splice_into(pipe.space()) == 0        # the length is reached
    finally:
        pipe.close()
        resp.conn.close()
        peer.close()


@needs_splice
def test_a_silent_socket_is_the_read_timeout_and_an_early_close_a_short_body():
    """The socket's fd is non-blocking (it has a timeout): splice waits in
    poll() for the read timeout, then fails as recv_into would."""
    resp, peer = connected(b"", timeout=0.3, length=10)      # promised, never sent
    pipe = splice.Pipe()
    try:
        with pytest.raises(SourceFailure, match="read timeout"):
            resp.splice_into(pipe.space())
        peer.sendall(b"12345")
        peer.close()
        assert resp.splice_into(pipe.space()) == 5
        with pytest.raises(SourceFailure, match="short body"):
            resp.splice_into(pipe.space())
    finally:
        pipe.close()
        resp.conn.close()


@needs_splice
def test_a_file_system_splice_cannot_write_to_is_written_through_user_space(tmp_path,
                                                                           monkeypatch):
    real = splice.move

    def no_splice_into_files(src, dst, count, *args, **kwargs):
        if stat.S_ISREG(os.fstat(dst).st_mode):
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real(src, dst, count, *args, **kwargs)
    monkeypatch.setattr(splice, "move", no_splice_into_files)
    data = make_data(50000, seed=21)
    fd = os.open(str(tmp_path / "out"), os.O_WRONLY | os.O_CREAT, 0o644)
    hasher = Hasher(Expected(sha256=hashlib.sha256(data).hexdigest()))
    sink = new_sink("splice", fd, hasher, 4096)
    try:
        feed(sink, data, [7000] * 7 + [1000])
        sink.finish()
    finally:
        sink.close()
        os.close(fd)
    assert hasher.mismatch() is None
    assert (tmp_path / "out").read_bytes() == data


def test_the_splice_sinks_caller_waits_while_the_hash_is_max_lag_behind(tmp_path, monkeypatch):
    """The caller writes ahead of the hashing worker, but at most MAX_LAG
    bytes (and the read in flight): what is not hashed yet must still be in
    the page cache, not read back from the disk.  The worker is held in its
    first update; the caller must then wait in buffer(), not finish."""
    import threading
    skip_unless_possible("splice")
    block = 4096
    monkeypatch.setattr(splicesink, "MAX_LAG", 4 * block)
    release, settled = threading.Event(), threading.Event()
    feeder = []

    class WatchedCondition(threading.Condition):
        def wait(self, timeout=None):
            if threading.current_thread() in feeder:
                settled.set()           # the caller waits for the worker
            return super(WatchedCondition, self).wait(timeout)

    class HeldHasher(object):
        def __init__(self):
            self.sha256 = hashlib.sha256()

        def update(self, chunk):
            release.wait(60)
            self.sha256.update(chunk)

    data = make_data(40 * block, seed=23)
    fd = os.open(str(tmp_path / "out"), os.O_WRONLY | os.O_CREAT, 0o644)
    hasher = HeldHasher()
    real_condition = threading.Condition
    threading.Condition = WatchedCondition
    try:
        sink = pipeline.SpliceSink.open(fd, hasher)
    finally:
        threading.Condition = real_condition
    done = []

    def feed_all():
        feed(sink, data, [block] * 40)
        done.append(True)
        settled.set()
    t = threading.Thread(target=feed_all)
    feeder.append(t)
    try:
        t.start()
        assert settled.wait(60)
        written_while_held = sink.written
        finished_while_held = bool(done)
        release.set()
        t.join(60)
        sink.finish()
    finally:
        release.set()
        sink.close()
        os.close(fd)
    assert not finished_while_held
    assert written_while_held <= 5 * block
    assert hasher.sha256.digest() == hashlib.sha256(data).digest()


# -- through the engine ---------------------------------------------------------

def test_download_verifies_and_renames(run_cli, server, payload, tmp_path, path):
    dest = tmp_path / payload.name
    r = run_cli(server.url_for(payload.name), dest, "--sha256", payload.sha256,
                "--progress", "none")
    assert r.code == EXIT_OK, r
    assert dest.read_bytes() == payload.data
    assert not (tmp_path / (payload.name + ".part")).exists()
    assert not (tmp_path / (payload.name + ".part.json")).exists()


def test_a_mismatch_discards_the_partial_and_never_renames(run_cli, server, payload, tmp_path,
                                                           path):
    dest = tmp_path / payload.name
    r = run_cli(server.url_for(payload.name, "corrupt"), dest, "--sha256", payload.sha256,
                "--progress", "none")
    assert r.code == EXIT_CHECKSUM, r
    assert_one_line_error(r.err, "checksum mismatch")
    assert not dest.exists()
    assert not (tmp_path / (payload.name + ".part")).exists()
    assert not (tmp_path / (payload.name + ".part.json")).exists()


def test_a_reset_mid_transfer_keeps_what_arrived_and_the_next_run_resumes(
        run_cli, server, payload, tmp_path, path):
    dest = tmp_path / payload.name
    N = 300000
    url = server.url_for(payload.name, "reset-at-%d,once" % N)
    r = run_cli(url, dest, "--sha256", payload.sha256, "--progress", "none", "--retries", "0")
    assert r.code == EXIT_NETWORK, r
    part = tmp_path / (payload.name + ".part")
    assert size_of(part) == N
    assert part.read_bytes() == payload.data[:N]
    r = run_cli(url, dest, "--sha256", payload.sha256, "--progress", "none")
    assert r.code == EXIT_OK, r
    assert server.requests_for(payload.name)[-1].range == "bytes=%d-" % N
    assert dest.read_bytes() == payload.data


def test_a_body_that_ends_early_keeps_its_prefix_and_resumes(run_cli, server, payload,
                                                             tmp_path, path):
    dest = tmp_path / payload.name
    N = 200000
    url = server.url_for(payload.name, "close-at-%d,once" % N)
    r = run_cli(url, dest, "--sha256", payload.sha256, "--progress", "none", "--retries", "0")
    assert r.code == EXIT_NETWORK, r
    assert "short body" in r.err
    part = tmp_path / (payload.name + ".part")
    assert part.read_bytes() == payload.data[:N]
    r = run_cli(url, dest, "--sha256", payload.sha256, "--progress", "none")
    assert r.code == EXIT_OK, r
    assert server.requests_for(payload.name)[-1].range == "bytes=%d-" % N
    assert dest.read_bytes() == payload.data


def mirror(server):
    """The server as a --mirror base that serves the file as it is."""
    return server.url_for("x").rsplit("/", 1)[0] + "/"


def test_a_silent_source_is_the_read_timeout(run_cli, server, payload, tmp_path, path):
    dest = tmp_path / payload.name
    r = run_cli(server.url_for(payload.name, "stall-at-1000"), dest, "--mirror", mirror(server),
                "--sha256", payload.sha256, "--progress", "lines", "--timeout", "1")
    assert r.code == EXIT_OK, r
    assert "read timeout" in r.err
    assert dest.read_bytes() == payload.data


@pytest.mark.timeout(60)   # without the stall rule this transfer trickles for minutes
def test_a_trickling_source_is_abandoned_by_the_stall_rule(run_cli, server, payload, tmp_path,
                                                          path):
    dest = tmp_path / payload.name
    r = run_cli(server.url_for(payload.name, "trickle-200"), dest, "--mirror", mirror(server),
                "--sha256", payload.sha256, "--progress", "lines",
                "--low-speed-limit", "100000", "--low-speed-time", "1")
    assert r.code == EXIT_OK, r
    assert "stalled" in r.err
    assert dest.read_bytes() == payload.data


def test_disk_full_in_the_writing_thread_is_exit_6_and_the_partial_resumes(
        run_cli, server, payload, tmp_path, path, monkeypatch):
    """ENOSPC from the worker's os.write: the one-line disk error, exit 6,
    the partial kept (a prefix of the file); with space again, it resumes."""
    limit = 400000
    disk_holds(monkeypatch, limit)
    dest = tmp_path / payload.name
    url = server.url_for(payload.name)
    r = run_cli(url, dest, "--sha256", payload.sha256, "--progress", "none")
    assert r.code == EXIT_DISK, r
    assert_one_line_error(r.err, "No space left on device")
    part = tmp_path / (payload.name + ".part")
    kept = size_of(part)
    assert 0 < kept <= limit
    assert payload.data.startswith(part.read_bytes())
    assert not dest.exists()

    monkeypatch.undo()
    r = run_cli(url, dest, "--sha256", payload.sha256, "--progress", "none")
    assert r.code == EXIT_OK, r
    assert server.requests_for(payload.name)[-1].range == "bytes=%d-" % kept
    assert dest.read_bytes() == payload.data


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("kind", PATHS)
def test_a_signal_mid_transfer_leaves_a_resumable_partial(tmp_path, kind, sig):
    """A signal while the sinks hold received data: the threaded sink keeps
    up to a block in memory until it is full (so the worker can hash and
    write it whole).  After SIGTERM or SIGINT the .part holds every byte
    received; after kill -9 it is a prefix of them.  Either way .part.json is
    there and the next run resumes from what the .part holds."""
    data = make_data(3 << 20, seed=11)
    sha = hashlib.sha256(data).hexdigest()
    out = tmp_path / "out"
    out.mkdir()
    N = (1 << 20) + 200000      # a block and a part of one, whatever the block size
    env = clean_env(tmp_path, SAGEDL_PIPELINE=kind)
    with FaultServer({"k.bin": data}) as s:
        url = s.url_for("k.bin", "stall-at-%d,once" % N)
        p = subprocess.Popen([sys.executable, "-m", "sagedl", url, str(out / "k.bin"),
                              "--sha256", sha, "-q"], env=dict(env, PYTHONPATH=REPO),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             preexec_fn=interruptible)
        try:
            wait_until_client_has_read(s, "k.bin", N)
            wait_until(lambda: (out / "k.bin.part.json").exists())
            p.send_signal(sig)
            _, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        part = (out / "k.bin.part").read_bytes()
        if sig == signal.SIGKILL:
            assert p.returncode == -signal.SIGKILL
            assert data[:N].startswith(part)
        else:
            assert p.returncode == EXIT_INTERRUPTED, err
            assert b"Traceback" not in err
            assert part == data[:N]
        assert (out / "k.bin.part.json").exists()
        r = run_module([url, out / "k.bin", "--sha256", sha, "-q"], env)
        assert r.code == EXIT_OK, r
        if part:
            assert s.requests_for("k.bin")[-1].range == "bytes=%d-" % len(part)
        s.release()
    assert (out / "k.bin").read_bytes() == data


# -- hash_file: resume and cache verification hash the file back -------------

@pytest.mark.parametrize("limit", [None, 3 * 4096 + 5])
def test_hash_file_hashes_full_reads_as_the_buffer_itself(tmp_path, monkeypatch, limit):
    """verify.hash_file passes the bytearray itself when a read filled it
    (PyPy copies a slice on every update), and a slice only for the short
    last read; the digest is the file's (or its first limit bytes')."""
    from sagedl.engine import verify
    block = 4096
    data = make_data(5 * block + 100, seed=13)
    path = tmp_path / "f"
    path.write_bytes(data)
    seen = []
    real = verify.Hasher.update

    def update(self, chunk):
        seen.append((type(chunk), len(chunk)))
        real(self, chunk)
    monkeypatch.setattr(verify.Hasher, "update", update)
    h = verify.hash_file(str(path), Expected(), limit=limit, block=block)
    expected = data if limit is None else data[:limit]
    assert h.sha256.hexdigest() == hashlib.sha256(expected).hexdigest()
    assert [kind for kind, n in seen if n == block] == [bytearray] * (len(expected) // block)
    assert [n for kind, n in seen if n != block] == [len(expected) % block]


def test_the_syncer_flushes_once_a_step_more_is_written_and_stops(tmp_path, monkeypatch):
    """Syncer: fdatasync in its own thread once SYNC_STEP more bytes have
    been written (so the final fsync only flushes the tail), and stop()
    ends the thread."""
    calls = []
    monkeypatch.setattr(pipeline.os, "fdatasync", calls.append)
    fd = os.open(str(tmp_path / "out"), os.O_WRONLY | os.O_CREAT, 0o644)
    syncer = pipeline.Syncer(fd)
    try:
        assert syncer.next_at == pipeline.SYNC_STEP
        syncer.wrote(pipeline.SYNC_STEP)
        assert syncer.next_at == 2 * pipeline.SYNC_STEP
        wait_until(lambda: calls == [fd])
    finally:
        syncer.stop()
        os.close(fd)
    assert not syncer._thread.is_alive()


def test_pypy_writes_blocks_the_gc_never_moves_with_write_itself(tmp_path):
    """On PyPy, os.write copies every buffer into memory it mallocs and frees
    per call (256 fresh pages per MiB); both sinks there must use RawBlocks,
    and what they write must be the bytes received."""
    from pyz import require_interpreter
    pypy = require_interpreter("pypy3")
    code = r'''
import hashlib, os, sys
from sagedl.engine import pipeline
from sagedl.engine.verify import Expected, Hasher
data = os.urandom(3 << 20)
for remaining in (None, 1000):
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    hasher = Hasher(Expected(sha256=hashlib.sha256(data).hexdigest(), size=len(data)))
    sink = pipeline.open_sink(fd, hasher, 65536, remaining, {})
    assert isinstance(sink._raw, pipeline.RawBlocks), (remaining, sink)
    pos = 0
    while pos < len(data):
        view = sink.buffer()
        k = min(len(view), 70001, len(data) - pos)
        view[:k] = data[pos:pos + k]
        sink.put(k)
        pos += k
    sink.finish()
    sink.close()
    os.close(fd)
    assert hasher.mismatch() is None
    with open(sys.argv[1], "rb") as f:
        assert f.read() == data
sys.stdout.write("ok")
'''
    r = subprocess.run([pypy, "-c", code, str(tmp_path / "out")], env=dict(clean_env(tmp_path),
                       PYTHONPATH=REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.stdout == b"ok", r.stderr


@pytest.mark.parametrize("nursery_env, collections", [({}, 3), ({"PYPY_GC_NURSERY": "4MB"}, 0)])
def test_on_pypy_a_large_transfer_collects_at_its_start_and_every_step(
        tmp_path, monkeypatch, nursery_env, collections):
    """PyPy's nursery (sized from the CPU's cache: 240 MB on this VM) only
    shrinks back at a collection, so the threaded sink collects at the first
    block and every NURSERY_STEP bytes -- unless the user sized the nursery."""
    import gc
    from sagedl.engine import nursery
    calls = []
    monkeypatch.setattr(pipeline, "RAW_BLOCKS", True)
    monkeypatch.setattr(nursery, "PYPY", True)
    monkeypatch.setattr(nursery, "NURSERY_STEP", 4096 * 4)
    monkeypatch.setattr(gc, "collect", lambda: calls.append(1))
    monkeypatch.delenv("PYPY_GC_NURSERY", raising=False)
    for k, v in nursery_env.items():
        monkeypatch.setenv(k, v)
    data = make_data(4096 * 10, seed=9)
    fd = os.open(str(tmp_path / "out"), os.O_WRONLY | os.O_CREAT, 0o644)
    sink = pipeline.ThreadedSink(fd, Hasher(Expected()), 4096, ring=3)
    try:
        feed(sink, data, [4096] * 10)
        sink.finish()
    finally:
        sink.close()
        os.close(fd)
    assert len(calls) == collections      # at 4, 20 and 36 KiB written


def test_pypy_calls_splice_and_pread_through_libc_as_the_os_module_would(tmp_path):
    """PyPy 3.9 has neither os.splice nor os.preadv: sagedl/libc.py calls
    them through _cffi_backend, and each error must be the OSError the os
    module raises (EAGAIN a BlockingIOError, which the socket side waits
    on), never a count of -1 taken as bytes."""
    from pyz import require_interpreter
    pypy = require_interpreter("pypy3")
    code = r'''
import errno, os, sys
from sagedl import libc
c = libc.calls()
r, w = os.pipe()
try:
    c.splice(r, w, 10, libc.SPLICE_F_NONBLOCK)      # a pipe into itself
except OSError as e:
    assert e.errno == errno.EINVAL, e
else:
    raise AssertionError("no error")
os.set_blocking(r, False)
try:
    c.splice(r, os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o600), 10, libc.SPLICE_F_NONBLOCK)
except BlockingIOError:
    pass
else:
    raise AssertionError("an empty pipe gave no EAGAIN")
os.write(w, b"0123456789")
fd = os.open(sys.argv[1], os.O_RDWR)
assert c.splice(r, fd, 100) == 10
p = c.new(8)
assert c.pread(fd, p, 8, 4) == 6 and bytes(c.buffer(p, 6)) == b"456789"
try:
    c.write(r, p, 1)                                # the read end
except OSError as e:
    assert e.errno == errno.EBADF, e
else:
    raise AssertionError("no error")
sys.stdout.write("ok")
'''
    r = subprocess.run([pypy, "-c", code, str(tmp_path / "out")], env=dict(clean_env(tmp_path),
                       PYTHONPATH=REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.stdout == b"ok", r.stderr


@pytest.mark.parametrize("chunks", ["whole", "in pieces"])
def test_pypy_splices_a_plain_http_body_socket_to_pipe_to_file(tmp_path, chunks):
    """A large plain-HTTP body on PyPy takes the splice sink (socket -> pipe
    -> file by splice(2) through libc, hashed by pread(2) into memory outside
    the GC) and the verified file holds the body; a body sent in small
    writes makes the socket side wait for data (EAGAIN) and go on."""
    from pyz import require_interpreter
    pypy = require_interpreter("pypy3")
    data = make_data(3 << 20, seed=31)
    sha = hashlib.sha256(data).hexdigest()
    code = r'''
import sys
from sagedl import cli
from sagedl.engine import pipeline
opened = []
real = pipeline.SpliceSink.open.__func__
def record(cls, fd, hasher):
    sink = real(cls, fd, hasher)
    opened.append(sink)
    return sink
pipeline.SpliceSink.open = classmethod(record)
pipeline.LARGE_TRANSFER = 1 << 20
rc = cli.main(sys.argv[1:])
assert rc == 0, rc
assert len(opened) == 1 and opened[0] is not None, opened
sys.stdout.write("ok")
'''
    with FaultServer({"big.tar.gz": data}) as s:
        # trickle: ten sends a second, so the socket is often empty.
        url = s.url_for("big.tar.gz", "trickle-%d" % (8 << 20) if chunks == "in pieces" else "ok")
        out = tmp_path / "big.tar.gz"
        r = subprocess.run([pypy, "-c", code, url, str(out), "--sha256", sha, "-q",
                            "--progress", "none"],
                           env=dict(clean_env(tmp_path), PYTHONPATH=REPO),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.stdout == b"ok", r.stderr
    assert out.read_bytes() == data


@pytest.mark.parametrize("argv, nursery_env, collections", [
    (["--version"], {}, 0),                     # start-up is all it does
    (None, {}, 2),                              # after the imports, after the set-up
    (None, {"PYPY_GC_NURSERY": "4MB"}, 0),      # the user sized the nursery
])
def test_on_pypy_start_up_garbage_is_collected_before_the_command_works(
        tmp_path, monkeypatch, argv, nursery_env, collections):
    """Start-up's garbage would push PyPy's nursery through 60 MB of fresh
    pages before the first collection (engine/nursery.py): the command line
    collects once its imports are done and once the command is set up,
    before any network or disk work -- not for --version, and not when the
    user chose the nursery's size."""
    import gc
    from sagedl import cli
    from sagedl.engine import nursery, transfer
    events = []
    monkeypatch.setattr(cli, "PYPY", True)
    monkeypatch.setattr(nursery, "PYPY", True)
    monkeypatch.setattr(gc, "collect", lambda: events.append("collect"))
    real_open = transfer.open_sink

    def open_sink(*args, **kwargs):
        events.append("transfer")
        return real_open(*args, **kwargs)
    monkeypatch.setattr(transfer, "open_sink", open_sink)
    env = dict(clean_env(tmp_path), **nursery_env)
    data = make_data(5000, seed=41)
    with FaultServer({"s.tar.gz": data}) as s:
        if argv is None:
            argv = [s.url_for("s.tar.gz"), str(tmp_path / "s.tar.gz"),
                    "--sha256", hashlib.sha256(data).hexdigest(), "-q"]
        out = open(os.devnull, "w")
        try:
            assert cli.main(argv, env=env, stdout=out, stderr=out) == EXIT_OK
        finally:
            out.close()
    assert events.count("collect") == collections
    if collections:
        assert events.index("transfer") > max(i for i, e in enumerate(events) if e == "collect")
