"""The command line: ``main(argv=None, env=None) -> exit code``.

Two call forms, both drop-in compatible with Sage's tools:

  sagedl [options] URL_OR_TARBALL [DESTINATION]      (sage-download-file)
  sagedl download [options] PKG_OR_CLASS...          (sage-package download)

plus ``sagedl --print-fastest-mirror`` and ``sagedl list-mirrors``.

stdout carries machine output only (paths, the fastest mirror, a URL's
content when no destination is given, as sage-download-file does); progress
and messages go to stderr.  Every error is one ``sagedl: error:`` line (and
a ``hint:`` line where one helps) and a documented exit code; a traceback
only with --debug.
"""

from __future__ import absolute_import

import os
import re
import sys

from sagedl import __version__
from sagedl import errors
from sagedl.errors import SagedlError, UsageError

PROG = "sagedl"
COMMANDS = ("download", "list-mirrors", "make-mirror", "verify")
# sage-package properties/list/tarball/name, answered by sagedl/sagepackage.py
SAGE_PACKAGE_COMMANDS = ("properties", "list", "tarball", "name")

DESCRIPTION = """\
Download SageMath source tarballs (or any URL) from the best mirror,
resuming interrupted transfers and verifying checksums.  Only verified
bytes ever reach the final file name.

  sagedl ntl-11.6.0.tar.gz               # inside a Sage tree: into $SAGE_DISTFILES
  sagedl https://host/f.tar.gz f.tar.gz --sha256 HEX
  sagedl download pari ntl               # prints one absolute path per package
  sagedl --print-fastest-mirror
  sagedl make-mirror /srv/sage-mirror :standard:   # a mirror other machines can use
  sagedl verify "$SAGE_ROOT/upstream"               # missing, extra and bad files
"""


def _exit_code_epilog():
    lines = ["exit codes:"]
    for code, text in errors.EXIT_CODES:
        lines.append("  %-4d %s" % (code, text))
    lines.append("")
    lines.append("environment: SAGE_ROOT, SAGE_DISTFILES, SAGE_SERVER, SAGEDL_MIRRORS (space-separated")
    lines.append("mirror base URLs, like --mirror), http_proxy/https_proxy/no_proxy, SSL_CERT_FILE.")
    return "\n".join(lines)


def _add_common(p):
    g = p.add_argument_group("sources")
    g.add_argument("--mirror", action="append", default=[], metavar="URL",
                   help="mirror base URL (repeatable, tried in order); replaces the mirror list")
    g.add_argument("--mirrors-file", metavar="FILE", help="a mirrors.toml to use instead of the shipped list")
    g.add_argument("--allow-upstream", action="store_true",
                   help="fall back to the package's upstream_url")
    g.add_argument("--upstream-only", action="store_true",
                   help="download only from the package's upstream_url (no SAGE_SERVER, "
                        ".upstream.d or mirrors), as distribution packagers do")
    g.add_argument("--sage-root", metavar="DIR", help="the Sage tree (default: $SAGE_ROOT, or found "
                                                      "by walking up from the current directory)")
    g = p.add_argument_group("network")
    g.add_argument("--timeout", type=float, default=None, metavar="S",
                   help="network timeout in seconds: connect, each read, and the response head (default 30)")
    g.add_argument("--low-speed-limit", type=int, default=1024, metavar="BYTES",
                   help="abandon a source slower than this many bytes/s ... (default 1024)")
    g.add_argument("--low-speed-time", type=float, default=30.0, metavar="S",
                   help="... over this many seconds (default 30)")
    g.add_argument("--retries", type=int, default=2, metavar="N",
                   help="retries of a source answering 429/503 (default 2)")
    g.add_argument("--no-check-certificate", action="store_true",
                   help="do not verify TLS certificates (checksums still apply)")
    g.add_argument("--ca-bundle", metavar="FILE", help="CA certificates to trust (PEM)")
    g.add_argument("--transport", choices=("auto", "stdlib", "urllib3"), default="auto",
                   help="HTTP implementation: the standard library's (default; see README "
                        "for why auto means stdlib) or urllib3 when importable")
    g = p.add_argument_group("output")
    g.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    g.add_argument("--progress", choices=("auto", "bar", "lines", "dots", "none"), default="auto",
                   help="progress display on stderr: a bar on a terminal, sparse lines "
                        "otherwise (default auto); dots = Sage's 70-column log format")
    g.add_argument("--log", metavar="LEVEL",
                   help="Sage compatibility: DEBUG, INFO, WARNING, ERROR or CRITICAL")
    g.add_argument("--debug", action="store_true", help="show tracebacks and details")
    g = p.add_argument_group("files")
    g.add_argument("--force", action="store_true", help="download again even if the file verifies")
    g.add_argument("--lock-timeout", type=float, default=3600.0, metavar="S",
                   help="how long to wait for another sagedl on the same file (default 3600)")


