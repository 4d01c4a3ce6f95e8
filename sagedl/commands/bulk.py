"""Many tarballs at once: selection like ``sage-package download``, parallel
fetching spread across the best mirrors, one summary at the end.  The
``download`` command (sage-package download) lives here; make-mirror and
verify (sitemirror.py) use the same selection and fetch_tarballs.

Selection follows sage_bootstrap's PackageClass and download_cls: package
names, PURLs, or the selectors ``:all:``, ``:standard:``, ``:optional:``,
``:experimental:`` (from each package's ``type`` file), restricted to
packages that have a ``checksums.ini``; ``--has-file F`` / ``--no-file F``
filter what a selector adds, ``--exclude`` drops names, ``--tags`` picks
wheels (see by_tags).

threading is imported here only, so a single-file fetch never pays for it.
"""

from __future__ import absolute_import

import os

from sagedl import errors
from sagedl.compat import compat_monotonic
from sagedl.errors import NetworkError, NotFoundError, SagedlError, UsageError, unexpected
from sagedl.text import native_name, text_name

def _select(tree, names, exclude, has_files, no_files):
    """(package names, sorted, {package: Tarball} for names that were
    tarball names and so chose one tarball of their package).

    Package names, PURLs and classes are selected by selection.select,
    the port of sage_bootstrap's PackageClass, with what download_cls adds:
    a class takes only packages with a checksums.ini.  So: a class takes the
    packages with a ``type`` file of that type passing the --has-file /
    --no-file filters; a package named explicitly is taken as is; --exclude
    drops names; the result is a sorted set.  sagedl's addition: a tarball
    file name (or a near-spelling of a package) stands for its package.
    """
    from sagedl.sage import bootstrap as sagebootstrap
    from sagedl.sage.selection import select
    selectors = []
    named = {}
    for name in names:
        if (name.startswith(":") or name.startswith(sagebootstrap.PURL_PREFIXES)
                or os.path.isdir(os.path.join(tree.pkgs_dir, name))):
            selectors.append(name)
        else:
            tarball = tree.resolve(name)   # a tarball name, or a near-spelling
            named.setdefault(tarball.listed_as, tarball)
            selectors.append(tarball.listed_as)
    packages = select(sagebootstrap.Tree(tree.root), selectors,
                      has_files=list(has_files) + ["checksums.ini"],
                      no_files=no_files, exclude=[list(exclude)])
    return packages, named


def by_tags(tarballs, tags):
    """The tarballs Sage's ``download --tags`` takes from one package.

    sage_bootstrap (app.download): for each tag in order, the first
    remaining tarball whose ``[section]`` name contains the tag (a substring
    test: 'cp312-cp312-manylinux_2_17_x86_64' matches
    '...-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl'); if no
    tag matched, or there are no tags, every tarball of the package.
    """
    remaining = list(tarballs)
    chosen = []
    for tag in tags:
        for t in remaining:
            if t.section is not None and tag in t.section:
                chosen.append(t)
                remaining.remove(t)
                break
    return chosen or list(tarballs)


class BrokenPackage(object):
    """A selected package whose checksums.ini sagedl refuses (``error``, a
    MetadataError): it stands in the list of tarballs where the package's
    tarballs would be, so that the run fails at that package -- at once
    with --on-error stop, after the others with warn -- instead of before
    anything is downloaded because of one package's file."""

    def __init__(self, package, error):
        self.package = self.listed_as = self.filename = package
        self.error = error
        self.path = error.path      # one job per file, as a shared tarball is


