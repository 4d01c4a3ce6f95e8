#!/usr/bin/env python3
"""Many slow mirrors: sagedl's multi-mirror scheduler against aria2c.

    python3 bench/mirrors.py [--runs 3] [--quick] [--only bulk|large]

Real Sage mirrors are each slow and far away, so this item serves Sage's
layout from K loopback mirrors (127.0.0.2, 127.0.0.3, ...), each a small
threaded Python server with

* an uplink of its own that all its connections share (a token bucket:
  a few MiB/s, unequal between mirrors), and
* a delay before each answer (tens to hundreds of ms, unequal),

and measures, interleaved run by run in a shuffled order:

* bulk: ``sagedl download :all:`` of BULK_FILES tarballs of 1-12 MiB
  against ``aria2c -j8 -sK -xK -i list`` given every mirror as an
  alternative URI of every file (with its sha-256);
* large: one LARGE_MIB tarball, the same two ways.

For each it reports the share of the mirrors' summed capacity used
(bytes / seconds / sum of the uplinks), sagedl's speed relative to
aria2c's in the same run (medians of the per-run ratios), and the bytes
the mirrors sent over the file sizes.  No tc, no sysctl: the shaping is
the servers' own.  Only 127.0.0.0/8 is contacted; each sagedl run starts
with an empty cache (no throughput remembered from the run before).
Results go to bench/results/mirrors-DATE.{json,md}.
"""

from __future__ import division, print_function

import argparse
import datetime
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
MIB = 1 << 20

# (uplink MiB/s, delay before each answer in s): unequal, as real mirrors.
MIRRORS = ((1.5, 0.30), (2.0, 0.05), (3.0, 0.20), (4.0, 0.12), (5.0, 0.08))
BULK_FILES = 40
LARGE_MIB = 96
CHUNK = 16 * 1024
TIMEOUT = 600


class Uplink(object):
    """One mirror's shared link: each chunk waits for its turn, so all the
    mirror's connections together never exceed ``rate`` bytes/s."""

    def __init__(self, rate):
        self.rate = rate
        self.lock = threading.Lock()
        self.next = 0.0
        self.sent = 0

    def send(self, sock, data):
        with self.lock:
            now = time.monotonic()
            start = max(now - 0.02, self.next)     # at most a 20 ms burst
            self.next = start + len(data) / self.rate
            self.sent += len(data)
        wait = start - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        sock.sendall(data)


class Mirror(object):
    """A loopback Sage mirror: GET/HEAD of spkg/upstream/PKG/FILE, one
    Range, keep-alive; ``delay`` before each answer, through ``uplink``."""

    def __init__(self, host, root, rate, delay):
        self.root = root
        self.uplink = Uplink(rate)
        self.delay = delay
        self.requests = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(128)
        self.url = "http://%s:%d/" % self.sock.getsockname()
        t = threading.Thread(target=self._accept)
        t.daemon = True
        t.start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,))
            t.daemon = True
            t.start()

    def _serve(self, conn):
        f = conn.makefile("rb")
        try:
            while True:
                line = f.readline(8192)
                if not line:
                    return
                method, path = line.decode("latin-1").split()[:2]
                headers = {}
                while True:
                    h = f.readline(8192)
                    if h in (b"\r\n", b"\n", b""):
                        break
                    k, _, v = h.decode("latin-1").partition(":")
                    headers[k.strip().lower()] = v.strip()
                self.requests += 1
                time.sleep(self.delay)
                self._answer(conn, method, path, headers)
        except (OSError, ValueError):
            pass
        finally:
            conn.close()

    def _answer(self, conn, method, path, headers):
        rel = path.split("?")[0].lstrip("/")
        full = os.path.join(self.root, *rel.split("/"))
        if ".." in rel.split("/") or not os.path.isfile(full):
            conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            return
        size = os.path.getsize(full)
        start, end, status = 0, size - 1, "200 OK"
        extra = ""
        rng = headers.get("range", "")
        if rng.startswith("bytes=") and "," not in rng:
            a, _, b = rng[6:].partition("-")
            if a.isdigit() and int(a) < size:
                start = int(a)
                end = min(int(b), size - 1) if b.isdigit() else size - 1
                status = "206 Partial Content"
                extra = "Content-Range: bytes %d-%d/%d\r\n" % (start, end, size)
        head = ("HTTP/1.1 %s\r\nContent-Type: application/octet-stream\r\n"
                "Accept-Ranges: bytes\r\nETag: \"%x\"\r\nContent-Length: %d\r\n%s\r\n"
                % (status, size, end - start + 1, extra))
        conn.sendall(head.encode("latin-1"))
        if method != "GET":
            return
        with open(full, "rb") as fh:
            fh.seek(start)
            left = end - start + 1
            while left:
                data = fh.read(min(CHUNK, left))
                self.uplink.send(conn, data)
                left -= len(data)

    def close(self):
        self.sock.close()


