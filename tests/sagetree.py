"""The real Sage source tree (../shared/sage-tree), as tests need it.

The shared snapshot holds Sage's build machinery, but its symlinks are
stored as plain files holding the link target (eight checksums.ini among
them: gap_packages and the gap_pkg_* -> gap, gfortran -> gcc, pplpy_doc ->
pplpy).  ``copy_tree`` copies it into a temporary directory and turns those
whose target exists back into real symlinks, so a copy behaves like a git
checkout of Sage.

``configure_outputs`` writes what ./configure would: src/bin/sage-env-config,
src/bin/sage-src-env-config and build/bin/sage-build-env-config from their
.in templates, with @prefix@,
@SAGE_ROOT@ and friends substituted and every other @VAR@ emptied.

The tree is found at $SAGEDL_SAGE_TREE, else shared/sage-tree beside the
repository (CI and the development machines).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OFFLINE = os.path.join(os.path.dirname(REPO), "shared", "tools", "offline")


def shared_tree():
    """Path of the shared Sage tree, or None."""
    for candidate in (os.environ.get("SAGEDL_SAGE_TREE"),
                      os.path.join(os.path.dirname(REPO), "shared", "sage-tree")):
        if candidate and os.path.isfile(os.path.join(candidate, "build", "bin", "sage-spkg")):
            return candidate
    return None


def require_shared_tree():
    import pytest
    tree = shared_tree()
    if tree is None:
        if os.environ.get("CI"):
            pytest.fail("the shared Sage tree is missing; set SAGEDL_SAGE_TREE")
        pytest.skip("the shared Sage tree (../shared/sage-tree) is not here")
    return tree


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


def copy_tree(dest, source=None):
    """Copy the shared tree to ``dest`` (writable, symlinks restored); return dest."""
    source = source or require_shared_tree()
    shutil.copytree(source, dest, symlinks=True)
    for dirpath, dirnames, filenames in os.walk(dest):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if not os.path.islink(path):
                mode = os.stat(path).st_mode
                os.chmod(path, mode | 0o200)
    for path, target in symlink_stand_ins(dest).items():
        os.unlink(path)
        os.symlink(target, path)
    return dest


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


def can_go_offline():
    """Whether ../shared/tools/offline can make a network namespace here."""
    if not os.path.exists(OFFLINE):
        return False
    try:
        p = subprocess.run(["sh", OFFLINE, "true"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return p.returncode == 0


# A real per-platform wheel of a wheel-only package, as sage-spkg fetches it
# for a CPython 3.12 on x86_64 Linux: (package, version, file name, pip's
# platform, python version, abi).
RPDS_WHEEL = ("rpds_py", "2026.6.3",
              "rpds_py-2026.6.3-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
              "manylinux_2_17_x86_64", "3.12", "cp312")


def real_wheel(spec=RPDS_WHEEL):
    """Path of the real wheel (fetched once with pip into the realfiles cache,
    checked against the shared tree's sha256)."""
    import hashlib
    import sys
    from realfiles import RealFileError, cache_dir
    package, version, filename, platform, pyver, abi = spec
    root = require_shared_tree()
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
