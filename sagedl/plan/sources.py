"""Planning: which URLs to try for a file, in which order.

A request (a URL, a tarball name, many packages) becomes, per file, an
ordered list of sources.  For a Sage tarball the order is Sage's own:

1. ``$SAGE_SERVER`` as a mirror base;
2. the lines of ``$SAGE_ROOT/.upstream.d/*`` (URL prefixes, or a live
   mirror_list whose mirrors are ranked at that place);
3. the ranked mirror list, or ``--mirror``/``$SAGEDL_MIRRORS`` instead of it
   (and then without the .upstream.d lines, which name Sage's own servers);
4. the package's ``upstream_url``, only with ``--allow-upstream``
   (``--upstream-only``: nothing else).

``iter_source_urls`` and the other lower-case helpers without a session are pure:
a tarball, the environment, the .upstream.d entries and the mirror bases in,
URLs out.  The network (ranking, live lists) is reached only through the
Session (session.py), which computes each per-run fact once.
"""

from __future__ import absolute_import

import os

from sagedl.compat import compat_quote
from sagedl.errors import UsageError
from sagedl.plan.output import is_url, url_basename
from sagedl.text import native_name, native_str, text_name

MAX_DEAD_MIRRORS = 3
SPREAD_OVER = 3     # a bulk download spreads its files over the k best mirrors


# -- pure: Sage's order ------------------------------------------------------------
def mirror_list_urls(entries, env=None):
    """The mirror-list URLs named by read_upstream_d entries, ${SAGE_SERVER}
    expanded (--print-fastest-mirror ranks the first, as Sage)."""
    env = os.environ if env is None else env
    server = _server(env)
    urls = []
    for kind, value in entries:
        if kind == "mirror_list":
            url = _with_server(value, server)
            if url is not None and url not in urls:
                urls.append(url)
    return urls


# RFC 3986 pchar minus '%': what may stay unescaped in one path segment.
_PCHAR_SAFE = "!$&'()*+,;=:@-._~"


def _segment(s):
    return compat_quote(native_str(s), safe=_PCHAR_SAFE)  # 2.7's quote() fails on non-ASCII text


def _server(env):
    return (env.get("SAGE_SERVER") or "").rstrip("/")


def _with_server(template, server):
    """Expand ${SAGE_SERVER}; None when the line needs it and it is unset (as Sage)."""
    if "${SAGE_SERVER}" in template:
        if not server:
            return None
        template = template.replace("${SAGE_SERVER}", server)
    return template


def _mirror_urls(base, tarball):
    """BASE/spkg/upstream/PKG/FILE for each name a mirror may file it under."""
    from sagedl.sage.names import mirror_path
    return ["%s/%s" % (base.rstrip("/"), mirror_path(_segment(pkg), _segment(tarball.filename)))
            for pkg in tarball.mirror_names()]


