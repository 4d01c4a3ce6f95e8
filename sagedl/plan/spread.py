"""The commands' door to the multi-mirror scheduler (scheduler.py).

It decides which mirrors the scheduler gets (its pool), turns each
tarball into its files' URLs on them, and runs it.  What it could not
finish is left to the caller, which runs download.py's engine on it: one
source at a time, in Sage's order (SAGE_SERVER, .upstream.d, the mirrors,
upstream_url), with that engine's messages and exit codes.

The scheduler takes Sage tarballs only (a checksum pins every byte, so
ranges from different mirrors may be joined), never with --upstream-only,
and only with two or more sources in its pool:

* $SAGE_SERVER set: SAGE_SERVER, then the --mirror / $SAGEDL_MIRRORS
  mirrors if any.  Never the public list: SAGE_SERVER is a site's own
  mirror, first in Sage's order, and a file it serves must not cost the
  public list's probe (no network a run does not need).  SAGE_SERVER alone
  is one mirror, so download.py fetches from it as before, and probes the
  public list only for a file SAGE_SERVER does not serve.
* --mirror / $SAGEDL_MIRRORS: those mirrors, as given.
* Otherwise Sage's public mirror lists, in Sage's order -- the mirror_list
  lines of .upstream.d (Sage's own list), then the configured list
  (--mirrors-file, mirrors.toml, the shipped one), each probed and ranked
  (health.rank_cached) only when fewer than two mirrors of the lists
  before it answered -- and of them the POOL best that answered the probe.  A mirror the probe found
  dead, or did not wait for (its early stop), or that is on probation
  (nothing answered) is left to download.py's short deadlines: a
  connection hung on a dead mirror would hold the file it took.  POOL is
  aria2c's habit: given more URIs than --split (default 5), it uses the
  first 5 and keeps the rest for backup -- here download.py's.
  Each mirror starts from the bytes/s the health cache remembers of it.

On that last path the .upstream.d URL lines before its first mirror_list
line (release hosts such as GitHub's, a version per line: Sage tries them
before the mirrors, as new tarballs are there first and mirrors lag) join
the pool too, ahead of the mirrors: each line is a source of its own, keyed
by the line, its URL for a file the line expanded as sources.py expands
it for download.py.  The scheduler's connections start in pool order, so
the release hosts take the first files; a 404 (to a range or to the size
probe) drops a host for that file only and the mirrors fetch it.

The public list is still fetched and probed when release hosts are there,
before any of them is asked: the probe is what tells an offline run (its
verdict gives every later source short deadlines and the run one clear
error; when it found the network unreachable, the lines stay download.py's,
as before),
download.py too ranks the mirrors before it reaches the .upstream.d lines
for that reason, and the ranking is cached for an hour.  Most files need
the mirrors anyway: a Sage release's assets hold the tarballs new in that
release, so a build's other tarballs -- most of them -- get a 404 from
every release line, and the two lines of Sage's tree are one host that
rarely has a given file twice, so without the mirrors there would be
nothing to spread over.  Fetching from the release hosts first and probing
only for what they lack would take a second scheduler pass (the files
they lack wait for the first to end) and full deadlines on hosts an
offline run cannot reach.  With $SAGE_SERVER or named mirrors the lines
stay download.py's (SAGE_SERVER is the site's choice: a file it serves
costs no other host), and so does a tarball's upstream_url, always last.

A file already there and verified costs no planning, hence no network;
those checks run --jobs at a time (hashing a large file releases the GIL).
"""

from __future__ import absolute_import

import re

from sagedl.errors import SagedlError


POOL = 5    # public mirrors one run spreads over (see above)


def applies(session):
    """Whether the scheduler may take part at all; which mirrors it gets,
    if any, is pool()'s answer, asked only when a file needs fetching."""
    return not session.settings.upstream_only


def pool(session, tree):
    """The scheduler's mirror base URLs, best first (see the module
    docstring); may probe the public lists."""
    from sagedl.plan.sources import with_slash
    explicit = session.mirror_choice().explicit()
    server = (session.env.get("SAGE_SERVER") or "").rstrip("/")
    if server:
        bases = [server + "/"] + [with_slash(m) for m in explicit or ()]
    elif explicit is not None:
        bases = session.mirror_choice().bases()
    else:
        bases = public_mirrors(session, tree)
    out = []
    for b in bases:
        if b not in out:
            out.append(b)
    return out


def public_mirrors(session, tree, count=POOL):
    """Up to ``count`` of the best mirrors of Sage's public lists that
    answered the ranking probe: those of the first list, in Sage's order,
    in which at least two answered; the lists after it are neither fetched
    nor probed."""
    from sagedl.net.urls import url_problem
    from sagedl.plan.sources import mirror_list_urls
    choice = session.mirror_choice()
    lists = [u for u in mirror_list_urls(choice.upstream_d(tree), session.env)
             if url_problem(u) is None]
    chosen = []
    for url in lists:
        _add_answered(session, chosen, choice.resolved_list(url) or (), count)
        if len(chosen) >= 2:
            return chosen
    _add_answered(session, chosen, choice.bases(), count)
    return chosen


