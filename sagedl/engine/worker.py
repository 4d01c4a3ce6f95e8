"""One connection to one mirror, pulling work from the scheduler.

scheduler.py decides which (file, byte range) a connection takes; a Slot
carries it out: opens a new file (its lock, a verified file already there,
a partial to resume), sends the request for a range, checks the answer and
streams the body into NAME.part (rangefile.py), asks an idle mirror for a
new file's size, and when a file's last range is in, verifies and renames
it -- or asks liars.py which mirror sent bad bytes.  What it measures (each
mirror's answer delay and bytes/s) is what the scheduler plans with.
"""

from __future__ import absolute_import

from sagedl import errors
from sagedl.compat import compat_monotonic
from sagedl.engine.rangefile import (IgnoresRange, Piece, PieceTransfer, RangeFile, check_response,
                                     request_headers)
from sagedl.errors import SagedlError, SourceFailure, failure_error

PROBE = "probe"         # the work of asking a mirror for a file's size


class Slot(object):
    """One connection to one mirror: pulls work until there is none."""

    def __init__(self, sched, mirror, index):
        self.sched = sched
        self.mirror = mirror
        self.index = index
        self.transport = None
        self.trial = False      # its request is the mirror's one range while Range is unknown

    def run(self):
        sched = self.sched
        try:
            while True:
                work = sched.take(self)
                if work is None:
                    return
                f, piece = work
                if piece is PROBE:
                    self._probe(f)
                    continue
                try:
                    if piece is None:
                        piece = self._open(f)
                        if piece is None:
                            continue
                    self._fetch(f, piece)
                except SagedlError as e:
                    sched.fatal(self, f, piece, e)
                except Exception as e:    # a bug must not leave the run waiting for ever
                    sched.fatal(self, f, piece, SagedlError("%s: %s" % (f.name, e)))
        finally:
            if self.transport is not None:
                self.transport.close()

    def _open(self, f):
        """The connection that takes a new file opens it (lock, a verified
        file already there, a partial to resume) and fetches its first range."""
        sched = self.sched
        rf = RangeFile(f.dest, f.expected, sched.settings.engine, sched.notify)
        present = rf.open()
        with sched.cond:
            f.rf = rf
            if present is not None:
                f.result, f.state = present, "done"
                sched.release(self, None)
                sched.progress.file_done(f.name, True, present.nbytes)
                return None
            f.state = "open"
            f.probed.add(self.mirror.key)      # its answer is on its way
            sched.open_files.append(f)
            if rf.total is not None:
                sched.progress.file_started(f.name, rf.total, rf.done_bytes())
            m = self.mirror
            with rf.lock:
                for p in rf.pieces:
                    if (p.owner is None and not p.complete()
                            and (p.done == 0 or m.ranges is not False)):
                        if p.done > 0 and not sched.may_ask_range(m):
                            continue
                        piece = rf.reassign(p, m.label)
                        if piece is not None:
                            piece.owner = self
                            piece.asked = compat_monotonic()
                            sched.asking(self, piece)
                            return piece
            sched.release(self, None)     # a resume with nothing this mirror can take
            sched.check_viable()
            if rf.complete():
                f.state = "finishing"
        if f.state == "finishing":
            self._finish(f)
        return None

    def _probe(self, f):
        """bytes=0-0: the size from the Content-Range, the first of the
        mirror's latency and Range support; nothing else is kept.  A 404
        is an answer, though: that mirror (a release host, say) has no such
        file, and is not asked for it again."""
        sched, m, rf = self.sched, self.mirror, f.rf
        url = f.urls[m.key]
        try:
            if self.transport is None:
                self.transport = sched.new_transport()
            t0 = compat_monotonic()
            resp = self.transport.open(url, headers={"Range": "bytes=0-0"},
                                       allow_downgrade=True)
            try:
                m.latency = _smooth(m.latency, compat_monotonic() - t0, 0.3)
                total = check_response(resp, rf, Piece(0, None), True, 0)
                if resp.status == 206:
                    m.ranges = True
                    was_unknown = rf.total is None
                    rf.set_total(total)
                    if was_unknown:
                        sched.progress.file_started(f.name, total, 0)
                elif total > 1 and m.ranges is None:
                    # The whole file for its first byte: it ignores Range,
                    # known now, before any connection asks it for a tail.
                    m.ranges = False
                    errors.debug("%s ignores Range: whole files only" % m.label)
            finally:
                resp.close()
        except SourceFailure as failure:
            if failure.kind == SourceFailure.KIND_NOT_FOUND:
                sched.failed(self, f, None, url, failure)
                return
            errors.debug("%s: size from %s: %s" % (f.name, m.label, failure))
        except Exception as e:     # a hint only: the ranges' own requests judge the mirror
            errors.debug("%s: size from %s: %s" % (f.name, m.label, e))
        with sched.cond:
            sched.release(self, None)

    def _fetch(self, f, piece):
        sched, m = self.sched, self.mirror
        url = f.urls[m.key]
        rf = f.rf
        if self.transport is None:
            self.transport = sched.new_transport()
        headers = request_headers(piece, rf.total, m.ranges)
        asked_end = None if rf.total is None else piece.end - 1
        t0 = compat_monotonic()
        try:
            resp = self.transport.open(url, headers=headers, allow_downgrade=True)
        except SourceFailure as failure:
            sched.failed(self, f, piece, url, failure)
            return
        try:
            m.latency = _smooth(m.latency, compat_monotonic() - t0, 0.3)
            try:
                total = check_response(resp, rf, piece, bool(headers), asked_end)
            except IgnoresRange:
                sched.ignores_range(self, f, piece)
                return
            if resp.status == 206:
                m.ranges = True
            elif headers and m.ranges is not False:
                m.ranges = False
                errors.debug("%s ignores Range: whole files only" % m.label)
            was_unknown = rf.total is None
            rf.set_total(total)
            if was_unknown:
                sched.progress.file_started(f.name, total, 0)
            errors.debug("%s: bytes %d-%d from %s" % (f.name, piece.done, piece.end - 1, m.label))
            PieceTransfer(rf, piece, resp, sched.settings.engine,
                          _Meter(sched, f, piece, m)).run()
        except SourceFailure as failure:
            sched.failed(self, f, piece, url, failure)
            return
        finally:
            resp.close()
        sched.on_result(url, True, "ok")
        with sched.cond:
            m.failures = 0
            m.retry = sched.settings.engine.retry
            sched.release(self, piece)
            # A connection stalled on a range taken over from it may still
            # own a complete piece: it writes nothing more (rangefile.write).
            done = rf.complete() and f.state == "open"
            if done:
                f.state = "finishing"
        if done:
            self._finish(f)

    def _finish(self, f):
        """Every range is in: verify the whole file, find a liar if it does
        not verify, and rename."""
        sched, rf = self.sched, f.rf
        bad = rf.verify()
        if bad is not None:
            from sagedl.engine.liars import find_liar
            liar = find_liar(sched, f, self)
            bad = rf.verify() if liar else bad
        with sched.cond:
            if bad is not None:
                failure = SourceFailure(SourceFailure.KIND_CHECKSUM,
                                        "checksum mismatch: " + bad[0], detail=bad[1])
                f.attempts.append(("mirrors", failure))
                rf.discard()
                sched.give_up(f, failure_error(f.attempts, f.name))
                return
        rf.commit()
        rf.release()
        from sagedl.engine.download import Result
        with sched.cond:
            f.result = Result(f.dest, "downloaded", nbytes=rf.total)
            f.state = "done"
            if f in sched.open_files:
                sched.open_files.remove(f)
            sched.progress.file_done(f.name, True, rf.total)
            sched.cond.notify_all()


class _Meter(object):
    """Told of each block a connection writes: the piece's and the mirror's
    bytes/s, and the file's progress."""

    def __init__(self, sched, f, piece, mirror):
        self.sched = sched
        self.f = f
        self.piece = piece
        self.mirror = mirror

    def __call__(self, n, seconds):
        p, m = self.piece, self.mirror
        now = compat_monotonic()
        p.last_byte = now
        if seconds > 0:
            sample = n / seconds
            weight = min(1.0, seconds / 1.0)
            p.rate = _smooth(p.rate or None, sample, weight)
            m.rate = _smooth(m.rate, sample, min(1.0, seconds / 3.0))
        m.bytes += n
        self.sched.progress.file_progress(self.f.name, self.f.rf.done_bytes())


def _smooth(old, sample, weight):
    return sample if old is None else old + (sample - old) * weight
