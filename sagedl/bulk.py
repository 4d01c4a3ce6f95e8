"""Many tarballs at once: selection like ``sage-package download``, parallel
fetching spread across the best mirrors, one summary at the end.  The
``download`` command (sage-package download) lives here; make-mirror and
verify (sitemirror.py) use the same selection and fetch_tarballs.

Selection follows sage_bootstrap's PackageClass: package names, or the
selectors ``:all:``, ``:standard:``, ``:optional:``, ``:experimental:`` (from
each package's ``type`` file), restricted to packages that have a
``checksums.ini``; ``--has-file F`` / ``--no-file F`` filter on files in the
package directory and ``--exclude`` drops names.

threading is imported here only, so a single-file fetch never pays for it.
"""

from __future__ import absolute_import

import os

from sagedl.compat import compat_monotonic
from sagedl.errors import SagedlError, UsageError

SELECTORS = {":all:": None, ":standard:": "standard", ":optional:": "optional",
             ":experimental:": "experimental"}


def _select(tree, names, exclude, has_files, no_files):
    """(package names in order, {package: Tarball} for names that were
    tarball names and so chose one tarball of their package)."""
    chosen = []
    named = {}
    for name in names:
        if name.startswith(":") and name.endswith(":"):
            if name not in SELECTORS:
                raise UsageError("unknown package class %s" % name,
                                 hint="use one of %s" % ", ".join(sorted(SELECTORS)))
            wanted = SELECTORS[name]
            for pkg in tree.packages():
                if not os.path.exists(os.path.join(tree.pkgs_dir, pkg, "checksums.ini")):
                    continue
                if wanted is None or tree.package_type(pkg) == wanted:
                    chosen.append(pkg)
        elif os.path.isdir(os.path.join(tree.pkgs_dir, name)):
            chosen.append(name)
        else:
            tarball = tree.resolve(name)   # a tarball name, or a near-spelling
            named.setdefault(tarball.package, tarball)
            chosen.append(tarball.package)
    seen = set(exclude)
    result = []
    for pkg in chosen:
        if pkg in seen:
            continue
        seen.add(pkg)
        d = os.path.join(tree.pkgs_dir, pkg)
        if any(not os.path.exists(os.path.join(d, f)) for f in has_files):
            continue
        if any(os.path.exists(os.path.join(d, f)) for f in no_files):
            continue
        result.append(pkg)
    return result, named


def _portable(tree, pkg):
    """The one tarball of a package, or None when it only has per-platform
    wheels (``[section]`` form without an sdist or a ``-none-any`` wheel)."""
    tarballs = tree.tarballs(pkg)
    if len(tarballs) == 1:
        return tarballs[0]
    portable = [t for t in tarballs if not t.filename.endswith(".whl")
                or t.filename.endswith("-none-any.whl")]
    if len(portable) == 1:
        return portable[0]
    if not tarballs:
        raise UsageError("package %s has no tarball" % pkg)
    return None


def pick_tarball(tree, pkg):
    """The one tarball of a package; a package of per-platform wheels must
    be asked for by the wheel's file name."""
    tarball = _portable(tree, pkg)
    if tarball is None:
        tarballs = tree.tarballs(pkg)
        raise UsageError("package %s has %d tarballs; name one of them" % (pkg, len(tarballs)),
                         hint=", ".join(t.filename for t in tarballs[:3]) + ", ...")
    return tarball


def select_tarballs(tree, names, exclude=(), has_files=(), no_files=(), every_wheel=False):
    """(tarballs, skipped): the Tarball of each selected package, and the
    packages a class selector (:all:, ...) reached that have only
    per-platform wheels.

    A tarball file name selects exactly that tarball; a package named
    explicitly must have one tarball (else UsageError).  Per-platform wheel
    packages reached through a class are skipped -- which wheel a build
    needs depends on the Python Sage builds, not the one running sagedl --
    unless ``every_wheel`` (a site mirror, a verify): then all their wheels.
    """
    packages, named = _select(tree, names, exclude, has_files, no_files)
    explicit = set(n for n in names if not (n.startswith(":") and n.endswith(":")))
    tarballs, skipped = [], []
    for pkg in packages:
        if pkg in named:
            tarballs.append(named[pkg])
        elif pkg in explicit:
            tarballs.append(pick_tarball(tree, pkg))
        else:
            one = _portable(tree, pkg)
            if one is not None:
                tarballs.append(one)
            elif every_wheel:
                tarballs.extend(tree.tarballs(pkg))
            else:
                skipped.append(pkg)
    return tarballs, skipped


class Job(object):
    def __init__(self, index, tarball, path, sources):
        self.index = index
        self.tarball = tarball
        self.path = path
        self.sources = sources
        self.result = None
        self.error = None


