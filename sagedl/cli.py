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
  sagedl properties --format=shell pari  # also list, tarball, name: as sage-package
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
    g.add_argument("--timeout", type=_seconds, default=None, metavar="S",
                   help="network timeout in seconds: connect, each read, and the response head (default 30)")
    g.add_argument("--low-speed-limit", type=_count, default=1024, metavar="BYTES",
                   help="abandon a source slower than this many bytes/s ... (default 1024)")
    g.add_argument("--low-speed-time", type=_seconds, default=30.0, metavar="S",
                   help="... over this many seconds (default 30)")
    g.add_argument("--retries", type=_count, default=2, metavar="N",
                   help="retries of a source answering 429/503 (default 2)")
    g.add_argument("--no-check-certificate", action="store_true",
                   help="do not verify TLS certificates (checksums still apply)")
    g.add_argument("--ca-bundle", metavar="FILE", help="CA certificates to trust (PEM)")
    g = p.add_argument_group("output")
    g.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")
    g.add_argument("--verbose", "-v", action="store_true",
                   help="say more: the sources to try, the CA store, where the file went")
    g.add_argument("--progress", choices=("auto", "bar", "lines", "dots", "none"), default="auto",
                   help="progress display on stderr: a bar on a terminal, sparse lines "
                        "otherwise (default auto); dots = Sage's 70-column log format")
    g.add_argument("--log", metavar="LEVEL",
                   help="Sage compatibility: DEBUG, INFO, WARNING, ERROR or CRITICAL")
    g.add_argument("--debug", action="store_true", help="--verbose, and tracebacks")
    g = p.add_argument_group("files")
    g.add_argument("--force", action="store_true", help="download again even if the file verifies")
    g.add_argument("--lock-timeout", type=_seconds, default=3600.0, metavar="S",
                   help="how long to wait for another sagedl on the same file (default 3600)")
    g.add_argument("--max-size", type=_byte_count, default=None, metavar="BYTES",
                   help="give up on a download whose size nobody states (no Content-Length, "
                        "no --size) once it passes BYTES (K, M, G suffixes; default 4G)")


def _seconds(text):
    """A duration for argparse: a finite number > 0 (nan, inf and -1 once
    reached the socket layer as an internal error)."""
    import argparse
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not (0 < value < 1e9):      # also false for nan
        raise argparse.ArgumentTypeError("invalid duration %r (seconds, a number > 0)" % text)
    return value


def _count(text):
    """A whole number >= 0, for argparse."""
    import argparse
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError("invalid count %r (a whole number >= 0)" % text)
    return value


def _byte_count(text):
    """A size such as 4096, 512M or 4G (powers of 1024), for argparse."""
    import argparse
    import re
    m = re.match(r"^\s*(\d+)\s*([KMGT]?)i?B?\s*$", text, re.I)
    if not m or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError("invalid size %r (e.g. 4096, 512M, 4G)" % text)
    return int(m.group(1)) << (10 * "KMGT".find(m.group(2).upper()) + 10 if m.group(2) else 0)


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
    p.add_argument("-o", "--output", metavar="PATH",
                   help="same as DESTINATION; '-' writes the file to stdout")
    p.add_argument("-O", "--remote-name", action="store_true",
                   help="save under the URL's file name in the current directory (as curl -O)")
    p.add_argument("--sha256", metavar="HEX", help="expected sha256 of the file")
    p.add_argument("--sha1", metavar="HEX", help="expected sha1 of the file")
    p.add_argument("--size", type=int, metavar="BYTES", help="expected size of the file")
    p.add_argument("--print-fastest-mirror", action="store_true",
                   help="print the best mirror's base URL on stdout and exit")
    _add_common(p)
    return p


def make_download_parser():
    p = _parser("download", "Download the tarballs of Sage packages (sage-package download). "
                            "Prints one absolute path per tarball on stdout, packages sorted "
                            "by name as Sage does.", jobs=True)
    p.add_argument("packages", nargs="+", metavar="PKG", help=PACKAGES_HELP)
    _add_sage_selection(p)
    _add_common(p)
    return p