def select_tarballs(tree, names, exclude=(), has_files=(), no_files=(), tags=(),
                    broken_ok=False, empty_ok=False):
    """The tarballs to fetch for ``sage-package download NAMES``, in order.

    Each selected package contributes ``by_tags(its tarballs, tags)``: with
    no tags a package of per-platform wheels (rpds_py, cylp, clarabel)
    contributes all of them, as in Sage -- and as a site mirror wants.  A
    tarball file name selects exactly that tarball.  A package named
    explicitly without any tarball is a NotFoundError (current
    sage_bootstrap prints nothing and succeeds: with ``empty_ok`` it
    contributes nothing here too, if it is a package as Sage sees one, with
    a ``type`` file, and the tree's Sage is not 10.7, which fails there).
    With ``broken_ok`` a package whose metadata is malformed contributes
    a BrokenPackage instead of raising its MetadataError.
    """
    from sagedl.errors import MetadataError
    from sagedl.sage import bootstrap as sagebootstrap
    names = [text_name(n) for n in names]   # as metadata names are (text.text_name)
    packages, named = _select(tree, names, exclude, has_files, no_files)
    tarballs = []
    for pkg in packages:
        pkg = native_name(pkg)   # unicode on 2.7 from sagebootstrap: join with byte paths
        if pkg in named:
            tarballs.append(named[pkg])
            continue
        try:
            mine = tree.tarballs(pkg)
        except MetadataError as e:
            if not broken_ok:
                raise
            tarballs.append(BrokenPackage(pkg, e))
            continue
        if not mine:
            bootstrap = sagebootstrap.Tree(tree.root)
            if not (empty_ok and bootstrap.dialect.sections):
                # Sage 10.7 fails there too ("non-normal package does define a tarball")
                tree.resolve(pkg)   # raises: "package X has no tarball (no checksums.ini)"
            bootstrap.package(text_name(pkg))   # raises without a type file
        tarballs.extend(by_tags(mine, tags))
    return tarballs


class Job(object):
    def __init__(self, index, tarball, path, sources):
        self.index = index
        self.tarball = tarball
        self.path = path
        self.sources = sources
        self.result = None
        self.error = None


def run_jobs(jobs, fetch_one, nworkers, progress, stop_on_error, emit, stop_after=None,
             debug_log=None):
    """Run ``fetch_one(job, worker_state)`` for each job on ``nworkers`` threads.

    ``emit(job)`` is called in job order as soon as the jobs before it are
    done, so stdout lists paths in the order the packages were asked for.
    With stop_on_error, no new job starts after the first failure; nor
    after a finished job for which ``stop_after(job)`` is true.  Any
    exception but Ctrl-C, from fetch_one or emit, becomes that job's error
    (errors.unexpected); ``debug_log(text)`` receives its traceback.
    """
    runner = _JobRunner(jobs, fetch_one, stop_on_error, emit, stop_after, debug_log)
    if nworkers <= 1:
        runner.work()
    else:
        import threading
        threads = [threading.Thread(target=runner.work, name="sagedl-%d" % i)
                   for i in range(min(nworkers, len(jobs)))]
        for t in threads:
            t.daemon = True
            t.start()
        try:
            for t in threads:
                # join with a timeout so SIGINT reaches the main thread on 2.7
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:
            runner.stop = True
            raise
    if runner.interrupted:      # Ctrl-C met the worker in this thread
        raise KeyboardInterrupt()
    return jobs


class _JobRunner(object):
    """The jobs still to start and the finished ones not yet emitted, shared
    by the worker threads under one lock; see run_jobs."""

    def __init__(self, jobs, fetch_one, stop_on_error, emit, stop_after, debug_log):
        import threading
        self.lock = threading.Lock()
        self.fetch_one = fetch_one
        self.stop_on_error = stop_on_error
        self.emit = emit
        self.stop_after = stop_after
        self.debug_log = debug_log
        # Two packages sharing one tarball are one download: a second job on
        # the same path would wait for the first on its lock ("waiting for
        # another sagedl") -- for itself.  It takes the first one's outcome.
        first = {}
        for job in jobs:
            job.same = []
            if job.path in first:
                first[job.path].same.append(job)
            else:
                first[job.path] = job
        self.pending = [job for job in jobs if first[job.path] is job]
        self.pending.reverse()
        self.done = {}
        self.next_emit = 0
        self.stop = False
        self.interrupted = False

    def work(self):
        """One worker: take jobs until none is left or the run stops."""
        local = {}
        try:
            while True:
                with self.lock:
                    if not self.pending or self.stop:
                        return
                    job = self.pending.pop()
                try:
                    job.result = self.fetch_one(job, local)
                except KeyboardInterrupt:
                    with self.lock:
                        self.stop = self.interrupted = True
                    return
                except Exception as e:
                    # Whatever it is, it is this file's failure, with its
                    # message, counted in the exit code: never a dead worker.
                    job.error = unexpected(e)
                    if self.debug_log is not None:
                        import traceback
                        self.debug_log(traceback.format_exc())
                with self.lock:
                    self._finished(job)
        finally:
            t = local.get("transport")
            if t is not None:
                t.close()

    def _finished(self, job):
        """Record a finished job and emit what is now in order (lock held)."""
        if job.error is not None and self.stop_on_error:
            self.stop = True
        if self.stop_after is not None and self.stop_after(job):
            self.stop = True
        self.done[job.index] = job
        for twin in job.same:
            twin.result, twin.error = job.result, job.error
            self.done[twin.index] = twin
        while self.next_emit in self.done:
            ready = self.done.pop(self.next_emit)
            self.next_emit += 1
            try:
                self.emit(ready)
            except Exception as e:     # placing it (make-mirror), printing its path
                ready.result, ready.error = None, unexpected(e)
                if self.stop_on_error:
                    self.stop = True


