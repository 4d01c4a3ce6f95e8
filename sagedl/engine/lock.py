"""One transfer per file across processes: an flock(2) lock beside the target.

flock locks die with their process, so a lock held by a process killed with
``kill -9`` never blocks the next run.  The lock file is removed on release;
because another process may be waiting on the very inode we unlink, a
locker re-checks after acquiring that the path still names the inode it
locked, and retries if not (the classic unlink-safe flock pattern).

Waiting has a deadline and says what it waits for: a lock that is never
released ends in LockTimeout naming the file, never in a silent hang.
"""

from __future__ import absolute_import

import errno
import fcntl     # POSIX only, as sagedl is: no lock would be no protection
import os
import time

from sagedl.compat import compat_monotonic
from sagedl.engine import fsutil
from sagedl.errors import DiskError, LockTimeout, debug

# Locks held now, so an interrupted bulk run can release those its worker
# threads hold: daemon threads die at exit without running their cleanup,
# and would leave NAME.lock files behind.
_HELD = set()


def release_all():
    """Release every lock this process holds (after Ctrl-C, before exit)."""
    for lock in list(_HELD):
        lock.release()


def user_name(uid):
    """The login name of ``uid``, else "uid N"."""
    try:
        import pwd
        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return "uid %d" % uid


class FileLock(object):
    """``with FileLock(path, timeout, what):`` holds an exclusive lock on ``path``.

    ``on_wait(message)`` is called once if the lock is not free at once, so
    the CLI can say "waiting for another sagedl to finish X".
    """

    def __init__(self, path, timeout=600.0, what=None, on_wait=None):
        self.path = path
        self.timeout = timeout
        self.what = what or path
        self.on_wait = on_wait
        self.fd = None
        self.owner = None     # another user's name, when the lock file is theirs
        self._fds = []    # [fd] while held; list.pop is atomic, so two
                          # threads releasing (release_all) close it once

    def acquire(self):
        deadline = compat_monotonic() + self.timeout
        delay = 0.005
        told = False
        while True:
            fd = self._open()
            try:
                if self._try_lock(fd):
                    if self.owner is not None and self._still_ours(fd) and self._remove_stale():
                        os.close(fd)
                        continue        # removed: the next round creates our own
                    if self._still_ours(fd):
                        if self.owner is not None:
                            debug("%s belongs to user %s and cannot be removed; locking it "
                                  "as it is" % (self.path, self.owner))
                        self.fd = fd
                        self._fds.append(fd)
                        _HELD.add(self)
                        return self
                    # Unlinked (and maybe re-created) under us: start over.
                    os.close(fd)
                    continue
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)
            whose = "" if self.owner is None else " (of user %s)" % self.owner
            if not told and self.on_wait is not None:
                told = True
                self.on_wait("waiting for another sagedl%s to finish %s" % (whose, self.what))
            remaining = deadline - compat_monotonic()
            if remaining <= 0:
                raise LockTimeout(
                    "timed out after %gs waiting for the lock on %s (%s)%s"
                    % (self.timeout, self.what, self.path, whose),
                    hint="another sagedl%s is downloading it; if none is running, "
                         "remove %s" % (whose, self.path))
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.25)

    def _open(self):
        # Never through a symlink, never a device or FIFO planted at NAME.lock
        # by someone else: checked before opening, and the fd checked after.
        fsutil.refuse_unless_regular(self.path, "lock")
        self.owner = None
        try:
            return fsutil.open_regular(self.path, os.O_RDWR | os.O_CREAT, 0o644, doing="lock")
        except (IOError, OSError) as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                fd = self._open_foreign()
                if fd is not None:
                    return fd
            raise DiskError("cannot create lock file %s: %s" % (self.path, e.strerror or e))

    def _open_foreign(self):
        """NAME.lock is another user's file we may not write (0644 in a
        shared directory; a sticky one also forbids O_CREAT on it): flock
        works on a read-only descriptor too, so it still serves as the
        lock, and a stale one is removed when we may (_remove_stale).  None
        when it is not another user's; DiskError, saying whose it is and
        what to do, when it cannot even be read."""
        try:
            st = os.lstat(self.path)
        except OSError:
            return None
        if st.st_uid == os.geteuid():
            return None
        owner = user_name(st.st_uid)
        try:
            fd = fsutil.open_regular(self.path, os.O_RDONLY, doing="lock")
        except (IOError, OSError) as e:
            raise DiskError("%s is a lock file of user %s that this user cannot open (%s)"
                            % (self.path, owner, e.strerror or e),
                            hint="if no sagedl of %s is downloading %s, %s or an "
                                 "administrator can remove it; or download into a "
                                 "directory of your own" % (owner, self.what, owner))
        self.owner = owner
        return fd

    def _remove_stale(self):
        """Another user's lock file that nobody holds (we just got the
        flock): left by a run killed with kill -9.  Removed when the
        directory lets us; else True is never returned and it serves as
        the lock as it is (release cannot remove it either)."""
        try:
            os.unlink(self.path)
            return True
        except OSError:
            return False

    @staticmethod
    def _try_lock(fd):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except (IOError, OSError) as e:
            if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                return False
            raise

    def _still_ours(self, fd):
        try:
            st = os.lstat(self.path)
        except OSError:
            return False
        fst = os.fstat(fd)
        return (st.st_dev, st.st_ino) == (fst.st_dev, fst.st_ino)

    def release(self):
        try:
            fd = self._fds.pop()
        except IndexError:
            return
        _HELD.discard(self)
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(fd)  # closing drops the flock
        self.fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
