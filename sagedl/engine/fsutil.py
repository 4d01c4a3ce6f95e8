"""The files and streams sagedl writes: only regular files it created itself.

Why this module exists: a downloader runs as root in build
sandboxes and writes into shared distfiles and mirror directories, where
anyone may have planted a name first.  A red-team pass had ``sagedl URL
/dev/null --sha256 H`` rename the machine's /dev/null aside, a planted
``NAME.part`` symlink make it overwrite a victim file with server bytes, and a
FIFO at the final name make it hash forever.  The rules, all here:

* A name sagedl writes (``NAME``, ``NAME.part``, ``NAME.part.json``,
  ``NAME.lock``, ``NAME.bad``, make-mirror's files) is never followed when it
  is a symlink and never opened, renamed or replaced when it is a device,
  FIFO, socket or directory: ``UnsafePath`` (exit 6) says which and why.
* New files are created with ``O_CREAT|O_EXCL|O_NOFOLLOW`` under a fresh
  random name, so nothing planted can be written through; existing ones are
  opened with ``O_NOFOLLOW|O_NONBLOCK`` and checked with ``fstat`` before use.
* ``write_atomic`` is the one temp-file-and-rename helper for every small file
  sagedl writes (metadata, caches, indexes), and ``place`` the one for putting
  a verified file under another name (a hard link or a copy).
* What sagedl reads from disk is bounded (``read_bounded``): a 200 MB
  package-version.txt once took 1.2 GB of memory.
* Text reaching stdout/stderr survives any locale (``SafeStream``); names
  read from Sage's metadata become paths the OS can take through text.py.

A check-then-rename on a final name leaves a race a local attacker with
write access to the directory can still win against a determined schedule;
POSIX has no rename that refuses a symlink or device.  The checks make the
planted-in-advance case (the one reported) safe, and O_EXCL/O_NOFOLLOW make
every open safe.
"""

from __future__ import absolute_import

import errno
import os
import stat

from sagedl.compat import PY2, compat_replace, compat_str
from sagedl.errors import DiskError, UsageError

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
O_NOCTTY = getattr(os, "O_NOCTTY", 0)
# Opening an existing name: no symlink, no waiting on a FIFO, no controlling tty.
_SAFE_OPEN = O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC

HINT = "sagedl only writes regular files it created; remove or rename it and run again"


class UnsafePath(DiskError):
    """A name sagedl would write is a symlink, device, FIFO, socket or directory."""

    def __init__(self, path, kind, doing="write"):
        DiskError.__init__(self, "refusing to %s %s: it is %s, not a regular file"
                           % (doing, path, describe(kind)), hint=HINT)
        self.path = path
        self.kind = kind


_KINDS = ((stat.S_ISREG, "file"), (stat.S_ISDIR, "directory"), (stat.S_ISLNK, "symlink"),
          (stat.S_ISFIFO, "fifo"), (stat.S_ISSOCK, "socket"), (stat.S_ISCHR, "char-device"),
          (stat.S_ISBLK, "block-device"))
_WORDS = {"directory": "a directory", "symlink": "a symbolic link", "fifo": "a FIFO",
          "socket": "a socket", "char-device": "a character device",
          "block-device": "a block device", "other": "a special file"}


def kind_of_mode(mode):
    for test, name in _KINDS:
        if test(mode):
            return name
    return "other"