def _add_sage_selection(p):
    """sage_bootstrap's ``download`` options (build/sage_bootstrap/cmdline.py),
    with its argument shapes: ``--exclude A B`` and ``--tags T...`` take
    several values each, which is why sage-spkg puts ``--`` before the
    package name."""
    g = p.add_argument_group("selection (as sage-package download)")
    g.add_argument("--exclude", nargs="*", action="append", default=[], metavar="PKG",
                   help="leave these packages out (repeatable)")
    g.add_argument("--has-file", action="append", default=[], metavar="FILE",
                   help="a class (:all:, ...) takes only packages having FILE; "
                        "'a|b' means either (repeatable)")
    g.add_argument("--no-file", action="append", default=[], metavar="FILE",
                   help="a class takes only packages lacking FILE; 'a|b' means "
                        "either (repeatable)")
    g.add_argument("--tree", action="append", default=[], metavar="TREEVAR",
                   help="accepted and, as by sage_bootstrap's download, not applied")
    g.add_argument("--tags", nargs="*", default=[], metavar="TAG",
                   help="platform tags in order of preference (what sage-spkg passes: "
                        "Sage's python's sys_tags): of a package's [section] wheels, take "
                        "the first containing each tag; none matched or no tags: take all")


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


# -- the commands ---------------------------------------------------------------
# Each takes the run's Session; planning (which sources, in which order) is
# sources.py's, many files bulk.py's, site mirrors sitemirror.py's.
def cmd_fetch(session, to_stdout=False):
    """The sage-download-file form: one URL or tarball.  to_stdout: -o -."""
    from sagedl import fsutil
    from sagedl.sources import plan_fetch
    from sagedl.urls import redact
    plan = plan_fetch(session)

    def said(sources):          # -v: the sources, once they are planned
        errors.debug("sources for %s: %s" % (plan.name, ", ".join(redact(s.url) for s in sources)
                                             or "none"))
        return sources
    if callable(plan.sources):
        planner = plan.sources
        plan.sources = lambda: said(planner())
    else:
        said(plan.sources)
    if plan.to_stdout:
        return _fetch_to_stdout(session, plan)
    # A DESTINATION that names a device or FIFO (/dev/null, /dev/stdout, a
    # pipe) is streamed into, never renamed or replaced (see fsutil).  A
    # file inside a DESTINATION directory is a name sagedl writes: the
    # engine refuses anything but a regular file there.
    named = None if to_stdout else (session.args.output or session.args.destination)
    user_dest = plan.copy_to if plan.copy_to is not None else plan.path
    stream = None
    if named and not os.path.isdir(named):
        stream = fsutil.stream_destination(user_dest)
    if stream and plan.copy_to is None:
        return _fetch_to_stdout(session, plan, into=user_dest)
    result = session.fetch(plan.path, plan.sources, plan.expected, sage_mirrors=plan.sage_mirrors)
    if to_stdout:
        _copy_to_stream(result.path, session.stdout)
        return 0
    if stream:
        _write_verified(result.path, user_dest)
    elif plan.copy_to is not None:
        # Sage downloads into its distfiles, then copies to DESTINATION:
        # a copy, as Sage's save_as makes, not a link into the distfiles.
        fsutil.place(result.path, plan.copy_to, link=False)
    errors.debug("saved %s" % (plan.copy_to or result.path))
    return 0


