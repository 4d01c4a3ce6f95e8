"""Free memory the VM gives back to its host: what the bench says and does about it.

Why: this project's machine is a Firecracker VM whose kernel reports freed
memory to the host (virtio-balloon free page reporting,
/sys/module/page_reporting, with min_free_ms 0: as soon as it is free).
The host takes those pages away; the next time the guest touches one, the
host must fault in and zero a page again, which the guest sees only as a
slow instruction in whatever touched it.  A 1 GiB download writes 1 GiB
of new page cache, and the file is unlinked after each run, so whether a
run gets host-backed pages or given-back ones depends on how long ago the
last one ended.  Measured on 2026-11-28 (3.11, 1,024 os.write calls of a
1 MiB bytearray into a new file, the system time of the loop):

* 0.21-0.22 s when the previous run had ended less than a second before;
* 1.09-1.26 s after 3 or 10 s of idle (the pages had been reported);
* 0.22 s after 5 s of idle with reporting held off (page_reporting_order
  raised by hand, once, for that measurement: the bench does not do it).

A slow run's perf profile has 43% of its samples on one instruction of
copy_folio_from_iter_atomic, the kernel's copy into the page cache; that
profile had earlier been read as "PyPy's write(2) is slow".  The same
1 GiB download took 1.2 s or 2.3 s from one run to the next for this reason,
on PyPy more often than on CPython (why PyPy more often is not known).
Even held off, not every run was fast: the host has other ways to take
memory back, so a run can be an outlier and figures are medians.

The bench measures the machine as it is: it changes no kernel setting (the
order of page reporting is part of how this VM gives memory back to its
host, which is not ours to change, and a killed bench would leave it
changed).  What it does without privilege: right before each measured run
it writes and unlinks a file of that run's size, so the page-cache pages
the run gets have just come back from the host: the kernel's reporting
worker runs about 2 s after pages are freed (PAGE_REPORTING_DELAY), longer
than the gap before the run starts.  Runs are interleaved and figures are medians; the report says
whether page reporting is active, and how much memory the guest reported
to the host while measuring.
"""

from __future__ import print_function

import os

PARAMS = "/sys/module/page_reporting/parameters"
ORDER = "page_reporting_order"
BUDDYINFO = "/proc/buddyinfo"


def _largest_order():
    """MAX_PAGE_ORDER: /proc/buddyinfo has one column per order."""
    with open(BUDDYINFO) as f:
        for line in f:
            words = line.split()
            if "zone" in words:
                return len(words) - words.index("zone") - 3
    raise IOError("no zone in /proc/buddyinfo")


def _read(name):
    with open(os.path.join(PARAMS, name)) as f:
        return f.read().strip()


def reported_kib():
    """How much memory the guest has reported to the host so far (None: no
    such counter); the bench records it before and after."""
    try:
        return int(_read("reported_kib"))
    except (IOError, OSError, ValueError):
        return None


def state():
    """One line for the report: is free page reporting active here?  Read
    only."""
    if not os.path.exists(os.path.join(PARAMS, ORDER)):
        return "no page reporting here"
    try:
        order = int(_read(ORDER))
        largest = _largest_order()
    except (IOError, OSError, ValueError) as e:
        return "page reporting: unreadable (%s)" % e
    if order > largest:
        return "page reporting off (order %d)" % order
    return ("page reporting ACTIVE (order %d), as the machine came; the page cache is "
            "warmed right before each measured run" % order)


def warm_page_cache(directory, size):
    """Write size bytes into a new file and unlink it: the pages come back
    from the host now, and are free (unlinking drops them before any
    writeback) for the run that starts next."""
    path = os.path.join(directory, "hostmem-warm-up.tmp")
    block = bytearray(1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, 0o600)
    try:
        for _ in range(max(1, size >> 20)):
            os.write(fd, block)
    finally:
        os.close(fd)
        os.unlink(path)
