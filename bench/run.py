#!/usr/bin/env python3
"""sagedl's performance benchmark, against curl, wget and aria2c on loopback.

    python3 bench/run.py [--size-mib 1024] [--runs 5] [--quick]

What it does, in order:

* installs nginx-light, curl, wget, aria2, openssl, pypy3 and GNU time with
  apt-get if any is missing (as root, or through sudo), builds
  dist/sagedl.pyz if it is missing or older than the sources (python3
  zipapp/build.py), and measures a copy of it taken at the start;
* makes a CA and a server certificate (openssl), and starts one nginx on
  127.0.0.1 with its own config in the work dir, serving HTTP and HTTPS;
* measures, ``--runs`` times, interleaved run by run and in a shuffled
  order within each run:
  1. one large file of random data (``--size-mib``): sagedl (download +
     sha256 + fsync) under CPython 3.11, 2.7 and PyPy3, against curl,
     curl && sha256sum, curl && sync, wget, aria2c --checksum, and a pure
     2.7 urllib2 loop (bench/baseline_py27.py); over HTTP and HTTPS;
  2. sagedl's peak RSS (GNU time's %M) on that file, on a small one, and
     the bare interpreter's;
  3. ``--small-count`` files of ``--small-kib`` KiB from a fake Sage tree:
     ``sagedl download :all:`` (with --jobs / --transport when its --help
     lists them) against ``aria2c -j N -i list`` and a curl-per-file loop;
  4. start-up: ``python sagedl.pyz --version`` against ``python -c pass``
     under 2.7, 3.6, 3.11, 3.13 and PyPy3, and the modules a plain http fetch
     imports (``-X importtime``);
  5. resuming a 90 % partial (re-hash, then fetch the rest) against a
     full download;
* prints the figures (medians over the runs; each sagedl figure is paired
  with its peer's in the same run, as a ratio) as Markdown, with PASS/MISS
  against the targets, and writes them to bench/results/bench-DATE.{json,md}
  (the raw figures are saved first; ``--report FILE.json`` re-renders them).

Every tool writes into the same work dir (default: under $TMPDIR, or
--workdir), so they share one filesystem, which the report names.  Outputs
are deleted right after each measurement: unlinking discards the dirty
page cache, so one tool's unwritten data never slows the next one down.
sagedl fsyncs what it downloads (its durability rule); the peers do not,
except the "curl && sync" row, which shows what that costs here.

It changes no system setting.  Right before each measured run of items 1,
3 and 5 it writes and unlinks a file of that run's size (bench/hostmem.py:
this VM gives free memory back to its host, and the pages a run writes
into should not depend on how long the machine sat idle before it); the
report says whether free page reporting is active.

Only 127.0.0.1 is contacted.  The default (1 GiB, 5 runs) takes 7 to 15
minutes on 2 cores, depending on what else runs; --quick (64 MiB, 2 runs, fewer small files) about one.
"""

from __future__ import division, print_function

import argparse
import datetime
import glob
import hashlib
import json
import os
import platform
import random
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import hostmem  # noqa: E402
import measure  # noqa: E402
import report   # noqa: E402
from measure import median  # noqa: E402
from report import (DISK_ALONE, LARGE_PYTHONS, ONE_THREAD, STARTUP_PYTHONS,  # noqa: E402
                    WATCHED_MODULES)
from server import Nginx, make_certificates, which  # noqa: E402

APT_PACKAGES = (("nginx", "nginx-light"), ("curl", "curl"), ("wget", "wget"),
                ("aria2c", "aria2"), ("openssl", "openssl"), ("pypy3", "pypy3"),
                ("sha256sum", "coreutils"), ("/usr/bin/time", "time"))
PYENV = os.path.expanduser("~/.pyenv/versions")
IMPORTTIME_PYTHONS = ("3.11", "3.13")   # -X importtime exists from 3.7 on



