"""Real upstream files of Sage packages, for tests that want real bytes.

A few small pure-Python packages whose tarball appears in Sage's
build/pkgs/*/checksums.ini, fetched once with pip into a cache and checked
against the sha256 there.  The set covers both checksums.ini forms (plain
`tarball=NAME-VERSION...` and `[literal-name]` sections), wheels and an sdist,
and entries with and without sha1.

    python3 tests/realfiles.py     # prefetch (.ci/run does), print the list

The cache is ~/.cache/sagedl-tests/realfiles, or $SAGEDL_TEST_CACHE.
Sage's metadata is passagemath's tree from PyPI (tests/sagetree.py): its
checksums.ini of these packages has both forms (matplotlib_inline's wheel is
a [section] without sha1); sage-conf 10.7 lists the same four, all in the
plain form with sha1.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import sagetree

# Each well under 300 KiB; their own dependencies are never needed.
PACKAGES = ("six", "appdirs", "decorator", "matplotlib_inline")



class RealFileError(RuntimeError):
    pass


TREE = "passagemath-conf"


def sage_pkgs_dir():
    """The Sage tree whose checksums.ini the real files are checked against."""
    try:
        return sagetree.pypi_tree(TREE)
    except sagetree.TreeError as e:
        raise RealFileError(str(e))


def cache_dir():
    return os.environ.get("SAGEDL_TEST_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "sagedl-tests", "realfiles")


def upstream_version(package_version):
    # Sage's package-version.txt may carry a ".pN" patch level of its own;
    # VERSION in tarball names is the upstream version without it.
    return re.sub(r"\.p\d+$", "", package_version.strip())


def read_checksums(package):
    """{tarball, sha256, sha1, version} of a package's first tarball.

    Minimal on purpose (test code): key=value lines, [sections] ignored
    except that the first tarball= wins."""
    pkg_dir = os.path.join(sage_pkgs_dir(), "build", "pkgs", package)
    with open(os.path.join(pkg_dir, "package-version.txt")) as handle:
        version = upstream_version(handle.read())
    entry = {}
    with open(os.path.join(pkg_dir, "checksums.ini")) as handle:
        for line in handle:
            key, equals, value = line.strip().partition("=")
            if equals and key.strip() in ("tarball", "sha256", "sha1"):
                entry.setdefault(key.strip(), value.strip())
    if "tarball" not in entry or "sha256" not in entry:
        raise RealFileError("%s/checksums.ini lacks tarball= or sha256="
                            % package)
    entry["tarball"] = entry["tarball"].replace("VERSION", version)
    entry.setdefault("sha1", None)
    entry["version"] = version
    return entry


def fetch(package, entry, directory):
    """Download entry's tarball with pip unless a verified copy is cached."""
    path = os.path.join(directory, entry["tarball"])
    if os.path.exists(path) and sagetree.sha256_of(path) == entry["sha256"]:
        return path
    # The tarball's name says which distribution Sage wants; pip must not
    # substitute the other kind.
    kind = ("--only-binary=:all:" if entry["tarball"].endswith(".whl")
            else "--no-binary=:all:")
    command = [sys.executable, "-m", "pip", "download", "--no-deps",
               "--disable-pip-version-check", "--no-input", "--quiet", kind,
               "-d", directory, "%s==%s" % (package, entry["version"])]
    result = subprocess.run(command, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0 or not os.path.exists(path):
        raise RealFileError("could not download %s with %s:\n%s"
                            % (entry["tarball"], " ".join(command),
                               result.stdout))
    actual = sagetree.sha256_of(path)
    if actual != entry["sha256"]:
        os.remove(path)
        raise RealFileError("%s: sha256 %s, checksums.ini says %s"
                            % (entry["tarball"], actual, entry["sha256"]))
    return path


def real_files():
    """[{package, tarball, path, sha256, sha1 (or None), size}], verified."""
    directory = cache_dir()
    os.makedirs(directory, exist_ok=True)
    files = []
    for package in PACKAGES:
        entry = read_checksums(package)
        path = fetch(package, entry, directory)
        files.append({"package": package, "tarball": entry["tarball"],
                      "path": path, "sha256": entry["sha256"],
                      "sha1": entry["sha1"], "size": os.path.getsize(path)})
    return files


def require_real_files():
    """real_files(), or skip with a one-line reason; under CI=true, fail."""
    import pytest
    try:
        return real_files()
    except RealFileError as e:
        message = "real upstream files unavailable: %s" % str(e).splitlines()[0]
        if sagetree.in_ci():
            pytest.fail(message + " -- required when CI=true", pytrace=False)
        pytest.skip(message)


def main():
    for info in real_files():
        print("%(size)8d  %(sha256)s  %(path)s" % info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