def make_tree(root, sizes, seed):
    """A Sage tree whose packages' tarballs (random bytes of ``sizes``) are
    in the mirrors' document root; returns [(pkg, file, sha256, size)]."""
    rnd = random.Random(seed)
    www = os.path.join(root, "www")
    files = []
    for i, size in enumerate(sizes):
        pkg = "pkg%02d" % i
        name = "%s-1.0.tar.gz" % pkg
        data = rnd.getrandbits(8 * size).to_bytes(size, "little")
        d = os.path.join(www, "spkg", "upstream", pkg)
        os.makedirs(d)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        sha = hashlib.sha256(data).hexdigest()
        p = os.path.join(root, "sage", "build", "pkgs", pkg)
        os.makedirs(p)
        with open(os.path.join(p, "checksums.ini"), "w") as f:
            f.write("tarball=%s-VERSION.tar.gz\nsha256=%s\n" % (pkg, sha))
        for fname, text in (("package-version.txt", "1.0\n"), ("type", "standard\n")):
            with open(os.path.join(p, fname), "w") as f:
                f.write(text)
        files.append((pkg, name, sha, size))
    os.makedirs(os.path.join(root, "sage", "build", "bin"))
    return files


def child_env(workdir):
    env = dict((k, v) for k, v in os.environ.items()
               if not k.lower().endswith("_proxy") and not k.startswith(("SAGE", "PYTHON")))
    home = os.path.join(workdir, "home")
    shutil.rmtree(home, ignore_errors=True)      # no throughput remembered between runs
    os.makedirs(home)
    env.update(HOME=home, XDG_CACHE_HOME=os.path.join(home, ".cache"), LC_ALL="C")
    return env


def run_sagedl(workdir, mirrors, out):
    env = child_env(workdir)
    env.update(SAGE_ROOT=os.path.join(workdir, "sage"), SAGE_DISTFILES=out,
               SAGEDL_MIRRORS=" ".join(m.url for m in mirrors))
    return [sys.executable, os.path.join(REPO, "dist", "sagedl.pyz"), "download", ":all:",
            "-q"], env


def run_aria2c(workdir, mirrors, files, out):
    k = len(mirrors)
    listing = os.path.join(workdir, "aria2.txt")
    with open(listing, "w") as f:
        for pkg, name, sha, _ in files:
            uris = ["%sspkg/upstream/%s/%s" % (m.url, pkg, name) for m in mirrors]
            f.write("\t".join(uris) + "\n  out=%s\n  checksum=sha-256=%s\n" % (name, sha))
    return ["aria2c", "-q", "-j8", "-s%d" % k, "-x%d" % k, "--file-allocation=none",
            "--allow-overwrite=true", "-d", out, "-i", listing], child_env(workdir)