def _parser(command, description, selection=False, jobs=False):
    """An argparse parser whose errors are UsageErrors (one line, exit 2)."""
    import argparse
    prog = PROG + (" " + command if command else "")

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise UsageError(message, hint="see '%s --help'" % prog)

    p = Parser(prog=prog, description=description, epilog=_exit_code_epilog(),
               formatter_class=argparse.RawDescriptionHelpFormatter)
    if selection:
        p.add_argument("--exclude", action="append", default=[], metavar="PKG",
                       help="leave this package out (repeatable)")
        p.add_argument("--has-file", action="append", default=[], metavar="FILE",
                       help="only packages whose directory has FILE (repeatable)")
        p.add_argument("--no-file", action="append", default=[], metavar="FILE",
                       help="only packages whose directory lacks FILE (repeatable)")
    if jobs:
        p.add_argument("--jobs", "-j", type=int, default=4, metavar="N",
                       help="parallel downloads (default 4)")
        p.add_argument("--on-error", choices=("stop", "warn"), default="stop",
                       help="stop at the first failure (default) or warn and go on")
    return p


PACKAGES_HELP = "package names, tarball names, or :all:, :standard:, :optional:, :experimental:"


def make_parser():
    p = _parser(None, DESCRIPTION)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("url_or_tarball", nargs="?", help="a URL, a tarball name or a package name")
    p.add_argument("destination", nargs="?",
                   help="where to write the file (a file or a directory); default: the "
                        "tarball under $SAGE_DISTFILES, or a URL's content on stdout")
    p.add_argument("-o", "--output", metavar="PATH", help="same as DESTINATION")
    p.add_argument("--sha256", metavar="HEX", help="expected sha256 of the file")
    p.add_argument("--sha1", metavar="HEX", help="expected sha1 of the file")
    p.add_argument("--size", type=int, metavar="BYTES", help="expected size of the file")
    p.add_argument("--print-fastest-mirror", action="store_true",
                   help="print the best mirror's base URL on stdout and exit")
    _add_common(p)
    return p


def make_download_parser():
    p = _parser("download", "Download the tarballs of Sage packages (sage-package download). "
                            "Prints one absolute path per package on stdout, in order.",
                selection=True, jobs=True)
    p.add_argument("packages", nargs="+", metavar="PKG", help=PACKAGES_HELP)
    _add_common(p)
    return p


def _make_mirror_parser():
    p = _parser("make-mirror",
                "Write DIR in the Sage mirror layout (spkg/upstream/PKG/TARBALL) for the "
                "selected packages, downloading what the distfiles lack, plus DIR/mirror_list "
                "and DIR/SHA256SUMS.  Serve DIR with any static web server; other machines "
                "use it through SAGE_SERVER or --mirror.", selection=True, jobs=True)
    p.add_argument("directory", metavar="DIR")
    p.add_argument("packages", nargs="*", metavar="PKG", default=[":all:"],
                   help=PACKAGES_HELP + " (default :all:)")
    p.add_argument("--base-url", metavar="URL",
                   help="the URL DIR will be served at, written into DIR/mirror_list")
    _add_common(p)
    return p


def _verify_parser():
    p = _parser("verify",
                "Check every file in a distfiles directory (flat) or a mirror tree "
                "(spkg/upstream/PKG/TARBALL) against the Sage tree's checksums.  Prints one "
                "line per missing, extra or bad file and a summary.", selection=True)
    p.add_argument("directory", metavar="DIR")
    p.add_argument("packages", nargs="*", metavar="PKG", default=[":all:"],
                   help=PACKAGES_HELP + " (default :all:)")
    _add_common(p)
    return p


