"""Field conditions: how long each degraded case (no network, DNS that never
answers, dead mirrors) takes, for bench/README.md.

Run it inside a network namespace that holds only loopback -- it refuses to
run anywhere else, since several rows use the shipped mirror list.  The real
Sage trees come from PyPI, so fetch them into the test cache first:

    python3 tests/sagetree.py                                # once, online
    tools/offline --dns-hole python3 bench/field.py          # DNS never answers
    tools/offline python3 bench/field.py                     # no network at all

Each row runs the built pyz (default options unless the row says otherwise)
once and prints: seconds (wall clock), exit code, stderr lines, and the last
stderr line.  The dead mirrors are on loopback: a blackhole (a listener whose
accept queue is full, so SYNs are dropped) and a mute server (connects,
never answers); the good mirror is tests/faultserver.py.  The Sage tree for
the ":all:" row is passagemath-conf's (650 packages, tests/sagetree.py); row
2b uses sage-conf's, whose .upstream.d names GitHub release pages and, as
upstream Sage's does, the live mirror_list; the others use a small generated
tree.
"""

from __future__ import print_function

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests"))

from faultserver import FaultServer  # noqa: E402
from netns import Blackhole, Endless, Mute  # noqa: E402
import sagetree  # noqa: E402


def only_loopback():
    import socket
    return [name for _, name in socket.if_nameindex()] == ["lo"]   # this namespace's own


