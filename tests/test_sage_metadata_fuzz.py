"""A seeded differential fuzzer of package metadata: the drop-in against Sage's own code.

Each case (tests/metadata_fuzz.py) writes one package's checksums.ini and
package-version.txt into a small Sage tree that holds the real
build/sage_bootstrap of PyPI's passagemath-conf sdist (the sage_bootstrap
of current Sage), and then asks both sides the same questions:

* ``tarball fuzz``, ``name FILE`` (three guesses), ``list :standard:``:
  the same exit code and stdout, byte for byte;
* ``properties --format=shell fuzz``: the same, wherever sage_bootstrap
  succeeds (where it fails, sagedl may say why instead of a traceback);
* ``download fuzz`` (and ``download :standard:`` every fifth case) from a
  loopback mirror that serves the case's payload, or flips a byte of it, or
  lacks it: the same exit code as sage_bootstrap's, with the drop-in's
  exit codes (SAGEDL_EXIT_CODES=sage, what contrib/sage's wrappers set),
  and the same stdout when both succeed.

Some differences are intended, and counted apart: sagedl refuses to
download what it could not verify -- a record without sha256 (Sage falls
back to sha1, or to no check at all), a file name that is no plain name
('sub/f.tgz', '..'), a wheel section naming another file than its
tarball= (Sage downloads the tarball= one); and it downloads what Sage
fails on for no good reason -- a name Sage puts unescaped into a URL (a
space), a file whose sha256 verified but has no sha1 beside it (Sage 10.7
demands one).  Every other difference fails the test, with the case that
shows it.

All the cases run against the sage_bootstrap of current Sage
(passagemath-conf's), half as many others against Sage 10.7's (sage-conf's,
an older release: see sagebootstrap.Dialect).

Both sides run in fork servers (tests/forkserver.py): one process imports
sage_bootstrap once, another sagedl from the built pyz, and each case's
commands run in one forked child per side, since an interpreter start per
command would cost minutes.  The cases are split over two trees, one per
core.  SAGEDL_FUZZ_CASES (default 500) and SAGEDL_FUZZ_SEED (default
fixed, so a failure replays) change the run.
"""

import os
import random
import re
import shutil
import sys
import threading

import pytest

from faultserver import FaultServer
from forkserver import SAGE_BOOTSTRAP, SAGEDL, ForkServer
from metadata_fuzz import PACKAGE, guesses, make_case
from pyz import pyz_path
from sagetree import require_tree

CASES = int(os.environ.get("SAGEDL_FUZZ_CASES", "500"))
SEED = int(os.environ.get("SAGEDL_FUZZ_SEED", "20261203"))
WORKERS = 2
# A character a URL path must escape: sage_bootstrap appends a file name to
# a mirror URL as it is (a space, then, makes the URL invalid); sagedl
# quotes it and fetches the file.
_URL_UNSAFE = re.compile(r"[^A-Za-z0-9._~!$&'()*+,;=:@/-]")
# Refusals sagedl makes on purpose (its stderr says which); see the docstring.
INTENDED = ("no sha256=", "unsafe tarball name", "does not match its section")


def system_python():
    for path in ("/usr/bin/python3", "/bin/python3", "/usr/local/bin/python3"):
        if os.access(path, os.X_OK):
            return path
    pytest.skip("no system python3 to run sage_bootstrap")


def write(path, text):
    with open(path, "w", newline="") as f:
        f.write(text)