def log(msg):
    sys.stderr.write("[%6.1fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


T0 = time.monotonic()
LOAD_AT_START = os.getloadavg()[0]


# ---------------------------------------------------------------------------
# Set-up: tools, interpreters, the pyz

def ensure_tools(allow_install):
    missing = [pkg for tool, pkg in APT_PACKAGES
               if not (os.access(tool, os.X_OK) if os.sep in tool else which(tool))]
    if not missing:
        return
    if not allow_install:
        log("missing (not installing, --no-install): %s" % " ".join(missing))
        return
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    log("installing with apt-get: %s" % " ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.call(sudo + ["apt-get", "update", "-qq"], env=env)
    rc = subprocess.call(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"]
                         + missing, env=env, stdout=subprocess.DEVNULL)
    if rc:
        log("apt-get install failed (exit %d); the rows needing those tools are skipped" % rc)
    # Debian starts the nginx it installs; we run our own.
    subprocess.call(sudo + ["service", "nginx", "stop"], stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)


def find_python(name):
    """An interpreter by short name: "2.7", "3.11", "pypy3"."""
    if name == "pypy3":
        return which("pypy3")
    found = sorted(glob.glob(os.path.join(PYENV, name + ".*", "bin", "python")))
    if found:
        return found[-1]
    return which("python" + name)


def python_version(py):
    out = subprocess.run([py, "-c", "import sys, platform; sys.stdout.write("
                          "platform.python_implementation() + ' ' + platform.python_version())"],
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    return out.strip()


def ensure_pyz(args, workdir):
    """The pyz to measure: dist/sagedl.pyz (built when missing or older than
    its sources) or --pyz, copied into the work dir so that a rebuild during
    the run cannot mix two versions.  Returns (path or None, description);
    None means "run the source tree with python -m sagedl"."""
    pyz = os.path.abspath(args.pyz or os.path.join(REPO, "dist", "sagedl.pyz"))
    if not args.pyz:
        sources = glob.glob(os.path.join(REPO, "sagedl", "*.py")) + \
            glob.glob(os.path.join(REPO, "zipapp", "*")) + [os.path.join(REPO, "mirrors.toml")]
        newest = max([os.path.getmtime(p) for p in sources if os.path.exists(p)] or [0])
        if not os.path.isfile(pyz) or os.path.getmtime(pyz) < newest:
            log("building %s (%s)" % (os.path.relpath(pyz, REPO),
                                      "stale" if os.path.isfile(pyz) else "missing"))
            p = subprocess.run([sys.executable, os.path.join(REPO, "zipapp", "build.py")],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               universal_newlines=True)
            if p.returncode != 0:
                log("zipapp/build.py failed; measuring the package from source "
                    "(python -m sagedl):\n" + p.stdout[-2000:])
                return None, "the source tree (python -m sagedl; the pyz build failed)"
    built = datetime.datetime.fromtimestamp(os.path.getmtime(pyz)).strftime("%Y-%m-%d %H:%M:%S")
    copy = os.path.join(workdir, "sagedl.pyz")
    shutil.copyfile(pyz, copy)
    with open(copy, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    name = os.path.relpath(pyz, REPO) if pyz.startswith(REPO + os.sep) else pyz
    return copy, "%s (built %s, sha256 %s)" % (name, built, digest)


def git_commit():
    """HEAD when the run starts, and whether the sources differ from it (read-only git)."""
    head = subprocess.run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                          universal_newlines=True).stdout.strip()
    if not head:
        return "?"
    dirty = subprocess.call(["git", "-C", REPO, "diff", "--quiet", "HEAD", "--", "sagedl",
                             "zipapp", "mirrors.toml"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return head + (" + uncommitted changes" if dirty else "")


def child_env(workdir):
    """What every measured command runs with: no proxies, no PYTHON* variables,
    no Sage variables, no rc files (HOME is the work dir's)."""
    env = {}
    for k, v in os.environ.items():
        lk = k.lower()
        if lk.endswith("_proxy") or k.startswith(("PYTHON", "SAGE", "SSL_CERT", "CURL_",
                                                 "WGET", "REQUESTS_")):
            continue
        env[k] = v
    home = os.path.join(workdir, "home")
    if not os.path.isdir(home):
        os.makedirs(home)
    env.update(HOME=home, XDG_CACHE_HOME=os.path.join(home, ".cache"),
               XDG_CONFIG_HOME=os.path.join(home, ".config"), LC_ALL="C")
    return env


class Bench(object):
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.www = os.path.join(workdir, "www")
        self.out = os.path.join(workdir, "out")
        self.env = child_env(workdir)
        self.pythons = dict((n, find_python(n)) for n in
                            set(STARTUP_PYTHONS + LARGE_PYTHONS + IMPORTTIME_PYTHONS))
        self.pyz = None
        self.notes = []
        self.record = {"large": {}, "resume": [], "small": {}, "startup": {},
                       "importtime": {}, "rss_small": {}}
        self.size = args.size_mib << 20
        self.sha256 = None
        self.features = {}

    # -- how to call sagedl
    def sagedl(self, py):
        if self.pyz:
            return [py, self.pyz]
        return [py, "-m", "sagedl"]

    def sagedl_env(self, extra=None):
        env = dict(self.env)
        if not self.pyz:
            env["PYTHONPATH"] = REPO
        if extra:
            env.update(extra)
        return env

    def fresh_out(self, name):
        d = os.path.join(self.out, name)
        if os.path.exists(d):
            shutil.rmtree(d)
        os.makedirs(d)
        return d

    def clean_out(self):
        """Unlink every output at once: dirty pages of an unlinked file are
        dropped, never written; the sync then finds (almost) nothing to do."""
        shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(self.out)
        os.sync()

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)
            log("note: " + text)


# ---------------------------------------------------------------------------
# Data

def make_large(b):
    path = os.path.join(b.www, "big.bin")
    sidecar = path + ".sha256"
    if os.path.isfile(path) and os.path.getsize(path) == b.size and os.path.isfile(sidecar):
        with open(sidecar) as f:
            b.sha256 = f.read().strip()
        return path
    log("writing %d MiB of random data" % b.args.size_mib)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        left = b.size
        while left:
            block = os.urandom(min(left, 4 << 20))
            h.update(block)
            f.write(block)
            left -= len(block)
    b.sha256 = h.hexdigest()
    with open(sidecar, "w") as f:
        f.write(b.sha256 + "\n")
    os.sync()   # so no writeback of it competes with the first measurements
    return path


def make_small(b):
    """A fake Sage tree of N packages and its mirror (BASE/spkg/upstream/PKG/FILE)."""
    tree = os.path.join(b.workdir, "sage")
    pkgs = os.path.join(tree, "build", "pkgs")
    if os.path.isdir(tree):
        shutil.rmtree(tree)
    mirror_root = os.path.join(b.www, "spkg", "upstream")
    if os.path.isdir(mirror_root):
        shutil.rmtree(mirror_root)
    entries = []
    nbytes = b.args.small_kib << 10
    for i in range(b.args.small_count):
        pkg = "benchpkg%03d" % i
        name = "%s-1.0.tar.gz" % pkg
        data = os.urandom(nbytes)
        digest = hashlib.sha256(data).hexdigest()
        d = os.path.join(pkgs, pkg)
        os.makedirs(d)
        with open(os.path.join(d, "checksums.ini"), "w") as f:
            f.write("tarball=%s\nsha256=%s\n" % (name, digest))
        with open(os.path.join(d, "package-version.txt"), "w") as f:
            f.write("1.0\n")
        with open(os.path.join(d, "type"), "w") as f:
            f.write("standard\n")
        m = os.path.join(mirror_root, pkg)
        os.makedirs(m)
        with open(os.path.join(m, name), "wb") as f:
            f.write(data)
        entries.append((pkg, name, digest))
    os.sync()
    return tree, entries


# ---------------------------------------------------------------------------
# Item 1 (and 2, 5): the large file

class Tool(object):
    def __init__(self, name, argv, shell=False, check=None, kind="peer", python=None, env=None,
                 protos=("http", "https")):
        self.name = name
        self.env = env          # extra environment variables
        self.protos = protos
        self.argv = argv        # argv(proto, url, out) -> list or shell string
        self.shell = shell
        self.check = check      # check(sample, out) -> error text or None
        self.kind = kind
        self.python = python


def large_tools(b):
    ca = b.ca
    hexd = b.sha256
    q = shlex.quote

    def curl(proto):
        return ["curl", "-sSf"] + (["--cacert", ca] if proto == "https" else [])

    def curl_sh(proto, url, out, then):
        return "%s -o %s %s && %s %s" % (" ".join(q(a) for a in curl(proto)), q(out), q(url),
                                         then, q(out))

    def sums_ok(sample, out):
        return None if sample.stdout.split()[:1] == [hexd] else "sha256sum printed %r" % sample.stdout[:80]

    tools = []
    if which("curl"):
        tools.append(Tool("curl -o f", lambda p, u, o: curl(p) + ["-o", o, u]))
        if which("sha256sum"):
            tools.append(Tool("curl -o f && sha256sum f",
                              lambda p, u, o: curl_sh(p, u, o, "sha256sum"), shell=True,
                              check=sums_ok))
        tools.append(Tool("curl -o f && sync f",
                          lambda p, u, o: curl_sh(p, u, o, "sync"), shell=True))
    if which("wget"):
        tools.append(Tool("wget -O f", lambda p, u, o: ["wget", "-q", "-O", o, u]
                          + (["--ca-certificate=" + ca] if p == "https" else [])))
    if which("aria2c"):
        tools.append(Tool("aria2c --checksum", lambda p, u, o: [
            "aria2c", "-q", "-x1", "-s1", "--file-allocation=none", "--allow-overwrite=true",
            "--auto-file-renaming=false", "--checksum=sha-256=" + hexd,
            "-d", os.path.dirname(o), "-o", os.path.basename(o), u]
            + (["--ca-certificate=" + ca] if p == "https" else [])))
    py27 = b.pythons.get("2.7")
    if py27:
        tools.append(Tool("urllib2 loop (2.7)", lambda p, u, o: [
            py27, os.path.join(HERE, "baseline_py27.py"), u, o, hexd]
            + ([ca] if p == "https" else []), python=py27))
    transports = [None]
    if b.features.get("fetch_transport"):
        transports = ["stdlib", "urllib3"]
    for label in LARGE_PYTHONS:
        py = b.pythons.get(label)
        if not py:
            b.note("no Python %s found: its sagedl row is skipped" % label)
            continue
        for t in (transports if label == "3.11" else [None]):
            name = "sagedl (%s%s)" % ("PyPy3" if label == "pypy3" else label,
                                      ", " + t if t else "")
            tools.append(Tool(name, _sagedl_fetch(b, py, t), kind="sagedl", python=label))
    if which("dd"):
        # The disk alone, with the same durability as sagedl (no network, no
        # hashing): what "the disk is the limit" would mean in this run.
        mib = b.size >> 20
        tools.append(Tool(DISK_ALONE, lambda p, u, o: [
            "dd", "if=/dev/zero", "of=" + o, "bs=1M", "count=%d" % mib, "conv=fdatasync",
            "status=none"], protos=("http",)))
    if b.pythons.get("3.11"):
        # What the pipeline (sagedl/engine/pipeline.py) gains: the same 3.11 with
        # hashing and writing back in the receiving thread.
        tools.append(Tool(ONE_THREAD, _sagedl_fetch(b, b.pythons["3.11"], None), kind="sagedl",
                          python="3.11", env={"SAGEDL_PIPELINE": "simple"}))
    return tools


def _sagedl_fetch(b, py, transport):
    def argv(proto, url, out):
        cmd = b.sagedl(py) + [url, out, "--sha256", b.sha256, "-q", "--progress", "none"]
        if proto == "https":
            cmd += ["--ca-bundle", b.ca]
        if transport:
            cmd += ["--transport", transport]
        return cmd
    return argv


def run_tool(b, tool, proto, url, out, env=None, timeout=None):
    argv = tool.argv(proto, url, out)
    s = measure.run(argv, env=env or (b.sagedl_env(tool.env) if tool.kind == "sagedl" else b.env),
                    cwd=os.path.dirname(out), shell=tool.shell,
                    timeout=timeout or max(300.0, b.size / 2e6), server_cpu=b.nginx.cpu_seconds)
    err = None
    if not s.ok:
        err = s.error()
    elif not os.path.isfile(out) or os.path.getsize(out) != b.size:
        err = "output missing or of the wrong size"
    elif tool.check:
        err = tool.check(s, out)
    return s, err


def large_run(b, tools, run_index, rng):
    for proto in ("http", "https"):
        url = "%s/big.bin" % b.nginx.base(proto)
        order = [t for t in tools if proto in t.protos]
        rng.shuffle(order)
        for tool in order:
            d = b.fresh_out("large")
            hostmem.warm_page_cache(d, b.size)
            s, err = run_tool(b, tool, proto, url, os.path.join(d, "big.bin"))
            slot = b.record["large"].setdefault(proto, {}).setdefault(tool.name, [])
            slot.append(dict(s.as_dict(), error=err))
            log("run %d %-5s %-28s %s%s" % (run_index + 1, proto, tool.name, report.seconds(s.wall),
                                           "  FAILED: " + err if err else
                                           "  %s, %s" % (report.rate(b.size, s.wall),
                                                         report.mem(s.maxrss_kib))))
            b.clean_out()


def resume_run(b, run_index):
    """Item 5: a 90 % partial with its .part.json, then sagedl --sha256
    (3.11: time against a full download; PyPy3: peak RSS of the resume and
    of hash_file alone, which must not grow with the file)."""
    for label in ("3.11", "pypy3"):
        py = b.pythons.get(label)
        if py:
            _resume_one(b, run_index, label, py)


def _resume_one(b, run_index, label, py):
    url = "%s/big.bin" % b.nginx.base("http")
    d = b.fresh_out("resume")
    dest = os.path.join(d, "big.bin")
    part = dest + ".part"
    keep = b.size * 9 // 10
    _copy_prefix(os.path.join(b.www, "big.bin"), part, keep)
    with open(part + ".json", "w") as f:
        json.dump({"url": url, "etag": None, "last_modified": None, "total": b.size,
                   "sha256": b.sha256, "sha1": None}, f)
    os.sync()    # the partial is on disk already, as after a real interruption
    # sagedl's own hash_file on the partial, alone (the pyz is importable).
    hash_cmd = [py, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                "from sagedl.engine.verify import hash_file, Expected; "
                "hash_file(sys.argv[2], Expected(sha256=sys.argv[3]))",
                b.pyz or REPO, part, b.sha256]
    h = measure.run(hash_cmd, env=b.env)
    hostmem.warm_page_cache(d, b.size - keep)
    cmd = b.sagedl(py) + [url, dest, "--sha256", b.sha256, "-q", "--progress", "none"]
    s = measure.run(cmd, env=b.sagedl_env(), cwd=d)
    err = None
    if not s.ok:
        err = s.error()
    elif os.path.getsize(dest) != b.size:
        err = "wrong size"
    elif not b.nginx.last_access().startswith("206 "):
        err = "did not resume: the last request got %r" % b.nginx.last_access()
    key = "resume" if label == "3.11" else "resume_" + label
    b.record.setdefault(key, []).append(dict(s.as_dict(), error=err, rehash_s=round(h.wall, 4),
                                             rehash_ok=h.ok, partial_bytes=keep,
                                             rehash_maxrss_kib=h.maxrss_kib))
    log("run %d resume 90%% %s %s (re-hash alone %s, %s)%s" % (
        run_index + 1, label, report.seconds(s.wall), report.seconds(h.wall),
        report.mem(h.maxrss_kib), "  FAILED: " + err if err else "  %s" % report.mem(s.maxrss_kib)))
    b.clean_out()


def _copy_prefix(src, dest, nbytes):
    with open(src, "rb") as fi, open(dest, "wb") as fo:
        left = nbytes
        copy_range = getattr(os, "copy_file_range", None)
        while left:
            if copy_range:
                n = copy_range(fi.fileno(), fo.fileno(), left)
            else:
                block = fi.read(min(left, 1 << 20))
                n = len(block)
                fo.write(block)
            if not n:
                raise RuntimeError("short copy")
            left -= n


# ---------------------------------------------------------------------------
# Item 3: many small files

def small_tools(b, tree, entries, listdir):
    jobs = b.args.jobs
    tools = []
    py = b.pythons.get("3.11")
    if py:
        variants = b.features.get("download_transport") and ["stdlib", "urllib3"] or [None]
        for t in variants:
            extra = []
            desc = []
            if b.features.get("jobs"):
                extra += ["--jobs", str(jobs)]
                desc.append("--jobs %d" % jobs)
            else:
                desc.append("sequential")
            if t:
                extra += ["--transport", t]
                desc.append(t)
            tools.append(Tool("sagedl download (%s)" % ", ".join(desc),
                              _sagedl_bulk(b, py, tree, extra), kind="sagedl", python="3.11"))
    lists = {}
    for proto in ("http", "https"):
        base = b.nginx.base(proto)
        aria = os.path.join(listdir, "aria2-%s.txt" % proto)
        plain = os.path.join(listdir, "curl-%s.txt" % proto)
        with open(aria, "w") as fa, open(plain, "w") as fp:
            for pkg, name, digest in entries:
                u = "%s/spkg/upstream/%s/%s" % (base, pkg, name)
                fa.write("%s\n  out=%s\n  checksum=sha-256=%s\n" % (u, name, digest))
                fp.write("%s %s\n" % (u, name))
        lists[proto] = (aria, plain)
    if which("aria2c"):
        tools.append(Tool("aria2c -j%d -i list" % jobs, lambda p, out: [
            "aria2c", "-q", "-j", str(jobs), "-x1", "--file-allocation=none",
            "--allow-overwrite=true", "--auto-file-renaming=false", "-d", out, "-i", lists[p][0]]
            + (["--ca-certificate=" + b.ca] if p == "https" else [])))
    if which("curl"):
        def curl_loop(p, out):
            ca = "--cacert %s " % shlex.quote(b.ca) if p == "https" else ""
            return ('while read -r url out; do curl -sSf %s-o "$out" "$url" || exit 1; done < %s'
                    % (ca, shlex.quote(lists[p][1])))
        tools.append(Tool("curl loop (1 process/file)", curl_loop, shell=True))
    return tools


def _sagedl_bulk(b, py, tree, extra):
    def argv(proto, out):
        cmd = b.sagedl(py) + ["download", "--sage-root", tree, "--mirror",
                              b.nginx.base(proto) + "/", "-q", "--progress", "none"] + extra
        if proto == "https":
            cmd += ["--ca-bundle", b.ca]
        return cmd + [":all:"]
    return argv


def small_run(b, tools, entries, run_index, rng):
    nbytes = b.args.small_kib << 10
    for proto in ("http", "https"):
        order = [t for t in tools if proto in t.protos]
        rng.shuffle(order)
        for tool in order:
            out = b.fresh_out("small")
            hostmem.warm_page_cache(out, nbytes * len(entries))
            env = b.sagedl_env({"SAGE_DISTFILES": out}) if tool.kind == "sagedl" else b.env
            s = measure.run(tool.argv(proto, out), env=env, cwd=out, shell=tool.shell,
                            timeout=600.0)
            err = None
            if not s.ok:
                err = s.error()
            else:
                bad = [n for _, n, _ in entries if not os.path.isfile(os.path.join(out, n))
                       or os.path.getsize(os.path.join(out, n)) != nbytes]
                if bad:
                    err = "%d files missing or wrong, e.g. %s" % (len(bad), bad[0])
            slot = b.record["small"].setdefault(proto, {}).setdefault(tool.name, [])
            slot.append(dict(s.as_dict(), error=err))
            log("run %d %-5s %-34s %s%s" % (run_index + 1, proto, tool.name, report.seconds(s.wall),
                                           "  FAILED: " + err if err else ""))
            b.clean_out()


# ---------------------------------------------------------------------------
# Item 4: start-up and imports

def startup(b):
    n = b.args.startup_runs
    for label in STARTUP_PYTHONS:
        py = b.pythons.get(label)
        if not py:
            b.note("no Python %s found: its start-up row is skipped" % label)
            continue
        bare_cmd = [py, "-c", "pass"]
        pyz_cmd = b.sagedl(py) + ["--version"]
        for _ in range(2):   # warm the page cache
            measure.run(bare_cmd, env=b.env)
            measure.run(pyz_cmd, env=b.sagedl_env())
        pairs = []
        for i in range(n):
            # Alternate which goes first, so neither always follows the other.
            if i % 2:
                sp = measure.run(pyz_cmd, env=b.sagedl_env())
                sb = measure.run(bare_cmd, env=b.env)
            else:
                sb = measure.run(bare_cmd, env=b.env)
                sp = measure.run(pyz_cmd, env=b.sagedl_env())
            if not sp.ok:
                b.record["startup"][label] = {"error": sp.error()}
                break
            pairs.append((sb, sp))
        else:
            b.record["startup"][label] = {
                "bare_s": [round(x.wall, 5) for x, _ in pairs],
                "pyz_s": [round(y.wall, 5) for _, y in pairs],
                "bare_maxrss_kib": max(x.maxrss_kib for x, _ in pairs),
                "pyz_maxrss_kib": max(y.maxrss_kib for _, y in pairs),
            }
        r = b.record["startup"][label]
        if "error" in r:
            log("start-up %s: FAILED: %s" % (label, r["error"]))
        else:
            log("start-up %s: bare %s, sagedl --version %s" % (
                label, report.seconds(median(r["bare_s"])), report.seconds(median(r["pyz_s"]))))


def _imported(stderr):
    """Module names from -X importtime output."""
    names = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "imported package":
                names.append(name)
    return names


def importtime(b, small_url, small_sha):
    for label in IMPORTTIME_PYTHONS:
        py = b.pythons.get(label)
        if not py:
            continue
        d = b.fresh_out("imports")
        bare = measure.run([py, "-X", "importtime", "-c", "pass"], env=b.env)
        s = measure.run([py, "-X", "importtime"] + b.sagedl(py)[1:]
                        + [small_url, os.path.join(d, "f.tar.gz"), "--sha256", small_sha,
                           "-q", "--progress", "none"], env=b.sagedl_env(), cwd=d)
        if not s.ok:
            b.record["importtime"][label] = {"error": s.error()}
            log("importtime %s: FAILED: %s" % (label, s.error()))
            continue
        mods = _imported(s.stderr)
        base = set(_imported(bare.stderr))
        added = [m for m in mods if m not in base]
        # Top-level imports (no indentation) with their cumulative time.
        top = []
        for line in s.stderr.splitlines():
            m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\S.*)$", line)
            if m:
                top.append((int(m.group(2)), m.group(3).strip()))
        top.sort(reverse=True)
        b.record["importtime"][label] = {
            "watched": dict((w, w in mods) for w in WATCHED_MODULES),
            "modules": len(mods), "added_by_sagedl": added,
            "heaviest_top_level_us": top[:10],
        }
        log("importtime %s: %d modules beyond the bare interpreter's; %s" % (
            label, len(added), ", ".join("%s %s" % (w, "yes" if w in mods else "no")
                                         for w in WATCHED_MODULES)))
        b.clean_out()


HASH_SPEED = """
import hashlib, sys, time
try:
    clock = time.perf_counter
except AttributeError:
    clock = time.time
block = b"x" * (1 << 20)
view = memoryview(block)
h = hashlib.sha256()
h.update(view)
t = clock()
for _ in range(256):
    h.update(view)
sys.stdout.write("%.1f %s" % (256 * 1048576 / (clock() - t) / 1e6, getattr(hashlib.sha256, "__module__", "") or type(h).__module__))
"""


# The CPU cost of the worker's other job: os.write of a 1 MiB bytearray (the
# pipeline's buffer) into a file, 1 GiB in all.  PyPy copies every
# bytearray it is given into a new string first; CPython does not.
WRITE_COST = """
import os, sys
path = sys.argv[1]
buf = bytearray(os.urandom(1 << 20))
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
os.write(fd, buf)
os.lseek(fd, 0, 0)
t = os.times()
for _ in range(1024):
    os.write(fd, buf)
u = os.times()
os.close(fd)
os.unlink(path)
sys.stdout.write("%.3f %.3f" % (u[0] - t[0], u[1] - t[1]))
"""


def hash_speed(b):
    """In-process sha256 throughput of each interpreter (1 MiB updates): the
    ceiling of any download-and-verify loop on it."""
    speeds = {}
    for label in LARGE_PYTHONS:
        py = b.pythons.get(label)
        if not py:
            continue
        s = measure.run([py, "-c", HASH_SPEED], env=b.env)
        if s.ok:
            mbps, impl = s.stdout.split(None, 1) if " " in s.stdout else (s.stdout, "")
            speeds[label] = {"mb_s": float(mbps), "impl": impl.strip()}
    b.record["sha256_speed"] = speeds
    costs = {}
    for label in LARGE_PYTHONS:
        py = b.pythons.get(label)
        if not py:
            continue
        hostmem.warm_page_cache(b.out, 1 << 30)   # as before every measured run
        s = measure.run([py, "-c", WRITE_COST, os.path.join(b.out, "write-cost.bin")], env=b.env)
        if s.ok:
            user, sys_ = s.stdout.split()
            costs[label] = {"user_s_per_gib": float(user), "sys_s_per_gib": float(sys_)}
    b.record["write_cost"] = costs
    log("in-process os.write of 1 MiB bytearrays, CPU per GiB: %s" % ", ".join(
        "%s %.2f s user + %.2f s sys" % (k, v["user_s_per_gib"], v["sys_s_per_gib"])
        for k, v in sorted(costs.items())))
    log("in-process sha256: %s" % ", ".join("%s %.0f MB/s (%s)" % (k, v["mb_s"], v["impl"])
                                           for k, v in sorted(speeds.items())))


def rss_small(b, small_url, small_sha, runs=3):
    """Item 2's size check: peak RSS on a small file, per interpreter."""
    for label in LARGE_PYTHONS:
        py = b.pythons.get(label)
        if not py:
            continue
        vals = []
        for _ in range(runs):
            d = b.fresh_out("rss")
            s = measure.run(b.sagedl(py) + [small_url, os.path.join(d, "f.tar.gz"), "--sha256",
                                            small_sha, "-q", "--progress", "none"],
                            env=b.sagedl_env(), cwd=d)
            if s.ok:
                vals.append(s.maxrss_kib)
        bare = measure.run([py, "-c", "pass"], env=b.env)
        b.record["rss_small"][label] = {"sagedl_maxrss_kib": max(vals) if vals else None,
                                        "bare_maxrss_kib": bare.maxrss_kib}
    b.clean_out()


def machine(b):
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except IOError:
        pass
    try:
        ncpu = len(os.sched_getaffinity(0))
    except AttributeError:
        ncpu = os.cpu_count()
    fs = subprocess.run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", b.workdir],
                        stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    fs = " ".join(fs.split()) or "?"
    versions = {}
    for tool, args in (("curl", ["--version"]), ("wget", ["--version"]), ("aria2c", ["--version"])):
        if which(tool):
            out = subprocess.run([tool] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 universal_newlines=True).stdout
            versions[tool] = " ".join(out.splitlines()[0].split()[:3]) if out else "?"
    versions["nginx"] = b.nginx.version() if b.nginx else "?"
    for label, py in sorted(b.pythons.items()):
        if py:
            versions["python " + label] = python_version(py)
    return {"nproc": ncpu, "cpu": cpu, "kernel": platform.release(),
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            # Other work on the machine skews every figure: say how busy it was.
            "loadavg_1min_start_end": [round(LOAD_AT_START, 2), round(os.getloadavg()[0], 2)],
            "workdir_fs": fs, "tools": versions}


# ---------------------------------------------------------------------------

def publish(record, json_path):
    """Summarize a record, print the Markdown, and keep both beside each other."""
    rows, details = report.summarize(record)
    md = report.render(record, rows, details)
    record["summary"], record["details"] = rows, details
    report.save_json(json_path, record)
    md_path = json_path[:-len(".json")] + ".md"
    with open(md_path, "w") as f:
        f.write(md + "\n")
    print(md)
    print("\n(%s; written to %s and %s)" % (
        "%.0f s" % record["elapsed_s"] if "elapsed_s" in record else "?",
        os.path.relpath(json_path, REPO), os.path.relpath(md_path, REPO)))


def parse_args(argv):
    p = argparse.ArgumentParser(description="sagedl vs curl/wget/aria2c on loopback nginx.",
                                epilog="See the docstring of bench/run.py for what is measured.")
    p.add_argument("--size-mib", type=int, help="large file size (default 1024; --quick 64)")
    p.add_argument("--runs", type=int, help="runs of items 1, 3, 5 (default 5; --quick 2)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 64 MiB, 2 runs, 60 small files, 8 start-up pairs "
                        "(explicit options still win)")
    p.add_argument("--small-count", type=int, help="bulk: number of files (default 300; --quick 60)")
    p.add_argument("--small-kib", type=int, default=200, help="bulk: file size in KiB (200)")
    p.add_argument("--jobs", type=int, default=4, help="bulk parallelism for sagedl and aria2c (4)")
    p.add_argument("--startup-runs", type=int, help="start-up pairs per Python (default 30; --quick 8)")
    p.add_argument("--only", default="1,2,3,4,5", help="items to run, e.g. 1,5 (2 needs 1)")
    p.add_argument("--pyz", help="measure this pyz (default dist/sagedl.pyz, built if missing "
                                 "or older than the sources)")
    p.add_argument("--workdir", help="where data and outputs go (default: a new dir under $TMPDIR)")
    p.add_argument("--keep", action="store_true", help="keep the work dir (reused data saves time)")
    p.add_argument("--no-install", action="store_true", help="never run apt-get")
    p.add_argument("--seed", type=int, default=1, help="seed of the per-run shuffle")
    p.add_argument("--report", metavar="JSON",
                   help="measure nothing: print the tables of a saved bench/results/*.json")
    a = p.parse_args(argv)
    defaults = (("size_mib", 1024, 64), ("runs", 5, 2), ("small_count", 300, 60),
                ("startup_runs", 30, 8))
    for name, normal, quick in defaults:
        if getattr(a, name) is None:
            setattr(a, name, quick if a.quick else normal)
    a.items = set(int(x) for x in a.only.split(",") if x.strip())
    return a


def detect_features(b):
    py = b.pythons.get("3.11") or sys.executable
    helps = {}
    for key, extra in (("main", ["--help"]), ("download", ["download", "--help"])):
        s = measure.run(b.sagedl(py) + extra, env=b.sagedl_env())
        helps[key] = s.stdout + s.stderr
    b.features = {
        "jobs": "--jobs" in helps["download"],
        "download_transport": "--transport" in helps["download"],
        "fetch_transport": "--transport" in helps["main"],
    }
    log("sagedl features: %s" % ", ".join("%s=%s" % kv for kv in sorted(b.features.items())))


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.report:
        with open(args.report) as f:
            publish(json.load(f), os.path.abspath(args.report))
        return 0
    ensure_tools(not args.no_install)
    workdir = os.path.abspath(args.workdir) if args.workdir else tempfile.mkdtemp(prefix="sagedl-bench-")
    for sub in ("www", "out", "tls", "nginx"):
        d = os.path.join(workdir, sub)
        if not os.path.isdir(d):
            os.makedirs(d)
    b = Bench(args, workdir)
    commit = git_commit()
    b.pyz, b.pyz_desc = ensure_pyz(args, workdir)
    b.nginx = None
    log("work dir %s; interpreters: %s" % (workdir, ", ".join(
        "%s=%s" % kv for kv in sorted(b.pythons.items()))))
    try:
        b.ca, cert, key = make_certificates(os.path.join(workdir, "tls"))
        make_large(b)
        tree, entries = make_small(b)
        b.nginx = Nginx(b.www, os.path.join(workdir, "nginx"), cert, key).start()
        log("nginx on %s and %s" % (b.nginx.base("http"), b.nginx.base("https")))
        detect_features(b)
        log(hostmem.state())
        reported_at_start = hostmem.reported_kib()
        rng = random.Random(args.seed)
        ltools = large_tools(b) if 1 in args.items else []
        stools = small_tools(b, tree, entries, workdir) if 3 in args.items else []
        small_url = "%s/spkg/upstream/%s/%s" % (b.nginx.base("http"), entries[0][0], entries[0][1])
        if 4 in args.items:
            startup(b)
            importtime(b, small_url, entries[0][2])
        if 2 in args.items:
            rss_small(b, small_url, entries[0][2])
        if 1 in args.items:
            hash_speed(b)
        for r in range(args.runs):
            if ltools:
                large_run(b, ltools, r, rng)
            if 5 in args.items:
                if not ltools:   # item 5 pairs with item 1's full download
                    t = Tool("sagedl (3.11)", _sagedl_fetch(b, b.pythons["3.11"], None), kind="sagedl")
                    s, err = run_tool(b, t, "http", "%s/big.bin" % b.nginx.base("http"),
                                      os.path.join(b.fresh_out("large"), "big.bin"))
                    b.record["large"].setdefault("http", {}).setdefault(t.name, []).append(
                        dict(s.as_dict(), error=err))
                    b.clean_out()
                resume_run(b, r)
            if stools:
                small_run(b, stools, entries, r, rng)
        mach = machine(b)
        mach["commit"] = commit
        mach["host_memory"] = hostmem.state()
        reported_at_end = hostmem.reported_kib()
        if reported_at_start is not None and reported_at_end is not None:
            mach["reported_to_host_mib"] = (reported_at_end - reported_at_start) >> 10
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        record = {"config": dict((k, v) for k, v in vars(args).items()
                                 if k not in ("items", "report")),
                  "machine": mach, "sagedl": b.pyz_desc, "features": b.features,
                  "sha256": b.sha256, "results": b.record, "notes": b.notes,
                  "elapsed_s": round(time.monotonic() - T0, 1)}
        # The raw figures first: a bug in the summary must not cost a 10-minute run
        # (python3 bench/run.py --report FILE re-renders a saved run).
        path = os.path.join(HERE, "results", "bench-%s.json" % stamp)
        report.save_json(path, record)
        publish(record, path)
        return 0
    finally:
        if b.nginx:
            b.nginx.stop()
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
