#!/usr/bin/env python3
"""How long ranking takes (probe.measure, then order_ranking) on the 24-mirror
loopback setup: median of 5 runs.

    python3 bench/bench_ranking.py

8 mirrors whose accept queue is full (connects hang), 8 that accept and
never answer, 8 healthy HTTP responders, all on 127.0.0.1 (the fixtures of
tests/test_mirror_ranking.py).  Two measurements, each against the 1.5 s target:

* default    as the CLI ranks (want=3: stops once 3 answered);
* worst case want=None: waits for every mirror, so the hung ones run into
             the 1.2 s deadline -- this bounds what a user can ever wait.
"""

import os
import random
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from sagedl.mirrors import probe  # noqa: E402
from loopback import LoopbackServers  # noqa: E402

TARGET = 1.5
RUNS = 5


def measure(urls, **kwargs):
    times = []
    for seed in range(RUNS):
        start = time.monotonic()
        ranked = probe.order_ranking(probe.measure(urls, env={}, **kwargs), random.Random(seed))
        times.append(time.monotonic() - start)
        assert ranked[0].ok, ranked[0]
    return statistics.median(times), times


def main():
    servers = LoopbackServers()
    try:
        urls = ([servers.full() for _ in range(8)] + [servers.silent() for _ in range(8)]
                + [servers.respond() for _ in range(8)])
        servers.start()
        random.Random(0).shuffle(urls)
        failed = False
        for label, kwargs in (("default (want=3)", {}), ("worst case (want=None)", {"want": None})):
            median, times = measure(urls, **kwargs)
            verdict = "PASS" if median <= TARGET else "MISS"
            failed = failed or verdict == "MISS"
            sys.stdout.write("ranking 24 mirrors, %-23s median %.3f s  (runs: %s)  %s vs %.1f s\n"
                             % (label, median, ", ".join("%.3f" % t for t in times), verdict, TARGET))
        return 1 if failed else 0
    finally:
        servers.close()


if __name__ == "__main__":
    sys.exit(main())
