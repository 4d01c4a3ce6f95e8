"""Build the one-file sagedl.pyz:  python3 zipapp/build.py [-o dist/sagedl.pyz]

Layout: a /bin/sh preamble (zipapp/preamble.sh), then a zip holding
  __main__.py                  zipapp/__main__.py
  contextlib.py, functools.py  zipapp/stdlib_shim.py (see why there)
  _sagedl_bytecode.py          zipapp/bytecode_cache.py (compiled-code cache)
  sagedl/...                   every .py, .toml and .pem under sagedl/ that
                               git tracks (the shipped mirrors.toml and the
                               CA bundle cacert.pem are package data, which
                               pip installs too, so both read them the same
                               way)

Only files git tracks go in, so an untracked scratch file in sagedl/ never
ships; outside a git checkout (an sdist, a release tarball) every such file
under sagedl/ does.

Reproducible: the same inputs give the same bytes, whichever Python (2.7,
3.6+) builds it, as long as zlib is the same version.  Entries are sorted,
stamped 1980-01-01 (the zip epoch) or SOURCE_DATE_EPOCH, given fixed
permissions, deflated at zlib's default level (which 2.7 and 3.6 cannot
change anyway; zipfile got compresslevel in 3.7), and carry no bytecode.
The zipapp module is not used: it cannot write a shell preamble.
"""
import argparse
import os
import stat
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
DEFAULT_OUTPUT = os.path.join(REPO, "dist", "sagedl.pyz")
SHIMMED_MODULES = ("contextlib", "functools")  # what runpy imports first on 3.6-3.11
PACKAGE_SUFFIXES = (".py", ".toml", ".pem")  # .pem: the embedded CA bundle
ZIP_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip entry can hold
FILE_ATTR = (stat.S_IFREG | 0o644) << 16  # Unix mode lives in the high 16 bits


class BuildError(Exception):
    pass


def zip_date_time(environ):
    """(Y, M, D, h, m, s) for every entry: SOURCE_DATE_EPOCH if set
    (reproducible-builds.org), clamped to the zip epoch, else the zip epoch."""
    value = environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not value:
        seconds = ZIP_EPOCH
    else:
        try:
            seconds = max(int(value), ZIP_EPOCH)
        except ValueError:
            raise BuildError("SOURCE_DATE_EPOCH must be an integer, not %r" % (value,))
    return time.gmtime(seconds)[:6]


def _read(path):
    f = open(path, "rb")
    try:
        return f.read()
    finally:
        f.close()


def archive_members(repo_root=REPO, zipapp_dir=HERE):
    """Sorted list of (name in archive, path on disk)."""
    members = {"__main__.py": os.path.join(zipapp_dir, "__main__.py"),
               "_sagedl_bytecode.py": os.path.join(zipapp_dir, "bytecode_cache.py")}
    for name in SHIMMED_MODULES:
        members[name + ".py"] = os.path.join(zipapp_dir, "stdlib_shim.py")
    package = os.path.join(repo_root, "sagedl")
    if not os.path.isfile(os.path.join(package, "__init__.py")):
        raise BuildError("no package at %s" % package)
    for rel in package_files(repo_root):
        parts = rel.split("/")
        # Skips editor droppings such as emacs's ".#cli.py" lock links.
        if (rel.endswith(PACKAGE_SUFFIXES) and not any(p.startswith(".") for p in parts)
                and "__pycache__" not in parts):
            members[rel] = os.path.join(repo_root, *parts)
    return sorted(members.items())


def package_files(repo_root):
    """'sagedl/...' paths of the package's files: those git tracks when
    repo_root is the top of a git checkout, else every file under sagedl/."""
    tracked = git_tracked(repo_root, "sagedl")
    if tracked is not None:
        return [rel for rel in tracked if os.path.isfile(os.path.join(repo_root, *rel.split("/")))]
    found = []
    package = os.path.join(repo_root, "sagedl")
    for top, dirs, files in os.walk(package):
        dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
        for f in files:
            path = os.path.join(top, f)
            found.append("/".join(["sagedl"] + os.path.relpath(path, package).split(os.sep)))
    return found


def git_tracked(repo_root, subdir):
    """The files git tracks under subdir ('/'-separated, relative to
    repo_root), or None when repo_root is not the top of a git checkout or
    git cannot be run: then the caller walks the directory instead."""
    def git(*args):
        try:
            p = subprocess.Popen(["git", "-C", repo_root] + list(args), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        except OSError:        # no git on this machine
            return None
        out, _ = p.communicate()
        return out if p.returncode == 0 else None
    top = git("rev-parse", "--show-toplevel")
    if top is None or os.path.realpath(_text(top).strip()) != os.path.realpath(repo_root):
        return None            # not a checkout, or a directory inside someone else's
    out = git("ls-files", "-z", "--", subdir)
    if out is None:
        return None
    return sorted(_text(name) for name in out.split(b"\0") if name)


def _text(data):
    """git's bytes as a str on 2.7 and 3.x alike."""
    return data if isinstance(data, str) else data.decode("utf-8", "surrogateescape")


def write_archive(fileobj, members, date_time, preamble):
    fileobj.write(preamble)
    # Writing the preamble first, to the same file object, makes every offset
    # in the zip absolute, so unzip does not warn about "extra bytes".
    zf = zipfile.ZipFile(fileobj, "w", zipfile.ZIP_DEFLATED)
    try:
        for name, path in members:
            info = zipfile.ZipInfo(name, date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever the build host, so external_attr means the same
            info.external_attr = FILE_ATTR
            zf.writestr(info, _read(path))
    finally:
        zf.close()


def build(output=DEFAULT_OUTPUT, repo_root=REPO, environ=None):
    """Write the archive to output (via a temporary file and a rename, so a
    reader never sees half an archive); return output."""
    environ = os.environ if environ is None else environ
    members = archive_members(repo_root)
    date_time = zip_date_time(environ)
    preamble = _read(os.path.join(HERE, "preamble.sh"))
    if not preamble.startswith(b"#!/bin/sh\n") or not preamble.endswith(b"\n"):
        raise BuildError("preamble.sh must start with #!/bin/sh and end with a newline")
    out_dir = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(out_dir):
        os.makedirs(out_dir)
    fd, tmp = tempfile.mkstemp(prefix=".sagedl-", suffix=".pyz.tmp", dir=out_dir)
    try:
        f = os.fdopen(fd, "wb")
        try:
            write_archive(f, members, date_time, preamble)
        finally:
            f.close()
        os.chmod(tmp, 0o755)
        # os.replace is 3.3+; on POSIX os.rename replaces atomically too.
        getattr(os, "replace", os.rename)(tmp, output)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build the one-file sagedl.pyz.")
    parser.add_argument("-o", "--output", default=DEFAULT_OUTPUT,
                        help="where to write the archive (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        out = build(args.output)
    except (BuildError, EnvironmentError):
        sys.stderr.write("build.py: error: %s\n" % (sys.exc_info()[1],))
        return 1
    sys.stdout.write("wrote %s (%d bytes)\n" % (out, os.path.getsize(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
