"""Running one command and measuring it: wall time, CPU time, peak RSS.

Wall time is taken here, around fork/exec to exit; CPU time comes from
os.wait4()'s rusage.  Peak RSS does not: Linux carries the forking process's
high-water mark across fork and exec into the child's ru_maxrss, so a child
of this ~30 MB Python would never report less than 30 MB.  GNU time (a small
C program) is therefore the launcher: it forks the command itself and
reports that child's ru_maxrss (%M, KiB).  Without /usr/bin/time the wait4
figure is used, and it is only an upper bound (Sample.rss_exact is False).
A sagedl.pyz that re-executes itself keeps its pid, so the figure covers
the process that did the work.
"""

from __future__ import division

import os
import signal
import tempfile
import subprocess
import threading
import time


class Sample(object):
    """One run of one command."""

    def __init__(self, argv, wall, user, sys_, maxrss_kib, rc, stdout, stderr, rss_exact=True,
                 server_cpu=None, machine_busy=None):
        self.argv = argv
        self.wall = wall
        self.user = user
        self.sys = sys_
        self.maxrss_kib = maxrss_kib
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.rss_exact = rss_exact
        self.server_cpu = server_cpu        # CPU seconds the server used meanwhile
        self.machine_busy = machine_busy    # share of all cores' time not idle

    @property
    def ok(self):
        return self.rc == 0

    def error(self):
        tail = (self.stderr or self.stdout or "").strip().splitlines()[-3:]
        return "exit %s: %s" % (self.rc, " | ".join(tail)[:300])

    def as_dict(self):
        d = {"wall_s": round(self.wall, 5), "user_s": round(self.user, 4),
             "sys_s": round(self.sys, 4), "maxrss_kib": self.maxrss_kib, "rc": self.rc}
        if self.server_cpu is not None:
            d["server_cpu_s"] = round(self.server_cpu, 3)
        if self.machine_busy is not None:
            d["machine_busy"] = round(self.machine_busy, 4)
        return d


GNU_TIME = "/usr/bin/time"


def gnu_time():
    """/usr/bin/time if it is GNU time (it has -f and -o)."""
    if not os.access(GNU_TIME, os.X_OK):
        return None
    try:
        out = subprocess.run([GNU_TIME, "--version"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, universal_newlines=True).stdout
    except OSError:
        return None
    return GNU_TIME if "GNU" in out else None


_TIME = gnu_time()


def cpu_times():
    """(busy, total) jiffies of all cores since boot (/proc/stat's cpu line);
    None where there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (IOError, OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)    # idle + iowait
    return sum(values) - idle, sum(values)


def run(argv, env=None, cwd=None, timeout=600.0, shell=False, server_cpu=None):
    """Run argv (a shell command if shell) to completion.  server_cpu: a
    function giving the server's CPU seconds so far, sampled around the run;
    with it the Sample also says how busy the whole machine was."""
    if shell:
        argv = ["/bin/sh", "-c", argv]
    rss_file = None
    command = list(argv)
    if _TIME:
        fd, rss_file = tempfile.mkstemp(prefix="bench-rss-")
        os.close(fd)
        command = [_TIME, "-f", "%M", "-o", rss_file, "--"] + command
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    # Read the pipes in threads so a chatty tool cannot block on a full pipe.
    chunks = {out_r: [], err_r: []}

    def drain(fd):
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            if sum(len(c) for c in chunks[fd]) < (1 << 20):
                chunks[fd].append(b)
        os.close(fd)

    readers = [threading.Thread(target=drain, args=(fd,)) for fd in (out_r, err_r)]
    for t in readers:
        t.daemon = True
        t.start()
    server0 = server_cpu() if server_cpu else None
    cpu0 = cpu_times() if server_cpu else None
    t0 = time.perf_counter()
    p = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w,
                         env=env, cwd=cwd, start_new_session=True)
    os.close(out_w)
    os.close(err_w)
    killer = threading.Timer(timeout, _kill_group, (p.pid,))
    killer.daemon = True
    killer.start()
    try:
        _, status, ru = os.wait4(p.pid, 0)
    finally:
        killer.cancel()
    wall = time.perf_counter() - t0
    used = busy = None
    if server0 is not None:
        used = server_cpu() - server0
    cpu1 = cpu_times() if cpu0 else None
    if cpu1 and cpu1[1] > cpu0[1]:
        busy = (cpu1[0] - cpu0[0]) / (cpu1[1] - cpu0[1])
    p.returncode = rc = _exit_code(status)
    for t in readers:
        t.join(5)
    maxrss, exact = ru.ru_maxrss, False
    if rss_file:
        try:
            with open(rss_file) as f:
                # "Command exited with non-zero status N" may come first.
                maxrss, exact = int(f.read().split()[-1]), True
        except (IOError, OSError, ValueError, IndexError):
            pass
        os.unlink(rss_file)
    return Sample(argv, wall, ru.ru_utime, ru.ru_stime, maxrss, rc,
                  b"".join(chunks[out_r]).decode("utf-8", "replace"),
                  b"".join(chunks[err_r]).decode("utf-8", "replace"), exact, used, busy)


def _kill_group(pid):
    """The timeout: end the process group we created (start_new_session)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


def _exit_code(status):
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def median(values):
    v = sorted(values)
    if not v:
        return None
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