def _fetch_to_stdout(session, plan, into=None):
    """sage-download-file URL (no destination) writes the content to stdout;
    ``into``: a device or FIFO DESTINATION instead.  The bytes are fetched and
    verified in a private temporary directory first, so only verified bytes
    are ever written out (a checksum failure writes nothing: exit 4)."""
    import shutil
    import tempfile
    tmp = tempfile.mkdtemp(prefix="sagedl-")
    try:
        result = session.fetch(os.path.join(tmp, plan.name), plan.sources, plan.expected)
        if into is not None:
            _write_verified(result.path, into)
        else:
            _copy_to_stream(result.path, session.stdout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _write_verified(path, device):
    from sagedl import fsutil
    fd = fsutil.open_stream_destination(device)
    try:
        rfd = os.open(path, os.O_RDONLY)
        try:
            fsutil.copy_fd(rfd, fd)
        finally:
            os.close(rfd)
    except OSError as e:
        raise errors.DiskError("cannot write %s: %s" % (device, e.strerror or e))
    finally:
        os.close(fd)


def _copy_to_stream(path, stream):
    """A verified file's bytes to stdout (a SafeStream turns a failed write
    into exit 6; a test's stream is written through its buffer)."""
    from sagedl.fsutil import SafeStream
    out = stream if isinstance(stream, SafeStream) else getattr(stream, "buffer", stream)
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            out.write(block)
    out.flush()


def cmd_print_fastest_mirror(session):
    """sage-download-file --print-fastest-mirror: one base URL on stdout, the
    ranking on stderr (one line per mirror measured).

    In a Sage tree, as Sage: the live mirror list (the tree's .upstream.d
    mirror_list line, else Sage's own) is refreshed when a day old; offline
    that download fails, which is said, and the cached or shipped list is
    ranked instead (exit 0).  $SAGE_SERVER, when set, is the answer.  With
    --mirror or $SAGEDL_MIRRORS: the best of those, measured (issue 11);
    with --mirrors-file or outside a tree: the best of the configured list.
    When no mirror answers, the first by priority (as Sage, whose own
    offline test expects a URL and exit 0).
    """
    from sagedl.sources import usable_bases
    tree = session.tree()
    explicit = session.explicit_mirrors()
    if explicit:
        from sagedl.mirrorlist import Mirror
        from sagedl.sources import with_slash
        listed = [Mirror(with_slash(u)) for u in explicit]
    elif tree is not None and not session.args.mirrors_file:
        from sagedl.mirrorlist import MIRROR_LIST_URL
        from sagedl.sources import mirror_list_urls
        lists = mirror_list_urls(session.upstream_d(tree), session.env) or [MIRROR_LIST_URL]
        listed = session.live_list(lists[0])
        server = (session.env.get("SAGE_SERVER") or "").rstrip("/")
        if server:
            session.stdout.write(server + "/\n")
            return 0
    else:
        listed = session.configured_mirrors()
    ranked = session.ranked(listed)
    for r in ranked:
        if r.ok:
            session.say("%5d ms  %s" % (round(r.latency * 1000), r.mirror.url))
        elif r.reason and r.status != "skipped":
            session.say("unreachable  %s (%s)" % (r.mirror.url, r.reason))
    session.stdout.write((usable_bases(ranked) or [ranked[0].mirror.url])[0] + "\n")
    return 0


def cmd_list_mirrors(session):
    """A table of the configured mirrors, freshly ranked: name, region,
    latency, health, last result."""
    from sagedl import health
    from sagedl.mirrorlist import Mirror
    from sagedl.probe import SKIPPED, Ranked
    if session.explicit_mirrors():
        listed = [Mirror(u) for u in session.mirror_bases()]
    else:
        listed = session.configured_mirrors()
    if session.args.no_probe:
        ranked = [Ranked(m, SKIPPED, None, "not measured") for m in listed]
    else:
        ranked = session.ranked(listed, fresh=True)
    text = format_table(ranked, health.load_health(session.env))
    if sys.version_info[0] == 2 and not isinstance(text, bytes):
        text = text.encode("utf-8")   # mirror names are unicode; a pipe takes bytes on 2.7
    session.stdout.write(text)
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
    from sagedl.health import HEALTH_WINDOW, is_unhealthy
    from sagedl.probe import SKIPPED
    from sagedl.urls import origin_key
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
            about.append("probe: %s" % " ".join(compat_text(r.reason).split()))
        rec = health.get(origin_key(r.mirror.url))
        if not rec:
            state = "unknown"
        else:
            state = "failing" if is_unhealthy(rec, now, window) else "ok"
            what = "ok" if rec["ok"] else _clip(rec.get("reason") or "failed", 40)
            about.append("last: %s, %s" % (what, _ago(max(0, now - rec["last"]))))
        rows.append((str(n), latency, state, r.mirror.url, "; ".join(about)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    indent = " " * (widths[0] + 2)
    lines = []
    for row in rows:
        cells = [row[0].rjust(widths[0]), row[1].ljust(widths[1]), row[2].ljust(widths[2]), row[3]]
        lines.append("  ".join(cells).rstrip())
        if row[4]:
            lines.append(_clip_line(indent + row[4], TABLE_WIDTH))
    return "\n".join(lines) + "\n"


def compat_text(value):
    from sagedl.compat import compat_str
    return compat_str(value)


def _clip_line(text, width):
    return text if len(text) <= width else text[:width - 3] + "..."


def _clip(text, width):
    from sagedl.compat import compat_str
    text = " ".join(compat_str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."


# -- entry point ---------------------------------------------------------------
USAGE = """\
usage: sagedl [options] URL_OR_TARBALL [DESTINATION]
       sagedl [options] download PKG...
       sagedl [options] {list-mirrors,make-mirror,verify} ...
       sagedl {properties,list,tarball,name} ...        (as sage-package's)
       sagedl --print-fastest-mirror
Try 'sagedl --help' for more.
"""


def version_line():
    """sagedl's version and the interpreter's: PyPy says so, with its own version."""
    python = sys.version.split()[0]
    pypy = getattr(sys, "pypy_version_info", None)
    if pypy is not None:
        return "sagedl %s (PyPy %d.%d.%d, Python %s)\n" % ((__version__,) + tuple(pypy[:3]) + (python,))
    return "sagedl %s (Python %s)\n" % (__version__, python)


def _parsers():
    return {None: make_parser, "download": make_download_parser, "list-mirrors": _list_parser,
            "make-mirror": _make_mirror_parser, "verify": _verify_parser}


def _arities(parser):
    """{option string: nargs} for every option of ``parser`` that takes a value."""
    found = {}
    for option, action in parser._option_string_actions.items():
        if action.nargs != 0:
            found[option] = 1 if action.nargs is None else action.nargs
    return found


def _takes(arities, token):
    """(option consumes the next token(s), its nargs) for one option token."""
    if token.startswith("--"):
        if "=" in token:
            return False, None
        nargs = arities.get(token)
        return nargs is not None, nargs
    # "-j4", "-qo FILE": a cluster of short options; the first that takes a
    # value takes the rest of the token, or the next token.
    for i, c in enumerate(token[1:], 1):
        nargs = arities.get("-" + c)
        if nargs is not None:
            return i == len(token) - 1, nargs
    return False, None


def _scan(argv, arities):
    """Split argv into (options with their values, positionals, index in argv
    of the first positional) -- so options may come before, between and
    after positionals, as pip and git allow (argparse's own
    parse_intermixed_args is 3.7+).  After "--" everything is positional."""
    options, positionals, first = [], [], None
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            first = i if first is None else first
            positionals.extend(argv[i - 1:])
            break
        if not a.startswith("-") or a == "-":
            first = i - 1 if first is None else first
            positionals.append(a)
            continue
        options.append(a)
        consumes, nargs = _takes(arities, a)
        if not consumes:
            continue
        if isinstance(nargs, int):
            options.extend(argv[i:i + nargs])
            i += nargs
        else:   # "?", "*", "+": the values up to the next option
            while i < len(argv) and (not argv[i].startswith("-") or argv[i] == "-"):
                options.append(argv[i])
                i += 1
                if nargs == "?":
                    break
    return options, positionals, first


def split_command(argv):
    """(subcommand or None, its parser, argv for that parser, options first).

    The subcommand is the first positional argument, wherever the options
    are: ``sagedl -q download six`` and ``sagedl --mirror URL download a b``
    mean ``sagedl download -q six`` and ``sagedl download --mirror URL a b``."""
    parsers = _parsers()
    command, rest = None, argv
    if argv[:1] and argv[0] in COMMANDS:            # the common case: no scan
        command, rest = argv[0], argv[1:]
    elif argv[:1] and argv[0].startswith("-") and any(a in COMMANDS for a in argv):
        # Options first: which of them take a value only the parsers know,
        # so ask them all (a few ms, on this path only).
        arities = {}
        for make in parsers.values():
            arities.update(_arities(make()))
        positionals, first = _scan(argv, arities)[1:]
        if positionals and positionals[0] in COMMANDS:
            command, rest = positionals[0], argv[:first] + argv[first + 1:]
    parser = parsers[command]()
    options, positionals = _scan(rest, _arities(parser))[:2]
    # Positionals first: an option taking several values (--exclude A B)
    # would swallow positionals that followed it.
    tail = positionals.index("--") if "--" in positionals else len(positionals)
    return command, parser, positionals[:tail] + options + positionals[tail:]


def _mistyped_command(session, name):
    """A UsageError when ``name`` is no URL, tarball or package but looks
    like a subcommand (``sagedl dowload six``); else None."""
    if "." in name or ":" in name or "/" in name:
        return None
    import difflib
    close = difflib.get_close_matches(name, COMMANDS + SAGE_PACKAGE_COMMANDS, 1, 0.75)
    if not close:
        return None
    try:
        tree = session.tree()
    except SagedlError:
        tree = None
    if tree is not None and name in tree.packages():
        return None
    return UsageError("%s is not a sagedl command, nor a package or tarball name" % name,
                      hint="did you mean 'sagedl %s'?" % close[0])


def _stdout_is_a_terminal(stdout):
    try:
        return stdout.isatty()
    except (AttributeError, ValueError):
        return False


def _destination_options(session):
    """-o - and a DESTINATION of - mean stdout; -O means the URL's file
    name here; a URL without either, on a terminal, is refused (as curl
    does: binary bytes would garble the terminal) -- in a pipe its content
    goes to stdout, as sage-download-file's does."""
    from sagedl.sources import is_url
    a = session.args
    dest = a.output or a.destination
    if a.output and a.destination:
        raise UsageError("both -o %s and DESTINATION %s given" % (a.output, a.destination),
                         hint="give one of them")
    if a.remote_name:
        if dest is not None:
            raise UsageError("-O saves under the URL's file name; it takes no -o or DESTINATION",
                             hint="drop -O, or the destination")
        a.output, a.destination = os.curdir, None
        return False
    if dest == "-":
        a.output = a.destination = None
        return True
    if dest is None and is_url(a.url_or_tarball) and _stdout_is_a_terminal(session.stdout):
        raise UsageError("not writing a download to the terminal",
                         hint="give a DESTINATION, -O to save it as its file name here, "
                              "or -o - to write it to the terminal anyway")
    return False


def main(argv=None, env=None, stdout=None, stderr=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    if stdout is None or stderr is None:
        stdout, stderr = _process_streams(stdout, stderr)
    debug = "--debug" in argv
    if argv == ["--version"]:
        stdout.write(version_line())
        return 0
    if not argv:
        stderr.write(USAGE)
        return errors.EXIT_USAGE
    if argv[0] in SAGE_PACKAGE_COMMANDS or (argv[0].startswith("--") and
                                            any(a in SAGE_PACKAGE_COMMANDS for a in argv)):
        # sage-package's read-only subcommands: their own parsers and output rules.
        from sagedl import sagepackage
        moved = sagepackage.command_first(argv)
        if moved is not None:
            return sagepackage.main(moved, env, stdout, stderr)
    ctx = None
    old_term = _install_sigterm()
    if debug or "--verbose" in argv or "-v" in argv:
        errors.set_debug(stderr.write)
    try:
        command, parser, argv = split_command(argv)
        args = parser.parse_args(argv)
        if command is None and args.version:
            stdout.write(version_line())
            return 0
        from sagedl.session import Session
        ctx = Session(args, env, stdout, stderr)
        if command == "download":
            from sagedl.bulk import cmd_download
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
        mistyped = _mistyped_command(ctx, args.url_or_tarball)
        if mistyped is not None:
            raise mistyped
        return cmd_fetch(ctx, _destination_options(ctx))
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
        if ctx is not None:
            ctx.close()
        errors.set_debug(None)
        _restore_sigterm(old_term)


def _process_streams(stdout, stderr):
    """The real stdout/stderr, made safe (issue 12): text survives any locale
    (fsutil.SafeStream), a closed descriptor gets /dev/null so no file
    sagedl opens lands on fd 1, and a failed write to stdout (closed,
    /dev/full, a broken pipe) is a DiskError (exit 6), not a traceback."""
    from sagedl import fsutil
    closed = fsutil.guard_std_fds()
    if stdout is None:
        stdout = fsutil.ClosedStream("standard output") if 1 in closed or sys.stdout is None \
            else fsutil.SafeStream(sys.stdout, "standard output")
    if stderr is None:
        stderr = fsutil.ClosedStream(None) if 2 in closed or sys.stderr is None \
            else fsutil.SafeStream(sys.stderr, None)
    return stdout, stderr


def _report(stderr, e, debug):
    errors.report(stderr, e, debug, PROG)


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
