"""Mirror health and the ranking cache: what the last runs learned.

* Health: the downloader reports each source's outcome (HealthRecorder
  collects them and writes them once per run); a mirror whose last result,
  less than a day ago, was a failure goes behind the others in a ranking.
* The ranking cache: probe.py's latencies, kept for an hour, so a run does
  not probe again what the previous one just measured.  A probe in which
  nothing answered is kept too, with each mirror's failure cause, but only
  for reachability.VERDICT_TTL: the next runs (Sage's make starts one per
  package) report the dead network at once instead of probing it again.

Both are caches under cache_dir(): a corrupt or unwritable file is ignored
and rewritten next time, never fatal.
"""

from __future__ import absolute_import

import hashlib
import json
import os
import time

from sagedl.compat import compat_makedirs, compat_text_types
from sagedl.errors import LockTimeout, SagedlError
from sagedl.mirrors.mirrorlist import _is_fresh, _write_quietly
from sagedl.mirrors.probe import (FAILED, OK, RANK_DEADLINE, RANK_WANT, SKIPPED, Ranked,
                                  _as_mirrors, measure, order_ranking)
from sagedl.net.reachability import VERDICT_TTL
from sagedl.net.urls import origin_key, proxy_for, redact
from sagedl.paths import cache_dir

RANKING_TTL = 3600
HEALTH_WINDOW = 24 * 3600      # a failure this recent demotes the mirror
HEALTH_KEEP = 30 * 24 * 3600   # older records are dropped
HEALTH_MAX_ENTRIES = 500
CACHE_LOCK_TIMEOUT = 5.0


MAX_JSON_BYTES = 4 << 20


def _read_json(path):
    """A cache file's JSON object, or None: absent, corrupt, larger than 4 MiB,
    or not a regular file (a FIFO planted there is never waited on)."""
    from sagedl.engine import fsutil
    try:
        data = json.loads(fsutil.read_bounded(path, MAX_JSON_BYTES).decode("utf-8"))
    except (IOError, OSError, ValueError, UnicodeError, SagedlError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path, data):
    return _write_quietly(path, json.dumps(data, sort_keys=True, indent=1).encode("utf-8"))


def _number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def load_health(env=None):
    """origin -> record dict (ok, reason, last, last_ok, last_failure, failures)."""
    data = _read_json(os.path.join(cache_dir(env), "health.json")) or {}
    records = data.get("mirrors")
    if data.get("version") != 1 or not isinstance(records, dict):
        return {}
    good = {}
    for origin, rec in records.items():
        if (isinstance(rec, dict) and isinstance(rec.get("ok"), bool) and _number(rec.get("last"))
                and isinstance(rec.get("reason"), compat_text_types + (type(None),))):
            good[origin] = rec
    return good


def record_results(results, env=None, clock=time.time):
    """Note download outcomes, (url, ok, reason, when) each, for their
    servers, in order (HealthRecorder.flush calls this once per run): one
    lock and one rewrite of health.json (a bulk download of 300 files took a
    cross-process lock per file, which serialised its workers).

    Returns False when the record could not be written (busy or read-only
    cache); health is advisory, so that is not an error.
    """
    if not results:
        return True
    return _rewrite_health(env, _with_results, results, clock())


def _with_results(records, results, now):
    """The records to keep once ``results`` are noted: the newest
    HEALTH_MAX_ENTRIES seen within HEALTH_KEEP."""
    for url, ok, reason, when in results:
        key = origin_key(url)
        rec = dict(records.get(key) or {})
        rec["ok"] = bool(ok)
        rec["reason"] = None if ok else ("%s" % (reason,) if reason else "failed")
        rec["last"] = when
        if ok:
            rec["last_ok"] = when
            rec["failures"] = 0
        else:
            rec["last_failure"] = when
            rec["failures"] = int(rec.get("failures") or 0) + 1
        records[key] = rec
    recent = sorted(((r["last"], o) for o, r in records.items()
                     if now - r["last"] < HEALTH_KEEP), reverse=True)
    return dict((o, records[o]) for _, o in recent[:HEALTH_MAX_ENTRIES])


def record_throughputs(rates, env=None):
    """Note each mirror's bytes/s measured during a run ([(url, bytes/s)]):
    the next run's scheduler starts from them instead of guessing.  False
    when the record could not be written (advisory, as record_results)."""
    if not rates:
        return True
    return _rewrite_health(env, _with_throughputs, rates)


def _with_throughputs(records, rates):
    for url, bps in rates:
        key = origin_key(url)
        rec = records.get(key)
        if rec is not None:     # a mirror is recorded by its results first
            rec = dict(rec)
            rec["bps"] = float(bps)
            records[key] = rec
    return records


def _rewrite_health(env, update, *args):
    """health.json rewritten under its cross-process lock as
    ``update(records, *args)`` returns it; False when it could not be
    written (busy or read-only cache: health is advisory)."""
    directory = cache_dir(env)
    path = os.path.join(directory, "health.json")
    try:
        compat_makedirs(directory)
        from sagedl.engine.lock import FileLock
        with FileLock(path + ".lock", CACHE_LOCK_TIMEOUT, "the mirror health record"):
            keep = update(load_health(env), *args)
            return _write_json(path, {"version": 1, "mirrors": keep})
    except (LockTimeout, SagedlError, EnvironmentError, ValueError):  # ValueError: bad text on 2.7
        return False


