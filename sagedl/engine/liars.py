"""A file fetched in ranges from several mirrors failed its checksum: which
mirror lied?

The whole-file digest says only that some byte is wrong.  Instead of
starting over (and maybe meeting the same liar again), each mirror's
ranges are fetched again from another mirror, most bytes first, and
compared block by block with what is on disk; from the first difference on,
the other mirror's bytes are written instead.  Once the file verifies, the
mirror whose ranges differed is the liar: named, dropped for the run and
recorded in the health cache; every good range is kept.  (aria2 can do
this only with per-piece hashes from a metalink; a re-fetch needs none.)
"""

from __future__ import absolute_import

import os

from sagedl.engine.fsutil import write_all
from sagedl.engine.rangefile import IgnoresRange, check_response
from sagedl.errors import SourceFailure

COMPARE_BLOCK = 256 * 1024


def find_liar(sched, f, slot):
    """Fetch each mirror's ranges again from another mirror, most bytes first;
    ranges that differ are overwritten with the other's bytes.  Once the file
    verifies, the mirror whose ranges differed is the liar: named, dropped
    for the run, recorded.  Returns its label, or None."""
    rf = f.rf
    by_server = {}
    for p in rf.pieces:
        by_server.setdefault(p.server, []).append(p)
    order = sorted(by_server, key=lambda s: -sum(p.end - p.start for p in by_server[s]))
    if slot.transport is None:
        slot.transport = sched.new_transport()
    for server in order:
        checkers = [m for m in sched.mirrors if m.label != server and not m.dead
                    and m.ranges is not False and m.key in f.urls]
        if not checkers:
            continue
        differed = []
        for p in by_server[server]:
            for checker in checkers:
                try:
                    if _compare_and_fix(rf, p, f.urls[checker.key], slot.transport):
                        differed.append((p, checker))
                    break
                except (SourceFailure, IgnoresRange):
                    continue
        if differed and rf.verify() is None:
            _name_liar(sched, f, server, differed)
            return server
    return None


def _compare_and_fix(rf, piece, url, transport):
    """Fetch piece's range from ``url``; compare it with the disk block by
    block, and from the first difference on, write the new bytes.  True if
    anything differed."""
    headers = {"Range": "bytes=%d-%d" % (piece.start, piece.end - 1)}
    resp = transport.open(url, headers=headers, allow_downgrade=True)
    try:
        saved = piece.done
        piece.done = piece.start
        try:
            check_response(resp, rf, piece, True, piece.end - 1)
        finally:
            piece.done = saved
        if resp.status != 206:
            raise IgnoresRange()
        fd = rf.open_writer()
        rfd = os.open(rf.part, os.O_RDONLY)
        try:
            differed = False
            at = piece.start
            view = memoryview(bytearray(COMPARE_BLOCK))
            while at < piece.end:
                n = resp.readinto(view[:min(len(view), piece.end - at)])
                if not n:
                    raise SourceFailure(SourceFailure.KIND_PROTOCOL, "connection closed early")
                os.lseek(rfd, at, os.SEEK_SET)
                if not differed and os.read(rfd, n) != view[:n].tobytes():
                    differed = True
                if differed:
                    os.lseek(fd, at, os.SEEK_SET)
                    write_all(fd, view[:n])
                at += n
            return differed
        finally:
            os.close(fd)
            os.close(rfd)
    finally:
        resp.close()


def _name_liar(sched, f, server, differed):
    spans = ", ".join("bytes %d-%d" % (p.start, p.end - 1) for p, _ in differed[:3])
    checker = differed[0][1].label
    sched.notify("%s: %s from %s did not match %s's; %s is not used any more in this run"
                 % (f.name, spans, server, checker, server))
    with sched.cond:
        for m in sched.mirrors:
            if m.label == server:
                m.dead = "served corrupt bytes of %s" % f.name
                if m.key in f.urls:
                    sched.on_result(f.urls[m.key], False,
                                    "served corrupt bytes of %s (%s)" % (f.name, spans))
        sched.cond.notify_all()
