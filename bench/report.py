"""From measurements to a report: the targets, the summary (medians, ratios
paired per run, PASS/MISS), Markdown tables for the terminal and the README,
and the JSON record kept in bench/results/.  Works on the record alone, so a
saved run can be re-rendered (run.py --report FILE)."""

from __future__ import division

import json
import os

from measure import median

MB = 1e6   # throughput in MB/s (10^6 bytes/s); memory in MB (GNU time reports KiB)

# The targets.  They are goals, not tests: the report says PASS or MISS.
TARGET_VS_SHA256SUM = 1.6   # 3.11 throughput vs `curl -o f && sha256sum f`
TARGET_VS_CURL = {"http": 0.9, "https": 0.8}   # 3.11 throughput vs `curl -o f`
TARGET_VS_CURL_SYNC = 1.3   # 3.11 vs `curl -o f && sync f`, over HTTP
TARGET_VS_URLLIB2 = 0.9     # 2.7 throughput vs the urllib2 loop
TARGET_PYPY_VS_311 = 0.8    # PyPy3 throughput vs CPython 3.11
TARGET_RSS_MB = 40.0        # CPython
TARGET_PYPY_RSS_MB = 150.0  # PyPy3: its bare interpreter alone is about 50 MB
TARGET_STARTUP_MS = 25.0
TARGET_VS_ARIA2C = 1.0      # bulk: no slower than aria2c

LARGE_PYTHONS = ("3.11", "2.7", "pypy3")
STARTUP_PYTHONS = ("2.7", "3.6", "3.11", "3.13")
ONE_THREAD = "sagedl one thread (3.11)"    # SAGEDL_PIPELINE=simple: what the pipeline gains
DISK_ALONE = "dd conv=fdatasync (disk alone)"
WATCHED_MODULES = ("ssl", "threading", "argparse")


def seconds(s):
    if s is None:
        return "—"
    if s < 0.1:
        return "%.1f ms" % (s * 1000)
    return "%.2f s" % s


def rate(nbytes, s):
    if not s:
        return "—"
    return "%.0f MB/s" % (nbytes / s / MB)


def mem(kib):
    if kib is None:
        return "—"
    return "%.1f MB" % (kib * 1024 / MB)


def ratio(r):
    if r is None:
        return "—"
    return "%.2f×" % r


