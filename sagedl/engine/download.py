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

The resume rules, each with the test that fails when it is removed (checked
by removing each one; tests/test_resume_rules.py unless another file is
named):

==========================================  =====================================================
rule (where)                                test
==========================================  =====================================================
partial continued only for the same         test_a_partial_of_other_content_is_not_continued
digests (_resumable_offset)
no checksum: only the same URL, with a      test_without_a_checksum_only_the_same_url_is_resumed
validator (_resumable_offset)
a partial longer than the total starts      test_a_partial_longer_than_the_total_starts_again
again (_resumable_offset)
If-Range only to the partial's URL          test_if_range_goes_only_to_the_url_the_partial_came_from
(_attempt)
a weak ETag is never an If-Range;           test_a_weak_etag_is_never_sent_in_if_range
Last-Modified instead (_validator)
a 200 to a Range request restarts at 0      test_a_200_to_a_range_request_starts_from_zero
a 206 to a request without Range fails      test_206_to_a_request_without_range_is_refused
a malformed Content-Range fails             test_malformed_content_range_is_refused
Content-Range start == offset               test_content_range_start_must_be_the_offset_asked_for
Content-Range end == total - 1              test_content_range_end_must_be_the_last_byte
Content-Range total == the known total      test_content_range_total_must_be_the_known_total
Content-Length == the Content-Range span    test_content_length_must_agree_with_content_range
a 206 must carry the If-Range validator     test_a_206_without_the_validator_sent_restarts_from_zero
a total other than the expected size        test_a_total_other_than_the_expected_size_fails_before_any_byte
fails at the head (_check_response)
416: done only if a checksum verifies the   test_416_without_a_checksum_is_never_done,
partial (_handle_416)                       test_416_is_done_only_when_the_partial_verifies,
                                            test_416_for_a_partial_that_does_not_verify_restarts
a partial shorter on disk than the offset   test_a_partial_that_shrank_restarts_from_zero
restarts from zero (_stream)
a checksum failure after a resume earns     test_a_checksum_failure_after_a_resume_earns_a_try_from_scratch
one try from scratch (_fetch)
the stall rule (_copy_loop)                 tests/test_download.py::
                                            test_trickling_source_is_abandoned_by_the_stall_rule
==========================================  =====================================================

