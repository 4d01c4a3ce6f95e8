"""Differential test: sagedl's sage-package subcommands against sage_bootstrap
itself, over every package of two real Sage trees (the sdists sage-conf 10.7,
448 packages, and passagemath-conf 10.8.13.post1, 650; tests/sagetree.py).

Compared: the exit code and the exact stdout bytes of ``properties`` (shell,
plain and any other --format), ``list`` (every selector, --has-file,
--no-file, --tree, --exclude, --include/--exclude-dependencies, names and
PURLs), ``tarball`` and ``name``, on five trees:

* ``sage-conf``, ``passagemath-conf``: a copy with Sage's symlinks as real
  symlinks, as in a git checkout (gfortran/checksums.ini ->
  ../gcc/checksums.ini, pplpy_doc, gap_packages and passagemath's gap_pkg_*);
* ``sage-conf-stand-ins``, ``passagemath-conf-stand-ins``: the same with each
  symlink a file holding its target, as git writes it with
  core.symlinks=false (both sides read those files as they are);
* ``quirks``: tests/test_sage_package.py's small tree of corner cases.

Sage's side is Sage's own code under a clean python3 with PYTHONPATH at the
tree's build/ directory and PYTHONIOENCODING=utf-8 (as sage-bootstrap-python
sets it).  The forms that cover every package in one call (``:all:``, the
list forms) run the real build/bin/sage-package.  The many one-package
queries go to a small server that imports sage_bootstrap.cmdline once and
forks a child per query, which runs Sage's ``run()`` on that argv with its
stdout/stderr on files; a sample of those queries is also run through the
real script to prove the server answers byte for byte as it does.

sagedl's side is always a real invocation of the built pyz, one process
per query, in the C locale, under each interpreter: the full forms, and a
sample of the one-package queries (every 40th package plus the odd ones;
fewer on 2.7, 3.6, 3.13 and PyPy3 than on the interpreter running the
tests), since each query is one interpreter start on both sides; ``tarball``,
which has no whole-tree form, runs for every package of both symlinked trees
on every run.
SAGEDL_FULL_DIFF=1 runs the one-package queries for every package and
``name`` for every tarball, on every interpreter (many minutes).
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from pyz import interpreter_params, pyz_path, require_interpreter
from quirktree import make_quirk_tree
from sagetree import TREES, copy_tree, require_tree, symlink_stand_ins, tree_symlinks

TIMEOUT = 120          # per process: a safety net, never a measure of speed
FULL = os.environ.get("SAGEDL_FULL_DIFF") == "1"
WORKERS = 2
# pytest-timeout's deadline for the tests whose size SAGEDL_FULL_DIFF changes.
SIZED = pytest.mark.timeout(4 * 3600 if FULL else 300)
SAMPLE_EVERY = 40
# Packages whose metadata is unusual in the real trees: stand-ins or real
# symlinks (checksums.ini, package-version.txt), wheels, a pip package, no
# type file, a PURL from version_requirements.txt.
ODD_PACKAGES = ("gap_pkg_float", "pplpy_doc", "gfortran", "liblzma", "rpds_py", "cylp",
                "palettable", "_python3.12", "cython", "sage_conf")

REFERENCE_SERVER = r'''
"""Answer sage-package queries with Sage's own command line, one fork per query."""
import json, os, sys, traceback
from sage_bootstrap.cmdline import run
reply = os.fdopen(int(sys.argv[1]), "w")   # answers: one exit code per line
for line in sys.stdin:
    query = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for fd, name in ((1, "out"), (2, "err")):
                f = os.open(query[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                os.dup2(f, fd)
                os.close(f)
            sys.argv = ["sage-package"] + query["argv"]
            try:
                run()
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:
                traceback.print_exc()
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    reply.write(json.dumps(os.WEXITSTATUS(status) if os.WIFEXITED(status) else -1) + "\n")
    reply.flush()
'''


def clean_python3():
    """The system python3, found on a PATH without pyenv shims or venvs."""
    for d in ("/usr/bin", "/bin", "/usr/local/bin"):
        path = os.path.join(d, "python3")
        if os.access(path, os.X_OK):
            return path
    pytest.skip("no system python3 to run sage_bootstrap")


def sage_env(root, tmp):
    return {"PATH": os.pathsep.join([os.path.join(root, "build", "bin"), "/usr/bin", "/bin"]),
            "HOME": tmp, "SAGE_ROOT": root, "SAGE_DISTFILES": os.path.join(tmp, "upstream"),
            "PYTHONPATH": os.path.join(root, "build"), "PYTHONIOENCODING": "utf-8",
            "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8"}


class Reference(object):
    """sage_bootstrap's answers for one tree: (exit code, stdout bytes)."""

    def __init__(self, root, tmp):
        self.root = root
        self.tmp = tmp
        self.env = sage_env(root, tmp)
        self.lock = threading.Lock()
        self.count = 0
        rfd, wfd = os.pipe()
        self.server = subprocess.Popen([clean_python3(), "-c", REFERENCE_SERVER, str(wfd)],
                                       stdin=subprocess.PIPE, pass_fds=(wfd,), env=self.env,
                                       cwd=tmp, stderr=subprocess.PIPE)
        os.close(wfd)
        self.replies = os.fdopen(rfd)
        self.cache = {}

    def close(self):
        self.server.stdin.close()
        self.server.wait(timeout=TIMEOUT)

    def forked(self, argv):
        """Sage's run() on argv in a forked child of the server."""
        key = tuple(argv)
        with self.lock:
            if key in self.cache:
                return self.cache[key]
            self.count += 1
            out = os.path.join(self.tmp, "out")
            err = os.path.join(self.tmp, "err")
            self.server.stdin.write((json.dumps({"argv": list(argv), "out": out, "err": err})
                                     + "\n").encode())
            self.server.stdin.flush()
            line = _readline(self.replies, TIMEOUT)
            if not line:
                raise AssertionError("the sage_bootstrap server died: %r"
                                     % self.server.stderr.read())
            with open(out, "rb") as f:
                result = (json.loads(line), f.read())
            self.cache[key] = result
            return result

    def real(self, argv):
        """The real build/bin/sage-package (through sage-bootstrap-python)."""
        key = ("real",) + tuple(argv)
        with self.lock:
            if key in self.cache:
                return self.cache[key]
        p = subprocess.run([os.path.join(self.root, "build", "bin", "sage-package")] + list(argv),
                           env=self.env, cwd=self.tmp, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT)
        with self.lock:
            self.cache[key] = (p.returncode, p.stdout)
        return (p.returncode, p.stdout)


def _readline(f, timeout):
    """One line from f, or '' if nothing comes within timeout seconds."""
    import select
    ready, _, _ = select.select([f], [], [], timeout)
    return f.readline() if ready else ""


def sagedl(python, root, tmp, argv):
    """A real run of the built pyz: (exit code, stdout bytes)."""
    env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "XDG_CACHE_HOME": os.path.join(tmp, "cache"),
           "SAGE_ROOT": root}                                  # no LANG: the C locale
    p = subprocess.run([python, pyz_path()] + list(argv), env=env, cwd=tmp,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
    assert b"Traceback" not in p.stderr, (argv, p.stderr)
    return (p.returncode, p.stdout)


# ---------------------------------------------------------------------------
# Trees

class TreeCase(object):
    def __init__(self, label, root, tmp):
        self.label = label
        self.root = root
        self.tmp = tmp
        self.reference = Reference(root, tmp)
        self.packages = sorted(os.listdir(os.path.join(root, "build", "pkgs")))


REAL_LABELS = [name + form for name in TREES for form in ("", "-stand-ins")]
LABELS = REAL_LABELS + ["quirks"]


@pytest.fixture(scope="module")
def trees():
    sources = dict((name, require_tree(name)) for name in TREES)
    source = sources["passagemath-conf"]
    base = tempfile.mkdtemp(prefix="sagedl-diff-")
    cases = {}
    try:
        for name in TREES:
            linked = copy_tree(os.path.join(base, name, "sage"), sources[name])
            # Each form is what the test says it is: real symlinks, or none
            # and the text stand-ins git writes without core.symlinks.
            assert len(tree_symlinks(linked)) > 8 and not symlink_stand_ins(linked)
            cases[name] = TreeCase(name, linked, _mkdir(base, name, "tmp"))
            label = name + "-stand-ins"
            flat = copy_tree(os.path.join(base, label, "sage"), sources[name], stand_ins=True)
            assert len(symlink_stand_ins(flat)) > 8 and not tree_symlinks(flat)
            cases[label] = TreeCase(label, flat, _mkdir(base, label, "tmp"))
        quirks = os.path.join(base, "quirks", "sage")
        import pathlib
        make_quirk_tree(pathlib.Path(quirks))
        # Sage's code runs from a tree's build/; give the quirk tree a copy.
        shutil.copytree(os.path.join(source, "build", "sage_bootstrap"),
                        os.path.join(quirks, "build", "sage_bootstrap"))
        os.makedirs(os.path.join(quirks, "build", "bin"))
        for tool in ("sage-package", "sage-bootstrap-python"):
            shutil.copy(os.path.join(source, "build", "bin", tool),
                        os.path.join(quirks, "build", "bin", tool))
        cases["quirks"] = TreeCase("quirks", quirks, _mkdir(base, "quirks", "tmp"))
        yield cases
    finally:
        for case in cases.values():
            case.reference.close()
        shutil.rmtree(base, ignore_errors=True)


def _mkdir(*parts):
    path = os.path.join(*parts)
    os.makedirs(path)
    return path


# ---------------------------------------------------------------------------
# The queries

FULL_FORMS = [
    ["properties", "--format=shell", ":all:"],
    ["properties", ":all:"],
    ["properties", "--format=shell", ":standard:"],
    ["properties", "--format=json", ":optional:", ":experimental:"],
    ["properties", "--format=shell", "pkg:pypi/sphinx", "pypi/cython", "gap", "pari"],
    ["list"],
    ["list", ":all:"],
    ["list", ":standard:"],
    ["list", ":optional:"],
    ["list", ":experimental:"],
    ["list", ":optional:", ":experimental:"],
    ["list", "--has-file", "spkg-configure.m4"],
    ["list", "--has-file", "bootstrap"],
    ["list", "--has-file=spkg-install|spkg-install.in", ":standard:"],
    ["list", "--has-file", "checksums.ini", "--has-file", "distros/debian.txt"],
    ["list", "--has-file", "checksums.ini", "--exclude"],
    ["list", "--no-file", "checksums.ini"],
    ["list", "--no-file", "huge|has_nonfree_dependencies", ":optional:"],
    ["list", ":standard:", "--exclude", "gap", "pari", "--exclude", "singular"],
    ["list", "--tree", "SAGE_VENV"],
    ["list", "--tree", "SAGE_LOCAL", "--tree", "SAGE_VENV", ":experimental:"],
    ["list", "gap", "no_such_package", "pkg:pypi/cython", "generic/gap", "Upper"],
    ["list", "--include-dependencies", "gap"],
    ["list", "--include-dependencies"],
    ["list", ":standard:", "--include-dependencies"],
    ["list", ":standard:", "--exclude-dependencies"],
    ["list", "--exclude-dependencies", "gap_packages", "sagelib"],
    ["tarball", "pkg:generic/gap"],
    # Errors: the same exit code and (no) output.
    ["properties"],
    ["list", "a:b"],
    ["list", "a-b"],
    ["list", "--bogus"],
    ["tarball", "Gap"],
    ["properties", "--format=shell", "pkg:pypi/no-such-distribution"],
    ["name", "no-such-1.0.tar.gz"],
]


def sample(packages, every, odd=ODD_PACKAGES):
    """Every package with SAGEDL_FULL_DIFF=1, else every ``every``-th and the odd ones."""
    if FULL:
        return list(packages)
    return [p for i, p in enumerate(packages) if i % every == 0 or p in odd]


def package_forms(packages):
    return ([["properties", "--format=shell", p] for p in packages]
            + [["tarball", p] for p in packages])


def name_forms(case, packages, most=8):
    """``name`` of tarballs of the given packages, as Sage's ``tarball`` lists
    them: every tarball with SAGEDL_FULL_DIFF=1, else the last tarball of the
    first ``most`` packages that have one (``name`` reads the whole tree)."""
    forms = []
    for p in packages:
        code, out = case.reference.forked(["tarball", p])
        names = out.decode("utf-8").split()
        for n in (names if FULL else names[-1:]) if code == 0 else ():
            if ["name", n] not in forms:   # a symlinked checksums.ini repeats its owner's
                forms.append(["name", n])
    return forms if FULL else forms[:most]


def compare(case, python, forms, reference):
    """Run every form on both sides; returns the list of differences."""
    def one(argv):
        want = reference(argv)
        got = sagedl(python, case.root, case.tmp, argv)
        return None if got == want else (argv, want, got)
    with ThreadPoolExecutor(WORKERS) as pool:
        return [d for d in pool.map(one, forms) if d is not None]


def report(label, forms, diffs):
    sys.stdout.write("\n%s: %d forms, %d differences\n" % (label, len(forms), len(diffs)))
    shown = ["%s\n  sage_bootstrap: %r\n  sagedl:         %r"
             % (" ".join(a), w[0:1] + (w[1][:300],), g[0:1] + (g[1][:300],))
             for a, w, g in diffs[:5]]
    assert not diffs, "%d of %d forms differ:\n%s" % (len(diffs), len(forms), "\n".join(shown))


# ---------------------------------------------------------------------------
# The tests

def test_reference_server_answers_as_the_real_sage_package(trees):
    """The fork server is Sage's own run(): prove it on a sample, every tree."""
    for label in LABELS:
        case = trees[label]
        forms = [["tarball", "pkg:generic/gap"], ["name", "gap-4.16.0.tar.gz"],
                 ["properties", "--format=shell", "no_such_package"], ["list", "a:b"]]
        forms += package_forms(case.packages[::211] + ["pplpy_doc"])
        diffs = [(a, case.reference.real(a), case.reference.forked(a)) for a in forms]
        report("server vs real sage-package (%s)" % label, forms,
               [d for d in diffs if d[1] != d[2]])


@pytest.mark.parametrize("label", LABELS)
def test_full_forms_match_sage_bootstrap(trees, label):
    """:all:, every selector and filter: every package, one call per form."""
    case = trees[label]
    report("full forms (%s, %s)" % (label, sys.executable), FULL_FORMS,
           compare(case, sys.executable, FULL_FORMS, case.reference.real))


@SIZED
@pytest.mark.parametrize("label", LABELS)
def test_each_package_matches_sage_bootstrap(trees, label):
    """properties --format=shell PKG and tarball PKG, one process each, and
    name TARBALL; a sample (all with SAGEDL_FULL_DIFF=1)."""
    case = trees[label]
    packages = case.packages if label == "quirks" else sample(case.packages, SAMPLE_EVERY)
    forms = package_forms(packages) + name_forms(case, packages)
    report("one-package forms (%s, %d of %d packages, %s)"
           % (label, len(packages), len(case.packages), sys.executable), forms,
           compare(case, sys.executable, forms, case.reference.forked))


@SIZED
@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.6", "3.13", "pypy3")))
def test_other_interpreters_match_sage_bootstrap(trees, label):
    """The full forms and a smaller one-package sample under each interpreter."""
    python = require_interpreter(label)
    case = trees["passagemath-conf"]
    packages = sample(case.packages, len(case.packages), ("gap_pkg_float", "pplpy_doc",
                                                          "rpds_py", "palettable"))
    forms = FULL_FORMS + package_forms(packages) + name_forms(case, packages, 3)

    def reference(argv):
        return case.reference.real(argv) if argv in FULL_FORMS else case.reference.forked(argv)
    report("all forms on %s (passagemath-conf, %d packages one by one)" % (label, len(packages)),
           forms, compare(case, python, forms, reference))


@SIZED
@pytest.mark.parametrize("label", TREES)
def test_tarball_of_every_package_matches_sage_bootstrap(trees, label):
    """``tarball PKG`` for every package, one process each, on every run
    (both symlinked trees, this interpreter): ``properties --format=shell
    :all:`` and the list forms cover every package in one call, but
    ``tarball`` has no whole-tree form, and it is what ``bootstrap`` asks
    for each package."""
    case = trees[label]
    forms = [["tarball", p] for p in case.packages]
    assert len(forms) == len(case.packages) > 400
    report("tarball of every package (%s, %s)" % (label, sys.executable), forms,
           compare(case, sys.executable, forms, case.reference.forked))
