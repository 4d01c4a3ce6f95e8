"""PyPy only: collecting now and then, during start-up and during a large
transfer, so PyPy's young generation does not grow the process.

Why a module of its own: the command line (start-up, collect_startup_garbage)
and every sink that runs a large transfer on PyPy (engine/pipeline.py's
ThreadedSink, engine/splicesink.py's SpliceSink) need it, and it is about
PyPy's garbage collector, not about moving bytes.
"""

from __future__ import absolute_import

import os

from sagedl.compat import PYPY

# PyPy: a full collection when a large transfer starts and every this many
# bytes after (see Nursery).  A collection costs PyPy 5-6 ms, the first one
# about 20 ms (it moves start-up's survivors out of the nursery): 40 ms per
# GiB in all.  Over HTTPS the hot loop makes about 170 MB of garbage per GiB,
# so 256 MiB stays below the 70 MB of nursery that start-up already touched.
NURSERY_STEP = 256 << 20


class Nursery(object):
    """PyPy only: collect now and then, so its young generation does not
    grow the process.

    PyPy allocates young objects by moving a pointer through a "nursery"
    it sizes from the cache size the CPU reports: half of it, 240 MB on
    this project's VM (491,520 KB in /proc/cpuinfo).  Only a collection
    moves the pointer back, so every page the pointer passed stays in the
    process: a 1 GiB download over HTTPS peaked at 167-295 MB, against
    83 MB with PYPY_GC_NURSERY=4MB.  The pyz's sh preamble sets that
    variable, but not when PyPy is named on the command line, and nothing
    can change the size once PyPy runs.  A collection moves the pointer back
    to the pages already touched, so collecting when a large transfer
    starts and every NURSERY_STEP bytes after keeps the peak at what
    start-up reached (137 MB over HTTPS, 128 MB over HTTP; bench/README.md).
    Not when PYPY_GC_NURSERY is set: the nursery is then what the user chose.
    What start-up reaches is lowered by collect_startup_garbage.
    """

    @classmethod
    def when_needed(cls, env=os.environ):
        if PYPY and not env.get("PYPY_GC_NURSERY"):
            return cls()
        return None

    def __init__(self):
        import gc
        self._collect = gc.collect
        self.next_at = 0            # at the first block: start-up's garbage

    def collect(self, written):
        self._collect()
        self.next_at = written + NURSERY_STEP


def collect_startup_garbage(env=os.environ):
    """PyPy only: a full collection, which the command line makes once
    start-up's imports are done and once the command is set up (parsed, its
    Session made), before any network or disk work.

    Start-up's garbage (unmarshalled modules, argparse's parsers) otherwise
    pushes the nursery's pointer through 60 MB of fresh pages before the
    first collection, and those pages stay in the process (see Nursery).
    Each collection costs PyPy 5-7 ms.  Measured on 2026-12-04 as
    ``pypy3 sagedl.pyz``: a 1,000-byte download peaked at 89 MB against
    117 MB; 1 GiB over loopback HTTP (bench/ab.py, 5 interleaved runs) at
    91 MB in every run against 121-163 MB, in 1.18 s against 1.20 s, and
    over HTTPS (3 runs) at 99 MB against 133-177 MB, in 1.75 s against
    1.84 s.  Not when PYPY_GC_NURSERY is set (the user chose the nursery;
    4 MB, the pyz preamble's choice, needs no help).
    """
    if PYPY and not env.get("PYPY_GC_NURSERY"):
        import gc
        gc.collect()