def iter_source_urls(tarball, env, upstream_d_entries, mirrors, allow_upstream,
                     mirror_lists=None, skipped=None):
    """The usable URLs to try for ``tarball``, in Sage's order, without
    duplicates, one at a time: what needs the network is reached only when
    the sources before it are used up.

    1. $SAGE_SERVER as a mirror base: SAGE_SERVER/spkg/upstream/PKG/FILE
    2. upstream_d_entries in order: a "url" template gets ${SAGE_SERVER}
       (the line is skipped when SAGE_SERVER is unset) and ${SPKG} expanded,
       one '/' and the file name appended.  A "mirror_list" entry expands, at
       its place, to ``mirror_lists(url)`` (a callable returning ranked
       mirror base URLs) as in 3.; without ``mirror_lists`` it is skipped,
       and the caller is expected to pass those mirrors as ``mirrors``.
    3. ``mirrors`` (ranked base URLs, or a callable returning them, called
       only when this point is reached: a file that SAGE_SERVER or an
       .upstream.d line serves never costs a ranking probe):
       MIRROR/spkg/upstream/PKG/FILE
    4. the tarball's upstream_url, only when ``allow_upstream``.

    PKG (and ${SPKG}) is each of ``tarball.mirror_names()`` in turn: a
    package whose checksums.ini is a symlink is asked for under the owner's
    name, then under its own (which is all a stock Sage client asks for).
    A template with an unknown ${...} placeholder left is skipped.  A source
    that cannot be used (an ftp: or file: URL, a line that expands to an
    invalid URL, such as ${SAGE_SERVER}spkg/... with a SAGE_SERVER without
    its slash) is left out, never fatal while other sources remain; when
    ``skipped`` is a list, (what, url, problem) is appended to it for each
    (a callable is called with them), ``what`` naming where the source came
    from.  ``env`` None means os.environ.  Pure apart from calling
    ``mirrors`` and ``mirror_lists``.
    """
    from sagedl.net.urls import url_problem
    env = os.environ if env is None else env
    server = _server(env)
    seen = set()

    def skip(what, url, problem):
        if callable(skipped):
            skipped(what, url, problem)
        elif skipped is not None:
            skipped.append((what, url, problem))

    def usable(urls, what):
        for url in urls:
            problem = url_problem(url)
            if problem is not None:
                skip(what, url, problem)
            elif url not in seen:
                seen.add(url)
                yield url

    if server:
        for url in usable(_mirror_urls(server, tarball), "SAGE_SERVER"):
            yield url
    for kind, value in upstream_d_entries:
        if kind == "mirror_list":
            url = _with_server(value, server)
            if mirror_lists is None or url is None:
                continue
            problem = url_problem(url)
            if problem is not None:
                skip(".upstream.d line %s" % value, url, problem)
                continue
            for m in mirror_lists(url) or ():
                for u in usable(_mirror_urls(m, tarball), "mirror list %s" % url):
                    yield u
            continue
        template = _with_server(value, server)
        if template is None:
            continue
        # A line without ${SPKG} gives the same URL twice: the second is dropped.
        for pkg in tarball.mirror_names():
            prefix = template.replace("${SPKG}", pkg)
            if "${" in prefix:
                break
            if not prefix.endswith("/"):
                prefix += "/"
            for url in usable([prefix + _segment(tarball.filename)], ".upstream.d line %s" % value):
                yield url
    for m in (mirrors() if callable(mirrors) else mirrors) or ():
        for url in usable(_mirror_urls(m, tarball), "mirror %s" % m):
            yield url
    if allow_upstream and tarball.upstream_url:
        for url in usable([tarball.upstream_url], "the upstream_url of %s" % tarball.package):
            yield url


def usable_bases(ranked):
    """Base URLs to try (see bases_and_verdict)."""
    return bases_and_verdict(ranked)[0]


def bases_and_verdict(ranked):
    """(base URLs to try, reachability.Verdict or None), from a ranking.

    Every mirror that answered the probe (or was not measured), best first;
    mirrors whose probe failed are dropped -- trying each would cost a
    timeout apiece.  When none answered, the Verdict says why: if every
    mirror failed in a way retrying cannot fix (DNS, no route, refused), no
    mirror is tried; otherwise (timeouts: a slow link misses a 1.2 s probe)
    the first few by priority are, on probation (short deadlines)."""
    from sagedl.mirrors.probe import FAILED
    from sagedl.net.reachability import verdict
    alive = [r.mirror.url for r in ranked if r.status != FAILED]
    if alive or not ranked:
        return alive, None
    v = verdict(ranked)
    if v.conclusive:
        return [], v
    return [r.mirror.url for r in ranked[:MAX_DEAD_MIRRORS]], v


def rotated(bases, i, k=SPREAD_OVER):
    """Spread the work: job i starts on the (i mod k)-th of the k best mirrors.

    Only those k take turns; the rest keep their ranked order behind them.
    (Rotating the whole list sent the best mirror to the very back -- behind
    every slow or barely alive one -- for two jobs in three.)"""
    k = min(k, len(bases))
    if not k:
        return list(bases)
    top = bases[:k]
    return top[i % k:] + top[:i % k] + bases[k:]


