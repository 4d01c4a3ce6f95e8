"""The retry policy: one immutable value, bounded waits, Retry-After in both
of its forms -- alone, and as the engine obeys it against a real socket."""

import time
from email.utils import formatdate

import pytest

from sagedl.engine import download
from sagedl.engine.download import Options, Source
from sagedl.engine.retry import Retry, parse_retry_after
from sagedl.engine.verify import Expected
from sagedl.errors import SagedlError
from sagedl.net.transport import Transport
from sagedl.ui.progress import Progress
from test_resume_rules import DATA, SHA256, Scripted, full_200, response

pytestmark = pytest.mark.timeout(60)

NOW = 1800000000.0      # a fixed wall clock for HTTP-dates: 2027-01-15 08:00 UTC


def test_a_retry_is_immutable_and_increment_returns_a_new_one():
    r = Retry(total=2)
    with pytest.raises(AttributeError):
        r.used = 5
    r1 = r.increment()
    assert (r.used, r1.used) == (0, 1)
    assert not r1.exhausted and r1.increment().exhausted


def test_retries_are_counted_and_bounded():
    r = Retry(total=1).increment()
    assert r.exhausted
    with pytest.raises(ValueError):
        r.increment()
    assert Retry(total=0).exhausted


def test_negative_settings_are_refused():
    with pytest.raises(ValueError):
        Retry(total=-1)


def test_backoff_doubles_with_jitter_up_to_the_cap():
    r = Retry(total=10, backoff=1.0, max_backoff=5.0)
    waits = []
    for _ in range(5):
        r = r.increment()
        waits.append((r.delay(rand=lambda: 0.0), r.delay(rand=lambda: 1.0)))
    assert waits == [(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (2.5, 5.0), (2.5, 5.0)]


def test_retry_after_is_obeyed_up_to_its_cap():
    r = Retry(max_retry_after=30.0).increment()
    assert r.delay(7.0) == 7.0
    assert r.delay(3600.0) == 30.0
    assert r.delay(-5.0) == 0.0


@pytest.mark.parametrize("value, seconds", [
    ("7", 7.0), (" 12 ", 12.0), ("0", 0.0),
    (formatdate(NOW + 90, usegmt=True), 90.0),          # IMF-fixdate
    ("Saturday, 15-Jan-28 08:00:00 GMT", 365 * 86400.0),  # RFC 850, a year after NOW
    (formatdate(NOW - 600, usegmt=True), 0.0),          # already past: no wait
    (None, None), ("", None), ("soon", None), ("-3", None), ("1.5", None),
    (u"\xb2", None),       # a digit to str.isdigit(), not to int()
    ("Mon, 99 Foo 2026 99:99:99 GMT", None),
])
def test_parse_retry_after(value, seconds):
    assert parse_retry_after(value, now=lambda: NOW) == seconds


def run_fetch(dest, script, retry):
    """The engine against a scripted server; returns (error, sleeps)."""
    sleeps = []
    server = Scripted(script)
    t = Transport(timeout=10)
    try:
        download.fetch(str(dest), [Source(server.url)], Expected(None, SHA256), t, Progress(),
                       Options(timeout=10, retry=retry), notify=lambda text: None,
                       sleep=sleeps.append)
        error = None
    except SagedlError as e:
        error = e
    finally:
        t.close()
        server.close()
    return error, sleeps


def busy(retry_after):
    return lambda req: response("503 Service Unavailable", b"", Retry_After=retry_after)


def test_the_engine_obeys_an_http_date_retry_after_within_its_cap(tmp_path):
    an_hour = formatdate(time.time() + 3600, usegmt=True)
    error, sleeps = run_fetch(tmp_path / "f.bin", [busy(an_hour), full_200],
                              Retry(total=1, max_retry_after=7.0))
    assert error is None and (tmp_path / "f.bin").read_bytes() == DATA
    assert sleeps == [7.0]       # the date was read (and capped), not ignored


def test_the_engine_retries_a_busy_source_only_as_often_as_the_policy_allows(tmp_path):
    error, sleeps = run_fetch(tmp_path / "f.bin", [busy("0")] * 3 + [full_200],
                              Retry(total=2))
    assert error is not None and "HTTP 503" in str(error)
    assert sleeps == [0.0, 0.0]
    assert not (tmp_path / "f.bin").exists()
