"""One run's shared objects, and the facts a run learns once.

The command line makes a Session of the run's settings (options.RunSettings:
the options every command shares) and its environment and streams; the
commands and the planning layer (sources.py) ask it for what they need:

* what the settings build: the engine's Options, the progress display, a
  transport (one per worker thread), the TLS context for the probe;
* per-run facts, each computed at most once and only when first asked for:
  the Sage tree, the mirror bases to try (explicit, or probed and ranked),
  the .upstream.d entries, each live mirror list;
* where results go: say/warn lines on stderr, the mirror health record.

Nothing here decides an order of sources: that is sources.py.
"""

from __future__ import absolute_import

import os

from sagedl import errors
from sagedl.errors import SagedlError, UsageError

PROG = "sagedl"
SMALL_DOCUMENT_BYTES = 256 * 1024
# A mirror list has a fallback (the cached or shipped list), so its lookup
# and connect may give up sooner than a download's: offline, the 10 s
# lookup deadline was most of a run's time.
SMALL_DOCUMENT_CONNECT = 3.0


class Session(object):
    """What every command needs: env, streams, the run's settings
    (options.RunSettings), and the pieces built from them."""

    def __init__(self, settings, env, stdout, stderr):
        self.settings = settings
        self.env = env
        self.stdout = stdout
        self.stderr = stderr
        self.debug = settings.debug
        self.quiet = settings.quiet
        self._transport = None
        self._throttle = None
        self._tree = False
        # Computed once per run: a bulk download asks for them per tarball.
        self._bases = None
        self._upstream_d = None
        self._resolved_lists = {}
        self._live_lists = {}
        self._answered = set()     # base URLs that answered a ranking probe
        self._warned = set()
        # What this run learned about reachability (reachability.py): the
        # servers found dead, and why the last probe found no mirror.
        from sagedl.net.reachability import HostMemory
        self.hosts = HostMemory()
        self.verdict = None

    # -- messages -------------------------------------------------------------
    def say(self, text):
        if not self.quiet:
            self.stderr.write("%s: %s\n" % (PROG, text))
            self.stderr.flush()

    def saved(self, path):
        """Where a finished download went, on stderr as wget says it (its
        "'NAME' saved"), with the whole path: the distfiles are not where a
        user looks first.  Not under -q."""
        self.say("saved to %s" % path)

    def using_cached(self, path):
        """Sage's words for a verified file already in place (Sage's own
        build/test checks that stderr starts with them)."""
        if not self.quiet:
            self.stderr.write("Using cached file %s\n" % path)
            self.stderr.flush()

    def warn(self, text):
        self.stderr.write("%s: warning: %s\n" % (PROG, text))
        self.stderr.flush()

    def warn_once(self, key, text):
        """warn(text), once per run for each ``key`` (a bulk download plans
        hundreds of files from the same few sources)."""
        if key not in self._warned:
            self._warned.add(key)
            self.warn(text)

    # -- what the options build -----------------------------------------------
    def transport(self):
        if self._transport is None:
            if not self.settings.check_certificate:
                from sagedl.net.tls import INSECURE_WARNING
                self.stderr.write("%s: %s\n" % (PROG, INSECURE_WARNING))
            self._transport = self.new_transport()
        return self._transport

    def new_transport(self, timeout=None, connect=None):
        """A transport of its own (one per worker thread: connections are not
        shared); ``connect``: a lookup and connect deadline shorter than
        --connect-timeout's."""
        from sagedl.net.transport import Transport
        timeout = timeout or self.settings.timeout or 30.0
        given = [c for c in (connect, self.settings.connect_timeout) if c]
        connect = min(given) if given else None
        return Transport(timeout=timeout, connect_timeout=min(connect, timeout) if connect else None,
                         env=self.env, ca_bundle=self.settings.ca_bundle,
                         verify=self.settings.check_certificate, hosts=self.hosts)

    def options(self):
        from sagedl.engine.download import Options
        from sagedl.engine.retry import Retry
        a = self.settings
        opts = Options(timeout=a.timeout or 30.0, retry=Retry(total=a.retries),
                       low_speed_limit=a.low_speed_limit, low_speed_time=a.low_speed_time,
                       lock_timeout=a.lock_timeout, force=a.force)
        if a.max_size:
            opts.max_size = a.max_size
        opts.throttle = self.throttle()
        return opts

    def throttle(self):
        """--limit-rate's token bucket: one per run, so the cap is the
        total of every transfer (a bulk download's workers share it)."""
        rate = self.settings.limit_rate
        if rate and self._throttle is None:
            from sagedl.engine.ratelimit import TokenBucket
            self._throttle = TokenBucket(rate)
        return self._throttle

    def progress(self):
        from sagedl.ui.progress import make_progress
        return make_progress(self.settings.progress, self.stderr, quiet=self.quiet, env=self.env)

    def close(self):
        if self._transport is not None:
            self._transport.close()

    # -- per-run facts ----------------------------------------------------------
    def tree(self, required=False):
        if self._tree is False:
            from sagedl.sage.tree import SageTree
            self._tree = SageTree.discover(self.settings.sage_root, env=self.env, cwd=os.getcwd())
        if required and self._tree is None:
            raise UsageError("no Sage tree found",
                             hint="run inside a Sage source tree, or pass --sage-root DIR / set SAGE_ROOT")
        return self._tree

    def explicit_mirrors(self):
        """--mirror, else $SAGEDL_MIRRORS: base URLs that replace the mirror
        list (and .upstream.d), or None when neither is given.  A
        SAGEDL_MIRRORS that is set but empty is [] -- no mirrors at all, the
        one way to say so -- never the shipped list of real mirrors."""
        if self.settings.mirrors:
            return list(self.settings.mirrors)
        value = self.env.get("SAGEDL_MIRRORS")
        return None if value is None else value.split()

    def mirror_bases(self):
        """Mirror base URLs in the order to try: the explicit ones, or the ranked list."""
        if self._bases is None:
            from sagedl.plan.sources import with_slash
            explicit = self.explicit_mirrors()
            if explicit is not None:
                self._bases = [with_slash(m) for m in explicit]
            else:
                self._bases = self.usable(self.ranked(self.configured_mirrors()))
        return self._bases

    def usable(self, ranked):
        """The base URLs of a ranking worth trying (sources.bases_and_verdict);
        when no mirror answered, the run keeps the verdict, and the mirrors
        still tried get short deadlines."""
        from sagedl.compat import compat_urlsplit
        from sagedl.net.urls import server_key
        from sagedl.plan.sources import bases_and_verdict
        bases, verdict = bases_and_verdict(ranked)
        self._answered.update(r.mirror.url for r in ranked if r.ok)
        if verdict is not None:
            self.verdict = verdict
            if verdict.conclusive:
                self.hosts.suspect_network()
            if bases:
                self.say("no mirror answered the ranking probe (%s); trying %d of them on "
                         "short deadlines" % (verdict.sentence().split(": ", 1)[1], len(bases)))
                self.hosts.set_probation(server_key(compat_urlsplit(b), self.env) for b in bases)
        return bases

    def answered_probe(self, base):
        """Whether ``base`` (a base URL of a ranking this run made) answered
        the probe: not merely skipped by its early stop, nor on probation."""
        return base in self._answered

    def explained(self, error, sage_mirrors=True):
        """A download's error, made again (errors.explain) with what this run
        knows: whether the checksum came from the Sage tree (sage_mirrors)
        or the user, and the probe's verdict when no mirror answered."""
        verdict = self.verdict.sentence() if self.verdict is not None else None
        advice = errors.SAGE_CHECKSUM_ADVICE if sage_mirrors else errors.URL_CHECKSUM_ADVICE
        return errors.explain(error, advice, verdict)

    def unreachable(self, name=None):
        """The error of a run whose probe found the network unreachable."""
        from sagedl.net.reachability import UNREACHABLE_SENTENCE
        text = self.verdict.sentence()
        return errors.NetworkError(
            ("could not download %s: %s" % (name, text)) if name else text,
            hint=errors.UNREACHABLE_HINT,
            # What a bulk run says for the files after the first: the cause once.
            brief="could not download %s: %s (as above)" % (name, UNREACHABLE_SENTENCE))

    def upstream_d(self, tree):
        """The tree's .upstream.d entries, read once."""
        if self._upstream_d is None:
            from sagedl.sage import tree as sage
            self._upstream_d = sage.read_upstream_d(tree.root, tree.distfiles(self.env))
        return self._upstream_d

    def configured_mirrors(self):
        from sagedl.mirrors import mirrorlist
        return mirrorlist.load_configured(self.settings.mirrors_file, self.env)

    def ranked(self, listed, fresh=False):
        """Mirrors best first: a parallel HTTP probe, cached for an hour, with
        recently failed mirrors demoted (see health.rank_cached).  fresh:
        measure every mirror now, without the cache or the early stop."""
        from sagedl.mirrors import health
        ctx = None
        if any(m.url.startswith("https:") for m in listed):
            from sagedl.net.tls import TLSConfig
            ctx = TLSConfig(self.settings.ca_bundle, self.settings.check_certificate,
                            self.env).context()
        if fresh:
            ranked = health.rank_cached(listed, env=self.env, ssl_context=ctx, refresh=True,
                                        want=None)
        else:
            ranked = health.rank_cached(listed, env=self.env, ssl_context=ctx)
        return ranked

    def fetch_small(self, url, timeout):
        """Fetch a small document (a mirror list) within ``timeout`` seconds
        (shorter than a download's): a transport of its own, closed after."""
        from sagedl.errors import SourceFailure
        transport = self.new_transport(min(timeout, self.settings.timeout or timeout),
                                       connect=SMALL_DOCUMENT_CONNECT)
        try:
            resp = transport.open(url)
            try:
                if resp.status != 200:
                    raise SourceFailure(SourceFailure.KIND_HTTP, "HTTP %d" % resp.status)
                return resp.read_all(SMALL_DOCUMENT_BYTES)
            finally:
                resp.close()
        finally:
            transport.close()

    def live_list(self, url):
        """The mirrors of Sage's live mirror list at ``url`` (refreshed daily,
        else the cached or shipped list, which is said), once per run."""
        if url not in self._live_lists:
            from sagedl.mirrors import mirrorlist
            listed, origin, problem = mirrorlist.live_mirror_list(url, self.fetch_small,
                                                                  env=self.env)
            if problem:
                # Sage's words, which its build/test looks for offline.
                self.say("Downloading the mirror list failed (%s); using the %s list"
                         % (problem, origin))
            self._live_lists[url] = listed
        return self._live_lists[url]

    def mirror_list_resolver(self):
        """For .upstream.d lines naming a mirror_list URL: that live list, ranked."""
        def resolve(url):
            if url not in self._resolved_lists:
                self._resolved_lists[url] = self.usable(self.ranked(self.live_list(url)))
                self.cache_list_for_sage(url, self._resolved_lists[url])
            return self._resolved_lists[url]
        return resolve

    def cache_list_for_sage(self, url, bases):
        """Sage keeps the list an .upstream.d line names, ranked, as
        SAGE_DISTFILES/<the URL's last part> (upstream/mirror_list: a Python
        list literal, read back with ast.literal_eval for a day); its other
        tools read it there, so write it as Sage's MirrorList does.  Through
        fsutil.write_atomic: never through a symlink; a failure is ignored,
        as any cache's."""
        from sagedl.compat import compat_makedirs
        from sagedl.engine import fsutil
        from sagedl.sage.names import check_filename
        tree = self.tree()
        if tree is None or not bases:
            return
        try:
            name = check_filename(url.rpartition("/")[2])
        except UsageError:
            return
        distfiles = tree.distfiles(self.env)
        text = "[%s]" % ", ".join("'%s'" % b for b in bases)   # no quote in a base URL
        try:
            compat_makedirs(distfiles)
            fsutil.write_atomic(os.path.join(distfiles, name), text.encode("utf-8"))
        except (IOError, OSError, SagedlError):
            pass

    # -- running the engine ------------------------------------------------------
    def health_recorder(self):
        from sagedl.mirrors.health import HealthRecorder
        return HealthRecorder(self.env, reraise=self.debug)

    def fetch(self, path, sources, expected, sage_mirrors=False):
        """Fetch one file with this run's transport, progress and options;
        sage_mirrors: record each source's outcome in the mirror health cache
        (only Sage mirror sources, not a user's URL)."""
        from sagedl.engine.download import fetch
        progress = self.progress()
        recorder = _LazyRecorder(self) if sage_mirrors else None
        try:
            result = fetch(path, sources, expected, self.transport(), progress, self.options(),
                           on_result=recorder, notify=progress.note,
                           notes_shown=progress.mode != "none")
        except SagedlError as e:
            # a user's URL (not sage_mirrors): the Sage tree is not the cause
            raise self.explained(e, sage_mirrors)
        finally:
            if recorder is not None:
                recorder.flush()
        if result.status == "present":   # only ever a file a checksum verified
            self.using_cached(path)
        return result


class _LazyRecorder(object):
    """The health recorder of a one-file fetch, made when a source was
    first tried: a verified cached file must not pay for importing the
    health record's modules (the probe's, ssl among them) -- using no
    network when none is needed includes not getting ready for it."""

    def __init__(self, session):
        self.session = session
        self.recorder = None

    def __call__(self, url, ok, reason):
        if self.recorder is None:
            self.recorder = self.session.health_recorder()
        self.recorder(url, ok, reason)

    def throughput(self, url, bps):
        if self.recorder is None:
            self.recorder = self.session.health_recorder()
        self.recorder.throughput(url, bps)

    def flush(self):
        if self.recorder is not None:
            self.recorder.flush()