(``total == offset`` in _handle_416 only spares hashing a partial that
cannot be complete; without it the checksum still decides.)
"""

from __future__ import absolute_import

import errno
import io
import json
import os
import re
import stat
import time

from sagedl.compat import (compat_integer_types, compat_monotonic, compat_replace,
                           compat_text_types, compat_urlsplit)
from sagedl.engine import fsutil
from sagedl.engine.lock import FileLock
from sagedl.engine.pipeline import open_sink
from sagedl.engine.retry import RETRY_STATUSES, Retry, parse_retry_after
from sagedl.engine.verify import Hasher, hash_file, verify_file
from sagedl.errors import CAUSE_BUSY, CAUSE_SLOW, DiskError, SourceFailure, failure_error
from sagedl.net.urls import redact
from sagedl.text import native_str

BLOCK_SIZE = 256 * 1024
# A body whose size nobody states (no Content-Length, no --size, no size in
# checksums.ini) could go on for ever and fill the disk: it is cut off here
# (--max-size), and what was received is discarded, not kept as a partial.
DEFAULT_MAX_SIZE = 4 << 30

NOT_FOUND_STATUSES = (404, 410)
BUSY_STATUSES = (408, 429, 503)   # the server itself asks us to come back (not a gateway's 502/504)
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


class _Restart(Exception):
    """Internal: try the same source again from byte zero."""


class Download(object):
    """Fetch ``dest`` from ``sources`` (tried in order).  See the module docstring."""

    def __init__(self, dest, sources, expected, transport, progress, options=None,
                 on_result=None, notify=None, sleep=time.sleep):
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
        self.part = self.dest + ".part"
        self.meta_path = self.part + ".json"
        self._capped = False      # the current body's only bound is opts.max_size
        self._verdict = None      # (file identity, verify_file result): see _verify_existing

    # -- entry point ------------------------------------------------------
    def run(self):
        d = os.path.dirname(self.dest)
        if not os.path.isdir(d):
            raise DiskError("destination directory does not exist: %s" % d)
        self._refuse_unsafe_target()
        if self.expected.known() and not self.opts.force and os.path.exists(self.dest):
            # The final name only ever receives verified bytes by rename, so a
            # file there can be checked without the lock -- which a read-only
            # distfiles directory could not even create.
            ok, _ = self._verify_existing()
            if ok:
                return Result(self.dest, "present", nbytes=os.path.getsize(self.dest))
        lock = FileLock(self.dest + ".lock", self.opts.lock_timeout, self.name, on_wait=self.notify)
        with lock:
            fsutil.remove_stale_temps(self.dest)   # an interrupted run's, see there
            present = self._check_existing()
            if present is not None:
                return present
            return self._fetch()

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

    def _check_existing(self):
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
            raise _disk_error("cannot move %s aside" % self.dest, e)

    # -- the failover loop --------------------------------------------------
    def _fetch(self):
        # The sources may be planned one at a time (an iterable): the next is
        # asked for only when the one before has failed, so the network a
        # source needs (ranking the mirrors) is used only when it is reached.
        pending = iter(self._plan() if self.sources is None else self.sources)
        self.sources = []
        queue = []
        later = []     # tries from scratch: after every planned source, as before

        def more():
            """Is there a queue[i] -- planning the next source if need be?"""
            while i >= len(queue):
                src = next(pending, None)
                if src is None:
                    if not later:
                        return False
                    queue.extend(later)
                    del later[:]
                    continue
                self.sources.append(src)
                _distinct_labels(self.sources)
                queue.append((src, False))
            return True

        i = 0
        if not more():
            raise failure_error([], self.name)
        attempts = []
        retried_from_scratch = set()
        announced = 0
        while more():
            src, scratch = queue[i]
            i += 1
            retry = self.opts.retry
            while True:
                try:
                    result = self._attempt(src, scratch)
                    self.on_result(src.url, True, "ok")
                    return result
                except _Restart:
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
                    resumed = f.resumed
                    if (f.kind == SourceFailure.KIND_CHECKSUM and resumed
                            and src.url not in retried_from_scratch):
                        retried_from_scratch.add(src.url)
                        later.append((src, True))
                    if more():
                        self.notify("%s failed: %s; trying %s" % (src.label, f, queue[i][0].label))
                        announced = len(attempts)
                    break
        # Failures already shown as notes are not listed again (with -q, or
        # without a display, they were not shown: the error lists them all).
        shown = getattr(self.progress, "mode", "none") != "none"
        raise failure_error(attempts, self.name, announced if shown else 0)

    # -- one attempt on one source -------------------------------------------
    def _attempt(self, src, scratch):
        meta = self._load_meta()
        offset = 0 if scratch else self._resumable_offset(meta, src)
        if offset == 0:
            self._discard_partial()
        headers = {}
        if offset:
            headers["Range"] = "bytes=%d-" % offset
            validator = _validator(meta) if meta.get("url") == _url_key(src.url) else None
            if validator:
                headers["If-Range"] = validator
        resp = self.transport.open(src.url, headers=headers,
                                   allow_downgrade=self.expected.known())
        try:
            try:
                offset, total = self._check_response(resp, offset, meta,
                                                     headers.get("If-Range"))
            except _Finished:
                # 416 for a partial that verified: it was complete after all.
                self._commit()
                return Result(self.dest, "downloaded", 0)
            return self._stream(src, resp, offset, total)
        finally:
            resp.close()

    def _resumable_offset(self, meta, src):
        k = fsutil.kind(self.part)
        if k is None:
            return 0
        if k != "file":
            raise fsutil.UnsafePath(self.part, k)
        try:
            size = os.lstat(self.part).st_size
        except OSError:
            return 0
        if not meta or size == 0:
            return 0
        if self.expected.known():
            # The partial belongs to this content only if the digests match.
            if (meta.get("sha256"), meta.get("sha1")) != (self.expected.sha256, self.expected.sha1):
                return 0
        elif meta.get("url") != _url_key(src.url) or not _validator(meta):
            return 0   # without a checksum, only the same URL with a validator is safe
        total = meta.get("total") or self.expected.size
        if total is not None and size > total:
            return 0
        return size

    def _check_response(self, resp, offset, meta, if_range=None):
        status = resp.status
        if status in NOT_FOUND_STATUSES:
            raise SourceFailure(SourceFailure.KIND_NOT_FOUND, "HTTP %d %s" % (status, resp.reason))
        if status in RETRY_STATUSES:
            raise SourceFailure(SourceFailure.KIND_TRANSIENT, "HTTP %d %s" % (status, resp.reason),
                                retry_after=parse_retry_after(resp.header("retry-after")),
                                cause=CAUSE_BUSY if status in BUSY_STATUSES else None)
        if status == 416 and offset:
            self._handle_416(resp, offset, meta)
        if status not in (200, 206):
            raise SourceFailure(SourceFailure.KIND_HTTP, "HTTP %d %s" % (status, resp.reason))
        ctype = resp.header("content-type", "").lower()
        if ctype.startswith("text/html") and not self.name.lower().endswith((".html", ".htm")):
            raise SourceFailure(SourceFailure.KIND_PROTOCOL, "served an HTML page instead of the file")
        if status == 200:
            if offset:
                self.notify("%s: server ignored the range request; starting from zero" % self.name)
            total = resp.length
            offset = 0
        else:
            if not offset:
                raise SourceFailure(SourceFailure.KIND_PROTOCOL, "206 Partial Content to a request without Range")
            if ctype.startswith("multipart/byteranges"):
                # Parts in a MIME envelope, not the one range asked for: the
                # range was not honoured as sagedl needs it.  As a 200 would
                # be, it is a restart from zero (without Range), not a
                # failure that every later resume would meet again.
                self.notify("%s: server answered the range request in several parts; "
                            "starting from zero" % self.name)
                raise _Restart()
            total = self._check_content_range(resp, offset, meta)
            if if_range and if_range not in (resp.header("etag"), resp.header("last-modified")):
                # RFC 7233 3.2: a 206 answers "the representation is unchanged".
                # One that does not name the validator we sent may be a new
                # version's tail: joining it to the old head would make a
                # file that never existed.
                self.notify("%s: the server's validator changed; starting from zero" % self.name)
                raise _Restart()
        if total is not None and self.expected.size is not None and total != self.expected.size:
            raise SourceFailure(SourceFailure.KIND_CHECKSUM,
                                "size %d, expected %d" % (total, self.expected.size))
        return offset, total

    def _check_content_range(self, resp, offset, meta):
        cr = resp.header("content-range", "")
        m = re.match(r"^\s*bytes\s+(\d+)-(\d+)/(\d+)\s*$", cr)
        if not m:
            raise SourceFailure(SourceFailure.KIND_PROTOCOL, "bad Content-Range %r" % cr[:80])
        start, end, total = (int(x) for x in m.groups())
        known_total = self.expected.size or meta.get("total")
        if start != offset or end != total - 1 or (known_total and total != known_total):
            raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                "Content-Range %r does not match the request from byte %d%s"
                                % (cr, offset, " of %d" % known_total if known_total else ""))
        if resp.length is not None and resp.length != end - start + 1:
            raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                "Content-Length %d disagrees with Content-Range %r" % (resp.length, cr))
        return total

    def _handle_416(self, resp, offset, meta):
        """416 is never "done" by itself: verify the partial, or start again."""
        m = re.match(r"^\s*bytes\s+\*/(\d+)\s*$", resp.header("content-range", ""))
        total = int(m.group(1)) if m else (self.expected.size or meta.get("total"))
        if total == offset and self.expected.known():
            h = hash_file(self.part, self.expected)
            if h.mismatch() is None:
                raise _Finished()
        self.notify("%s: range not satisfiable; starting from zero" % self.name)
        raise _Restart()

    def _stream(self, src, resp, offset, total):
        expected = self.expected
        fd = self._open_partial(offset)
        try:
            if offset:
                self.notify("resuming %s at byte %d from %s" % (self.name, offset, src.label))
                with io.FileIO(fd, "r", closefd=False) as f:
                    hasher = hash_file(self.part, expected, limit=offset, fileobj=f)
                if hasher.size != offset:
                    raise _Restart()
            else:
                hasher = Hasher(expected)
            try:
                self._save_meta(src, resp, total)
            except DiskError as e:
                raise self._meta_error(e, offset)
            limit = total if total is not None else expected.size
            self._capped = limit is None and bool(self.opts.max_size)
            try:
                os.ftruncate(fd, offset)
                os.lseek(fd, offset, os.SEEK_SET)
            except OSError as e:
                raise _disk_error("cannot write %s" % self.part, e)
            self.progress.start(self.name, limit, offset, source=src.label)
            try:
                done = self._copy(resp, fd, hasher, offset,
                                  self.opts.max_size if self._capped else limit)
                self._finish_partial(fd, hasher, offset, src, resp)
            except KeyboardInterrupt:
                self.progress.finish(None)    # says "interrupted", not "failed"
                raise
            except BaseException:
                self.progress.finish(False)   # ends a bar line before any message
                raise
        finally:
            if fd is not None:
                os.close(fd)
        self.progress.finish(True)
        return Result(self.dest, "downloaded", done - offset)

    def _meta_error(self, e, offset):
        """The error for NAME.part.json that could not be written (a full
        disk): a new, empty NAME.part without it is nothing to resume, so
        it goes, and the hint says what is kept -- it once promised a
        partial that did not exist.  A planted symlink there (UnsafePath)
        keeps its own error."""
        if not offset:
            self._discard_partial()
        if isinstance(e, fsutil.UnsafePath):
            return e
        hint = {errno.ENOSPC: "free some space and run again",
                errno.EDQUOT: "free some space and run again"}.get(
            getattr(e, "errno", None), e.hint or "choose a writable destination directory")
        if offset:
            hint += ": the partial download (%d bytes) is kept and resumes" % offset
        return DiskError(e.message, hint=hint)

    def _open_partial(self, offset):
        """NAME.part for writing: the existing regular file when resuming
        (never through a symlink), else a new one (O_EXCL: nothing planted
        there is written through)."""
        try:
            if offset:
                return fsutil.open_regular(self.part, os.O_RDWR)
            _unlink(self.part)     # a 200 to a Range request starts over
            return fsutil.create_exclusive(self.part, 0o644)
        except DiskError:
            raise
        except OSError as e:
            raise _disk_error("cannot write %s" % self.part, e)

    def _copy(self, resp, fd, hasher, done, limit):
        """The hot loop: receive a block, check it, hand it to the sink
        (pipeline.py), which hashes and writes it -- in a second thread for
        large transfers.  Returns once every block is hashed and written."""
        sink = open_sink(fd, hasher, self.opts.block_size,
                         None if limit is None else limit - done)
        try:
            done = self._copy_loop(resp, sink, done, limit)
            try:
                sink.finish()
            except OSError as e:
                raise self._write_error(e)
        finally:
            sink.close()    # writes what was received, even after an error
        return done

    def _write_error(self, e):
        return _disk_error("cannot write %s" % self.part, e)

    def _copy_loop(self, resp, sink, done, limit):
        readinto, buffer, put = resp.readinto, sink.buffer, sink.put
        report = self.progress.update
        now = compat_monotonic
        window_start, window_bytes = now(), 0
        low_limit, low_time = self.opts.low_speed_limit, self.opts.low_speed_time
        throttle = self.opts.throttle
        while True:
            try:
                view = buffer()     # a write error in the sink's thread surfaces here
            except OSError as e:
                raise self._write_error(e)
            if throttle is not None and len(view) > throttle.chunk:
                view = view[:throttle.chunk]
            n = readinto(view)
            if not n:
                break
            if limit is not None and done + n > limit:
                raise self._too_long(limit)
            try:
                put(n)
            except OSError as e:
                raise self._write_error(e)
            done += n
            report(done)
            window_bytes += n
            if throttle is not None:
                # Time spent held back by --limit-rate is not a stall.
                window_start += throttle.take(n)
            t = now()
            if t - window_start >= low_time:
                if window_bytes < low_limit * (t - window_start):
                    raise SourceFailure(SourceFailure.KIND_NETWORK,
                                        "stalled: %d bytes in %.0fs (below %d bytes/s)"
                                        % (window_bytes, t - window_start, low_limit),
                                        cause=CAUSE_SLOW)
                window_start, window_bytes = t, 0
        return done

    def _too_long(self, limit):
        if not self._capped:
            return SourceFailure(SourceFailure.KIND_PROTOCOL,
                                 "server sent more than the expected %d bytes" % limit)
        # No size was known, so these bytes are not a resumable prefix of
        # anything: keeping them would only keep the garbage.
        self._discard_partial()
        return SourceFailure(SourceFailure.KIND_PROTOCOL,
                             "body of unknown size went past --max-size %d bytes; discarded"
                             % limit)

    def _finish_partial(self, fd, hasher, offset, src, resp):
        reason = hasher.mismatch()
        if reason is not None:
            self._discard_partial()
            # detail: both full digests, for the final error's hint
            raise SourceFailure(SourceFailure.KIND_CHECKSUM,
                                "checksum mismatch: " + hasher.short_mismatch(),
                                detail=reason, resumed=offset > 0)
        try:
            os.fsync(fd)
        except OSError as e:
            raise _disk_error("cannot write %s" % self.part, e)
        self._commit()

    def _commit(self):
        commit_part(self.part, self.dest, self.meta_path)

    # -- partial-file bookkeeping ---------------------------------------------
    def _load_meta(self):
        """NAME.part.json, or {} when it is absent, not a regular file, too
        large, or not exactly what _save_meta writes (any unusable metadata is
        no metadata: a hostile file must not wedge every later run)."""
        try:
            data = fsutil.read_bounded(self.meta_path, MAX_META_BYTES)
            meta = json.loads(data.decode("utf-8"))
        except (IOError, OSError, ValueError, UnicodeError, DiskError):
            return {}
        return meta if _valid_meta(meta) else {}

    def _save_meta(self, src, resp, total):
        meta = {"url": _url_key(src.url), "etag": _header_value(resp.header("etag")),
                "last_modified": _header_value(resp.header("last-modified")), "total": total,
                "sha256": self.expected.sha256, "sha1": self.expected.sha1}
        data = json.dumps(meta, sort_keys=True).encode("utf-8")
        # 0600: the URL is stored without credentials, but a private mirror's
        # path is nobody else's business either.
        fsutil.write_atomic(self.meta_path, data, mode=0o600)

    def _discard_partial(self):
        _unlink(self.part)
        _unlink(self.meta_path)


class _Finished(Exception):
    """Internal: a 416 for a partial that verifies: it was complete after all."""


def fetch(dest, sources, expected, transport, progress, options=None, on_result=None,
          notify=None, sleep=time.sleep):
    """Download ``dest`` from ``sources`` (Sources, or a callable returning
    them, called only if ``dest`` is not already verified); returns a Result
    or raises SagedlError."""
    return Download(dest, sources, expected, transport, progress, options, on_result,
                    notify, sleep).run()


def _distinct_labels(sources):
    """Label sources by host, or by host and path when hosts repeat, so the
    final error tells them apart."""
    labels = [s.label for s in sources]
    if len(set(labels)) < len(labels):
        for s in sources:
            if labels.count(s.label) > 1:
                s.label = redact(s.url).split("://", 1)[-1].rsplit("/", 1)[0] + "/"
    return sources


def _validator(meta):
    """If-Range needs a strong ETag or a Last-Modified date (RFC 7233 section 3.2)."""
    etag = meta.get("etag")
    if etag and not etag.startswith("W/"):
        return etag
    return meta.get("last_modified")


MAX_META_BYTES = 64 * 1024
_META_TEXT = ("url", "etag", "last_modified", "sha256", "sha1")


def _valid_meta(meta):
    """True when meta has exactly the types _save_meta writes."""
    if not isinstance(meta, dict):
        return False
    for key in _META_TEXT:
        value = meta.get(key)
        if value is not None and (not isinstance(value, compat_text_types)
                                  or _header_value(value) != value):
            return False
    total = meta.get("total")
    if total is not None and (isinstance(total, bool) or not isinstance(total, compat_integer_types)
                              or total < 0):
        return False
    return True


def _header_value(value):
    """A validator as it may be sent back in If-Range: short, printable
    ASCII, no CR/LF (an etag with CRLF once wedged every later run)."""
    if value is None or len(value) > 1024:
        return None
    if not re.match(r"^[\x20-\x7e]*$", value):
        return None
    return value


def _url_key(url):
    """The URL as NAME.part.json records it: without user:password."""
    return redact(url) if "@" in url else url


def commit_part(part, dest, meta_path):
    """Rename a verified, fsynced NAME.part to NAME (never over anything but
    a regular file), make the rename durable, then forget NAME.part.json.
    The one way a partial file becomes final, for whole files and for the
    scheduler's split ones alike."""
    fsutil.refuse_unless_regular(dest)
    try:
        compat_replace(part, dest)
    except OSError as e:
        raise _disk_error("cannot rename %s to %s" % (part, dest), e)
    _fsync_dir(os.path.dirname(dest))
    _unlink(meta_path)


def _disk_error(what, e):
    reason = getattr(e, "strerror", None) or str(e)
    hint = None
    if getattr(e, "errno", None) == errno.ENOSPC:
        hint = "free some space and run again: the partial download is kept and resumes"
    elif getattr(e, "errno", None) in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = "choose a writable destination directory"
    return DiskError("%s: %s" % (what, reason), hint=hint)


def _unlink(path):
    """Remove one of our own files; a symlink, device or FIFO planted under
    that name is refused, not removed (it is not ours)."""
    fsutil.refuse_unless_regular(path, "remove")
    try:
        os.unlink(path)
    except OSError as e:
        if e.errno != errno.ENOENT:
            raise _disk_error("cannot remove %s" % path, e)


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