def _list_parser():
    p = _parser("list-mirrors", "Rank the mirrors and print them as a table: name, region, "
                                "latency, health, last result.")
    p.add_argument("--no-probe", action="store_true",
                   help="list the configured mirrors without measuring them (offline)")
    _add_common(p)
    return p


class Context(object):
    """What every command needs: env, streams, the options, and the pieces built from them."""

    def __init__(self, args, env, stdout, stderr):
        self.args = args
        self.env = env
        self.stdout = stdout
        self.stderr = stderr
        level = (args.log or "").upper()
        self.debug = args.debug or level == "DEBUG"
        self.quiet = args.quiet or level in ("WARNING", "ERROR", "CRITICAL")
        self._transport = None
        self._tree = False
        # Computed once per run: a bulk download asks for them per tarball.
        self._bases = None
        self._upstream_d = None
        self._resolved_lists = {}

    def say(self, text):
        if not self.quiet:
            self.stderr.write("%s: %s\n" % (PROG, text))
            self.stderr.flush()

    def warn(self, text):
        self.stderr.write("%s: warning: %s\n" % (PROG, text))
        self.stderr.flush()

    def transport(self):
        if self._transport is None:
            if self.args.no_check_certificate:
                from sagedl.tls import INSECURE_WARNING
                self.stderr.write("%s: %s\n" % (PROG, INSECURE_WARNING))
            self._transport = self.new_transport()
        return self._transport

    def new_transport(self, timeout=None):
        """A transport of its own (one per worker thread: connections are not shared)."""
        from sagedl.transport import Transport
        cls = Transport
        if self.args.transport == "urllib3":
            from sagedl import transport_urllib3
            if not transport_urllib3.available():
                raise UsageError("--transport urllib3: urllib3 is not importable by %s"
                                 % sys.executable, hint="install urllib3, or use --transport stdlib")
            cls = transport_urllib3.Urllib3Transport
        return cls(timeout=timeout or self.args.timeout or 30.0, env=self.env,
                   ca_bundle=self.args.ca_bundle, verify=not self.args.no_check_certificate)

    def options(self):
        from sagedl.download import Options
        a = self.args
        return Options(timeout=a.timeout or 30.0, retries=a.retries,
                       low_speed_limit=a.low_speed_limit, low_speed_time=a.low_speed_time,
                       lock_timeout=a.lock_timeout, force=a.force)

    def progress(self):
        from sagedl.progress import make_progress
        return make_progress(self.args.progress, self.stderr, quiet=self.quiet, env=self.env)

    def tree(self, required=False):
        if self._tree is False:
            from sagedl.sage import SageTree
            self._tree = SageTree.discover(self.args.sage_root, env=self.env, cwd=os.getcwd())
        if required and self._tree is None:
            raise UsageError("no Sage tree found",
                             hint="run inside a Sage source tree, or pass --sage-root DIR / set SAGE_ROOT")
        return self._tree

    def explicit_mirrors(self):
        """--mirror, else $SAGEDL_MIRRORS: base URLs that replace the mirror
        list (and .upstream.d), or [] when neither is given."""
        return self.args.mirror or self.env.get("SAGEDL_MIRRORS", "").split()

    def mirror_bases(self):
        """Mirror base URLs in the order to try: the explicit ones, or the ranked list."""
        if self._bases is None:
            explicit = self.explicit_mirrors()
            if explicit:
                self._bases = [_with_slash(m) for m in explicit]
            else:
                self._bases = usable_bases(self.ranked(self.configured_mirrors()))
        return self._bases

    def upstream_d(self, tree):
        """The tree's .upstream.d entries, read once."""
        if self._upstream_d is None:
            from sagedl import sage
            self._upstream_d = sage.read_upstream_d(tree.root, tree.distfiles(self.env))
        return self._upstream_d

    def configured_mirrors(self):
        from sagedl import mirrors
        return mirrors.load_configured(self.args.mirrors_file, self.env)

    def ranked(self, listed, fresh=False):
        """Mirrors best first: a parallel HTTP probe, cached for an hour, with
        recently failed mirrors demoted (see mirrors.rank_cached).  fresh:
        measure every mirror now, without the cache or the early stop."""
        from sagedl import mirrors
        ctx = None
        if any(m.url.startswith("https:") for m in listed):
            from sagedl.tls import TLSConfig
            ctx = TLSConfig(self.args.ca_bundle, not self.args.no_check_certificate,
                            self.env).context()
        if fresh:
            ranked = mirrors.rank_cached(listed, env=self.env, ssl_context=ctx, refresh=True,
                                         want=None)
        else:
            ranked = mirrors.rank_cached(listed, env=self.env, ssl_context=ctx)
        if not any(r.ok for r in ranked):
            self.say("no mirror answered the ranking probe; trying them by priority")
        return ranked

    def fetch_small(self, url, timeout):
        """Fetch a small document (a mirror list) within ``timeout`` seconds
        (shorter than a download's): a transport of its own, closed after."""
        from sagedl.errors import SourceFailure
        transport = self.new_transport(min(timeout, self.args.timeout or timeout))
        try:
            resp = transport.open(url)
            try:
                if resp.status != 200:
                    raise SourceFailure(SourceFailure.KIND_HTTP, "HTTP %d" % resp.status)
                return resp.read_all(256 * 1024)
            finally:
                resp.close()
        finally:
            transport.close()

    def mirror_list_resolver(self):
        """For .upstream.d lines naming a mirror_list URL: that live list, ranked."""
        def resolve(url):
            if url not in self._resolved_lists:
                from sagedl import mirrors
                listed, origin, problem = mirrors.live_mirror_list(url, self.fetch_small,
                                                                   env=self.env)
                if problem:
                    self.say("mirror list %s: %s; using the %s list" % (url, problem, origin))
                self._resolved_lists[url] = usable_bases(self.ranked(listed))
            return self._resolved_lists[url]
        return resolve