def summarize(jobs, seconds):
    """One paragraph: fetched, already present, failed (with why), bytes and time.
    A tarball two packages share counts once."""
    unique = {}
    for j in jobs:
        unique.setdefault(j.path, j)
    jobs = sorted(unique.values(), key=lambda j: j.index)
    fetched = [j for j in jobs if j.result is not None and j.result.status == "downloaded"]
    present = [j for j in jobs if j.result is not None and j.result.status == "present"]
    failed = [j for j in jobs if j.error is not None]
    skipped = [j for j in jobs if j.result is None and j.error is None]
    from sagedl.ui.progresstext import human_bytes, human_duration
    nbytes = sum(j.result.nbytes for j in fetched)
    lines = ["%d fetched (%s), %d already present, %d failed%s in %s"
             % (len(fetched), human_bytes(nbytes), len(present), len(failed),
                ", %d not started" % len(skipped) if skipped else "", human_duration(seconds))]
    for j in failed:
        lines.append("  failed: %s: %s" % (j.tarball.filename, j.error))
    return "\n".join(lines)


def now():
    return compat_monotonic()


# -- the download command --------------------------------------------------------------
def cmd_download(session, request):
    """sage-package download (an options.DownloadRequest): one absolute path
    per tarball on stdout, packages sorted."""
    tree = session.tree(required=True)
    sage = errors.sage_exit_codes(session.env)
    tarballs = select_tarballs(tree, request.packages, request.exclude, request.has_file,
                               request.no_file, request.tags, broken_ok=True, empty_ok=sage)
    if not tarballs and sage:
        return 0    # sage_bootstrap: nothing to download is a success, said by nothing

    return fetch_tarballs(session, request, tree, tarballs, _PathLister(session.stdout),
                          saved_to=tree.distfiles(session.env))


class _PathLister(object):
    """The download command's stdout: each tarball's absolute path, once it
    is there.  On a terminal that also shows the bulk line (stderr), a path
    goes above that line, not glued onto its end."""

    def __init__(self, stream):
        self.stream = stream
        self.terminal = _is_a_terminal(stream)

    def __call__(self, job, display):
        if job.error is not None:
            return
        if self.terminal and display is not None:
            display.above(lambda: self._write(job.path))
        else:
            self._write(job.path)

    def _write(self, path):
        self.stream.write(path + "\n")
        self.stream.flush()


