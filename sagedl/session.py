"""One run's context: its settings, environment and streams, and what
they build.

The command line makes a Session of the run's settings (options.RunSettings:
the options every command shares) and its environment and streams; each
command also gets its own request (options.py).  The commands and the
planning layer (sources.py) ask the Session for:

* what the settings build: the engine's Options, the progress display, a
  transport (one per worker thread);
* what the run learns once: the Sage tree, what it learned about
  reachability (hosts, verdict), and the mirrors it tries
  (mirror_choice(): plan/mirrorchoice.py);
* where results go: say/warn lines on stderr, the mirror health record.

Nothing here decides an order of sources: that is sources.py.
"""

from __future__ import absolute_import

import os

from sagedl import errors
from sagedl.errors import SagedlError, UsageError

PROG = "sagedl"


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
        self._mirrors = None
        self._warned = set()
        # What this run learned about reachability (reachability.py): the
        # servers found dead; why the last probe found no mirror is verdict.
        from sagedl.net.reachability import HostMemory
        self.hosts = HostMemory()

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

    def mirror_choice(self):
        """The mirrors this run tries (plan/mirrorchoice.py), made when
        first asked for: a run of cached files never needs it."""
        if self._mirrors is None:
            from sagedl.plan.mirrorchoice import MirrorChoice
            self._mirrors = MirrorChoice(self.settings, self.env, self.hosts, self.say,
                                         self.new_transport, self.tree)
        return self._mirrors

    @property
    def verdict(self):
        """Why this run's ranking probe found no mirror (reachability.py), or None."""
        return self._mirrors.verdict if self._mirrors is not None else None

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
