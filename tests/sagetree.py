"""Real Sage source trees for tests, from Sage's own sdists on PyPI.

The sdists ``sage-conf==10.7`` (SageMath) and ``passagemath-conf==10.8.13.post1``
(passagemath, a Sage distribution that tracks it) each hold a full
``sage_root/``: build/bin (sage-spkg, sage-package, sage-download-file),
build/sage_bootstrap, build/pkgs with every package, .upstream.d, Makefile.
They are the real callers sagedl must serve, and PyPI is reachable wherever
pip is, so no test needs a checkout of Sage beside the repository.

    pypi_tree(name)     path of the unpacked, cached sage_root (fetched once
                        with pip, checked against the sha256 pinned below)
    require_tree(name)  the same, or a skip with a one-line reason when it
                        cannot be had (a failure under CI=true)
    copy_tree(dest)     a writable copy, Sage's symlinks as real symlinks or,
                        with stand_ins=True, as the text files git writes
                        when it cannot make symlinks (core.symlinks=false)

    python3 tests/sagetree.py    # fetch both (tools/test.sh does), print their paths

An sdist holds copies where a git checkout of Sage has symlinks (gfortran's
files -> gcc's, gap_packages and the gap_pkg_* -> gap, pplpy_doc -> pplpy,
the sagemath_* build scripts -> one shared copy).  The unpacked tree gets
them back: tests/fixtures/sage-symlinks.txt lists them, and each listed file
whose bytes equal its target's becomes the symlink.

One change to Sage's files: the "dead proxy" ``http://192.0.2.0:5187/``
that build/bin/sage-spkg and build/test/test_download_cmdline.py set (a
TEST-NET address, to make downloads fail) becomes ``http://127.0.0.1:9/``, a
closed loopback port: tests send traffic to loopback only.

The cache is $SAGEDL_TEST_CACHE/sage-trees, else
~/.cache/sagedl-tests/sage-trees; a tree is unpacked there once, into a
temporary directory renamed into place, so a half-unpacked tree is never
seen and concurrent test runs do not clash.

``configure_outputs`` writes what ./configure would: src/bin/sage-env-config,
src/bin/sage-src-env-config and build/bin/sage-build-env-config from their
.in templates, with @prefix@, @SAGE_ROOT@ and friends substituted and every
other @VAR@ emptied.
"""

from __future__ import annotations

import filecmp
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYMLINK_TABLE = os.path.join(REPO, "tests", "fixtures", "sage-symlinks.txt")

TREES = ("sage-conf", "passagemath-conf")
# name -> (version, sdist file name, its sha256, computed once from PyPI's file).
SDISTS = {
    "sage-conf": ("10.7", "sage_conf-10.7.tar.gz",
                  "ddf48791f9c163817e19d7ed30117f2fbcb87dd3c30b787fbca37cb026e0a54c"),
    "passagemath-conf": ("10.8.13.post1", "passagemath_conf-10.8.13.post1.tar.gz",
                         "84923b90f162e6b1039c2982d47060ef8b23709078e0d32e6e97439d92e81534"),
}
DEAD_PROXY = ("http://192.0.2.0:5187/", "http://127.0.0.1:9/")
DEAD_PROXY_FILES = ("build/bin/sage-spkg", "build/test/test_download_cmdline.py")
# Part of the cached tree's name: bump it when _unpack changes what it writes,
# so an older cache is not mistaken for the new form.
UNPACK_FORM = 1
PIP_TIMEOUT = 600      # a safety net for a hung pip, never a measure of speed


class TreeError(RuntimeError):
    """A Sage tree could not be fetched or unpacked; the message is one line."""


def cache_root():
    base = os.environ.get("SAGEDL_TEST_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "sagedl-tests")
    return os.path.join(base, "sage-trees")


def in_ci():
    return os.environ.get("CI", "").lower() == "true"


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_sdist(name):
    """Path of the pinned sdist in the cache, downloaded with pip if needed."""
    version, filename, sha256 = SDISTS[name]
    directory = os.path.join(cache_root(), "sdists")
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, filename)
    if os.path.isfile(path) and sha256_of(path) == sha256:
        return path
    # pip writes into a directory of its own; only a verified file is renamed
    # to the cached name, so a killed download never looks finished.
    scratch = tempfile.mkdtemp(prefix=".pip-", dir=directory)
    try:
        command = [sys.executable, "-m", "pip", "download", "--no-deps",
                   "--no-binary", ":all:", "--disable-pip-version-check",
                   "--no-input", "--quiet", "-d", scratch,
                   "%s==%s" % (name, version)]
        try:
            p = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=PIP_TIMEOUT)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise TreeError("pip download %s==%s: %s" % (name, version, e))
        got = os.path.join(scratch, filename)
        if p.returncode != 0 or not os.path.isfile(got):
            last = (p.stdout.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
            raise TreeError("pip download %s==%s failed (exit %d): %s"
                            % (name, version, p.returncode, last))
        actual = sha256_of(got)
        if actual != sha256:
            raise TreeError("%s from PyPI has sha256 %s, pinned %s" % (filename, actual, sha256))
        os.replace(got, path)
        return path
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _safe_members(archive, top):
    """The regular files and directories under TOP/sage_root/, checked: an
    sdist holds nothing else, and nothing here may land outside the tree."""
    prefix = top + "/sage_root/"
    for member in archive.getmembers():
        if not (member.name + "/").startswith(prefix):
            continue
        parts = member.name.split("/")
        if member.name.startswith("/") or ".." in parts:
            raise TreeError("unsafe path in the sdist: %r" % member.name)
        if not (member.isfile() or member.isdir()):
            raise TreeError("unexpected %r in the sdist (not a file or directory)"
                            % member.name)
        yield member


def _same(a, b):
    """Whether a and b (files or directory trees) hold the same bytes."""
    if os.path.isfile(a) and os.path.isfile(b):
        return filecmp.cmp(a, b, shallow=False)
    if not (os.path.isdir(a) and os.path.isdir(b)):
        return False
    d = filecmp.dircmp(a, b)
    if d.left_only or d.right_only or d.common_funny:
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, d.common_files, shallow=False)
    return not mismatch and not errors and all(
        _same(os.path.join(a, s), os.path.join(b, s)) for s in d.common_dirs)