def table(header, rows):
    """A Markdown table; every cell is already a string."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    def line(cells):
        return "| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(cells)) + " |"
    out = [line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def _ok(samples):
    return [s for s in samples if s and not s.get("error")]


def paired(samples_sagedl, samples_peer):
    """Median over runs of peer_time / sagedl_time (a throughput ratio), and
    how many runs paired."""
    ratios = [p["wall_s"] / s["wall_s"] for s, p in zip(samples_sagedl, samples_peer)
              if s and p and not s.get("error") and not p.get("error")]
    return (median(ratios) if ratios else None), len(ratios)


def _median_of(ok, key, show):
    """show(median) of one recorded field over a tool's good runs; "—" when
    no run recorded it (older JSON files, tools run without a server)."""
    vals = [s[key] for s in ok if s.get(key) is not None]
    return show(median(vals)) if vals else "—"


def _detail_row(item, name, samples, nbytes):
    """One tool's row in the detail table.  Beside the client's own CPU: the
    server's (nginx encrypts over HTTPS on the same cores as the client) and
    how busy the whole machine was (near 100%, every core was working, and
    CPU is what limits)."""
    ok = _ok(samples)
    wall = median([s["wall_s"] for s in ok])
    errs = [s["error"] for s in samples if s.get("error")]
    return [item, name, seconds(wall), rate(nbytes, wall),
            _median_of(ok, "user_s", seconds), _median_of(ok, "sys_s", seconds),
            mem(max(s["maxrss_kib"] for s in ok)) if ok else "—",
            _median_of(ok, "server_cpu_s", seconds),
            _median_of(ok, "machine_busy", lambda v: "%.0f%%" % (100 * v)),
            "%d/%d%s" % (len(ok), len(samples), (" (" + errs[0][:60] + ")") if errs else "")]


def verdict(value, ok):
    if value is None:
        return "n/a"
    return "PASS" if ok(value) else "MISS"


def summarize(record):
    """The main table's rows and the per-tool detail rows, from a record
    (what run.py measured, or a JSON file it wrote)."""
    rows = []       # [#, what, sagedl, peer, ratio, target, result]
    details = []    # per tool
    cfg = record["config"]
    results = record["results"]
    big = cfg["size_mib"] << 20
    sw = lambda samples: median([s["wall_s"] for s in _ok(samples)])  # noqa: E731

    large = results["large"]
    for proto in ("http", "https"):
        res = large.get(proto, {})
        for name, samples in sorted(res.items(), key=lambda kv: sw(kv[1]) or 1e9):
            details.append(_detail_row("1 %s" % proto.upper(), name, samples, big))

        def pair_row(sname, pname, target, what):
            if sname not in res or pname not in res:
                return
            r, n = paired(res[sname], res[pname])
            rows.append(["1", "%s %s vs `%s`%s" % (proto.upper(), sname, pname, what),
                         rate(big, sw(res[sname])), rate(big, sw(res[pname])),
                         ratio(r), "≥ %.1f×" % target if target else "—",
                         verdict(r, lambda v: v >= target) if target else "info"])

        s311 = [n for n in res if n.startswith("sagedl (3.11")]
        for s in s311:
            pair_row(s, "curl -o f && sha256sum f", TARGET_VS_SHA256SUM, "")
            pair_row(s, "curl -o f", TARGET_VS_CURL[proto], "")
            pair_row(s, "curl -o f && sync f", TARGET_VS_CURL_SYNC if proto == "http" else None,
                     " (same durability)")
            pair_row(s, "wget -O f", None, "")
            pair_row(s, "aria2c --checksum", None, "")
            pair_row(s, ONE_THREAD, None, " (what the pipeline gains)")
            pair_row(s, DISK_ALONE, None, " (no network, no hashing)")
        pair_row("sagedl (2.7)", "urllib2 loop (2.7)", TARGET_VS_URLLIB2, "")
        pair_row("sagedl (PyPy3)", "curl -o f", None, "")
        for s in s311[:1]:
            pair_row("sagedl (PyPy3)", s, TARGET_PYPY_VS_311, "")

    # Item 2: peak RSS over every large-file run, both protocols.
    for label in LARGE_PYTHONS:
        name = "sagedl (%s" % ("PyPy3" if label == "pypy3" else label)
        vals = [s["maxrss_kib"] for proto in large.values() for n, ss in proto.items()
                if n.startswith(name) for s in _ok(ss)]
        if not vals:
            continue
        peak = max(vals) * 1024 / MB
        target = TARGET_PYPY_RSS_MB if label == "pypy3" else TARGET_RSS_MB
        small = results["rss_small"].get(label, {})
        ctx = []
        if small.get("sagedl_maxrss_kib"):
            ctx.append("%s on a %d KiB file" % (mem(small["sagedl_maxrss_kib"]),
                                                cfg["small_kib"]))
        if small.get("bare_maxrss_kib"):
            ctx.append("bare interpreter %s" % mem(small["bare_maxrss_kib"]))
        rows.append(["2", "peak RSS, %s, %d MiB file" % (name + ")", cfg["size_mib"]),
                     "%.1f MB" % peak, "; ".join(ctx) or "—", "—", "< %d MB" % target,
                     verdict(peak, lambda v: v < target)])

    # Item 3: bulk.
    nfiles, kib = cfg["small_count"], cfg["small_kib"]
    small_bytes = nfiles * (kib << 10)
    for proto in ("http", "https"):
        res = results["small"].get(proto, {})
        for name, samples in sorted(res.items(), key=lambda kv: sw(kv[1]) or 1e9):
            details.append(_detail_row("3 %s" % proto.upper(), name, samples, small_bytes))
        peers = [n for n in res if n.startswith("aria2c")]
        loops = [n for n in res if n.startswith("curl loop")]
        for sname in [n for n in res if n.startswith("sagedl")]:
            for pname, target in [(p, TARGET_VS_ARIA2C) for p in peers] + [(p, None) for p in loops]:
                r, n = paired(res[sname], res[pname])
                rows.append(["3", "%s %d×%d KiB: %s vs `%s`" % (proto.upper(), nfiles, kib, sname,
                                                               pname),
                             seconds(sw(res[sname])), seconds(sw(res[pname])),
                             ratio(r), "≥ %.1f×" % target if target else "—",
                             (verdict(r, lambda v: v >= target) if target else "info")
                             if sw(res[sname]) else "n/a (failed)"])

    # Item 4: start-up.
    for label in STARTUP_PYTHONS:
        r = results["startup"].get(label)
        if not r:
            continue
        if "error" in r:
            rows.append(["4", "start-up, Python %s" % label, "failed", "—", "—",
                         "≤ %d ms" % TARGET_STARTUP_MS, "n/a"])
            continue
        diff = median([y - x for x, y in zip(r["bare_s"], r["pyz_s"])]) * 1000
        rows.append(["4", "start-up, Python %s: `sagedl --version` vs `-c pass`" % label,
                     seconds(median(r["pyz_s"])), seconds(median(r["bare_s"])),
                     "+%.1f ms" % diff, "≤ +%d ms" % TARGET_STARTUP_MS,
                     verdict(diff, lambda v: v <= TARGET_STARTUP_MS)])
    for label, r in sorted(results["importtime"].items()):
        if "error" in r:
            rows.append(["4", "imports of an http fetch, Python %s" % label, "failed",
                         "—", "—", "—", "n/a"])
            continue
        watched = ", ".join("%s: %s" % (w, "yes" if r["watched"][w] else "no")
                            for w in WATCHED_MODULES)
        rows.append(["4", "imports of an http fetch, Python %s (%d beyond bare)" % (
            label, len(r["added_by_sagedl"])), watched, "—", "—", "—", "info"])

    # Item 5: resume.
    res = results["resume"]
    full = next((v for k, v in sorted(large.get("http", {}).items())
                 if k.startswith("sagedl (3.11")), [])
    if res:
        pairs = [(x, y) for x, y in zip(res, full) if x and y and not x.get("error")
                 and not y.get("error")]
        if pairs:
            r = median([x["wall_s"] / y["wall_s"] for x, y in pairs])
            rows.append(["5", "resume a 90%% partial (3.11, HTTP) vs a full download "
                         "(re-hash alone: %s)" % seconds(median([x["rehash_s"] for x, _ in pairs])),
                         seconds(median([x["wall_s"] for x, _ in pairs])),
                         seconds(median([y["wall_s"] for _, y in pairs])),
                         "%.2f× the time" % r, "—", "info"])
        else:
            errs = [x.get("error") for x in res if x.get("error")]
            rows.append(["5", "resume a 90% partial (3.11, HTTP)", "failed: %s" % (errs[:1] or ["?"])[0][:80],
                         "—", "—", "—", "n/a"])
    res = [x for x in results.get("resume_pypy3", []) if not x.get("error")]
    if res:
        for what, key in (("resuming a 90% partial", "maxrss_kib"),
                          ("hash_file of the 90% partial alone", "rehash_maxrss_kib")):
            peak = max(x[key] for x in res) * 1024 / MB
            rows.append(["5", "peak RSS, sagedl (PyPy3), %s of %d MiB" % (what, cfg["size_mib"]),
                         "%.1f MB" % peak, "—", "—", "< %d MB" % TARGET_PYPY_RSS_MB,
                         verdict(peak, lambda v: v < TARGET_PYPY_RSS_MB)])
    return rows, details


def render(record, rows, details):
    """The Markdown printed at the end and kept in bench/results/."""
    a = record["config"]
    mach = record["machine"]
    head = ("sagedl benchmark, %s: %d× %s CPU, Linux %s; outputs on %s; "
            "%d MiB file, %d runs (medians; ratios paired per run), %d×%d KiB bulk; sagedl: %s, "
            "HEAD %s at the start; 1-min load average %s at the start, %s at the end."
            % ((mach["date"], mach["nproc"], mach["cpu"], mach["kernel"], mach["workdir_fs"],
                a["size_mib"], a["runs"], a["small_count"], a["small_kib"], record["sagedl"],
                mach.get("commit", "?")) + tuple(mach.get("loadavg_1min_start_end", ("?", "?")))))
    parts = [head, "",
             table(["#", "what", "sagedl", "peer", "ratio", "target", "result"], rows), "",
             "Ratios are throughput ratios (peer time / sagedl time); above 1 means sagedl "
             "is faster.  sagedl's times include its fsync of the file.", "",
             table(["item", "tool", "median", "throughput", "user CPU", "sys CPU",
                    "peak RSS", "server CPU", "machine busy", "ok runs"], details), "",
             "server CPU: nginx's CPU seconds during the run; machine busy: the share "
             "of all cores' time that was not idle (client, server and kernel).", "",
             "Tools: " + "; ".join("%s %s" % kv for kv in sorted(mach["tools"].items()))]
    if "host_memory" in mach:
        parts += ["", "Host memory (bench/hostmem.py): %s; %s MiB reported to the host "
                  "during the measurements." % (mach["host_memory"],
                                                mach.get("reported_to_host_mib", "?"))]
    speeds = record["results"].get("sha256_speed")
    if speeds:
        parts += ["", "In-process sha256 speed (1 MiB updates, the ceiling of a verifying "
                  "download): " + "; ".join("%s %.0f MB/s" % (k, v["mb_s"])
                                            for k, v in sorted(speeds.items())) + "."]
    costs = record["results"].get("write_cost")
    if costs:
        parts += ["", "In-process os.write of 1 MiB bytearrays into a file (the pipeline's "
                  "writes), CPU per GiB: " + "; ".join(
                      "%s %.2f s user + %.2f s sys" % (k, v["user_s_per_gib"], v["sys_s_per_gib"])
                      for k, v in sorted(costs.items())) + "."]
    if record.get("notes"):
        parts += ["", "Notes: " + " ".join(record["notes"])]
    return "\n".join(parts)



def save_json(path, record):
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        os.makedirs(directory)
    with open(path, "w") as f:
        json.dump(record, f, indent=1, sort_keys=True)
        f.write("\n")