def with_slash(url):
    """A mirror base URL the user gave, checked, ending in '/'."""
    from sagedl.net.urls import check_url
    check_url(url)
    return url if url.endswith("/") else url + "/"


# -- with a session: the per-run facts ---------------------------------------------
def tarball_sources(session, tree, tarball, bases=None):
    """URLs for a tarball in Sage's order: SAGE_SERVER, .upstream.d, mirrors, upstream.

    With --mirror or $SAGEDL_MIRRORS the mirror list is replaced, and the
    .upstream.d entries (which name Sage's own servers) are skipped too.
    ``bases`` (default: the session's mirror bases) lets a bulk download
    hand each file its own rotation of the same mirrors; a callable is
    called only when the mirrors' turn comes.

    A generator: each source is planned when the engine asks for it.
    SAGE_SERVER comes first and costs no probe, so a site mirror that has
    the file never makes the run rank the public mirrors.  Past it the
    ranking comes before any other source: its verdict (offline, DNS dead)
    is what gives the .upstream.d servers short deadlines (reachability.py).
    """
    settings = session.settings
    if settings.upstream_only:
        if not tarball.upstream_url:
            raise UsageError("%s has no upstream_url in %s" % (tarball.filename, tarball.checksums_ini
                                                               or "its checksums.ini"),
                             hint="drop --upstream-only to use the Sage mirrors")
        entries, bases, mirror_lists, allow_upstream = [], [], None, True
        env = {}    # SAGE_SERVER too is not a source here
    else:
        choice = session.mirror_choice()
        explicit = choice.explicit() is not None
        entries = [] if explicit else choice.upstream_d(tree)
        if bases is None:
            bases = choice.bases        # called when the mirrors' turn comes
        mirror_lists = None if explicit else choice.resolved_list
        allow_upstream, env = settings.allow_upstream, session.env

    def skipped(what, url, problem):
        session.warn_once(what, "skipping %s: URL %s %s" % (what, _shown(url), problem))
    first = []
    for url in iter_source_urls(tarball, env, [], (), False, None, skipped):   # SAGE_SERVER
        first.append(url)
        yield url
    if callable(bases):
        bases = bases()
    planned = len(first)
    for url in iter_source_urls(tarball, env, entries, bases, allow_upstream, mirror_lists,
                                skipped):
        if url not in first:
            planned += 1
            yield url
    if not planned and session.verdict is not None:
        raise session.unreachable(tarball.filename)


def _shown(url):
    from sagedl.net.urls import redact
    return repr(redact(url)[:200]).lstrip("u")


def ensure_distfiles(session, tree):
    """The distfiles directory, created if missing."""
    from sagedl.compat import compat_makedirs
    from sagedl.errors import DiskError
    path = tree.distfiles(session.env)
    try:
        compat_makedirs(path)
    except OSError as e:
        raise DiskError("cannot create %s: %s" % (path, e.strerror or e))
    return path


class FetchPlan(object):
    """What the single-file command does: fetch ``sources`` (Sources, or a
    callable planning them when needed) checked against ``expected``, to
    where ``placement`` (output.Placement) says.  ``sage_mirrors``: the
    sources are Sage mirrors, whose outcomes go into the health record (not
    a user's own URL)."""

    def __init__(self, name, placement, sources, expected, sage_mirrors=False):
        self.name = name
        self.placement = placement
        self.sources = sources
        self.expected = expected
        self.sage_mirrors = sage_mirrors
        self.tarball = self.tree = None    # a Sage tarball's: the multi-mirror scheduler plans from them