def symlink_table():
    """[(PACKAGE/FILE, target)] from tests/fixtures/sage-symlinks.txt."""
    table = []
    with open(SYMLINK_TABLE, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#"):
                link, arrow, target = line.partition(" -> ")
                table.append((link, target))
    return table


def restore_symlinks(root):
    """Turn the copies an sdist holds back into Sage's symlinks; returns how many."""
    pkgs = os.path.join(root, "build", "pkgs")
    made = 0
    for link, target in symlink_table():
        path = os.path.join(pkgs, link)
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
        if os.path.islink(path) or not os.path.exists(path) or not _same(path, resolved):
            continue
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        os.symlink(target, path)
        made += 1
    return made


def _loopback_dead_proxy(root):
    """Point the dead proxy Sage's scripts set at a closed loopback port."""
    dead, closed = DEAD_PROXY
    for rel in DEAD_PROXY_FILES:
        path = os.path.join(root, rel)
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                text = f.read()
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.replace(dead, closed))


def _unpack(name, sdist, final):
    """Unpack sdist's sage_root into ``final`` (its parent must exist), atomically."""
    version, filename, _ = SDISTS[name]
    top = filename[:-len(".tar.gz")]
    scratch = tempfile.mkdtemp(prefix=".unpack-", dir=os.path.dirname(final))
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            members = list(_safe_members(archive, top))
            if not members:
                raise TreeError("%s holds no %s/sage_root" % (filename, top))
            for member in members:
                member.uid = member.gid = 0
                member.uname = member.gname = ""
                member.mode &= 0o755
            if hasattr(tarfile, "data_filter"):
                archive.extractall(scratch, members, filter="data")
            else:
                archive.extractall(scratch, members)
        root = os.path.join(scratch, top, "sage_root")
        restore_symlinks(root)
        _loopback_dead_proxy(root)
        try:
            os.rename(root, final)
        except OSError:
            if not os.path.isdir(final):       # else another run got there first
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


_trees = {}


def pypi_tree(name="sage-conf"):
    """Path of the cached, unpacked sage_root of the sdist ``name`` (see TREES).

    Raises TreeError when it cannot be had (no network, no pip)."""
    if name not in SDISTS:
        raise ValueError("unknown Sage tree %r; known: %s" % (name, ", ".join(TREES)))
    if name not in _trees:
        version, filename, sha256 = SDISTS[name]
        final = os.path.join(cache_root(), "%s-%s-u%d" % (filename[:-len(".tar.gz")], sha256[:12],
                                                          UNPACK_FORM))
        try:
            if not os.path.isfile(os.path.join(final, "build", "bin", "sage-spkg")):
                os.makedirs(cache_root(), exist_ok=True)
                _unpack(name, fetch_sdist(name), final)
            _trees[name] = final
        except (OSError, tarfile.TarError, TreeError) as e:
            _trees[name] = e if isinstance(e, TreeError) else TreeError(
                "cannot unpack %s: %s" % (filename, e))
    found = _trees[name]
    if isinstance(found, TreeError):
        raise found
    return found


def require_tree(name="sage-conf"):
    """pypi_tree(name), or skip with a one-line reason; under CI=true, fail."""
    import pytest
    try:
        return pypi_tree(name)
    except TreeError as e:
        message = "the Sage tree from PyPI's %s sdist is unavailable: %s" % (name, e)
        if in_ci():
            pytest.fail(message + " -- required when CI=true", pytrace=False)
        pytest.skip(message)


_LINK_TEXT = re.compile(rb"^[A-Za-z0-9_./-]+$")


