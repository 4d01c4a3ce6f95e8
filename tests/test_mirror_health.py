"""What runs learn about mirrors: the ranking cache, the health record that
demotes a recently failed mirror, and the list-mirrors table showing both."""

import json
import os
import time

from helpers import write_text
from sagedl.commands import showmirrors
from sagedl.mirrors import health, mirrorlist, probe
from sagedl.net import urls
from sagedl.paths import cache_dir


# -- ranking cache and health ---------------------------------------------------------
def test_ranking_is_cached_for_an_hour(servers, env):
    a, b = servers.respond(), servers.respond()
    servers.start()
    first = health.rank_cached([a, b], env=env, clock=lambda: 1000.0, want=None, deadline=5)
    assert all(r.ok for r in first)
    servers.close()  # the mirrors go away; the cached ranking still answers
    cached = health.rank_cached([a, b], env=env, clock=lambda: 1000.0 + 3599, want=None, deadline=5)
    assert sorted((r.mirror.url, r.latency) for r in cached) == \
        sorted((r.mirror.url, r.latency) for r in first)
    expired = health.rank_cached([a, b], env=env, clock=lambda: 1000.0 + 3600, want=None, deadline=1)
    assert not any(r.ok for r in expired)
    # Another mirror set is another ranking.
    other = health.rank_cached([a], env=env, clock=lambda: 1000.0 + 1, want=None, deadline=1)
    assert not other[0].ok


def test_corrupt_ranking_and_health_files_are_ignored_and_rewritten(servers, env):
    url = servers.respond()
    servers.start()
    d = cache_dir(env)
    write_text(os.path.join(d, "ranking.json"), "{not json")
    write_text(os.path.join(d, "health.json"), '{"version": 1, "mirrors": {"x": "junk"}}')
    ranked = health.rank_cached([url], env=env, deadline=5)
    assert ranked[0].ok
    with open(os.path.join(d, "ranking.json")) as f:
        assert json.load(f)["results"][0]["url"] == url
    assert health.load_health(env) == {}
    assert record(url + "f.tar.gz", True, None, env)
    assert set(health.load_health(env)) == {"http://127.0.0.1:%s" % url.rsplit(":", 1)[1].strip("/")}


def record(url, ok, reason, env, when=None):
    """One source's outcome, through the recorder a download uses."""
    recorder = health.HealthRecorder(env, clock=time.time if when is None else lambda: when)
    recorder(url, ok, reason)
    return recorder.flush()


def test_recent_failures_demote_a_mirror_until_it_succeeds(servers, env):
    a, b, c = servers.respond(), servers.respond(), servers.respond()
    servers.start()
    now = 10000.0
    record(a + "spkg/upstream/x/x.tgz", False, "checksum mismatch", env, now)
    ranked = health.rank_cached([a, b, c], env=env, clock=lambda: now + 60, want=None, deadline=5)
    assert ranked[-1].mirror.url == a and ranked[-1].ok
    # A day later the failure no longer counts.
    records = health.load_health(env)
    assert not health.is_unhealthy(records[urls.origin_key(a)], now + 86400)
    assert health.demote_unhealthy(ranked, records, now + 86400) == ranked
    # A success clears it at once.
    record(a, True, None, env, now + 120)
    assert not health.is_unhealthy(health.load_health(env)[urls.origin_key(a)], now + 130)


def test_demotion_keeps_the_order_otherwise():
    rs = [probe.Ranked(mirrorlist.Mirror("https://m%d.example/" % i), probe.OK, 0.01 * i) for i in range(4)]
    rs += [probe.Ranked(mirrorlist.Mirror("https://skip.example/"), probe.SKIPPED, None, "not measured"),
           probe.Ranked(mirrorlist.Mirror("https://dead.example/"), probe.FAILED, None, "timed out")]
    records = {"https://m1.example:443": {"ok": False, "last": 100.0, "reason": "bad bytes"},
               "https://m2.example:443": {"ok": True, "last": 100.0, "reason": None},
               "https://m3.example:443": {"ok": False, "last": 100.0 - 90000, "reason": "old"},
               "https://dead.example:443": {"ok": False, "last": 100.0, "reason": "x"}}
    order = [r.mirror.url for r in health.demote_unhealthy(rs, records, 100.0 + 5)]
    # Behind everything not known bad, ahead of what cannot be reached now.
    assert order == ["https://m0.example/", "https://m2.example/", "https://m3.example/",
                     "https://skip.example/", "https://m1.example/", "https://dead.example/"]


def test_health_records_count_failures_and_keep_the_reason(env):
    url = "https://m.example/spkg/upstream/a/a.tgz"
    for t in (1.0, 2.0):
        record(url, False, "HTTP 404", env, t)
    rec = health.load_health(env)["https://m.example:443"]
    assert (rec["ok"], rec["reason"], rec["failures"], rec["last"]) == (False, "HTTP 404", 2, 2.0)


def test_health_recording_is_quiet_when_the_cache_cannot_be_written(tmp_path):
    blocker = tmp_path / "f"
    blocker.write_text("")
    assert record("https://m.example/", False, "x",
                  {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(blocker)}) is False


# -- the table ---------------------------------------------------------------------
def test_format_table_shows_latency_health_and_last_result():
    now = 100000.0
    ranked = [probe.Ranked(mirrorlist.Mirror("https://a.example/", "Alpha, Utah", region="na"), probe.OK, 0.0123),
              probe.Ranked(mirrorlist.Mirror("https://b.example/", "Beta"), probe.SKIPPED, None, "not measured"),
              probe.Ranked(mirrorlist.Mirror("https://c.example/", "Εθνικό", region="e"), probe.FAILED, None,
                       "timed out after 1.2 s connecting")]
    records = {"https://a.example:443": {"ok": True, "last": now - 7200, "reason": None},
               "https://c.example:443": {"ok": False, "last": now - 300,
                                         "reason": "checksum mismatch"}}
    text = showmirrors.format_table(ranked, records, now=now)
    # Two lines a mirror, within 80 columns (it was once ~190 wide).
    assert text.splitlines() == [
        "#  latency  health   url",
        "1  12 ms    ok       https://a.example/",
        "   Alpha, Utah (na); last: ok, 2 h ago",
        "2  -        unknown  https://b.example/",
        "   Beta",
        "3  failed   failing  https://c.example/",
        u"   Εθνικό (e); probe: timed out after 1.2 s connecting; last: checksum misma...",
    ]
    assert all(len(line) <= 79 for line in text.splitlines())