MAX_DEAD_MIRRORS = 3


def usable_bases(ranked):
    """Base URLs to try: every mirror that answered the probe (or was not
    measured), best first.  Mirrors whose probe failed are dropped -- trying
    each would cost a timeout apiece -- unless none answered at all
    (offline, or a probe-hostile network): then the first few by priority."""
    from sagedl.mirrors import FAILED
    alive = [r.mirror.url for r in ranked if r.status != FAILED]
    return alive or [r.mirror.url for r in ranked[:MAX_DEAD_MIRRORS]]


def _with_slash(url):
    from sagedl.transport import check_url
    check_url(url)
    return url if url.endswith("/") else url + "/"


# -- the commands ---------------------------------------------------------------
def cmd_fetch(ctx):
    """The sage-download-file form: one URL or tarball."""
    from sagedl.download import Source
    from sagedl.verify import Expected
    a = ctx.args
    tree = None
    target = a.url_or_tarball
    dest = a.output or a.destination
    if "://" in target or re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target):  # data:, javascript:, ...
        from sagedl.transport import check_url
        check_url(target)
        name = _url_basename(target)
        expected = Expected(a.size, a.sha256, a.sha1)
        sources = [Source(target)] + [Source(b + name) for b in (a.mirror or [])]
        to_stdout = dest is None
        if to_stdout:
            return _fetch_to_stdout(ctx, name, sources, expected)
        path = _destination(dest, name)
    else:
        from sagedl.sage import check_filename
        check_filename(target)
        tree = ctx.tree()
        if tree is None:
            name = target
            expected = Expected(a.size, a.sha256, a.sha1)
            sources = [Source(_with_slash(b) + name) for b in _required_mirrors(ctx)]
            path = _destination(dest, name)
        else:
            tarball = tree.resolve(target)
            name = tarball.filename
            expected = Expected(a.size, a.sha256 or tarball.sha256, a.sha1 or tarball.sha1)
            sources = [Source(u) for u in sage_sources(ctx, tree, tarball)]
            distfiles = tree.distfiles(ctx.env)
            _ensure_dir(distfiles)
            cached = os.path.join(distfiles, name)
            if dest is None:
                path = cached
            else:
                # Sage downloads into its distfiles, then copies to DESTINATION.
                result = _run_fetch(ctx, cached, sources, expected, mirrors_used=True)
                # A copy, as Sage's save_as makes, not a link into the distfiles.
                from sagedl.sitemirror import place
                place(result.path, _destination(dest, name), link=False)
                return 0
    _run_fetch(ctx, path, sources, expected, mirrors_used=tree is not None)
    return 0