def plan_fetch(session, target, dest, size=None, sha256=None, sha1=None):
    """The FetchPlan of one file of ``sagedl URL_OR_TARBALL...`` (the
    sage-download-file form); ``dest`` is the run's destination, as
    output.decide made it; size, sha256, sha1: what the command line
    expects of the file (a Sage tarball's checksums.ini fills in the rest).

    * A URL: that URL, then the same file name under each --mirror.
    * A tarball or package name in a Sage tree: Sage's sources (see
      tarball_sources), into the distfiles.
    * A file name without a tree: each explicit mirror.

    Where the file goes is output.place's answer.
    """
    from sagedl.engine.download import Source
    from sagedl.engine.verify import Expected
    from sagedl.plan.output import place
    target = text_name(target)   # 3.6 in a C locale: argv has surrogates
    if dest:   # PyPy in a C locale decodes argv as UTF-8 but paths as ASCII
        dest = native_name(text_name(dest))
    if is_url(target):
        from sagedl.net.urls import check_url
        check_url(target)
        name = url_basename(target)
        sources = [Source(target)] + [Source(b + name) for b in session.settings.mirrors]
        return FetchPlan(name, place(dest, name), sources, Expected(size, sha256, sha1))
    from sagedl.sage.names import check_filename
    check_filename(target)
    tree = session.tree()
    if tree is None:
        name = target
        expected = Expected(size, sha256, sha1)
        if session.mirror_choice().explicit() is None:
            raise UsageError("%s is not a URL and there is no Sage tree to look it up in" % target,
                             hint="give a URL, --mirror URL, or run inside a Sage tree (--sage-root DIR)")
        sources = [Source(with_slash(b) + name) for b in session.mirror_choice().bases()]
        return FetchPlan(name, place(dest, name), sources, expected)
    tarball = tree.resolve(target)
    name = tarball.filename
    expected = Expected(size, sha256 or tarball.sha256, sha1 or tarball.sha1)

    cached = os.path.join(ensure_distfiles(session, tree), native_name(name))
    plan = FetchPlan(name, place(dest, name, home=cached), TarballSources(session, tree, tarball),
                     expected, sage_mirrors=True)
    plan.tarball, plan.tree = tarball, tree
    return plan


def plan_tarballs(session, tree, tarballs):
    """[(tarball, path in the distfiles, sources)] for a bulk download, each
    file starting on its own one of the best mirrors (see rotated).

    ``sources`` is a callable, called by the engine only when the file is
    not already there and verified: the first call ranks the mirrors (a
    network probe) and may fetch a live mirror list, which a run of cached
    files must not.  Calls from the workers take turns, so those per-run
    facts are computed once."""
    import threading
    distfiles = ensure_distfiles(session, tree)
    lock = threading.Lock()
    return [(t, os.path.join(distfiles, native_name(t.filename)),
             TarballSources(session, tree, t, turn=i, lock=lock))
            for i, t in enumerate(tarballs)]


class TarballSources(object):
    """The sources of one Sage tarball, planned when the engine calls this:
    only when the file is not already there and verified, since planning
    may rank the mirrors (a network probe) and fetch a live mirror list.
    Yields Sources one at a time, each planned when the engine asks for it.

    ``turn``: a bulk download's job number, which starts the file on its
    own one of the best mirrors (see rotated).  ``lock``: shared by the
    bulk workers, whose calls then take turns, so that those per-run facts
    are computed once."""

    def __init__(self, session, tree, tarball, turn=None, lock=None):
        self.session = session
        self.tree = tree
        self.tarball = tarball
        self.turn = turn
        self.lock = lock

    def __call__(self):
        from sagedl.engine.download import Source
        bases = None if self.turn is None else self._rotated_bases
        urls = tarball_sources(self.session, self.tree, self.tarball, bases)
        while True:
            url = self._next(urls)
            if url is None:
                return
            yield Source(url)

    def _rotated_bases(self):
        return rotated(self.session.mirror_choice().bases(), self.turn)

    def _next(self, urls):
        if self.lock is None:
            return next(urls, None)
        with self.lock:
            return next(urls, None)
