"""A compiled-bytecode cache for the sagedl package inside sagedl.pyz.

Why: the archive holds no .pyc files (bytecode is specific to each Python
release), and zipimport cannot write them, so every run would compile
cli.py, download.py, transport.py ... from source again: tens of
milliseconds of start-up on every call in a ``make -j`` build.  This
importer keeps the compiled code under $XDG_CACHE_HOME/sagedl/bytecode
(default ~/.cache/sagedl/bytecode), keyed by the interpreter's bytecode
magic number and the source's CRC, and loads it with marshal.

It is an optimisation only: any problem (no cache directory, read-only home,
a corrupt or foreign cache file) silently falls back to compiling, and
SAGEDL_NO_BYTECODE_CACHE=1 turns it off.  Cache files are written to a
temporary name and renamed, so concurrent processes never read half a file.

zipapp/build.py stores this file at the archive root as _sagedl_bytecode.py;
the root __main__ installs it before importing sagedl.  Python 3 uses the
find_spec/exec_module protocol (find_module is gone in 3.12), Python 2.7
find_module/load_module.
"""

import binascii
import marshal
import os
import stat
import sys
import zlib

PACKAGE = "sagedl"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
MAX_CODE_BYTES = 16 << 20


def _read_regular(path):
    """A cached entry's bytes: never through a symlink, never from a FIFO or
    device (one planted in the cache would hang every start), bounded."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IOError("not a regular file")
        chunks = []
        total = 0
        while total <= MAX_CODE_BYTES:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
            total += len(b)
        return b"".join(chunks)
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

    def __init__(self, archive, root):
        import zipimport
        self.archive = archive
        self.zip = zipimport.zipimporter(archive)
        magic = _magic()
        tag = "%s-%s" % (getattr(getattr(sys, "implementation", None), "name", "cpython"),
                         "".join("%02x" % c for c in bytearray(magic)))
        self.dir = os.path.join(root, tag)
        self.made_dir = False

    # -- where things are -----------------------------------------------------
    def _relpath(self, fullname):
        """(path inside the archive, is_package) or None."""
        if fullname != PACKAGE and not fullname.startswith(PACKAGE + "."):
            return None
        base = fullname.replace(".", "/")
        for rel, is_pkg in ((base + "/__init__.py", True), (base + ".py", False)):
            try:
                self.zip.get_data(rel)
                return rel, is_pkg
            except IOError:
                continue
        return None

    def _code(self, fullname, rel):
        source = self.zip.get_data(rel)
        key = zlib.crc32(source) & 0xffffffff
        path = os.path.join(self.dir, "%s.%08x.bin" % (fullname, key))
        try:
            data = _read_regular(path)
            if data[:4] == b"SDL1" and int(data[4:12], 16) == len(source):
                return marshal.loads(data[12:])
        except (IOError, OSError, ValueError, EOFError, TypeError):
            pass
        code = compile(source, os.path.join(self.archive, rel), "exec", 0, True)
        self._store(path, b"SDL1" + ("%08x" % len(source)).encode("ascii") + marshal.dumps(code))
        return code

    def _store(self, path, data):
        try:
            if not self.made_dir:
                if not os.path.isdir(self.dir):
                    os.makedirs(self.dir)
                self.made_dir = True
            # A fresh name, created O_EXCL|O_NOFOLLOW: nothing planted in the
            # cache directory is written through.
            tmp = "%s.%d.%s.tmp" % (path, os.getpid(), binascii.hexlify(os.urandom(4)).decode())
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            if os.path.lexists(path) and not stat.S_ISREG(os.lstat(path).st_mode):
                os.unlink(tmp)
                return
            os.rename(tmp, path)
            # Drop this module's entries for older sources (a rebuilt pyz),
            # so the cache does not grow with every release.
            prefix = os.path.basename(path).rsplit(".", 2)[0] + "."
            for name in os.listdir(self.dir):
                if (name.startswith(prefix) and name.endswith(".bin") and name != os.path.basename(path)
                        and name.count(".") == prefix.count(".") + 1):
                    os.unlink(os.path.join(self.dir, name))
        except (IOError, OSError):
            pass   # read-only home, full disk ...: compiling next time is fine

    def _init_module(self, module, fullname, rel, is_pkg):
        module.__file__ = os.path.join(self.archive, rel)
        module.__loader__ = self
        if is_pkg:
            module.__path__ = [os.path.join(self.archive, fullname.replace(".", "/"))]
            module.__package__ = fullname
        else:
            module.__package__ = fullname.rpartition(".")[0]

    # -- PEP 302 data access (pkgutil.get_data) -----------------------------------
    def get_data(self, path):
        return self.zip.get_data(path)

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
        fullname = module.__spec__.name
        rel, is_pkg = module.__spec__.loader_state
        code = self._code(fullname, rel)
        exec(code, module.__dict__)

    # -- Python 2.7: find_module / load_module --------------------------------------
    def find_module(self, fullname, path=None):
        return self if self._relpath(fullname) is not None else None

    def load_module(self, fullname):
        import imp
        rel, is_pkg = self._relpath(fullname)
        module = sys.modules.get(fullname)
        if module is None:
            module = sys.modules[fullname] = imp.new_module(fullname)
        self._init_module(module, fullname, rel, is_pkg)
        try:
            exec(self._code(fullname, rel), module.__dict__)
        except BaseException:
            sys.modules.pop(fullname, None)
            raise
        return sys.modules[fullname]


def install(archive, environ):
    """Put the caching importer ahead of zipimport for the sagedl package."""
    if environ.get("SAGEDL_NO_BYTECODE_CACHE"):
        return None
    try:
        importer = CachingImporter(archive, cache_root(environ))
    except Exception:
        return None
    sys.meta_path.insert(0, importer)
    return importer