def fetch_tarballs(session, request, tree, tarballs, emit, saved_to=None):
    """Fetch tarballs into the distfiles, ``--jobs`` at a time (the
    ``request``'s: download's or make-mirror's); ``emit(job,
    display)`` in the order given (display: the bulk line, or None).  Ends
    with a summary (several files) and returns the exit code: the worst
    failure's, or 0.

    ``saved_to`` (the distfiles, for the download command): where the files
    went is said as the one-file form says it, for one file its path, for
    several the directory once, after the summary -- stdout lists each path
    already, and a line per file would say each twice on a terminal.

    --on-error warn (sage_bootstrap's download_cls): a tarball that no
    source has or could deliver gets a warning and does not fail the run;
    one that arrived corrupt everywhere, or could not be written, still does.
    """
    from sagedl.errors import report
    from sagedl.plan.sources import plan_tarballs
    if not tarballs:
        raise UsageError("no package matches %s" % " ".join(request.packages))
    planned = iter(plan_tarballs(session, tree, [t for t in tarballs
                                                 if not isinstance(t, BrokenPackage)]))
    jobs = []
    for i, t in enumerate(tarballs):
        if isinstance(t, BrokenPackage):
            jobs.append(Job(i, t, t.path, None))
        else:
            jobs.append(Job(i, *next(planned)))
    run = _BulkRun(session, request, jobs, emit)
    agg, single, recorder = run.agg, run.single, run.recorder
    streak = NetworkStreak()
    start = now()
    try:
        spread_over_mirrors(session, tree, jobs, agg, recorder, request.jobs)
        run_jobs(jobs, run.fetch_one, run.nworkers, agg, request.on_error == "stop", run.emit,
                 stop_after=streak, debug_log=session.stderr.write if session.debug else None)
    except KeyboardInterrupt:
        # The workers are daemon threads: they die at exit without their
        # cleanup, so their locks are released here; the line says so.
        from sagedl.engine.lock import release_all
        release_all()
        if agg is not None:
            agg.finish(interrupted=True)
        raise
    finally:
        recorder.flush()
    if agg is not None:
        agg.finish()
    if streak.tripped:
        # Not forgiven by --on-error warn: nothing could have been fetched.
        # The counts only: each failure was said as it happened.
        session.stderr.write(summarize(jobs, now() - start).splitlines()[0] + "\n")
        report(session.stderr, streak.error(session), session.debug)
        return streak.error(session).exit_code
    failed = [j for j in jobs if j.error is not None]
    if not failed and any(j.result is None for j in jobs):
        # Only a worker that died leaves a file neither done nor failed
        # with nothing failed: that run must not exit 0.
        for j in jobs:
            if j.result is None:
                j.error = SagedlError("%s: not downloaded (a worker stopped)" % j.tarball.filename)
        failed = [j for j in jobs if j.error is not None]
    if request.on_error == "warn":
        failed = [j for j in failed if not isinstance(j.error, UNAVAILABLE)]
    fetched = [j for j in jobs if j.result is not None and j.result.status == "downloaded"]
    if single:
        if failed:
            raise failed[0].error
        if saved_to and fetched:
            session.saved(fetched[0].path)
        return 0
    if not session.quiet or failed:
        session.stderr.write(summarize(jobs, now() - start) + "\n")
    if saved_to and fetched:
        session.saved(os.path.join(saved_to, ""))
    if failed:
        if request.on_error == "stop":
            report(session.stderr, failed[0].error, session.debug)
        return max(j.error.exit_code for j in failed)
    return 0


class _BulkRun(object):
    """What the jobs of one bulk download share: the display, one transport
    (one per worker thread when there are several), the options and the
    health record.  run_jobs calls fetch_one on the workers and emit, in
    job order, for each finished job."""

    def __init__(self, session, request, jobs, emit):
        self.session = session
        self._emit = emit
        self.nworkers = max(1, min(request.jobs, len(jobs)))
        self.single = len(jobs) == 1
        self.agg = None if self.single else _aggregate(session, jobs)
        self.transport = session.transport()   # shows the --no-check-certificate warning once
        self.options = session.options()
        self.recorder = session.health_recorder()
        self.warn_only = request.on_error == "warn"
        self._verdict_said = False

    def fetch_one(self, job, local):
        """One job's Result, on a worker thread; ``local``: that worker's
        own state (its transport)."""
        from sagedl.engine.download import fetch
        from sagedl.engine.verify import Expected
        session, agg = self.session, self.agg
        if job.spread is not None:
            return _spread_outcome(session, job, agg)
        transport = self.transport
        if self.nworkers > 1:
            transport = local.get("transport")
            if transport is None:
                transport = local["transport"] = session.new_transport()
        if isinstance(job.tarball, BrokenPackage):
            if agg is not None:
                agg.file_done(job.tarball.filename, False)
            raise job.tarball.error
        progress = session.progress() if self.single else _FileProgress(agg, job.tarball.filename)
        try:
            result = fetch(job.path, job.sources,
                           Expected(None, job.tarball.sha256, job.tarball.sha1),
                           transport, progress, self.options, on_result=self.recorder,
                           notify=progress.note, notes_shown=(agg or progress).mode != "none")
        except Exception as e:
            if agg is not None:
                agg.file_done(job.tarball.filename, False)
            raise session.explained(unexpected(e))
        if agg is not None:
            agg.file_done(job.tarball.filename, True, result.nbytes)
        elif result.status == "present":
            session.using_cached(result.path)
        return result

    def emit(self, job):
        """A finished job, in job order: its path, or under --on-error warn
        its warning."""
        if job.error is None:
            self._emit(job, self.agg)
        elif self.warn_only:
            # The network's verdict in full once (emits come in job order).
            brief = job.error.brief
            text = brief if brief and self._verdict_said else job.error
            if brief:
                self._verdict_said = True
            self.session.warn("unable to download tarball of %s: %s"
                              % (job.tarball.listed_as, text))


