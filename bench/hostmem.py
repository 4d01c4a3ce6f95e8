"""Keep the VM from giving freed memory back to its host while measuring.

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
* 0.22 s after 5 s of idle with reporting held off as below.

A slow run's perf profile has 43% of its samples on one instruction of
copy_folio_from_iter_atomic, the kernel's copy into the page cache; that
profile had earlier been read as "PyPy's write(2) is slow".  The same
1 GiB download took 1.2 s or 2.3 s from one run to the next for this reason,
on PyPy more often than on CPython (why PyPy more often is not known).
Held off, most runs are fast, but not all: the host has other ways to
take memory back, so a run can still be an outlier and figures are medians.

So, as pyperf's ``system tune`` fixes CPU frequency before measuring, the
bench raises ``page_reporting_order`` above the largest block order the
kernel has (no free block qualifies, so nothing is reported), writes and
unlinks a file of twice the download's size once, so that the page-cache
pages the runs will get are host-backed again, and puts the old value back
at the end.  The warm-up must go through the page cache: with reporting
held, touching 2.25 GiB of anonymous memory left the next 1 GiB of writes
as slow as before (2.43 s of system time), writing and unlinking a file of
that size made them fast (0.21 s).  ``--keep-page-reporting``
measures the machine as it is.  Not root, or no such file: nothing
changes, and the report says so.
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


def _write(name, value):
    with open(os.path.join(PARAMS, name), "w") as f:
        f.write(value + "\n")


def reported_kib():
    """How much memory the guest has reported to the host so far (None: no
    such counter); the bench records it before and after."""
    try:
        return int(_read("reported_kib"))
    except (IOError, OSError, ValueError):
        return None


def _warm_page_cache(directory, size):
    """Write size bytes into a new file and unlink it: the pages come back
    from the host once, and are freed again unreported (unlinking drops
    them before any writeback)."""
    path = os.path.join(directory, "hostmem-warm-up.tmp")
    block = bytearray(1 << 20)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL, 0o600)
    try:
        for _ in range(size >> 20):
            os.write(fd, block)
    finally:
        os.close(fd)
        os.unlink(path)


class HoldPageReporting(object):
    """with HoldPageReporting(workdir, warm_bytes) as hold: ... ; hold.state
    says what was done, for the report."""

    def __init__(self, directory, warm_bytes, enabled=True):
        self.directory = directory
        self.warm_bytes = warm_bytes
        self.enabled = enabled
        self.old = None
        self.state = "no page reporting here"

    def __enter__(self):
        if not os.path.exists(os.path.join(PARAMS, ORDER)):
            return self
        try:
            order = int(_read(ORDER))
            above = _largest_order() + 1
        except (IOError, OSError, ValueError) as e:
            self.state = "page reporting: unreadable (%s)" % e
            return self
        if order >= above:
            self.state = "page reporting off (order %d)" % order
            return self
        if not self.enabled:
            self.state = "page reporting ACTIVE (order %d): figures may be bimodal" % order
            return self
        try:
            _write(ORDER, "%d" % above)
        except (IOError, OSError) as e:
            self.state = ("page reporting ACTIVE (order %d; could not hold it: %s): "
                          "figures may be bimodal" % (order, e.strerror or e))
            return self
        self.old = "%d" % order
        self.state = "page reporting held off (order %d -> %d), restored after" % (order, above)
        try:
            _warm_page_cache(self.directory, self.warm_bytes)
        except BaseException:   # a with statement whose __enter__ fails never calls __exit__
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.old is not None:
            _write(ORDER, self.old)
            self.old = None
        return False
