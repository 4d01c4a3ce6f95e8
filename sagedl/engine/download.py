"""The download engine: one file, from a list of sources, verified, resumable.

The rules, each the answer to a way downloads go wrong:

* Bytes are streamed to ``NAME.part`` beside the target (same filesystem, so
  the final rename is atomic), hashed while written, and reach ``NAME`` only
  after the size and checksum match and the data is fsync'ed.
* ``NAME.part.json`` keeps what the server said about the partial (URL, ETag,
  Last-Modified, total size, expected digests).  It is written before the
  first body byte, so even ``kill -9`` leaves a resumable partial.
* Resume sends ``Range: bytes=N-`` and, to the same URL, ``If-Range``.  Bytes
  are appended only after a 206 whose Content-Range start, end and total all
  match; a 200 means start again from zero; a 416 is never "done" by itself:
  the partial is verified, or else discarded.  From another mirror, a partial
  is only continued when a checksum pins the content.
* A checksum failure is a source failure: the partial is discarded and the
  next source is tried.  A checksum failure after a resume also earns the
  source one more try from scratch (the old bytes may be the bad ones).
* Any error moves on to the next source; transient statuses (429, 503, ...)
  are retried on the same source with capped backoff first.  The attempts
  are bounded, and the final error lists what each source did.
* One process per file: an flock beside the target.  A process that waited
  for the lock verifies the finished file instead of downloading it again.
* Only regular files of our own (see fsutil for why): a symlink, device,
  FIFO, socket or directory at NAME, NAME.part, NAME.part.json, NAME.lock or
  NAME.bad is refused (UnsafePath, exit 6), never followed, hashed, renamed
  or replaced.  NAME.part.json holds no credentials, is written 0600, and is
  ignored unless every field has the expected type.
* Without a checksum, a file at NAME is downloaded again (as curl, wget -O and
  sage-download-file do); it is kept only when a given checksum verifies it.
  A 206 must carry the validator sent in If-Range, or the resume restarts:
  an old half and a new half are never joined.

Three modules share the work: this one decides whether a file is already
there and which source to try next (the failover loop); sourcequeue.py
orders the sources; transfer.py holds one attempt on one source and the
resume rules, with the table of the tests that pin each of them.
"""

from __future__ import absolute_import

import os
import stat
import time

from sagedl.compat import compat_monotonic, compat_replace, compat_urlsplit
from sagedl.engine import fsutil
from sagedl.engine.lock import FileLock
from sagedl.engine.retry import Retry
from sagedl.engine.verify import verify_file
from sagedl.errors import DiskError, SourceFailure, failure_error
from sagedl.net.urls import redact
from sagedl.text import native_str

BLOCK_SIZE = 256 * 1024
# A body whose size nobody states (no Content-Length, no --size, no size in
# checksums.ini) could go on for ever and fill the disk: it is cut off here
# (--max-size), and what was received is discarded, not kept as a partial.
DEFAULT_MAX_SIZE = 4 << 30

# Set-aside bad files kept beside one target (NAME.bad, NAME.bad.1, ...):
# past this many, something is wrong that a new name will not fix.
MAX_SET_ASIDE = 1000
# Five minutes of "busy" from one source is long enough: the next source is
# tried (a --retries of 100000000 once retried a 503 for ever).
MAX_RETRY_TIME = 300.0


class Options(object):
    """Tunables.  timeout: network timeout (s).  low_speed_*: the stall rule:
    a transfer averaging under low_speed_limit bytes/s over low_speed_time
    seconds is abandoned (a read timeout alone never catches a trickle).
    max_size: the cap on a body of unknown size (see DEFAULT_MAX_SIZE).
    retry: when a busy source is asked again (see retry.py).  max_retry_time:
    how long one source may keep answering 429/503 before it counts as
    failed, whatever the number of retries left.
    throttle: --limit-rate's ratelimit.TokenBucket, shared by the run's
    transfers, or None."""

    def __init__(self, timeout=30.0, retry=None, low_speed_limit=1024, low_speed_time=30.0,
                 lock_timeout=3600.0, force=False, block_size=BLOCK_SIZE,
                 max_size=DEFAULT_MAX_SIZE, throttle=None, max_retry_time=MAX_RETRY_TIME):
        self.timeout = timeout
        self.retry = retry if retry is not None else Retry()
        self.max_retry_time = max_retry_time
        self.low_speed_limit = low_speed_limit
        self.low_speed_time = low_speed_time
        self.lock_timeout = lock_timeout
        self.force = force
        self.block_size = block_size
        self.max_size = max_size
        self.throttle = throttle