def run_jobs(jobs, fetch_one, nworkers, progress, stop_on_error, emit):
    """Run ``fetch_one(job, worker_state)`` for each job on ``nworkers`` threads.

    ``emit(job)`` is called in job order as soon as the jobs before it are
    done, so stdout lists paths in the order the packages were asked for.
    With stop_on_error, no new job starts after the first failure.
    """
    import threading
    lock = threading.Lock()
    pending = list(jobs)
    pending.reverse()
    done = {}
    state = {"next_emit": 0, "stop": False}

    def flush():
        while state["next_emit"] in done:
            job = done.pop(state["next_emit"])
            state["next_emit"] += 1
            emit(job)

    def worker():
        local = {}
        try:
            while True:
                with lock:
                    if not pending or state["stop"]:
                        return
                    job = pending.pop()
                try:
                    job.result = fetch_one(job, local)
                except SagedlError as e:
                    job.error = e
                except KeyboardInterrupt:
                    with lock:
                        state["stop"] = True
                    return
                with lock:
                    if job.error is not None and stop_on_error:
                        state["stop"] = True
                    done[job.index] = job
                    flush()
        finally:
            t = local.get("transport")
            if t is not None:
                t.close()

    if nworkers <= 1:
        worker()
    else:
        threads = [threading.Thread(target=worker, name="sagedl-%d" % i)
                   for i in range(min(nworkers, len(jobs)))]
        for t in threads:
            t.daemon = True
            t.start()
        for t in threads:
            # join with a timeout so SIGINT reaches the main thread on 2.7
            while t.is_alive():
                t.join(0.2)
    return jobs


def summarize(jobs, seconds):
    """One paragraph: fetched, already present, failed (with why), bytes and time."""
    fetched = [j for j in jobs if j.result is not None and j.result.status == "downloaded"]
    present = [j for j in jobs if j.result is not None and j.result.status == "present"]
    failed = [j for j in jobs if j.error is not None]
    skipped = [j for j in jobs if j.result is None and j.error is None]
    from sagedl.progress import human_bytes, human_duration
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
def cmd_download(session):
    """sage-package download: one absolute path per package on stdout, in order."""
    a = session.args
    tree = session.tree(required=True)
    tarballs, skipped = select_tarballs(tree, a.packages, a.exclude, a.has_file, a.no_file)
    for pkg in skipped:
        session.warn("skipping %s: it has only per-platform wheels; name the one your build "
                     "needs, e.g. sagedl download %s" % (pkg, tree.tarballs(pkg)[0].filename))

    def emit(job):
        if job.error is None:
            session.stdout.write(job.path + "\n")
            session.stdout.flush()

    return fetch_tarballs(session, tree, tarballs, emit)


def fetch_tarballs(session, tree, tarballs, emit):
    """Fetch tarballs into the distfiles, ``--jobs`` at a time; ``emit(job)``
    in the order given.  Ends with a summary (several files) and returns the
    exit code: the worst failure's, or 0."""
    from sagedl.errors import report
    from sagedl.sources import plan_tarballs
    from sagedl.verify import Expected
    a = session.args
    if not tarballs:
        raise UsageError("no package matches %s" % " ".join(a.packages))
    jobs = [Job(i, t, path, sources)
            for i, (t, path, sources) in enumerate(plan_tarballs(session, tree, tarballs))]
    nworkers = max(1, min(a.jobs, len(jobs)))
    single = len(jobs) == 1
    agg = None if single else _aggregate(session, jobs)
    transport0 = session.transport()      # shows the --no-check-certificate warning once
    options = session.options()
    recorder = session.health_recorder()

    def fetch_one(job, local):
        from sagedl.download import fetch
        if nworkers == 1:
            transport = transport0
        else:
            transport = local.get("transport")
            if transport is None:
                transport = local["transport"] = session.new_transport()
        progress = session.progress() if single else _FileProgress(agg, job.tarball.filename)
        try:
            result = fetch(job.path, job.sources,
                           Expected(None, job.tarball.sha256, job.tarball.sha1),
                           transport, progress, options, on_result=recorder, notify=progress.note)
        except SagedlError:
            if agg is not None:
                agg.file_done(job.tarball.filename, False)
            raise
        if agg is not None:
            agg.file_done(job.tarball.filename, True, result.nbytes)
        return result

    def emit_or_warn(job):
        if job.error is None:
            emit(job)
        elif a.on_error == "warn":
            session.warn("unable to download %s: %s" % (job.tarball.package, job.error))

    start = now()
    try:
        run_jobs(jobs, fetch_one, nworkers, agg, a.on_error == "stop", emit_or_warn)
    finally:
        recorder.flush()
    if agg is not None:
        agg.finish()
    failed = [j for j in jobs if j.error is not None]
    if single:
        if failed:
            raise failed[0].error
        return 0
    if not session.quiet or failed:
        session.stderr.write(summarize(jobs, now() - start) + "\n")
    if failed:
        if a.on_error == "stop":
            report(session.stderr, failed[0].error, session.debug)
        return max(j.error.exit_code for j in failed)
    return 0


def _aggregate(session, jobs):
    from sagedl.progress import AggregateProgress
    mode = "none" if session.quiet else session.args.progress
    if mode == "dots":
        mode = "lines"
    agg = AggregateProgress(session.stderr, mode=mode, env=session.env)
    agg.set_totals(len(jobs), None)
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