class Side(object):
    """One tree, its mirror, and a fork server per program."""

    def __init__(self, base, source):
        self.root = os.path.join(base, "sage")
        self.tmp = os.path.join(base, "tmp")
        self.upstream = os.path.join(self.root, "upstream")
        pkgs = os.path.join(self.root, "build", "pkgs")
        os.makedirs(self.tmp)
        shutil.copytree(os.path.join(source, "build", "sage_bootstrap"),
                        os.path.join(self.root, "build", "sage_bootstrap"))
        write(os.path.join(self.root, "configure.ac"), "")   # Sage 10.7's env.py wants it
        self.alpha = b"alpha tarball\n" * 50
        import hashlib
        for name, ptype, ini, version in [
                (PACKAGE, "standard", None, None),
                ("alpha", "standard", "tarball=alpha-VERSION.tar.gz\nsha256=%s\nsha1=%s\n"
                 % (hashlib.sha256(self.alpha).hexdigest(), hashlib.sha1(self.alpha).hexdigest()),
                 "1.0.p1"),
                ("beta", "optional", "[beta-2.0-py3-none-any.whl]\n"
                 "tarball=beta-VERSION-py3-none-any.whl\nsha256=%s\n" % ("ab" * 32), "2.0"),
                ("nochk", "standard", None, "3.0")]:
            d = os.path.join(pkgs, name)
            os.makedirs(d)
            write(os.path.join(d, "type"), ptype + "\n")
            if ini is not None:
                write(os.path.join(d, "checksums.ini"), ini)
            if version is not None:
                write(os.path.join(d, "package-version.txt"), version + "\n")
        self.mirror = FaultServer({})
        self.mirror.__enter__()
        os.makedirs(os.path.join(self.root, ".upstream.d"))
        common = {"PATH": "/usr/bin:/bin", "HOME": self.tmp, "SAGE_ROOT": self.root,
                  "SAGE_DISTFILES": self.upstream, "LC_ALL": "C.UTF-8"}
        # Sage's download runs curl when its shell finds one, else urllib:
        # urllib here, in-process (two processes fewer per download).
        nothing = os.path.join(base, "empty-path")
        os.makedirs(nothing)
        self.sage = ForkServer(SAGE_BOOTSTRAP, system_python(),
                               dict(common, PATH=nothing,
                                    PYTHONPATH=os.path.join(self.root, "build"),
                                    PYTHONIOENCODING="utf-8", PYTHONDONTWRITEBYTECODE="1"),
                               self.tmp)
        self.sagedl = ForkServer(SAGEDL, sys.executable,
                                 dict(common, FORKSERVER_PYZ=pyz_path(), SAGEDL_EXIT_CODES="sage",
                                      XDG_CACHE_HOME=os.path.join(self.tmp, "cache")),
                                 self.tmp)

    def close(self):
        self.sage.close()
        self.sagedl.close()
        self.mirror.__exit__(None, None, None)

    def prepare(self, case):
        d = os.path.join(self.root, "build", "pkgs", PACKAGE)
        for name, text in (("checksums.ini", case.checksums_ini),
                           ("package-version.txt", case.version_text)):
            path = os.path.join(d, name)
            if os.path.exists(path):
                os.unlink(path)
            if text is not None:
                write(path, text)
        faults = "corrupt" if case.mirror == "corrupt" else "ok"
        base = "%s/%s/" % (self.mirror.url, faults)
        write(os.path.join(self.root, ".upstream.d", "10-loopback"),
              base + "spkg/upstream/${SPKG}/\n")
        self.mirror_base = base
        with self.mirror._cond:
            self.mirror._files.clear()
        self.mirror.add("alpha-1.0.tar.gz", self.alpha)
        if case.mirror != "missing":
            from sagedl.sage.bootstrap import SagePackageError, Tree
            try:
                names = Tree(self.root).package(PACKAGE).tarball_filenames()
            except (SagePackageError, EnvironmentError, ValueError):
                names = []
            for name in names:
                self.mirror.add(name.rpartition("/")[2], case.payload)

    def run(self, server, commands, tag):
        shutil.rmtree(self.upstream, ignore_errors=True)
        os.makedirs(self.upstream)
        batch = []
        for i, (argv, env) in enumerate(commands):
            out = os.path.join(self.tmp, "%s-%d.out" % (tag, i))
            batch.append({"argv": argv, "env": env, "out": out, "err": out[:-3] + "err"})
        codes = server.run(batch)
        results = []
        for command, code in zip(batch, codes):
            with open(command["out"], "rb") as f:
                out = f.read()
            with open(command["err"], "rb") as f:
                err = f.read().decode("utf-8", "replace")
            results.append((code, out, err))
        return results


