#!/usr/bin/env python3
"""A/B: two or more ways to run sagedl on one large file, interleaved.

    python3 bench/ab.py [--runs 5] [--size-mib 1024] [--https] \\
        'A=python3.11 -m sagedl' 'B=SAGEDL_PIPELINE=simple python3.11 -m sagedl' ...

Why it exists: single runs on this project's VM vary by about 10% (the
host takes free memory back: hostmem.py; bench/README.md, "The noise"),
so two full benches taken apart cannot tell a 10% change from noise.  Here every variant runs once per round, in turn, against one nginx
(bench/server.py) on 127.0.0.1, and the report gives each variant's runs,
not only a median.  Decisions in sagedl/engine/pipeline.py were made this way.

Each variant is LABEL=COMMAND: a command line (leading NAME=VALUE words
are environment variables) that is given URL DEST --sha256 HEX -q
--progress none [--ca-bundle CA].  PYTHONPATH defaults to this checkout,
so ``python3 -m sagedl`` measures the working tree; set PYTHONPATH=DIR in a
variant to measure another tree (``git worktree add``).  Reports wall time,
the command's CPU (user + sys) and its peak RSS per run, measured by measure.run (with
its timeout), as run.py's items are.
"""

from __future__ import division, print_function

import argparse
import os
import shlex
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import hostmem  # noqa: E402
import measure  # noqa: E402
from run import child_env, make_large  # noqa: E402
from server import Nginx, make_certificates  # noqa: E402


class _Args(object):
    def __init__(self, size_mib):
        self.size_mib = size_mib


class _Data(object):
    """What run.make_large needs: where, how big, and the digest it sets."""

    def __init__(self, www, size_mib):
        self.www = www
        self.size = size_mib << 20
        self.args = _Args(size_mib)
        self.sha256 = None


def parse_variant(text):
    label, sep, command = text.partition("=")
    if not sep or not command.strip():
        raise SystemExit("ab.py: a variant is LABEL=COMMAND, got %r" % text)
    words = shlex.split(command)
    env = {}
    while words and "=" in words[0] and not words[0].startswith("-"):
        k, v = words.pop(0).split("=", 1)
        env[k] = v
    return label, env, words


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("variants", nargs="+", metavar="LABEL=COMMAND")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--https", action="store_true", help="over HTTPS instead of HTTP")
    p.add_argument("--workdir", help="where data and outputs go (default: a temp dir)")
    args = p.parse_args(argv)
    variants = [parse_variant(v) for v in args.variants]

    workdir = args.workdir or tempfile.mkdtemp(prefix="sagedl-ab-")
    data = _Data(os.path.join(workdir, "www"), args.size_mib)
    out = os.path.join(workdir, "out")
    for d in (data.www, out, os.path.join(workdir, "nginx"), os.path.join(workdir, "tls")):
        if not os.path.isdir(d):
            os.makedirs(d)
    make_large(data)
    ca, cert, key = make_certificates(os.path.join(workdir, "tls"))
    base_env = child_env(workdir)
    base_env["PYTHONPATH"] = REPO
    proto = "https" if args.https else "http"
    results = dict((label, []) for label, _, _ in variants)
    with Nginx(data.www, os.path.join(workdir, "nginx"), cert, key) as nginx:
        print(hostmem.state())
        url = "%s/big.bin" % nginx.base(proto)
        for r in range(args.runs):
            for label, env, words in variants:
                dest = os.path.join(out, "big.bin")
                argv = words + [url, dest, "--sha256", data.sha256, "-q", "--progress", "none"]
                if args.https:
                    argv += ["--ca-bundle", ca]
                # Changes no setting: pages that just came back from the host.
                hostmem.warm_page_cache(out, data.size)
                s = measure.run(argv, env=dict(base_env, **env),
                                timeout=max(300.0, data.size / 2e6))
                ok = s.ok and os.path.isfile(dest) and os.path.getsize(dest) == data.size
                results[label].append((s.wall, s.user + s.sys, s.maxrss_kib) if ok else None)
                print("run %d %-16s %s" % (r + 1, label, "%.3f s wall, %.3f s CPU, %.1f MB" % (
                    s.wall, s.user + s.sys, s.maxrss_kib / 1024.0) if ok else
                    "FAILED: " + s.error()))
                sys.stdout.flush()
                # Unlinking drops the dirty pages; nothing is left to write back.
                shutil.rmtree(out)
                os.makedirs(out)
                os.sync()
    print()
    mb = data.size / 1e6
    for label, runs in results.items():
        good = sorted(x for x in runs if x)
        if not good:
            print("%-16s all runs failed" % label)
            continue
        walls = sorted(w for w, _, _ in good)
        med = walls[len(walls) // 2]
        print("%-16s median %.3f s (%.0f MB/s); runs %s; CPU %s; peak RSS %s MB" % (
            label, med, mb / med, " ".join("%.2f" % w for w, _, _ in good),
            " ".join("%.2f" % c for _, c, _ in good),
            " ".join("%.0f" % (m / 1024.0) for _, _, m in good)))
    if not args.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