def symlink_stand_ins(root):
    """{path: link target} for the files under build/pkgs that hold a symlink's
    target instead of being one (git's form without core.symlinks: the
    target, no newline), whose target exists in the tree."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(os.path.join(root, "build", "pkgs")):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) > 255:
                continue
            with open(path, "rb") as f:
                text = f.read()
            if b"/" in text and _LINK_TEXT.match(text):
                target = text.decode()
                if os.path.exists(os.path.join(dirpath, target)):
                    found[path] = target
    return found


def tree_symlinks(root):
    """{path: link target} of the real symlinks under root."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path):
                found[path] = os.readlink(path)
    return found


def copy_tree(dest, source=None, stand_ins=False):
    """Copy a Sage tree (default: require_tree()) to ``dest``, writable; return dest.

    Sage's symlinks become real symlinks (as in a git checkout), or with
    ``stand_ins=True`` plain files holding the link target (a checkout made
    with core.symlinks=false).  Either form of the source is accepted."""
    source = source or require_tree()
    shutil.copytree(source, dest, symlinks=True)
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o200)
    if stand_ins:
        for path, target in tree_symlinks(dest).items():
            os.unlink(path)
            with open(path, "w") as f:
                f.write(target)
    else:
        for path, target in symlink_stand_ins(dest).items():
            os.unlink(path)
            os.symlink(target, path)
    return dest


def serve_only_sage_server(root):
    """Make the tree's .upstream.d say only SAGE_SERVER (as upstream Sage's
    does, without the real mirrors), so nothing a test runs leaves loopback."""
    upstream_d = os.path.join(root, ".upstream.d")
    for name in os.listdir(upstream_d):
        os.unlink(os.path.join(upstream_d, name))
    with open(os.path.join(upstream_d, "10-SAGE_SERVER"), "w") as f:
        f.write("${SAGE_SERVER}/spkg/upstream/${SPKG}/\n")


def configure_outputs(root, prefix=None):
    """Write the config files sage-spkg (and spkg-install) source, as ./configure would."""
    root = os.path.abspath(root)
    prefix = prefix or os.path.join(root, "local")
    values = {"prefix": prefix, "exec_prefix": prefix, "SAGE_ROOT": root,
              "SAGE_LOCAL": prefix, "SAGE_VENV": prefix,
              "SAGE_SRC": os.path.join(root, "src"),
              "SAGE_DISTFILES": os.path.join(root, "upstream"),
              "SAGE_PKGS": os.path.join(root, "build", "pkgs"),
              "abs_top_srcdir": root, "abs_top_builddir": root,
              "MAKE": "make", "SHELL": "/bin/sh"}
    for rel in ("src/bin/sage-env-config", "src/bin/sage-src-env-config",
                "build/bin/sage-build-env-config"):
        with open(os.path.join(root, rel + ".in")) as f:
            text = f.read()
        text = re.sub(r"@([A-Za-z_][A-Za-z0-9_]*)@", lambda m: values.get(m.group(1), ""), text)
        with open(os.path.join(root, rel), "w") as f:
            f.write(text)
        os.chmod(os.path.join(root, rel), 0o755)


def install_dropin(root, pyz):
    """contrib/sage/install.sh ROOT PYZ; returns its CompletedProcess."""
    return subprocess.run(["sh", os.path.join(REPO, "contrib", "sage", "install.sh"), root, pyz],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                          check=True)


# A real per-platform wheel of a wheel-only package, as sage-spkg fetches it
# for a CPython 3.12 on x86_64 Linux: (package, version, file name, pip's
# platform, python version, abi).
RPDS_WHEEL = ("rpds_py", "2026.6.3",
              "rpds_py-2026.6.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
              "manylinux_2_17_x86_64", "3.12", "cp312")


def real_wheel(spec=RPDS_WHEEL):
    """Path of the real wheel (fetched once with pip into the realfiles cache,
    checked against the sha256 in passagemath's checksums.ini: the tree
    that lists rpds_py's per-platform wheels)."""
    import hashlib
    import sys
    from realfiles import RealFileError, cache_dir
    package, version, filename, platform, pyver, abi = spec
    root = require_tree("passagemath-conf")
    want = None
    with open(os.path.join(root, "build", "pkgs", package, "checksums.ini")) as f:
        lines = f.read().splitlines()
    for i, line in enumerate(lines):
        if line == "[%s]" % filename:
            want = [l.split("=", 1)[1] for l in lines[i:i + 4] if l.startswith("sha256=")][0]
    directory = cache_dir()
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, filename)

    def sha256():
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    if not (os.path.exists(path) and sha256() == want):
        p = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                            "--disable-pip-version-check", "--no-input", "--only-binary=:all:",
                            "--platform", platform, "--python-version", pyver,
                            "--implementation", "cp", "--abi", abi, "-d", directory,
                            "%s==%s" % (package, version)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
        if p.returncode != 0 or not os.path.exists(path) or sha256() != want:
            raise RealFileError("could not get %s with pip:\n%s" % (filename, p.stdout.decode()))
    return path


def main():
    for name in TREES:
        print(pypi_tree(name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