def commands(case, side):
    forms = [["tarball", PACKAGE]] + [["name", n] for n in guesses(case)[-2:]]
    forms += [["properties", "--format=shell", PACKAGE], ["download", PACKAGE]]
    if case.index % 5 == 0:
        forms += [["list", ":standard:"], ["download", ":standard:"]]
    env = {"SAGEDL_MIRRORS": side.mirror_base}
    return [(f, env) for f in forms]


def differences(case, forms, theirs, ours, old_sage):
    """([unexpected differences], [intended ones]) between the two sides' results."""
    bad, intended = [], []
    for (argv, _), (tc, tout, terr), (oc, oout, oerr) in zip(forms, theirs, ours):
        if "Traceback" in oerr:
            bad.append((argv, "sagedl printed a traceback", oerr[-600:]))
            continue
        if argv[0] == "properties" and tc != 0:
            continue
        if argv[0] == "download":
            if tc == oc and (tc != 0 or tout == oout):
                continue
            if oc == 1 and tc == 0 and any(w in oerr for w in INTENDED):
                intended.append((argv, oerr.strip().splitlines()[-1:]))
                continue
            if oc == 0 and tc == 1 and "checksum does not match" in terr and old_sage:
                intended.append((argv, "Sage 10.7 demands a sha1 beside the sha256 that "
                                       "verified"))
                continue
            names = theirs[0][1].decode("utf-8", "replace").splitlines()
            if oc == 0 and tc == 1 and any(_URL_UNSAFE.search(n) for n in names):
                intended.append((argv, "sage_bootstrap put %r in a URL unescaped" % names))
                continue
        elif (tc, tout) == (oc, oout):
            continue
        bad.append((argv, (tc, tout[:300], terr[-400:]), (oc, oout[:300], oerr[-400:])))
    return bad, intended


@pytest.mark.timeout(600)
@pytest.mark.parametrize("tree, share", [("passagemath-conf", 1), ("sage-conf", 2)])
def test_metadata_fuzz_matches_sage_bootstrap(tmp_path, tree, share):
    """All the cases against current Sage's sage_bootstrap (passagemath's),
    a different half of them against Sage 10.7's older one."""
    source = require_tree(tree)
    rnd = random.Random(SEED + share)
    cases = [make_case(rnd, i) for i in range(CASES // share)]
    sides = []
    found = {"bad": [], "intended": [], "compared": 0}
    lock = threading.Lock()

    def work(side, mine):
        try:
            check(side, mine)
        except BaseException as e:      # a worker's failure fails the test
            with lock:
                found["bad"].append((None, "worker failed: %r" % (e,)))

    def check(side, mine):
        for case in mine:
            side.prepare(case)
            forms = commands(case, side)
            theirs = side.run(side.sage, forms, "sage")
            ours = side.run(side.sagedl, forms, "sagedl")
            bad, intended = differences(case, forms, theirs, ours, tree == "sage-conf")
            with lock:
                found["compared"] += len(forms)
                found["bad"] += [(case, b) for b in bad]
                found["intended"] += [(case, i) for i in intended]

    try:
        for w in range(WORKERS):
            sides.append(Side(str(tmp_path / ("w%d" % w)), source))
        threads = [threading.Thread(target=work, args=(side, cases[w::WORKERS]))
                   for w, side in enumerate(sides)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for side in sides:
            side.close()
    sys.stdout.write("\nmetadata fuzz on %s, seed %d: %d cases, %d commands compared, %d "
                     "differences, %d intended refusals\n"
                     % (tree, SEED + share, len(cases), found["compared"], len(found["bad"]),
                        len(found["intended"])))
    assert found["compared"] >= 5 * len(cases) and len(cases) * share >= min(CASES, 500)
    shown = "\n\n".join("%r\n  %r" % (c, b) for c, b in found["bad"][:6])
    assert not found["bad"], "%d differences (seed %d):\n%s" % (len(found["bad"]), SEED, shown)
