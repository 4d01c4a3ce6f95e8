"""The commands' door to the multi-mirror scheduler (scheduler.py).

It decides when the scheduler applies, turns the session's plan (Sage's
sources for each tarball, sources.tarball_sources) into its files and
mirrors, and runs it.  What it could not finish is left to the caller,
which runs download.py's engine on it: one source at a time, in Sage's
order, with that engine's messages and exit codes.

The scheduler applies to Sage tarballs (a checksum pins every byte, so
ranges from different mirrors may be joined) when the user named two or
more mirrors (--mirror, $SAGEDL_MIRRORS) and no $SAGE_SERVER comes first
in Sage's order.  The ranked public list keeps the one-mirror-per-file
path for now: its probe decides which mirrors are alive, and a file that
SAGE_SERVER serves must never cost that probe.
"""

from __future__ import absolute_import

import re

from sagedl.errors import SagedlError


def applies(session):
    a = session.args
    if a.upstream_only or session.env.get("SAGE_SERVER"):
        return False
    return len(session.explicit_mirrors() or ()) >= 2


def settings(session):
    from sagedl.plan import scheduler
    a = session.args
    per = getattr(a, "max_connections_per_mirror", None)
    split = getattr(a, "split", None)
    return scheduler.Settings(session.options(),
                              per_mirror=per if per else scheduler.PER_MIRROR,
                              split=scheduler.SPLIT if split is None else split)


class Item(object):
    """One file for the scheduler: the tarball, where it goes, and after the
    run its result, or a fatal error, or neither (left to download.py)."""

    def __init__(self, tarball, path):
        self.tarball = tarball
        self.path = path
        self.result = None
        self.error = None
        self.present = False


def fetch(session, tree, items, progress, recorder):
    """Fetch ``items`` (Item) over the session's mirrors; ``progress``: an
    AggregateProgress, or None for one file on the session's display.
    ``recorder``: the health record (made when first called, see
    session._LazyRecorder)."""
    from sagedl.engine.rangefile import present as verified
    from sagedl.engine.verify import Expected
    opts = session.options()
    todo = []
    for item in items:
        expected = Expected(None, item.tarball.sha256, item.tarball.sha1)
        if not expected.known():
            continue
        # A verified file costs no planning, hence no network -- nor the
        # import of what a transfer needs (threads, the probe).
        present = verified(item.path, expected, opts, session.say)
        if present is not None:
            item.result, item.present = present, True
            continue
        todo.append((item, expected))
    if not todo:
        return items
    from sagedl.plan import scheduler
    files, mirrors = _plan(session, tree, todo)
    if len(mirrors) < 2:
        return items
    if progress is None:
        progress = OneFileProgress(session.progress())
    session.transport()          # says the --no-check-certificate warning once
    sched = scheduler.Scheduler(files, mirrors, settings(session), session.new_transport,
                                progress, progress.note, recorder)
    try:
        sched.run()
    finally:
        for key, bps in sched.throughputs():
            recorder.throughput(key, bps)
    for f, (item, _) in zip(files, todo):
        if f.state == "done":
            item.result = f.result
        elif f.fatal:
            item.error = f.error
    return items


def _plan(session, tree, todo):
    from sagedl.mirrors.health import load_health, throughput_of
    from sagedl.net.urls import origin_key
    from sagedl.plan import scheduler
    from sagedl.plan.sources import tarball_sources
    files, keys = [], []
    for i, (item, expected) in enumerate(todo):
        urls = {}
        try:
            planned = list(tarball_sources(session, tree, item.tarball))
        except SagedlError:
            planned = []          # download.py says why
        for url in planned:
            key = mirror_key(url)
            if key not in urls:
                urls[key] = url
                if key not in keys:
                    keys.append(key)
        files.append(scheduler.FileWork(i, item.tarball.filename, item.path, expected, urls))
    health = load_health(session.env)
    per = settings(session).per_mirror
    mirrors = []
    for key, label in zip(keys, labels_for(keys)):
        bps = throughput_of(health.get(origin_key(key)))
        mirrors.append(scheduler.Mirror(key, label, rate=bps / per if bps else None))
    return files, mirrors


class OneFileProgress(object):
    """The scheduler's progress calls, for one file on a per-file display
    (bar, lines, dots): the connections take turns at it."""

    def __init__(self, progress):
        import threading
        self.progress = progress
        self.lock = threading.Lock()
        self.mirrors = 0
        self.started = False

    def file_started(self, name, total, offset=0):
        with self.lock:
            if not self.started:
                self.started = True
                self.progress.start(name, total, offset, source="%d mirrors" % self.mirrors)

    def file_progress(self, name, done):
        with self.lock:
            if self.started:
                self.progress.update(done)

    def file_done(self, name, ok, nbytes=0):
        with self.lock:
            if self.started:
                self.progress.finish(ok)
                self.started = False

    def set_mirrors(self, count):
        self.mirrors = max(self.mirrors, count)

    def note(self, text):
        with self.lock:
            self.progress.note(text)

    @property
    def mode(self):
        return getattr(self.progress, "mode", "none")


def mirror_key(url):
    """The mirror a source URL belongs to: the URL without the file name
    and, in Sage's layout, without spkg/upstream/PKG/."""
    return re.sub(r"(spkg/upstream/[^/]+/)?[^/]*$", "", url)


def labels_for(keys):
    """A short label per mirror key: host:port, or more of the URL when two
    mirrors share a host."""
    from sagedl.engine.download import source_label
    from sagedl.net.urls import redact
    labels = [source_label(k) for k in keys]
    out = []
    for k, label in zip(keys, labels):
        if labels.count(label) > 1:
            label = redact(k).split("://", 1)[-1].rstrip("/")
        out.append(label)
    return out
