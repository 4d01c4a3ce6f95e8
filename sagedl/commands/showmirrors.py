"""The commands that show mirrors: ``--print-fastest-mirror`` (one base URL,
as Sage's) and ``list-mirrors`` (the ranking and health as a table)."""

from __future__ import absolute_import

from sagedl.compat import compat_str
from sagedl.text import native_str

# Set by contrib/sage/sage-download-file: sagedl runs as Sage's own command
# and keeps its contract where it differs from sagedl's.
SAGE_COMPAT_ENV = "SAGEDL_CALLED_AS"
SAGE_DOWNLOAD_FILE = "sage-download-file"


def cmd_print_fastest_mirror(session):
    """sage-download-file --print-fastest-mirror: one base URL on stdout, the
    ranking on stderr (one line per mirror measured).

    In a Sage tree, as Sage: the live mirror list (the tree's .upstream.d
    mirror_list line, else Sage's own) is refreshed when a day old; offline
    that download fails, which is said, and the cached or shipped list is
    ranked instead (exit 0).  $SAGE_SERVER, when set, is the answer.  With
    --mirror or $SAGEDL_MIRRORS: the best of those, measured (never an
    unmeasured first one, which may be the dead one);
    with --mirrors-file or outside a tree: the best of the configured list.

    When no mirror answers: nothing on stdout and exit 5 (a URL nobody
    answers is no answer, and a script must not take it for one).  Called
    as Sage's sage-download-file (its drop-in wrapper sets SAGE_COMPAT_ENV),
    the first by priority and exit 0, as Sage, whose own offline test
    expects exactly that.
    """
    from sagedl.plan.sources import usable_bases
    tree = session.tree()
    choice = session.mirror_choice()
    explicit = choice.explicit()
    if explicit is not None:
        from sagedl.mirrors.mirrorlist import Mirror
        from sagedl.plan.sources import with_slash
        listed = [Mirror(with_slash(u)) for u in explicit]
    elif tree is not None and not session.settings.mirrors_file:
        from sagedl.mirrors.mirrorlist import MIRROR_LIST_URL
        from sagedl.plan.sources import mirror_list_urls
        lists = mirror_list_urls(choice.upstream_d(tree), session.env) or [MIRROR_LIST_URL]
        listed = choice.live_list(lists[0])
        server = (session.env.get("SAGE_SERVER") or "").rstrip("/")
        if server:
            session.stdout.write(server + "/\n")
            return 0
    else:
        listed = choice.configured()
    from sagedl.net.urls import redact
    if not listed:
        from sagedl.errors import NotFoundError
        raise NotFoundError("no mirrors to choose from: SAGEDL_MIRRORS is set and empty",
                            hint="unset SAGEDL_MIRRORS to use the mirror list, or name "
                                 "mirrors in it")
    ranked = choice.ranked(listed)
    for r in ranked:
        if r.ok:
            session.say("%5d ms  %s" % (round(r.latency * 1000), redact(r.mirror.url)))
        elif r.reason and r.status != "skipped":
            session.say("unreachable  %s (%s)" % (redact(r.mirror.url), r.reason))
    if not any(r.ok for r in ranked) and session.env.get(SAGE_COMPAT_ENV) != SAGE_DOWNLOAD_FILE:
        raise no_mirror_answered(ranked)
    # A password in a mirror URL is never shown, here no more than in a
    # log: whoever needs it has it in their SAGEDL_MIRRORS or --mirror.
    session.stdout.write(redact((usable_bases(ranked) or [ranked[0].mirror.url])[0]) + "\n")
    return 0


def no_mirror_answered(ranked):
    """The error (exit 5) of a ranking in which no mirror answered, with
    the most common reason."""
    from sagedl.errors import NetworkError
    from sagedl.net.reachability import verdict
    if not ranked:
        return NetworkError("no mirror to measure", hint="check --mirror or --mirrors-file")
    why = verdict(ranked).sentence().split(": ", 1)[1]
    return NetworkError("no mirror answered: %s" % why,
                        hint="check the network, DNS or proxy (http_proxy/https_proxy), "
                             "and the mirror URLs")


def cmd_list_mirrors(session, request):
    """A table of the configured mirrors, freshly ranked: name, region,
    latency, health, last result (an options.MirrorsRequest)."""
    from sagedl.mirrors import health
    from sagedl.mirrors.mirrorlist import Mirror
    from sagedl.mirrors.probe import SKIPPED, Ranked
    choice = session.mirror_choice()
    if choice.explicit() is not None:
        listed = [Mirror(u) for u in choice.bases()]
    else:
        listed = choice.configured()
    if request.no_probe:
        ranked = [Ranked(m, SKIPPED, None, "not measured") for m in listed]
    else:
        ranked = choice.ranked(listed, fresh=True)
    text = format_table(ranked, health.load_health(session.env))
    session.stdout.write(native_str(text))   # mirror names are unicode; a pipe takes bytes on 2.7
    if not request.no_probe and not any(r.ok for r in ranked):
        raise no_mirror_answered(ranked)    # the table above says why, mirror by mirror
    return 0


def _ago(seconds):
    if seconds < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return "%d %s ago" % (seconds // size, unit)


TABLE_WIDTH = 79   # an 80-column terminal, without touching its last column


def format_table(ranked, health, now=None, window=None):
    """Pure: a text table of a ranking that fits 80 columns: per mirror one
    line with rank, latency, health and URL (the URL whole: it is what
    --mirror and SAGE_SERVER take), and one indented line with its name,
    region, why the probe failed and the last result.

     #  latency  health   url
     1  12 ms    ok       https://mirrors.mit.edu/sage/
        MIT, Cambridge, MA, USA (na); last: ok, 2 h ago
    """
    from sagedl.mirrors.health import HEALTH_WINDOW, is_unhealthy
    from sagedl.mirrors.probe import SKIPPED
    from sagedl.net.urls import origin_key, redact
    import time
    now = time.time() if now is None else now
    window = HEALTH_WINDOW if window is None else window
    rows = [("#", "latency", "health", "url", None)]
    for n, r in enumerate(ranked, 1):
        about = [r.mirror.name + (" (%s)" % r.mirror.region if r.mirror.region else "")]
        if r.ok:
            latency = ("%.1f ms" if r.latency < 0.01 else "%.0f ms") % (r.latency * 1000)
        elif r.status == SKIPPED:
            latency = "-"
        else:
            latency = "failed"
            about.append("probe: %s" % " ".join(compat_str(r.reason).split()))
        rec = health.get(origin_key(r.mirror.url))
        if not rec:
            state = "unknown"
        else:
            state = "failing" if is_unhealthy(rec, now, window) else "ok"
            what = "ok" if rec["ok"] else _clip(rec.get("reason") or "failed", 40)
            about.append("last: %s, %s" % (what, _ago(max(0, now - rec["last"]))))
        rows.append((str(n), latency, state, redact(r.mirror.url), "; ".join(about)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    indent = " " * (widths[0] + 2)
    lines = []
    for row in rows:
        cells = [row[0].rjust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2]), row[3]]
        lines.append("  ".join(cells).rstrip())
        if row[4]:
            lines.append(_clip_line(indent + row[4], TABLE_WIDTH))
    return "\n".join(lines) + "\n"


def _clip_line(text, width):
    return text if len(text) <= width else text[:width - 3] + "..."


def _clip(text, width):
    text = " ".join(compat_str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."