def throughput_of(record):
    """The bytes/s a health record remembers, or None."""
    bps = (record or {}).get("bps")
    return float(bps) if _number(bps) and bps > 0 else None


def is_unhealthy(record, now, window=HEALTH_WINDOW):
    """The last result was a failure, less than ``window`` seconds ago."""
    return bool(record) and record.get("ok") is False and 0 <= now - record["last"] < window


def demote_unhealthy(ranked, health, now, window=HEALTH_WINDOW):
    """Pure: the ranking with recently failed mirrors moved back, order otherwise kept.

    They go behind every mirror not known to be bad, but stay ahead of the
    mirrors whose probe just failed: a mirror that answers now is a better
    last resort than one that cannot even be reached.
    """
    bad = [r for r in ranked if r.status != FAILED
           and is_unhealthy(health.get(origin_key(r.mirror.url)), now, window)]
    bad_ids = set(id(r) for r in bad)
    good = [r for r in ranked if id(r) not in bad_ids and r.status != FAILED]
    return good + bad + [r for r in ranked if r.status == FAILED]


def _ranking_key(mirrors, path, env):
    # The same mirrors through another proxy, or for another path, rank
    # differently.  URLs and proxies without their passwords: a cache file
    # never holds a credential, not even hashed (a short password is easily
    # found from its hash).
    material = sorted("%s|%s" % (redact(m.url),
                                 redact(proxy_for(m.url + path.lstrip("/"), env) or ""))
                      for m in mirrors)
    return hashlib.sha256(("\n".join(material) + "\n" + path).encode("utf-8")).hexdigest()


def _cached_ranking(path, key, mirrors, now, ttl):
    data = _read_json(path)
    if not data or data.get("version") != 1 or data.get("key") != key:
        return None
    if not _number(data.get("saved")) or not _is_fresh(data["saved"], now, ttl):
        return None
    by_url = dict((redact(m.url), m) for m in mirrors)
    results = []
    for item in data.get("results") or []:
        try:
            mirror = by_url.pop(item["url"])
            status, latency, reason = item["status"], item["latency"], item["reason"]
        except (KeyError, TypeError):
            return None
        if status not in (OK, FAILED, SKIPPED) or (status == OK) != _number(latency):
            return None
        cause = item.get("cause")
        results.append(Ranked(mirror, status, latency, reason,
                              cause if isinstance(cause, compat_text_types) else None))
    if by_url:
        return None   # every mirror must be in it
    if not any(r.ok for r in results) and not _is_fresh(data["saved"], now, VERDICT_TTL):
        return None   # "offline" is believed briefly only
    return results


def rank_cached(mirrors, env=None, clock=time.time, ttl=RANKING_TTL, refresh=False,
                rng=None, deadline=RANK_DEADLINE, want=RANK_WANT, ssl_context=None, path="",
                health_window=HEALTH_WINDOW):
    """The mirrors ranked (probe.measure, then order_ranking), reusing the
    measures of the same mirrors when less than ``ttl`` old, then demoting
    mirrors whose last download failed within ``health_window``.

    The cache keeps latencies, not the order: the near-best choice is drawn
    again on each call, so one cached ranking still spreads the load.  A
    ranking where nothing answered is believed for VERDICT_TTL only
    (offline now, maybe not soon).
    """
    mirrors = _as_mirrors(mirrors)
    now = clock()
    cache_path = os.path.join(cache_dir(env), "ranking.json")
    key = _ranking_key(mirrors, path, env)
    results = None if refresh else _cached_ranking(cache_path, key, mirrors, now, ttl)
    if results is None:
        results = measure(mirrors, deadline, want, env, ssl_context, path)
        _write_json(cache_path, {
            "version": 1, "saved": now, "key": key,
            "results": [{"url": redact(r.mirror.url), "status": r.status, "latency": r.latency,
                         "reason": r.reason, "cause": r.cause} for r in results]})
    return demote_unhealthy(order_ranking(results, rng), load_health(env), now, health_window)




class HealthRecorder(object):
    """Collects each source's outcome and writes them to the mirror health
    record in one go (flush), so parallel workers never queue on its lock.
    reraise: let an error writing the record through (--debug); otherwise
    health is advisory and never fails a download."""

    def __init__(self, env, reraise=False, clock=time.time):
        self.env = env
        self.reraise = reraise
        self.clock = clock
        self.results = []
        self.rates = []

    def throughput(self, url, bps):
        """A mirror's bytes/s in this run (written after the results)."""
        self.rates.append((url, bps))

    def __call__(self, url, ok, reason):
        self.results.append((url, ok, reason, self.clock()))   # list.append is atomic

    def flush(self):
        """Write what was collected; False when the record could not be written."""
        results, self.results = self.results, []
        rates, self.rates = self.rates, []
        try:
            written = record_results(results, env=self.env, clock=self.clock)
            return record_throughputs(rates, env=self.env) and written
        except Exception:
            if self.reraise:
                raise
            return False
