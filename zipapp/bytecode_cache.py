"""A compiled-bytecode cache for the sagedl package inside sagedl.pyz.

Why: the archive holds no .pyc files (bytecode is specific to each Python
release) and zipimport cannot write them, so every run would compile
cli.py, download.py ... from source again: tens of milliseconds on every
call in a ``make -j`` build.  This importer keeps the compiled code under
$XDG_CACHE_HOME/sagedl/bytecode/<interpreter tag>/ and loads it with marshal.

Cheap on a hit: the zip's central directory (read once, from the end of the
archive) gives every member's CRC and size, which key the cache entry, so
a module whose code is cached is never decompressed.

Marshal data is code: an entry is used only if the file and every directory
from it up to the cache root are owned by the effective uid and writable by
nobody else (else another user, or a sudo that kept the caller's HOME,
could plant code that runs as us).  A cache failing that is neither read nor
written: the module is compiled.  Directories are made 0700.

An optimisation only: any problem silently falls back to compiling, and
SAGEDL_NO_BYTECODE_CACHE=1 turns it off.  Entries are written to a fresh
name and renamed, so concurrent processes never read half a file.

zipapp/build.py stores this file at the archive root as _sagedl_bytecode.py;
the root __main__ installs it before importing sagedl.  It is compiled on
every start, so it stays short.  Python 3 uses find_spec/exec_module
(find_module is gone in 3.12), Python 2.7 find_module/load_module.
"""

import marshal
import os
import stat
import struct
import sys

PACKAGE = "sagedl"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
MAX_CODE_BYTES = 16 << 20


def central_directory(archive):
    """{member name: (crc32, size)} from the zip's central directory, which
    ends the file just before the 22-byte end record (build.py writes no
    archive comment); None if the archive is laid out otherwise."""
    with open(archive, "rb") as f:
        f.seek(-22, 2)
        end = f.read(22)
        if end[:4] != b"PK\x05\x06":
            return None
        count, size = struct.unpack("<HI", end[10:16])
        f.seek(-22 - size, 2)
        data = f.read(size)
    members = {}
    pos = 0
    for _ in range(count):
        if data[pos:pos + 4] != b"PK\x01\x02":
            return None
        crc, _, usize, nlen, xlen, clen = struct.unpack("<IIIHHH", data[pos + 16:pos + 34])
        members[data[pos + 46:pos + 46 + nlen].decode("utf-8")] = (crc, usize)
        pos += 46 + nlen + xlen + clen
    return members


def _private(st, uid):
    """Owned by uid and writable by no one else."""
    return st.st_uid == uid and not st.st_mode & 0o022