class Source(object):
    def __init__(self, url, label=None):
        # Mirror URLs come from TOML/JSON as unicode on 2.7; mixed with a
        # non-ASCII byte path in a message they raised UnicodeDecodeError.
        self.url = native_str(url)
        self.label = label or source_label(self.url)

    def __repr__(self):
        return "Source(%r)" % redact(self.url)


def source_label(url):
    try:
        parts = compat_urlsplit(url)
        return parts.hostname + (":%d" % parts.port if parts.port else "")
    except (ValueError, TypeError):
        return redact(url)


class Result(object):
    """path: where the file is.  nbytes: bytes received in this run (the
    size of a file found present), for the bulk summary."""

    def __init__(self, path, status, nbytes=0):
        self.path = path
        self.status = status      # "downloaded" | "present"
        self.nbytes = nbytes


class Download(object):
    """Fetch ``dest`` from ``sources`` (tried in order).  See the module docstring."""

    def __init__(self, dest, sources, expected, transport, progress, options=None,
                 on_result=None, notify=None, sleep=time.sleep, notes_shown=False):
        self.dest = os.path.abspath(dest)
        self.name = os.path.basename(self.dest)
        # A callable is planned only once a transfer is needed: ranking the
        # mirrors costs a network probe, which a verified file must not.
        self._plan = sources if callable(sources) else None
        self.sources = None if self._plan else sources
        self.expected = expected
        self.transport = transport
        self.progress = progress
        self.opts = options or Options()
        self.on_result = on_result or (lambda url, ok, reason: None)
        self.notify = notify or progress.note
        self.sleep = sleep
        # Whether the user sees notify's notes: the caller, which chose the
        # display, knows; the final error then leaves out what they saw.
        self.notes_shown = notes_shown
        self.part = self.dest + ".part"
        self.meta_path = self.part + ".json"
        self._verdict = None      # (file identity, verify_file result): see _verify_existing

    # -- entry point ------------------------------------------------------
    def run(self):
        present = self.present()
        if present is not None:
            return present
        lock = FileLock(self.dest + ".lock", self.opts.lock_timeout, self.name, on_wait=self.notify)
        with lock:
            fsutil.remove_stale_temps(self.dest)   # an interrupted run's, see there
            present = self.check_existing()
            if present is not None:
                return present
            return self._fetch()

    def present(self):
        """A Result when a file at NAME verifies, else None; checked before
        the lock (for the scheduler's split files too).  The final name only
        ever receives verified bytes by rename, so a file there can be
        checked without the lock -- which a read-only distfiles directory
        could not even create."""
        d = os.path.dirname(self.dest)
        if not os.path.isdir(d):
            raise DiskError("destination directory does not exist: %s" % d)
        self._refuse_unsafe_target()
        if self.expected.known() and not self.opts.force and os.path.exists(self.dest):
            ok, _ = self._verify_existing()
            if ok:
                return Result(self.dest, "present", nbytes=os.path.getsize(self.dest))
        return None

    def _refuse_unsafe_target(self):
        """NAME must be absent or a regular file.  A symlink is accepted only
        as a cached file that a checksum verifies (reading is harmless); it is
        never replaced.  A device, FIFO, socket or directory is refused before
        anything opens or hashes it."""
        k = fsutil.kind(self.dest)
        if k in (None, "file"):
            return
        if k == "symlink" and self.expected.known() and not self.opts.force \
                and fsutil.kind(self.dest, follow=True) == "file":
            return
        raise fsutil.UnsafePath(self.dest, k)

    def check_existing(self):
        """Under the lock: a Result when NAME verifies, else None, with a
        file that does not verify set aside (or kept, without a checksum,
        until the new one replaces it)."""
        self._refuse_unsafe_target()
        if not os.path.exists(self.dest):
            return None
        if self.opts.force:
            # --force downloads again; a file that verifies is simply
            # replaced by the new one, only a bad one is set aside.
            if self.expected.known() and not self._verify_existing()[0]:
                self._set_aside("re-downloading (--force); the existing file does not verify")
            return None
        if not self.expected.known():
            # Nothing pins the content: download again, as curl, wget -O and
            # sage-download-file do.  The old file stays until the new one
            # replaces it by rename.
            return None
        ok, reason = self._verify_existing()
        if ok:
            return Result(self.dest, "present", nbytes=os.path.getsize(self.dest))
        self._set_aside("existing file does not verify (%s)" % reason)
        return None

    def _verify_existing(self):
        """verify_file on the final name, hashing it once per run: the check
        before the lock and the one under it see the same file unless a
        rename replaced it (a new inode), so the first verdict is reused."""
        st = os.stat(self.dest)
        if not stat.S_ISREG(st.st_mode):      # never hash a FIFO or /dev/zero
            raise fsutil.UnsafePath(self.dest, fsutil.kind_of_mode(st.st_mode), "read")
        identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime)
        if self._verdict is None or self._verdict[0] != identity:
            self._verdict = (identity, verify_file(self.dest, self.expected))
        return self._verdict[1]

    def _set_aside(self, why):
        """A bad final file is moved aside, never silently deleted: to
        NAME.bad, or when that is taken (an earlier bad file, kept too) to
        the first free NAME.bad.1, NAME.bad.2, ...  Under the lock on NAME,
        so no other sagedl picks the same name meanwhile."""
        fsutil.refuse_unless_regular(self.dest, "move aside")
        aside = self.dest + ".bad"
        n = 0
        while fsutil.kind(aside) is not None:
            fsutil.refuse_unless_regular(aside)
            n += 1
            if n > MAX_SET_ASIDE:
                raise DiskError("cannot move %s aside: %s.bad to .bad.%d all exist"
                                % (self.dest, self.name, MAX_SET_ASIDE),
                                hint="remove the old %s.bad* files" % self.name)
            aside = "%s.bad.%d" % (self.dest, n)
        self.notify("%s: %s; moved to %s" % (self.name, why, os.path.basename(aside)))
        try:
            compat_replace(self.dest, aside)
        except OSError as e:
            raise fsutil.write_error("cannot move %s aside" % self.dest, e)

    # -- the failover loop --------------------------------------------------
    def _fetch(self):
        # Imported here: a file that is already there needs neither.
        from sagedl.engine.sourcequeue import SourceQueue
        from sagedl.engine.transfer import Restart, Transfer
        queue = SourceQueue(self._plan() if self.sources is None else self.sources)
        self.sources = queue.sources
        if queue.peek() is None:
            raise failure_error([], self.name)
        transfer = Transfer(self)
        attempts = []
        announced = 0
        while queue.peek() is not None:
            src, scratch = queue.take()
            retry = self.opts.retry
            while True:
                try:
                    nbytes = transfer.attempt(src, scratch)
                    self.on_result(src.url, True, "ok")
                    return Result(self.dest, "downloaded", nbytes)
                except Restart:
                    scratch = True
                    continue
                except SourceFailure as f:
                    if f.kind == SourceFailure.KIND_TRANSIENT and not retry.exhausted:
                        if not retry.used:
                            retry_start = compat_monotonic()
                        retry = retry.increment()
                        delay = retry.delay(f.retry_after)
                        waited = compat_monotonic() - retry_start
                        if waited + delay <= self.opts.max_retry_time:
                            self.notify("%s: %s; retrying in %.1fs" % (src.label, f, delay))
                            self.sleep(delay)
                            continue
                        # The Retry bounds the count, this the time: a huge
                        # --retries against a server busy for ever still ends.
                        f = SourceFailure(f.kind, "%s; gave up after %d retries in %.0fs"
                                          % (f, retry.used - 1, waited), hint=f.hint,
                                          cause=f.cause)
                    attempts.append((src.label, f))
                    self.on_result(src.url, False, str(f))
                    if f.kind == SourceFailure.KIND_CHECKSUM and f.resumed:
                        queue.again_from_scratch(src)
                    upcoming = queue.peek()
                    if upcoming is not None:
                        self.notify("%s failed: %s; trying %s" % (src.label, f, upcoming[0].label))
                        announced = len(attempts)
                    break
        # Failures already shown as notes are not listed again (with -q, or
        # without a display, they were not shown: the error lists them all).
        raise failure_error(attempts, self.name, announced if self.notes_shown else 0)


def fetch(dest, sources, expected, transport, progress, options=None, on_result=None,
          notify=None, sleep=time.sleep, notes_shown=False):
    """Download ``dest`` from ``sources`` (Sources, or a callable returning
    them, called only if ``dest`` is not already verified); returns a Result
    or raises SagedlError.  notes_shown: the user sees notify's notes (a
    failure said there is not listed again in the final error)."""
    return Download(dest, sources, expected, transport, progress, options, on_result,
                    notify, sleep, notes_shown).run()