def _add_answered(session, chosen, bases, count):
    for b in bases:
        if len(chosen) < count and b not in chosen and session.mirror_choice().answered_probe(b):
            chosen.append(b)


def settings(session):
    from sagedl.plan import scheduler
    per, split = session.settings.per_mirror, session.settings.split
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
        self.left = False        # for download.py from the start


def fetch(session, tree, items, progress, recorder, nchecks=1):
    """Fetch ``items`` (Item) over the session's mirrors; ``progress``: an
    AggregateProgress, or None for one file on the session's display.
    ``recorder``: the health record (made when first called, see
    session._LazyRecorder).  ``nchecks``: see not_present."""
    todo = not_present(session, items, nchecks)
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


def not_present(session, items, nchecks=1):
    """[(item, Expected)] of the items not already there and verified; the
    verified ones get their Result.  No network, no planning -- nor the
    import of what a transfer needs (the probe).  Several files are checked
    ``nchecks`` (a bulk download's --jobs) at a time (PresentCheck)."""
    from sagedl.engine.verify import Expected
    checks = []
    for item in items:
        expected = Expected(None, item.tarball.sha256, item.tarball.sha1)
        if expected.known():
            checks.append((item, expected))
    jobs = min(nchecks, len(checks))
    PresentCheck(session, checks).run(jobs)
    todo = []
    for item, expected in checks:
        if not item.present and not item.left:
            todo.append((item, expected))
    return todo


class PresentCheck(object):
    """Verify files already in place, ``jobs`` at a time: a run of many
    cached files is hashing, which hashlib does without the GIL, so one
    thread per core gets through them sooner than one thread."""

    def __init__(self, session, checks):
        self.session = session
        self.opts = session.options()
        self.checks = list(checks)
        self.next = 0
        self.lock = None

    def run(self, jobs):
        if jobs <= 1:
            self.work()
            return
        import threading
        self.lock = threading.Lock()
        threads = [threading.Thread(target=self.work, name="sagedl-verify-%d" % i)
                   for i in range(jobs)]
        for t in threads:
            t.daemon = True
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)     # a timeout, so SIGINT reaches this thread on 2.7

    def _take(self):
        if self.lock is None:
            return self._pop()
        with self.lock:
            return self._pop()

    def _pop(self):
        if self.next >= len(self.checks):
            return None
        self.next += 1
        return self.checks[self.next - 1]

    def work(self):
        from sagedl.engine.rangefile import present as verified
        while True:
            check = self._take()
            if check is None:
                return
            item, expected = check
            try:
                present = verified(item.path, expected, self.opts, self.session.say)
            except SagedlError:
                # An unsafe or impossible destination: download.py's engine
                # meets it again and words it as it always has.
                item.left = True
                continue
            if present is not None:
                item.result, item.present = present, True


def release_lines(session, tree):
    """The .upstream.d URL lines the pool takes ahead of the public mirrors
    (see the module docstring): those before the first mirror_list line,
    on the public path only, and not when the probe found the network
    unreachable.  Called after pool(), whose probe gives that verdict."""
    if (session.env.get("SAGE_SERVER") or "").rstrip("/") \
            or session.mirror_choice().explicit() is not None:
        return []
    if session.verdict is not None and session.verdict.conclusive:
        return []
    lines = []
    for kind, value in session.mirror_choice().upstream_d(tree):
        if kind == "mirror_list":
            break
        lines.append(value)
    return lines


def _sources(session, tree):
    """[(.upstream.d entry or None, base URL or None)]: the release lines,
    then the pool's mirrors."""
    try:
        bases = pool(session, tree)
    except SagedlError:
        bases = []              # download.py says why
    return ([(("url", line), None) for line in release_lines(session, tree)]
            + [(None, base) for base in bases])


def _plan(session, tree, todo):
    from sagedl.mirrors.health import load_health, throughput_of
    from sagedl.net.urls import origin_key
    from sagedl.plan import scheduler
    from sagedl.plan.sources import iter_source_urls
    sources = _sources(session, tree)
    files, keys = [], []
    for i, (item, expected) in enumerate(todo):
        urls = {}
        for entry, base in sources:
            # The first name a source may file it under; a source whose URL
            # for it does not parse is left out (download.py warns).  No
            # SAGE_SERVER here: a line that needs it is no source.
            url = next(iter(iter_source_urls(item.tarball, {}, [entry] if entry else [],
                                             [base] if base else [], False)), None)
            if url is None:
                continue
            key = entry[1] if entry else mirror_key(url)
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
