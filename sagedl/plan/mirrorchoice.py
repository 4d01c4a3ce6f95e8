"""Which mirrors one run tries, each fact learned at most once and only
when first asked for: the explicit mirrors (--mirror, $SAGEDL_MIRRORS), the
ranking of the configured list (a network probe), Sage's live mirror lists
(refreshed daily), the tree's .upstream.d entries, and -- when no mirror
answered the probe -- the verdict, which gives the mirrors still tried
short deadlines (reachability.py).

Why a module of its own: these were a dozen of the Session's methods,
beside its messages and the objects its settings build.  The planning layer
(sources.py, spread.py) and the mirror commands (showmirrors.py) ask one
MirrorChoice per run, through Session.mirror_choice().  Nothing here orders
a tarball's sources: that is sources.py.
"""

from __future__ import absolute_import

import os

from sagedl.errors import SagedlError, SourceFailure, UsageError

SMALL_DOCUMENT_BYTES = 256 * 1024
# A mirror list has a fallback (the cached or shipped list), so its lookup
# and connect may give up sooner than a download's: offline, the 10 s
# lookup deadline was most of a run's time.
SMALL_DOCUMENT_CONNECT = 3.0


class MirrorChoice(object):
    """The mirror facts of one run.  ``settings``: the run's
    options.RunSettings; ``hosts``: its reachability.HostMemory (the
    transports' too), which a ranking nobody answered puts on short
    deadlines; ``say``: a message on stderr (not under -q);
    ``new_transport(timeout, connect)`` and ``tree()``: the Session's."""

    def __init__(self, settings, env, hosts, say, new_transport, tree):
        self._settings = settings
        self._env = env
        self._hosts = hosts
        self._say = say
        self._new_transport = new_transport
        self._tree = tree
        self._bases = None
        self._upstream_d = None
        self._resolved_lists = {}
        self._live_lists = {}
        self._answered = set()     # base URLs that answered a ranking probe
        self.verdict = None        # why the last probe found no mirror (reachability.Verdict)

    def explicit(self):
        """--mirror, else $SAGEDL_MIRRORS: base URLs that replace the mirror
        list (and .upstream.d), or None when neither is given.  A
        SAGEDL_MIRRORS that is set but empty is [] -- no mirrors at all, the
        one way to say so -- never the shipped list of real mirrors."""
        if self._settings.mirrors:
            return list(self._settings.mirrors)
        value = self._env.get("SAGEDL_MIRRORS")
        return None if value is None else value.split()

    def bases(self):
        """Mirror base URLs in the order to try: the explicit ones, or the ranked list."""
        if self._bases is None:
            from sagedl.plan.sources import with_slash
            explicit = self.explicit()
            if explicit is not None:
                self._bases = [with_slash(m) for m in explicit]
            else:
                self._bases = self.usable(self.ranked(self.configured()))
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
                self._hosts.suspect_network()
            if bases:
                self._say("no mirror answered the ranking probe (%s); trying %d of them on "
                         "short deadlines" % (verdict.sentence().split(": ", 1)[1], len(bases)))
                self._hosts.set_probation(server_key(compat_urlsplit(b), self._env) for b in bases)
        return bases

    def answered_probe(self, base):
        """Whether ``base`` (a base URL of a ranking this run made) answered
        the probe: not merely skipped by its early stop, nor on probation."""
        return base in self._answered

    def upstream_d(self, tree):
        """The tree's .upstream.d entries, read once."""
        if self._upstream_d is None:
            from sagedl.sage import tree as sage
            self._upstream_d = sage.read_upstream_d(tree.root, tree.distfiles(self._env))
        return self._upstream_d

    def configured(self):
        from sagedl.mirrors import mirrorlist
        return mirrorlist.load_configured(self._settings.mirrors_file, self._env)

    def ranked(self, listed, fresh=False):
        """Mirrors best first: a parallel HTTP probe, cached for an hour, with
        recently failed mirrors demoted (see health.rank_cached).  fresh:
        measure every mirror now, without the cache or the early stop."""
        from sagedl.mirrors import health
        ctx = None
        if any(m.url.startswith("https:") for m in listed):
            from sagedl.net.tls import TLSConfig
            ctx = TLSConfig(self._settings.ca_bundle, self._settings.check_certificate,
                            self._env).context()
        if fresh:
            ranked = health.rank_cached(listed, env=self._env, ssl_context=ctx, refresh=True,
                                        want=None)
        else:
            ranked = health.rank_cached(listed, env=self._env, ssl_context=ctx)
        return ranked

    def fetch_small(self, url, timeout):
        """Fetch a small document (a mirror list) within ``timeout`` seconds
        (shorter than a download's): a transport of its own, closed after."""
        transport = self._new_transport(min(timeout, self._settings.timeout or timeout),
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
                                                                  env=self._env)
            if problem:
                # Sage's words, which its build/test looks for offline.
                self._say("Downloading the mirror list failed (%s); using the %s list"
                         % (problem, origin))
            self._live_lists[url] = listed
        return self._live_lists[url]

    def resolved_list(self, url):
        """For .upstream.d lines naming a mirror_list URL: that live list,
        ranked, once per run (and kept where Sage's tools look for it)."""
        if url not in self._resolved_lists:
            self._resolved_lists[url] = self.usable(self.ranked(self.live_list(url)))
            self.cache_list_for_sage(url, self._resolved_lists[url])
        return self._resolved_lists[url]

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
        tree = self._tree()
        if tree is None or not bases:
            return
        try:
            name = check_filename(url.rpartition("/")[2])
        except UsageError:
            return
        distfiles = tree.distfiles(self._env)
        text = "[%s]" % ", ".join("'%s'" % b for b in bases)   # no quote in a base URL
        try:
            compat_makedirs(distfiles)
            fsutil.write_atomic(os.path.join(distfiles, name), text.encode("utf-8"))
        except (IOError, OSError, SagedlError):
            pass
