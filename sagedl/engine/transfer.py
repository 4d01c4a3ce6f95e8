"""One attempt to fetch a file from one source: the HTTP exchange, the
resume rules, and NAME.part while the bytes arrive.

Why a module of its own: download.py decides which source to try and when
to give up; this decides what one response means and what reaches
NAME.part.  It is imported only when a transfer is needed, so a file that
is already there and verifies never loads it.

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
(attempt)
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
one try from scratch (sourcequeue.py)
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

from sagedl.compat import compat_integer_types, compat_monotonic, compat_text_types
from sagedl.engine import fsutil
from sagedl.engine.pipeline import open_sink
from sagedl.engine.retry import RETRY_STATUSES, parse_retry_after
from sagedl.engine.verify import Hasher, hash_file
from sagedl.errors import CAUSE_BUSY, CAUSE_SLOW, DiskError, SourceFailure
from sagedl.net.urls import redact

NOT_FOUND_STATUSES = (404, 410)
BUSY_STATUSES = (408, 429, 503)   # the server itself asks us to come back (not a gateway's 502/504)


class Restart(Exception):
    """Try the same source again from byte zero."""


class Transfer(object):
    """Fetches one file's bytes into NAME.part and renames them to NAME once
    they verify.  ``dl``: the file's Download (dest, expected, transport,
    progress, options, notify), read, never changed."""

    def __init__(self, dl):
        self.dest = dl.dest
        self.name = dl.name
        self.part = dl.part
        self.meta_path = dl.meta_path
        self.expected = dl.expected
        self.transport = dl.transport
        self.progress = dl.progress
        self.opts = dl.opts
        self.notify = dl.notify
        self._capped = False      # the current body's only bound is opts.max_size

    def attempt(self, src, scratch):
        """The bytes received, once NAME verifies and is in place; else
        SourceFailure, Restart or another SagedlError."""
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
                return 0
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
                raise Restart()
            total = self._check_content_range(resp, offset, meta)
            if if_range and if_range not in (resp.header("etag"), resp.header("last-modified")):
                # RFC 7233 3.2: a 206 answers "the representation is unchanged".
                # One that does not name the validator we sent may be a new
                # version's tail: joining it to the old head would make a
                # file that never existed.
                self.notify("%s: the server's validator changed; starting from zero" % self.name)
                raise Restart()
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
        raise Restart()

    def _stream(self, src, resp, offset, total):
        expected = self.expected
        fd = self._open_partial(offset)
        try:
            if offset:
                self.notify("resuming %s at byte %d from %s" % (self.name, offset, src.label))
                with io.FileIO(fd, "r", closefd=False) as f:
                    hasher = hash_file(self.part, expected, limit=offset, fileobj=f)
                if hasher.size != offset:
                    raise Restart()
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
                raise fsutil.write_error("cannot write %s" % self.part, e)
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
        return done - offset

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
            fsutil.remove(self.part)     # a 200 to a Range request starts over
            return fsutil.create_exclusive(self.part, 0o644)
        except OSError as e:
            raise fsutil.write_error("cannot write %s" % self.part, e)

    def _copy(self, resp, fd, hasher, done, limit):
        """The hot loop: receive a block, check it, hand it to the sink
        (pipeline.py), which hashes and writes it -- in a second thread for
        large transfers.  Returns once every block is hashed and written."""
        sink = open_sink(fd, hasher, self.opts.block_size,
                         None if limit is None else limit - done, response=resp)
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
        return fsutil.write_error("cannot write %s" % self.part, e)

    def _copy_loop(self, resp, sink, done, limit):
        readinto, buffer, put = resp.readinto, sink.buffer, sink.put
        if getattr(sink, "spliced", False):
            readinto = resp.splice_into     # buffer() is room in a pipe
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
            raise fsutil.write_error("cannot write %s" % self.part, e)
        self._commit()

    def _commit(self):
        fsutil.commit_part(self.part, self.dest, self.meta_path)

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
        fsutil.remove(self.part)
        fsutil.remove(self.meta_path)


class _Finished(Exception):
    """Internal: a 416 for a partial that verifies: it was complete after all."""


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