def make_tree(root, count, size=200000, upstream=None):
    files = {}
    pkgs = os.path.join(root, "build", "pkgs")
    for i in range(count):
        pkg = "pkg%02d" % i
        data = hashlib.sha256(b"%d" % i).digest() * (size // 32)
        name = "%s-1.0.tar.gz" % pkg
        d = os.path.join(pkgs, pkg)
        os.makedirs(d)
        lines = ["tarball=%s-VERSION.tar.gz" % pkg, "sha256=%s" % hashlib.sha256(data).hexdigest()]
        if upstream:
            lines.append("upstream_url=%s%s-VERSION.tar.gz" % (upstream, pkg))
        with open(os.path.join(d, "checksums.ini"), "w") as f:
            f.write("\n".join(lines) + "\n")
        for fn, text in (("package-version.txt", "1.0"), ("type", "standard")):
            with open(os.path.join(d, fn), "w") as f:
                f.write(text + "\n")
        files[name] = data
    os.makedirs(os.path.join(root, "upstream"))
    return files


class Runner(object):
    def __init__(self, pyz, python, work):
        self.pyz = pyz
        self.python = python
        self.work = work
        self.n = 0

    def env(self, **extra):
        """A fresh cache per row (no row profits from another's probe or
        health record), except the pyz's compiled modules, as on any
        machine that has run sagedl before."""
        self.n += 1
        cache = os.path.join(self.work, "cache")
        for name in os.listdir(os.path.join(cache, "sagedl")) if os.path.isdir(
                os.path.join(cache, "sagedl")) else []:
            if name != "bytecode":
                path = os.path.join(cache, "sagedl", name)
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8",
               "HOME": os.path.join(self.work, "home%d" % self.n),
               "XDG_CACHE_HOME": cache,
               "XDG_CONFIG_HOME": os.path.join(self.work, "config%d" % self.n)}
        env.update(extra)
        return env

    def run(self, label, argv, env, cwd=None, show=False):
        start = time.time()
        p = subprocess.run([self.python, self.pyz] + [str(a) for a in argv], env=env, cwd=cwd,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=1800)
        seconds = time.time() - start
        err = [l for l in p.stderr.decode("utf-8", "replace").splitlines() if l.strip()]
        print("| %s | %.2f s | %d | %d | %s |" % (label, seconds, p.returncode, len(err),
                                                  (err[-1] if err else "")[:160].replace("|", "/")),
              flush=True)
        if show:
            for line in err:
                print("    " + line[:300])
        return p


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pyz", default=os.path.join(REPO, "dist", "sagedl.pyz"))
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--sage-pkgs", help="a Sage tree for the :all: row "
                    "(default: passagemath-conf's from the test cache)")
    ap.add_argument("--sage-tree", help="a Sage tree for row 2b "
                    "(default: sage-conf's from the test cache)")
    ap.add_argument("--only", default="", help="comma-separated row numbers")
    a = ap.parse_args()
    if not only_loopback():
        sys.exit("bench/field.py: run me inside tools/offline (only lo may exist)")
    try:
        a.sage_pkgs = a.sage_pkgs or sagetree.pypi_tree("passagemath-conf")
        a.sage_tree = a.sage_tree or sagetree.pypi_tree("sage-conf")
    except sagetree.TreeError as e:
        sys.exit("bench/field.py: %s; run python3 tests/sagetree.py online first" % e)
    rows = set(int(x) for x in a.only.split(",") if x)
    work = tempfile.mkdtemp(prefix="sagedl-field-")
    r = Runner(a.pyz, a.python, work)
    subprocess.run([a.python, a.pyz, "--help"], env=r.env(), stdout=subprocess.PIPE)  # compiles
    print("| row | time | exit | stderr lines | last stderr line |")
    print("|---|---|---|---|---|")
    try:
        tree = os.path.join(work, "sage")
        files = make_tree(tree, 12)
        names = sorted(files)
        dist = os.path.join(tree, "upstream")
        if not rows or 1 in rows:
            with open(os.path.join(dist, names[0]), "wb") as f:
                f.write(files[names[0]])
            start = time.time()
            subprocess.run([a.python, "-c", "pass"])
            print("| 0 `python -c pass`, for scale | %.2f s | 0 | 0 | |" % (time.time() - start))
            r.run("1 cached, verified", [names[0]], r.env(SAGE_ROOT=tree))
            os.unlink(os.path.join(dist, names[0]))
        if not rows or 2 in rows:
            r.run("2 not cached, default list", [names[0]], r.env(SAGE_ROOT=tree), show=True)
        if not rows or 2 in rows:
            # A real Sage tree whose .upstream.d names github release pages
            # and (as upstream Sage's does) the live mirror_list.
            real = os.path.join(work, "sage-tree")
            shutil.copytree(a.sage_tree, real, symlinks=True)
            for dirpath, dirnames, filenames in os.walk(real):
                os.chmod(dirpath, 0o755)
            d2 = os.path.join(work, "d2")
            os.makedirs(d2)
            r.run("2b not cached, real Sage tree (.upstream.d: github, mirror_list)", ["ntl"],
                  r.env(SAGE_ROOT=real, SAGE_DISTFILES=d2), show=True)
        if not rows or 3 in rows:
            d3 = os.path.join(work, "d3")
            os.makedirs(d3)
            r.run("3 download :all: --on-error warn", ["download", ":all:", "--on-error", "warn"],
                  r.env(SAGE_ROOT=os.path.abspath(a.sage_pkgs), SAGE_DISTFILES=d3), show=True)
        if not rows or 4 in rows:
            dead = [Blackhole(), Blackhole(), Mute(), Mute()]
            mfile = os.path.join(work, "mirrors.toml")
            with open(mfile, "w") as f:
                f.write("".join('[[mirror]]\nurl = "%s"\nname = "dead%d"\n' % (d.url, i)
                                for i, d in enumerate(dead)))
            r.run("4 2 blackholed + 2 mute mirrors", [names[0], "--mirrors-file", mfile],
                  r.env(SAGE_ROOT=tree), show=True)
            for d in dead:
                d.close()
        if not rows or 5 in rows:
            hole = Blackhole()
            with FaultServer(files) as good:
                r.run("5 download -j4 12 files, [blackhole, good]",
                      ["download", ":all:", "-j4", "--mirror", hole.url, "--mirror", good.url + "/ok/"],
                      r.env(SAGE_ROOT=tree))
            hole.close()
            for n in names:
                os.unlink(os.path.join(dist, n))
        if not rows or 6 in rows:
            with FaultServer(files) as up:
                t6 = os.path.join(work, "sage6")
                make_tree(t6, 12, upstream=up.url + "/ok/")
                r.run("6a --upstream-only", [names[0], "--upstream-only"], r.env(SAGE_ROOT=t6))
            d6 = os.path.join(t6, "upstream")
            for n in names:
                with open(os.path.join(d6, n), "wb") as f:
                    f.write(files[n])
            site = os.path.join(work, "site")
            r.run("6b make-mirror, complete distfiles", ["make-mirror", site], r.env(SAGE_ROOT=t6))
            r.run("6c verify, complete distfiles", ["verify", site], r.env(SAGE_ROOT=t6))
        if not rows or 7 in rows:
            endless = Endless()
            r.run("7 endless body, no size, --max-size 64M", [names[0], "--mirror", endless.url,
                                                               "--max-size", "64M"],
                  r.env(SAGE_ROOT=tree))
            left = os.listdir(dist)
            r.run("7 endless body, no size, default --max-size", [names[0], "--mirror", endless.url],
                  r.env(SAGE_ROOT=tree))
            endless.close()
            print("  files left in the distfiles after row 7: %s" % (sorted(left + os.listdir(dist))
                                                                    or "none"))
        if not rows or 8 in rows:
            hole = Blackhole()
            with FaultServer({}) as good:
                p = r.run("8 --print-fastest-mirror --mirror A(blackhole) --mirror B(good)",
                          ["--print-fastest-mirror", "--mirror", hole.url, "--mirror",
                           good.url + "/ok/"], r.env(SAGE_ROOT=tree))
                print("  printed %s (B is %s/ok/)" % (p.stdout.decode().strip(), good.url))
            hole.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