def _required_mirrors(ctx):
    if ctx.explicit_mirrors():
        return ctx.mirror_bases()
    raise UsageError("%s is not a URL and there is no Sage tree to look it up in" % ctx.args.url_or_tarball,
                     hint="give a URL, --mirror URL, or run inside a Sage tree (--sage-root DIR)")


def _run_fetch(ctx, path, sources, expected, mirrors_used=False):
    """Fetch one file; mirrors_used: record each source's outcome in the
    mirror health cache (only Sage mirror sources, not a user's URL)."""
    from sagedl.download import fetch
    progress = ctx.progress()
    recorder = HealthRecorder(ctx) if mirrors_used else None
    try:
        result = fetch(path, sources, expected, ctx.transport(), progress, ctx.options(),
                       on_result=recorder, notify=progress.note)
    finally:
        if recorder is not None:
            recorder.flush()
    if result.status == "present":
        ctx.say("%s is already present and verified" % os.path.basename(path)
                if expected.known() else "%s is already present (no checksum to verify; "
                "--force downloads it again)" % os.path.basename(path))
    return result


class HealthRecorder(object):
    """Collects each source's outcome and writes them to the mirror health
    record in one go (flush), so parallel workers never queue on its lock."""

    def __init__(self, ctx):
        import time
        self.ctx = ctx
        self.clock = time.time
        self.results = []

    def __call__(self, url, ok, reason):
        self.results.append((url, ok, reason, self.clock()))   # list.append is atomic

    def flush(self):
        results, self.results = self.results, []
        try:
            from sagedl import mirrors
            mirrors.record_results(results, env=self.ctx.env)
        except Exception:  # health is advisory: never fail a download over it
            if self.ctx.debug:
                raise