def _read_private(path, uid):
    """A cached entry's bytes: a regular file of ours (never through a
    symlink, never a FIFO or device planted to hang every start), bounded."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or not _private(st, uid) or st.st_size > MAX_CODE_BYTES:
            raise IOError("not a private regular file")
        return os.read(fd, st.st_size + 1)
    finally:
        os.close(fd)


def _magic():
    boot = sys.modules.get("_frozen_importlib_external")
    if boot is not None:
        return boot.MAGIC_NUMBER          # 3.x, no import needed
    import imp                            # 2.7: a built-in module
    return imp.get_magic()


def cache_root(environ):
    base = environ.get("XDG_CACHE_HOME")
    if not base or not os.path.isabs(base):
        home = environ.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".cache")
    return os.path.join(base, "sagedl", "bytecode")


class CachingImporter(object):
    """Finds and loads sagedl.* from the archive, through the bytecode cache."""

    def __init__(self, archive, root, members, uid):
        self.archive = archive
        self.members = members
        self.uid = uid
        self.root = root
        tag = "%s-%s" % (getattr(getattr(sys, "implementation", None), "name", "cpython"),
                         "".join("%02x" % c for c in bytearray(_magic())))
        self.dir = os.path.join(root, tag)
        self.usable = None        # the directory check, made once, on first use
        self._zip = None

    def _dir_ok(self, create):
        """Whether the cache root and the tag directory under it are private
        directories (not symlinks) of ours; create them 0700 if asked."""
        if self.usable is None or (create and not self.usable):
            try:
                for d in (self.root, self.dir):
                    if create and not os.path.lexists(d):
                        parent = os.path.dirname(d)
                        if not os.path.isdir(parent):
                            os.makedirs(parent)
                        os.mkdir(d, 0o700)
                    st = os.lstat(d)
                    if not (stat.S_ISDIR(st.st_mode) and _private(st, self.uid)):
                        self.usable = False
                        return False
                self.usable = True
            except (IOError, OSError):
                self.usable = False if create else None
        return bool(self.usable)

    def _relpath(self, fullname):
        """(path inside the archive, is_package) or None."""
        if fullname != PACKAGE and not fullname.startswith(PACKAGE + "."):
            return None
        base = fullname.replace(".", "/")
        for rel, is_pkg in ((base + "/__init__.py", True), (base + ".py", False)):
            if rel in self.members:
                return rel, is_pkg
        return None

    def _zipimporter(self):
        if self._zip is None:
            import zipimport
            self._zip = zipimport.zipimporter(self.archive)
        return self._zip

    def _code(self, fullname, rel):
        crc, size = self.members[rel]
        path = os.path.join(self.dir, "%s.%08x.bin" % (fullname, crc))
        if self._dir_ok(False):
            try:
                data = _read_private(path, self.uid)
                if data[:4] == b"SDL1" and int(data[4:12], 16) == size:
                    return marshal.loads(data[12:])
            except (IOError, OSError, ValueError, EOFError, TypeError):
                pass
        source = self._zipimporter().get_data(rel)
        code = compile(source, os.path.join(self.archive, rel), "exec", 0, True)
        if self._dir_ok(True):
            self._store(path, b"SDL1" + ("%08x" % len(source)).encode("ascii") + marshal.dumps(code))
        return code

    def _store(self, path, data):
        try:
            # A fresh name, created O_EXCL|O_NOFOLLOW: nothing planted in the
            # cache directory is written through.
            tmp = "%s.%d.%d.tmp" % (path, os.getpid(), id(data))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
                os.unlink(tmp)
                return
            os.rename(tmp, path)
            # Drop this module's entries for older sources (a rebuilt pyz),
            # so the cache does not grow with every release.
            name = os.path.basename(path)
            prefix = name.rsplit(".", 2)[0] + "."
            for other in os.listdir(self.dir):
                if (other.startswith(prefix) and other.endswith(".bin") and other != name
                        and other.count(".") == prefix.count(".") + 1):
                    os.unlink(os.path.join(self.dir, other))
        except (IOError, OSError):
            pass   # read-only home, full disk ...: compiling next time is fine

    # -- PEP 302 data access (pkgutil.get_data) -----------------------------------
    def get_data(self, path):
        return self._zipimporter().get_data(path)

    def is_package(self, fullname):
        found = self._relpath(fullname)
        return bool(found and found[1])

    # -- Python 3: find_spec / exec_module ----------------------------------------
    def find_spec(self, fullname, path=None, target=None):
        found = self._relpath(fullname)
        if found is None:
            return None
        rel, is_pkg = found
        spec = sys.modules["_frozen_importlib"].ModuleSpec(
            fullname, self, origin=os.path.join(self.archive, rel), is_package=is_pkg)
        if is_pkg:
            spec.submodule_search_locations = [os.path.join(self.archive, fullname.replace(".", "/"))]
        spec.has_location = True
        spec.loader_state = found
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        rel, _ = module.__spec__.loader_state
        exec(self._code(module.__spec__.name, rel), module.__dict__)

    # -- Python 2.7: find_module / load_module --------------------------------------
    def find_module(self, fullname, path=None):
        return self if self._relpath(fullname) is not None else None

    def load_module(self, fullname):
        import imp
        rel, is_pkg = self._relpath(fullname)
        module = sys.modules.get(fullname)
        if module is None:
            module = sys.modules[fullname] = imp.new_module(fullname)
        module.__file__ = os.path.join(self.archive, rel)
        module.__loader__ = self
        if is_pkg:
            module.__path__ = [os.path.join(self.archive, fullname.replace(".", "/"))]
            module.__package__ = fullname
        else:
            module.__package__ = fullname.rpartition(".")[0]
        try:
            exec(self._code(fullname, rel), module.__dict__)
        except BaseException:
            sys.modules.pop(fullname, None)
            raise
        return sys.modules[fullname]


def install(archive, environ):
    """Put the caching importer ahead of zipimport for the sagedl package."""
    if environ.get("SAGEDL_NO_BYTECODE_CACHE") or not hasattr(os, "geteuid"):
        return None
    try:
        members = central_directory(archive)
        if not members:
            return None
        importer = CachingImporter(archive, cache_root(environ), members, os.geteuid())
    except Exception:
        return None
    sys.meta_path.insert(0, importer)
    return importer