def measure(tool, workdir, mirrors, files):
    out = os.path.join(workdir, "out")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    if tool == "sagedl":
        cmd, env = run_sagedl(workdir, mirrors, out)
    else:
        cmd, env = run_aria2c(workdir, mirrors, files, out)
    before = [m.uplink.sent for m in mirrors]
    t0 = time.monotonic()
    p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=TIMEOUT)
    seconds = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit("%s failed (%d): %s" % (tool, p.returncode, p.stderr[-2000:]))
    for _, name, sha, _ in files:
        with open(os.path.join(out, name), "rb") as f:
            if hashlib.sha256(f.read()).hexdigest() != sha:
                raise SystemExit("%s: %s does not verify" % (tool, name))
    per_mirror = [m.uplink.sent - b for m, b in zip(mirrors, before)]
    shutil.rmtree(out, ignore_errors=True)
    return {"seconds": seconds, "served": sum(per_mirror), "per_mirror": per_mirror}


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="12 files and 32 MiB, 1 run")
    p.add_argument("--only", choices=("bulk", "large"))
    p.add_argument("--workdir")
    args = p.parse_args(argv)
    if not shutil.which("aria2c"):
        raise SystemExit("aria2c is needed (apt-get install aria2)")
    # Always rebuilt (a fraction of a second, reproducible): a pyz left from
    # before the last change would measure the old code.
    subprocess.check_call([sys.executable, os.path.join(REPO, "zipapp", "build.py")])
    runs = 1 if args.quick else args.runs
    rnd = random.Random(20)
    nbulk = 12 if args.quick else BULK_FILES
    bulk_sizes = [rnd.randint(1 * MIB, 12 * MIB) for _ in range(nbulk)]
    large = (32 if args.quick else LARGE_MIB) * MIB
    capacity = sum(int(r * MIB) for r, _ in MIRRORS)
    record = {"date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
              "mirrors": [{"mib_s": r, "delay_s": d} for r, d in MIRRORS],
              "capacity": capacity, "runs": runs, "items": {}}
    items = [("bulk", bulk_sizes), ("large", [large])]
    if args.only:
        items = [i for i in items if i[0] == args.only]
    base = args.workdir or tempfile.mkdtemp(prefix="sagedl-mirrors-")
    try:
        for item, sizes in items:
            workdir = os.path.join(base, item)
            files = make_tree(workdir, sizes, seed=len(sizes))
            mirrors = [Mirror("127.0.0.%d" % (i + 2), os.path.join(workdir, "www"),
                              int(r * MIB), d) for i, (r, d) in enumerate(MIRRORS)]
            total = sum(s for s in sizes)
            rows = []
            for run in range(runs):
                order = ["sagedl", "aria2c"]
                rnd.shuffle(order)
                row = {}
                for tool in order:
                    row[tool] = measure(tool, workdir, mirrors, files)
                    print("%s run %d %s: %.2fs, served %.3fx" % (
                        item, run, tool, row[tool]["seconds"],
                        row[tool]["served"] / total), flush=True)
                rows.append(row)
            for m in mirrors:
                m.close()
            record["items"][item] = {"bytes": total, "files": len(sizes), "rows": rows}
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    text = report(record)
    print(text)
    out = os.path.join(HERE, "results")
    if not os.path.isdir(out):
        os.makedirs(out)
    stamp = datetime.datetime.utcnow().strftime("%Y%m%d-%H%M")
    with open(os.path.join(out, "mirrors-%s.json" % stamp), "w") as f:
        json.dump(record, f, indent=1)
    with open(os.path.join(out, "mirrors-%s.md" % stamp), "w") as f:
        f.write(text)
    return 0


TARGETS = {"bulk": (0.85, 1.2), "large": (0.85, 1.0)}


def report(record):
    cap = record["capacity"]
    lines = ["Many slow mirrors (%s): %d mirrors, summed uplink %.1f MiB/s, %d run(s), medians"
             % (record["date"], len(record["mirrors"]), cap / MIB, record["runs"]), "",
             "| item | sagedl s | aria2c s | sagedl capacity used | aria2c capacity used "
             "| sagedl/aria2c speed | served/size sagedl | served/size aria2c |",
             "|---|---|---|---|---|---|---|---|"]
    for item, data in record["items"].items():
        rows, total = data["rows"], data["bytes"]
        s = median([r["sagedl"]["seconds"] for r in rows])
        a = median([r["aria2c"]["seconds"] for r in rows])
        used = median([total / r["sagedl"]["seconds"] / cap for r in rows])
        used_a = median([total / r["aria2c"]["seconds"] / cap for r in rows])
        ratio = median([r["aria2c"]["seconds"] / r["sagedl"]["seconds"] for r in rows])
        served = max(r["sagedl"]["served"] / total for r in rows)
        served_a = max(r["aria2c"]["served"] / total for r in rows)
        want_used, want_ratio = TARGETS[item]
        verdict = "PASS" if used >= want_used and ratio >= want_ratio and served <= 1.05 else "MISS"
        lines.append("| %s: %d files, %.0f MiB | %.2f | %.2f | %.2f | %.2f | %.2fx | %.3f | %.3f | %s"
                     % (item, data["files"], total / MIB, s, a, used, used_a, ratio, served,
                        served_a, verdict))
    lines.append("")
    lines.append("Targets: bulk >= 0.85 of capacity and >= 1.2x aria2c; large >= 0.85 and "
                 ">= 1.0x aria2c; served/size <= 1.05 (the worst run).")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