def _fetch_to_stdout(ctx, name, sources, expected):
    """sage-download-file URL (no destination) writes the content to stdout."""
    import shutil
    import tempfile
    tmp = tempfile.mkdtemp(prefix="sagedl-")
    try:
        result = _run_fetch(ctx, os.path.join(tmp, name), sources, expected)
        out = getattr(ctx.stdout, "buffer", ctx.stdout)
        with open(result.path, "rb") as f:
            shutil.copyfileobj(f, out, 1 << 20)
        out.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _url_basename(url):
    from sagedl.compat import compat_unquote, compat_urlsplit
    from sagedl.sage import check_filename
    from sagedl.transport import redact
    name = compat_unquote(compat_urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    if not name:
        raise UsageError("cannot tell a file name from %s" % redact(url), hint="give a DESTINATION")
    check_filename(name)
    return name


def _destination(dest, name):
    if dest is None:
        return os.path.abspath(name)
    if os.path.isdir(dest):
        return os.path.abspath(os.path.join(dest, name))
    return os.path.abspath(dest)


def _ensure_dir(path):
    from sagedl.compat import compat_makedirs
    try:
        compat_makedirs(path)
    except OSError as e:
        raise errors.DiskError("cannot create %s: %s" % (path, e.strerror or e))


def sage_sources(ctx, tree, tarball, bases=None):
    """URLs for a tarball in Sage's order: SAGE_SERVER, .upstream.d, mirrors, upstream.

    With --mirror or $SAGEDL_MIRRORS the mirror list is replaced, and the
    .upstream.d entries (which name Sage's own servers) are skipped too.
    """
    from sagedl import sage
    if ctx.args.upstream_only:
        if not tarball.upstream_url:
            raise UsageError("%s has no upstream_url in %s" % (tarball.filename, tarball.checksums_ini
                                                               or "its checksums.ini"),
                             hint="drop --upstream-only to use the Sage mirrors")
        return [tarball.upstream_url]
    explicit = ctx.explicit_mirrors()
    entries = [] if explicit else ctx.upstream_d(tree)
    if bases is None:
        bases = ctx.mirror_bases()
    return sage.source_urls(tarball, ctx.env, entries, bases, ctx.args.allow_upstream,
                            mirror_lists=None if explicit else ctx.mirror_list_resolver())


def cmd_download(ctx):
    """sage-package download: one absolute path per package on stdout, in order."""
    from sagedl import bulk
    a = ctx.args
    tree = ctx.tree(required=True)
    tarballs, skipped = bulk.select_tarballs(tree, a.packages, a.exclude, a.has_file, a.no_file)
    for pkg in skipped:
        ctx.warn("skipping %s: it has only per-platform wheels; name the one your build "
                 "needs, e.g. sagedl download %s" % (pkg, tree.tarballs(pkg)[0].filename))

    def emit(job):
        if job.error is None:
            ctx.stdout.write(job.path + "\n")
            ctx.stdout.flush()

    return fetch_tarballs(ctx, tree, tarballs, emit)


def fetch_tarballs(ctx, tree, tarballs, emit):
    """Fetch tarballs into the distfiles, ``--jobs`` at a time; ``emit(job)``
    in the order given.  Ends with a summary (several files) and returns the
    exit code: the worst failure's, or 0."""
    from sagedl import bulk
    from sagedl.download import Source
    from sagedl.verify import Expected
    a = ctx.args
    if not tarballs:
        raise UsageError("no package matches %s" % " ".join(a.packages))
    distfiles = tree.distfiles(ctx.env)
    _ensure_dir(distfiles)
    bases = ctx.mirror_bases()
    jobs = []
    for i, t in enumerate(tarballs):
        # Spread the work: job i starts on the (i mod k)-th of the k best mirrors.
        k = min(3, len(bases))
        rotated = bases[i % k:] + bases[:i % k] if k else bases
        urls = sage_sources(ctx, tree, t, rotated)
        jobs.append(bulk.Job(i, t, os.path.join(distfiles, t.filename), [Source(u) for u in urls]))
    nworkers = max(1, min(a.jobs, len(jobs)))
    single = len(jobs) == 1
    agg = None if single else _aggregate(ctx, jobs)
    transport0 = ctx.transport()      # shows the --no-check-certificate warning once
    options = ctx.options()
    recorder = HealthRecorder(ctx)

    def fetch_one(job, local):
        from sagedl.download import fetch
        if nworkers == 1:
            transport = transport0
        else:
            transport = local.get("transport")
            if transport is None:
                transport = local["transport"] = ctx.new_transport()
        progress = ctx.progress() if single else _FileProgress(agg, job.tarball.filename)
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
            ctx.warn("unable to download %s: %s" % (job.tarball.package, job.error))

    start = bulk.now()
    try:
        bulk.run_jobs(jobs, fetch_one, nworkers, agg, a.on_error == "stop", emit_or_warn)
    finally:
        recorder.flush()
    if agg is not None:
        agg.finish()
    failed = [j for j in jobs if j.error is not None]
    if single:
        if failed:
            raise failed[0].error
        return 0
    if not ctx.quiet or failed:
        ctx.stderr.write(bulk.summarize(jobs, bulk.now() - start) + "\n")
    if failed:
        if a.on_error == "stop":
            _report(ctx.stderr, failed[0].error, ctx.debug)
        return max(j.error.exit_code for j in failed)
    return 0


def _aggregate(ctx, jobs):
    from sagedl.progress import AggregateProgress
    mode = "none" if ctx.quiet else ctx.args.progress
    if mode == "dots":
        mode = "lines"
    agg = AggregateProgress(ctx.stderr, mode=mode, env=ctx.env)
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


def _source(url):
    from sagedl.download import Source
    return Source(url)


def cmd_print_fastest_mirror(ctx):
    ctx.stdout.write(ctx.mirror_bases()[0] + "\n")
    return 0


def cmd_list_mirrors(ctx):
    """A table of the configured mirrors, freshly ranked: name, region,
    latency, health, last result."""
    from sagedl import mirrors
    if ctx.explicit_mirrors():
        listed = [mirrors.Mirror(u) for u in ctx.mirror_bases()]
    else:
        listed = ctx.configured_mirrors()
    if ctx.args.no_probe:
        ranked = [mirrors.Ranked(m, mirrors.SKIPPED, None, "not measured") for m in listed]
    else:
        ranked = ctx.ranked(listed, fresh=True)
    text = mirrors.format_table(ranked, mirrors.load_health(ctx.env))
    if sys.version_info[0] == 2 and not isinstance(text, bytes):
        text = text.encode("utf-8")   # mirror names are unicode; a pipe takes bytes on 2.7
    ctx.stdout.write(text)
    return 0


# -- entry point ---------------------------------------------------------------
def main(argv=None, env=None, stdout=None, stderr=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    debug = "--debug" in argv
    if argv == ["--version"]:
        stdout.write("sagedl %s (Python %s)\n" % (__version__, sys.version.split()[0]))
        return 0
    if argv[:1] and argv[0] in SAGE_PACKAGE_COMMANDS:
        # sage-package's read-only subcommands: their own parsers and output rules.
        from sagedl import sagepackage
        return sagepackage.main(argv, env, stdout, stderr)
    ctx = None
    old_term = _install_sigterm()
    try:
        if argv[:1] and argv[0] in COMMANDS:
            command = argv[0]
            parser = {"download": make_download_parser, "list-mirrors": _list_parser,
                      "make-mirror": _make_mirror_parser, "verify": _verify_parser}[command]()
            args = parser.parse_args(argv[1:])
        else:
            command = None
            parser = make_parser()
            if not argv:
                parser.print_help(stderr)
                return errors.EXIT_USAGE
            args = parser.parse_args(argv)
            if args.version:
                stdout.write("sagedl %s (Python %s)\n" % (__version__, sys.version.split()[0]))
                return 0
        ctx = Context(args, env, stdout, stderr)
        if command == "download":
            return cmd_download(ctx)
        if command == "list-mirrors":
            return cmd_list_mirrors(ctx)
        if command == "make-mirror":
            from sagedl.sitemirror import cmd_make_mirror
            return cmd_make_mirror(ctx)
        if command == "verify":
            from sagedl.sitemirror import cmd_verify
            return cmd_verify(ctx)
        if args.print_fastest_mirror:
            return cmd_print_fastest_mirror(ctx)
        if not args.url_or_tarball:
            raise UsageError("nothing to download",
                             hint="give a URL or tarball name, or --print-fastest-mirror")
        return cmd_fetch(ctx)
    except SagedlError as e:
        _report(stderr, e, debug)
        return e.exit_code
    except KeyboardInterrupt:
        e = errors.Interrupted("interrupted; the partial download is kept and the next run resumes it")
        _report(stderr, e, debug)
        return e.exit_code
    except SystemExit as e:  # argparse --help
        return e.code if isinstance(e.code, int) else 0
    except Exception as e:  # a bug: still one line, unless --debug
        if debug:
            import traceback
            traceback.print_exc(file=stderr)
        stderr.write("%s: internal error: %s: %s\n" % (PROG, e.__class__.__name__, e))
        if not debug:
            stderr.write("%s: hint: run again with --debug for a traceback, and please report it\n" % PROG)
        return errors.EXIT_FAILURE
    finally:
        if ctx is not None and ctx._transport is not None:
            ctx._transport.close()
        _restore_sigterm(old_term)


def _report(stderr, e, debug):
    if debug:
        import traceback
        traceback.print_exc(file=stderr)
    stderr.write("%s: error: %s\n" % (PROG, e))
    if e.hint:
        stderr.write("%s: hint: %s\n" % (PROG, e.hint))
    stderr.flush()


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt()


def _signal_module():
    # On 3.x "signal" imports enum (several ms of start-up); the C module
    # _signal has the same functions.  2.7 has only "signal", itself in C.
    try:
        import _signal
        return _signal
    except ImportError:
        import signal
        return signal


def _install_sigterm():
    """SIGTERM ends the run like SIGINT: message, partial kept, exit 130."""
    sig = _signal_module()
    try:
        return sig.signal(sig.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread (an in-process test)
        return None


def _restore_sigterm(old):
    if old is not None:
        sig = _signal_module()
        try:
            sig.signal(sig.SIGTERM, old)
        except ValueError:
            pass


def console_main():
    """Entry point for an installed ``sagedl`` console script."""
    sys.exit(main())