def spread_over_mirrors(session, tree, jobs, agg, recorder, nchecks):
    """With several mirrors, the scheduler fetches what it can first
    (spread.py); each job it settled gets ``spread`` (its Item), the rest
    go through download.py as before.  ``nchecks``: how many files already
    there are verified at once (--jobs)."""
    from sagedl.plan import spread
    for job in jobs:
        job.spread = None
    if not spread.applies(session):
        return
    first = {}
    for job in jobs:
        # A package whose checksums.ini did not parse has no checksum to
        # plan with: download.py's path says why, where the run expects it.
        if not isinstance(job.tarball, BrokenPackage):
            first.setdefault(job.path, job)
    items = dict((path, spread.Item(job.tarball, path)) for path, job in first.items())
    ordered = [items[job.path] for job in jobs if first.get(job.path) is job]
    spread.fetch(session, tree, ordered, agg, recorder, nchecks)
    for job in jobs:
        item = items.get(job.path)
        if first.get(job.path) is job and (item.result is not None or item.error is not None):
            job.spread = item


def _spread_outcome(session, job, agg):
    """What the scheduler did for ``job``, said as download.py's path says it."""
    item = job.spread
    if item.error is not None:
        if agg is not None:
            agg.file_done(job.tarball.filename, False)
        raise session.explained(item.error)
    if item.present:
        if agg is not None:
            agg.file_done(job.tarball.filename, True, item.result.nbytes)
        else:
            session.using_cached(item.result.path)
    return item.result


def _is_a_terminal(stream):
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class NetworkStreak(object):
    """The bulk early stop, for a broken network: when every source of
    EARLY_STOP files in a row failed at the network level, the network looks unreachable and
    the rest of the run would only repeat that, one timeout and one message
    per file.  Called with each finished job (run_jobs' stop_after)."""

    EARLY_STOP = 3

    def __init__(self):
        self.count = 0
        self.tripped = False
        self.last = None

    def __call__(self, job):
        if isinstance(job.error, NetworkError):
            self.count += 1
            self.last = job.error
        elif job.error is not None or job.result is not None:
            self.count = 0
        if self.count >= self.EARLY_STOP:
            self.tripped = True
        return self.tripped

    def error(self, session):
        from sagedl.net.reachability import UNREACHABLE_SENTENCE
        if session.verdict is not None and session.verdict.conclusive:
            text = session.verdict.sentence()
        else:
            dead = session.hosts.dead_servers()
            text = "%s: %d files in a row failed at the network level" % (
                UNREACHABLE_SENTENCE, self.count)
            if dead:
                text += "; unreachable: %s" % "; ".join(dead)
        return NetworkError(text + "; stopped", hint=self.last.hint if self.last else None)


# What sage_bootstrap calls FileNotMirroredError: no source has the file, or
# none could be reached.  --on-error warn forgives these, not corrupt bytes.
UNAVAILABLE = (NotFoundError, NetworkError)


def _aggregate(session, jobs):
    from sagedl.ui.aggregate import AggregateProgress
    mode = "none" if session.quiet else session.settings.progress
    if mode == "dots":
        mode = "lines"
    agg = AggregateProgress(session.stderr, mode=mode, env=session.env)
    agg.set_totals(len(set(j.path for j in jobs)), None)   # a shared tarball is one file
    return agg


class _FileProgress(object):
    """The per-file Progress interface, feeding one aggregate display."""

    def __init__(self, agg, name):
        self.agg = agg
        self.name = name
        self.started = False

    def start(self, name, total, offset=0, source=None):
        self.started = True
        self.agg.file_started(self.name, total, offset)

    def update(self, done):
        self.agg.file_progress(self.name, done)

    def note(self, text):
        self.agg.note(text)

    def finish(self, ok, message=None):
        pass   # file_done is reported by the job runner
