"""Files by name: ``sagedl URL_OR_TARBALL [DESTINATION]``, the
sage-download-file form, and its curl/wget extension to several URLs.

The plan (which sources; where the file goes, output.place's answer) is
sources.plan_fetch's; this runs it and delivers the verified file: into the distfiles or DESTINATION,
through a device or FIFO named as DESTINATION (streamed into, never renamed
over), or to stdout.  Bytes leave sagedl only once they verified: a stream
is fed from a verified file in a private temporary directory.
"""

from __future__ import absolute_import

import os

from sagedl import errors


def cmd_fetch(session, request, targets, dest):
    """The sage-download-file form (an options.FetchRequest): one URL or
    tarball, or several (more URLs, -i FILE), each to where output.decide's
    ``dest`` places it.
    As wget does, a failed file does not stop the others; the exit code is
    the worst failure's."""
    if len(targets) == 1:
        return fetch_one(session, request, targets[0], dest)
    failed = []
    for target in targets:
        try:
            fetch_one(session, request, target, dest)
        except errors.SagedlError as e:
            errors.report(session.stderr, e, session.debug)
            failed.append(e.exit_code)
    if failed:
        session.say("%d of %d files failed" % (len(failed), len(targets)))
    return max(failed) if failed else 0


def fetch_one(session, request, target, dest):
    """Fetch one file and deliver it where its plan's Placement says."""
    from sagedl.engine import fsutil
    from sagedl.net.urls import redact
    from sagedl.plan.sources import plan_fetch
    plan = plan_fetch(session, target, dest, request.size, request.sha256, request.sha1)
    if callable(plan.sources):
        plan.sources = _SaidEach(plan.name, plan.sources)
    else:                       # -v: the sources, planned already
        errors.debug("sources for %s: %s" % (plan.name, ", ".join(
            redact(s.url) for s in plan.sources) or "none"))
    where = plan.placement
    if where.path is None:
        # Nothing is kept: fetched into a private temporary directory, then
        # streamed out (stdout, or a device or FIFO named as DESTINATION).
        return _fetch_to_stdout(session, plan, into=where.stream)
    # A file inside a DESTINATION directory is a name sagedl writes: the
    # engine refuses anything but a regular file there.
    result = _over_mirrors(session, plan, where.path)
    if result is None:
        result = session.fetch(where.path, plan.sources, plan.expected,
                               sage_mirrors=plan.sage_mirrors)
    if where.to_stdout:
        _copy_to_stream(result.path, session.stdout)
    elif where.stream:
        _write_verified(result.path, where.stream)
    elif where.copy_to is not None:
        # Sage downloads into its distfiles, then copies to DESTINATION:
        # a copy, as Sage's save_as makes, not a link into the distfiles.
        fsutil.place(result.path, where.copy_to, link=False)
    if where.saved and (result.status == "downloaded" or where.copy_to is not None):
        session.saved(where.saved)   # a cached file was said as such
    return 0


class _SaidEach(object):
    """Sources planned when the engine asks for them, each said under -v as
    it is planned: saying them all at once would plan them all, network
    included, before the first is tried."""

    def __init__(self, name, planner):
        self.name = name
        self.planner = planner

    def __call__(self):
        from sagedl.net.urls import redact
        planned = 0
        for s in self.planner():
            planned += 1
            errors.debug("sources for %s: %s" % (self.name, redact(s.url)))
            yield s
        if not planned:
            errors.debug("sources for %s: none" % self.name)


def _over_mirrors(session, plan, path):
    """A Sage tarball with several mirrors: the multi-mirror scheduler's
    Result (spread.py), or None when it does not apply or could not finish
    (download.py then tries every source in Sage's order)."""
    from sagedl.plan import spread
    if plan.tarball is None or not spread.applies(session):
        return None
    from sagedl.session import _LazyRecorder
    item = spread.Item(plan.tarball, path)
    recorder = _LazyRecorder(session)
    try:
        spread.fetch(session, plan.tree, [item], None, recorder)
    finally:
        recorder.flush()
    if item.error is not None:
        raise session.explained(item.error)
    if item.present:
        session.using_cached(item.result.path)
    return item.result


def _fetch_to_stdout(session, plan, into=None):
    """sage-download-file URL (no destination) writes the content to stdout;
    ``into``: a device or FIFO DESTINATION instead.  The bytes are fetched and
    verified in a private temporary directory first, so only verified bytes
    are ever written out (a checksum failure writes nothing: exit 4)."""
    import shutil
    import tempfile
    tmp = tempfile.mkdtemp(prefix="sagedl-")
    try:
        result = session.fetch(os.path.join(tmp, plan.name), plan.sources, plan.expected)
        if into is not None:
            _write_verified(result.path, into)
        else:
            _copy_to_stream(result.path, session.stdout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _write_verified(path, device):
    from sagedl.engine import fsutil
    fd = fsutil.open_stream_destination(device)
    try:
        rfd = os.open(path, os.O_RDONLY)
        try:
            fsutil.copy_fd(rfd, fd)
        finally:
            os.close(rfd)
    except OSError as e:
        raise errors.DiskError("cannot write %s: %s" % (device, e.strerror or e))
    finally:
        os.close(fd)


def _copy_to_stream(path, stream):
    """A verified file's bytes to stdout (a SafeStream turns a failed write
    into exit 6; a test's stream is written through its buffer)."""
    from sagedl.engine.fsutil import SafeStream
    out = stream if isinstance(stream, SafeStream) else getattr(stream, "buffer", stream)
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            out.write(block)
    out.flush()