def kind(path, follow=False):
    """"file", "directory", "symlink", "fifo", "socket", "char-device",
    "block-device", "other", or None when nothing is there.  A name that
    cannot even be looked at (a directory without search permission, a
    name too long) is access_error's one-line error, not an OSError: it
    once escaped as "internal error", and killed bulk workers."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError as e:
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise access_error("access", path, e)
    return kind_of_mode(st.st_mode)


ACCESS_HINT = ("sagedl must be able to search that directory and read the files in it: "
               "fix the permissions, or use a directory of your own")


def access_error(doing, path, e):
    """The SagedlError for an OSError met while ``doing`` (a verb) ``path``:
    a name longer than the system takes is bad input (UsageError, exit 2),
    anything else a disk problem (DiskError, exit 6) -- with a hint when
    permissions are the cause."""
    reason = getattr(e, "strerror", None) or str(e)
    if getattr(e, "errno", None) == errno.ENAMETOOLONG:
        return UsageError("cannot %s %s: file name too long" % (doing, path),
                          hint="use a shorter file or directory name")
    hint = ACCESS_HINT if getattr(e, "errno", None) in (errno.EACCES, errno.EPERM) else None
    return DiskError("cannot %s %s: %s" % (doing, path, reason), hint=hint)


def describe(k):
    return _WORDS.get(k, "a " + str(k))


def refuse_unless_regular(path, doing="write"):
    """Raise UnsafePath unless ``path`` is absent or a regular file (not a
    symlink).  Called before any rename onto a name sagedl writes."""
    k = kind(path)
    if k not in (None, "file"):
        raise UnsafePath(path, k, doing)


def create_exclusive(path, mode=0o644):
    """A new file at ``path`` for writing: fails if anything (a symlink
    included) is already there.  Returns the fd."""
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
    except OSError as e:
        if e.errno == errno.EEXIST:
            k = _quiet_kind(path)
            if k not in (None, "file"):
                raise UnsafePath(path, k)
        raise


def open_regular(path, flags, mode=0o644, doing="write", follow=False):
    """os.open without following a symlink (unless ``follow``, for reading)
    or blocking on a FIFO; the fd is checked to be a regular file (else
    closed and UnsafePath).  ENOENT and other OSErrors pass through for the
    caller to word."""
    try:
        fd = os.open(path, flags | (_SAFE_OPEN & ~O_NOFOLLOW if follow else _SAFE_OPEN), mode)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EISDIR):
            k = _quiet_kind(path)
            if k not in (None, "file"):
                raise UnsafePath(path, k, doing)
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(path, kind_of_mode(st.st_mode), doing)
        if O_NONBLOCK and not flags & O_NONBLOCK:
            import fcntl
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~O_NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _quiet_kind(path):
    try:
        return kind(path)
    except (OSError, DiskError, UsageError):
        return None


# The bound on one metadata file of a Sage tree (checksums.ini, type,
# package-version.txt, .upstream.d entries), for both of sagedl's readers of
# them: Sage's largest is a few KiB; a 200 MB package-version.txt once took
# 1.2 GB of memory.
METADATA_LIMIT = 1 << 20


class TooLarge(ValueError):
    """A file to read is larger than the bound its reader set."""


def read_bounded(path, limit, follow=False):
    """The bytes of the regular file ``path``, at most ``limit`` of them:
    TooLarge when there are more, UnsafePath when it is not a regular file
    (a FIFO would block, /dev/zero would never end), OSError otherwise.
    ``follow``: a symlink to a regular file is read (Sage's metadata)."""
    fd = open_regular(path, os.O_RDONLY, doing="read", follow=follow)
    try:
        chunks, total = [], 0
        while total <= limit:
            b = os.read(fd, min(1 << 20, limit + 1 - total))
            if not b:
                break
            chunks.append(b)
            total += len(b)
    finally:
        os.close(fd)
    if total > limit:
        raise TooLarge("%s is larger than %d bytes" % (path, limit))
    return b"".join(chunks)


def temp_name(path):
    """A fresh name beside ``path`` for a file about to be renamed onto it."""
    import binascii
    d, base = os.path.split(path)
    token = binascii.hexlify(os.urandom(6))
    if not PY2 or isinstance(base, compat_str):
        token = token.decode("ascii")
    return os.path.join(d, ".%s.%s.tmp" % (base, token))


def remove_stale_temps(path, suffixes=("", ".part", ".part.json")):
    """Remove temp_name() files of ``path`` + each suffix left by a process
    that died between creating and renaming one (Ctrl-C ends a bulk run's
    worker threads wherever they are).  Only for a caller holding the
    lock on ``path``: no other sagedl is writing those names then.  Never
    follows a symlink: only regular files matching the exact pattern go."""
    import re
    d, base = os.path.split(path)
    pattern = re.compile(r"^\.(%s)\.[0-9a-f]{12}\.tmp$"
                         % "|".join(re.escape(base + s) for s in suffixes))
    try:
        names = os.listdir(d or ".")
    except OSError:
        return
    for name in names:
        if pattern.match(name) and kind(os.path.join(d, name)) == "file":
            _unlink_quietly(os.path.join(d, name))


def write_atomic(path, data, mode=0o644):
    """Replace ``path`` with ``data`` (bytes): a new file under a random name
    (O_EXCL, O_NOFOLLOW, ``mode``), then a rename.  Refuses when ``path`` is a
    symlink or not a regular file.  Raises DiskError/UnsafePath."""
    refuse_unless_regular(path)

    def fill(tmp):
        fd = create_exclusive(tmp, mode)
        try:
            write_all(fd, data)
        finally:
            os.close(fd)
    _rename_into_place(fill, path)


def place(src, dest, link=True):
    """Put the verified regular file ``src`` at ``dest`` atomically: a hard
    link when ``link`` and possible, else a copy, under a fresh name beside
    ``dest``, then a rename.  ``dest`` must be absent or a regular file."""
    if os.path.abspath(src) == os.path.abspath(dest):
        return
    refuse_unless_regular(dest)
    if _same_file(src, dest):
        return

    def fill(tmp):
        if link:
            try:
                os.link(src, tmp)      # never follows or replaces tmp: EEXIST
                if kind(tmp) == "file":
                    return
            except OSError:
                pass   # another filesystem, or no hard links: copy
        _copy(src, tmp)
    _rename_into_place(fill, dest)


def _rename_into_place(fill, dest):
    """The one way write_atomic and place replace ``dest``: ``fill`` creates a
    fresh temporary name beside it, which is renamed onto ``dest`` once
    ``dest`` is still absent or a regular file; the temporary name never
    outlives a failure."""
    tmp = temp_name(dest)
    try:
        fill(tmp)
        refuse_unless_regular(dest)
        compat_replace(tmp, dest)
    except (IOError, OSError) as e:
        _unlink_quietly(tmp)
        error = DiskError("cannot write %s: %s" % (dest, getattr(e, "strerror", None) or e))
        error.errno = getattr(e, "errno", None)    # for a caller's hint (ENOSPC, EROFS)
        raise error
    except BaseException:     # UnsafePath, or Ctrl-C between creating and renaming
        _unlink_quietly(tmp)
        raise


def _same_file(src, dest):
    """dest is already src itself (a hard link of it, say from the last
    make-mirror): rename(2) of one link over another of the same inode does
    nothing and leaves the temporary name behind, so there is nothing to do.
    lstat: a symlink at dest is never "the same file"."""
    try:
        d, s = os.lstat(dest), os.stat(src)
    except OSError:
        return False
    return stat.S_ISREG(d.st_mode) and (d.st_dev, d.st_ino) == (s.st_dev, s.st_ino)


def _copy(src, tmp, mode=0o644):
    rfd = open_regular(src, os.O_RDONLY, doing="read")
    try:
        wfd = create_exclusive(tmp, mode)
        try:
            copy_fd(rfd, wfd)
        finally:
            os.close(wfd)
    finally:
        os.close(rfd)


def copy_fd(rfd, wfd, block=1 << 20):
    while True:
        b = os.read(rfd, block)
        if not b:
            return
        write_all(wfd, b)


def write_all(fd, data):
    """os.write until all of data is written: a short write is legal (a
    disk that fills up, a signal).  data may be bytes, a bytearray, a
    memoryview or (2.7) a buffer; the rest after a short write is a slice."""
    while data:
        k = os.write(fd, data)
        data = data[k:]


def write_error(what, e):
    """The DiskError for an OSError met writing, renaming or removing one of
    sagedl's own files (``what``: "cannot write NAME.part"), with a hint
    when the cause is one the user can fix: a full disk, a read-only or
    foreign directory."""
    reason = getattr(e, "strerror", None) or str(e)
    hint = None
    if getattr(e, "errno", None) == errno.ENOSPC:
        hint = "free some space and run again: the partial download is kept and resumes"
    elif getattr(e, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = "choose a writable destination directory"
    return DiskError("%s: %s" % (what, reason), hint=hint)


def remove(path):
    """Remove one of our own files; a symlink, device or FIFO planted under
    that name is refused, not removed (it is not ours)."""
    refuse_unless_regular(path, "remove")
    try:
        os.unlink(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise write_error("cannot remove %s" % path, e)


def commit_part(part, dest, meta_path):
    """Rename a verified, fsynced NAME.part to NAME (never over anything but
    a regular file), make the rename durable, then forget NAME.part.json.
    The one way a partial file becomes final, for whole files and for the
    scheduler's split ones alike."""
    refuse_unless_regular(dest)
    try:
        compat_replace(part, dest)
    except OSError as e:
        raise write_error("cannot rename %s to %s" % (part, dest), e)
    _fsync_dir(os.path.dirname(dest))
    remove(meta_path)


def _fsync_dir(path):
    """Make the rename durable (POSIX: the directory entry lives in the directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


# -- a DESTINATION that is not a regular file ----------------------------------
STREAM_KINDS = ("char-device", "fifo")


def stream_destination(path):
    """For a DESTINATION the user named: "stream" when it is (through
    symlinks) a character device or FIFO (/dev/null, /dev/stdout, a pipe):
    sagedl then writes verified bytes into it as curl would, never renaming,
    replacing or hashing it.  None when it is absent, a regular file, or a
    symlink to one (the engine decides: it only reads such a link, as a
    cached file a checksum verifies, and never replaces it).  UnsafePath
    for the rest: a socket, a block device, a dangling or looping link."""
    k = _quiet_kind(path)
    if k in (None, "file"):
        return None
    target = _quiet_kind_follow(path)
    if target in STREAM_KINDS:
        return "stream"
    if k == "symlink" and target == "file":
        return None
    raise UnsafePath(path, k if k != "symlink" or target is None else target)


def _quiet_kind_follow(path):
    try:
        return kind(path, follow=True)
    except (OSError, DiskError, UsageError):
        return None


def open_stream_destination(path):
    """Open a device or FIFO DESTINATION for writing: no O_CREAT, no O_TRUNC
    (nothing is created or replaced); checked again after opening."""
    try:
        fd = os.open(path, os.O_WRONLY | O_NOCTTY | O_CLOEXEC)
    except OSError as e:
        raise DiskError("cannot write %s: %s" % (path, e.strerror or e))
    st = os.fstat(fd)
    k = kind_of_mode(st.st_mode)
    if k not in STREAM_KINDS:
        os.close(fd)
        raise UnsafePath(path, k)
    return fd


# -- names and streams in any locale ---------------------------------------------
class StreamError(DiskError):
    """stdout could not be written (closed, /dev/full, a broken pipe): exit 6."""


class SafeStream(object):
    """A process stream whose write never raises UnicodeError: text is
    encoded in the stream's encoding when it can be, paths keep their bytes
    (surrogateescape), and anything else is written as UTF-8 (3.6 under
    LANG=C has an ASCII stdout; 2.7 took unicode only as ASCII).  Bytes are
    written as they are.  Every write is flushed.

    ``name`` ("standard output"): a failed write raises StreamError, and the
    descriptor is pointed at /dev/null so the interpreter's own flush at exit
    cannot fail again with a traceback.  ``name`` None (stderr): failures are
    ignored -- there is nowhere left to report them."""

    def __init__(self, stream, name=None):
        self._stream = stream
        self._name = name
        self._buffer = None if PY2 else getattr(stream, "buffer", None)
        enc = getattr(stream, "encoding", None) or "utf-8"
        try:
            import codecs
            self._encoding = codecs.lookup(enc).name
        except LookupError:
            self._encoding = "utf-8"

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def encode(self, text):
        if PY2:
            try:
                return text.encode(self._encoding)
            except UnicodeError:
                return text.encode("utf-8", "replace")
        try:
            return text.encode(self._encoding, "surrogateescape")
        except UnicodeError:
            return _utf8_lenient(text)

    def write(self, text):
        try:
            if PY2:
                if isinstance(text, compat_str):
                    text = self.encode(text)
                self._stream.write(text)
                self._stream.flush()
                return
            data = text if isinstance(text, (bytes, bytearray, memoryview)) else self.encode(text)
            if self._buffer is None:
                self._stream.write(bytes(data).decode(self._encoding, "replace"))
                self._stream.flush()
                return
            self._stream.flush()
            self._buffer.write(data)
            self._buffer.flush()
        except (IOError, OSError, ValueError) as e:
            self._failed(e)

    def flush(self):
        try:
            self._stream.flush()
            if self._buffer is not None:
                self._buffer.flush()
        except (IOError, OSError, ValueError) as e:
            self._failed(e)

    def _failed(self, e):
        try:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, self._stream.fileno())
            os.close(null)
        except (IOError, OSError, ValueError, AttributeError):
            pass
        if self._name is not None:
            raise StreamError("cannot write to %s: %s"
                              % (self._name, getattr(e, "strerror", None) or e))

    def isatty(self):
        try:
            return self._stream.isatty()
        except (AttributeError, ValueError):
            return False

    def fileno(self):
        return self._stream.fileno()


class ClosedStream(object):
    """Stands for a stream that was closed when sagedl started (``>&-``)."""

    encoding = "utf-8"

    def __init__(self, name):
        self._name = name

    def write(self, text):
        if self._name is not None:
            raise StreamError("cannot write to %s: it is closed" % self._name)

    def flush(self):
        pass

    def isatty(self):
        return False


def _utf8_lenient(text):
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeError:
        return text.encode("utf-8", "replace")


def _stdio_closed(fd):
    try:
        os.fstat(fd)
        return False
    except OSError:
        return True


def guard_std_fds():
    """If the process started with stdin/stdout/stderr closed (``>&-``), put
    /dev/null on those descriptors so that no file sagedl opens later gets
    fd 1 and receives what is printed.  Returns the set of fds that were
    closed, so writes meant for a closed stdout can be reported."""
    closed = set()
    for fd in (0, 1, 2):
        if _stdio_closed(fd):
            closed.add(fd)
    for fd in sorted(closed):
        try:
            null = os.open(os.devnull, os.O_RDWR)
        except OSError:
            break
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    return closed
