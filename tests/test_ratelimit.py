"""--limit-rate's token bucket, by its arithmetic: a fake clock and a fake
sleep, so the pacing is checked exactly and no test waits or measures time.
(That a limited download completes and verifies is tests/test_cli_habits.py's.)"""

import threading

import pytest

from sagedl.engine.ratelimit import MIN_CHUNK, TokenBucket, parse_rate


@pytest.mark.parametrize("text,rate", [
    ("4096", 4096), ("100K", 100 * 1024), ("100k", 100 * 1024), ("1M", 1 << 20),
    ("1.5M", 3 << 19), ("1G", 1 << 30), ("2T", 2 << 40), (" 64K ", 64 * 1024), ("1", 1),
])
def test_curl_rate_syntax(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "0", "0.4", "-1", "K", "1X", "1KB", "1.5.2M", "1e6",
                                  "nan", "inf", "9" * 30, "1 M B"])
def test_what_is_no_rate(text):
    assert parse_rate(text) is None


class FakeTime(object):
    """A clock that moves only when the code under test sleeps (or a test says so)."""

    def __init__(self):
        self.now = 100.0
        self.slept = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        assert seconds > 0
        self.slept.append(seconds)
        self.now += seconds


def bucket(rate, **kw):
    t = FakeTime()
    return TokenBucket(rate, clock=t.clock, sleep=t.sleep, **kw), t


def test_it_starts_empty_so_the_first_bytes_are_paced_too():
    b, t = bucket(1000)
    assert b.take(500) == pytest.approx(0.5)
    assert t.slept == [pytest.approx(0.5)]


def test_a_steady_transfer_runs_at_the_rate_exactly():
    b, t = bucket(10000)
    for _ in range(40):
        b.take(2500)                      # as the engine: read, then pay
    assert t.now - 100.0 == pytest.approx(40 * 2500 / 10000.0)


def test_after_a_pause_the_burst_is_at_most_the_capacity():
    b, t = bucket(1000, capacity=300)
    b.take(1000)
    t.now += 60.0                         # an idle minute earns no more than 300 bytes
    assert b.take(300) == 0.0
    assert b.take(100) == pytest.approx(0.1)


def test_time_that_passed_while_receiving_counts():
    b, t = bucket(1000)
    b.take(1000)                          # 1 s of debt, slept
    t.now += 0.4                          # the next read took 0.4 s by itself
    assert b.take(1000) == pytest.approx(0.6)


def test_a_clock_going_backwards_earns_nothing():
    b, t = bucket(1000)
    b.take(1000)                          # 1 s of debt at 100.0, slept until 101.0
    t.now -= 50.0                         # 2.7's wall clock, set back
    assert b.take(1000) == pytest.approx(2.0)


def test_workers_sharing_one_bucket_share_the_rate():
    """Two workers paying at the same instant: the second waits for both,
    so the run's total, not each worker, keeps to the cap."""
    b, t = bucket(1000)
    first = b.debt_after(500)
    second = b.debt_after(500)
    assert (first, second) == (pytest.approx(0.5), pytest.approx(1.0))


def test_threads_paying_concurrently_lose_no_bytes():
    b, t = bucket(1000)
    b.sleep = lambda s: None              # only the accounting is under test here
    threads = [threading.Thread(target=lambda: [b.debt_after(10) for _ in range(500)])
               for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert b.tokens == pytest.approx(-4 * 500 * 10)    # the clock never moved: all is debt


def test_reads_are_a_quarter_second_of_the_rate_and_not_tiny():
    assert TokenBucket(100 * 1024).chunk == 25 * 1024
    assert TokenBucket(10).chunk == MIN_CHUNK


class CountingBucket(object):
    """What the engine asks of a bucket, recorded; it never waits."""

    def __init__(self, chunk):
        self.chunk = chunk
        self.paid = []

    def take(self, n):
        self.paid.append(n)
        return 0.0


@pytest.mark.parametrize("pipeline", ["simple", "thread", "splice"])
def test_the_engine_pays_for_every_byte_in_reads_of_at_most_a_chunk(tmp_path, monkeypatch,
                                                                     pipeline):
    from faultserver import FaultServer
    from helpers import make_data
    from sagedl.engine import download
    from sagedl.engine import pipeline as sinks
    from sagedl.net import splice
    if pipeline == "splice" and not splice.AVAILABLE:
        pytest.skip("no os.splice (Linux, Python 3.10+)")
    spliced = []
    real_put = sinks.SpliceSink.put

    def put(sink, n):
        spliced.append(n)
        real_put(sink, n)
    monkeypatch.setattr(sinks.SpliceSink, "put", put)
    from sagedl.engine.download import Options, Source
    from sagedl.engine.verify import Expected
    from sagedl.net.transport import Transport
    from sagedl.ui.progress import Progress
    import hashlib
    data = make_data(300000, 41)
    monkeypatch.setenv("SAGEDL_PIPELINE", pipeline)
    throttle = CountingBucket(5000)
    t = Transport(timeout=10)
    with FaultServer({"f.bin": data}) as s:
        try:
            download.fetch(str(tmp_path / "f.bin"), [Source(s.url_for("f.bin"))],
                           Expected(None, hashlib.sha256(data).hexdigest()), t, Progress(),
                           Options(timeout=10, throttle=throttle))
        finally:
            t.close()
    assert (tmp_path / "f.bin").read_bytes() == data
    assert sum(throttle.paid) == len(data)
    assert max(throttle.paid) <= 5000
    assert bool(spliced) == (pipeline == "splice")
