"""The command line: ``main(argv=None, env=None) -> exit code``.

Two call forms, both drop-in compatible with Sage's tools:

  sagedl [options] URL_OR_TARBALL [DESTINATION]      (sage-download-file)
  sagedl [options] [-P DIR] URL URL... [-i FILE]     (several files, as wget)
  sagedl download [options] PKG_OR_CLASS...          (sage-package download)

plus ``sagedl --print-fastest-mirror``, ``list-mirrors``, ``make-mirror``,
``verify`` and sage-package's read-only subcommands.  This module parses,
dispatches to the module that does the work, and turns errors into exit
codes; it plans nothing.

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
  sagedl -P dist/ https://host/a.tar.gz https://host/b.tar.gz -i more.txt
  sagedl download pari ntl               # prints one absolute path per package
  sagedl --print-fastest-mirror
  sagedl make-mirror /srv/sage-mirror :standard:   # a mirror other machines can use
  sagedl verify "$SAGE_ROOT/upstream"               # missing, extra and bad files
  sagedl properties --format=shell pari  # also list, tarball, name: as sage-package

commands (options may come before or after them; 'sagedl COMMAND --help'):
  download PKG...           the tarballs of Sage packages (sage-package download)
  list-mirrors              the mirrors, ranked
  make-mirror DIR [PKG...]  a site mirror in Sage's layout
  verify DIR [PKG...]       check a distfiles directory or a site mirror
  properties, list, tarball, name   sage-package's read-only subcommands
"""


def _exit_code_epilog():
    lines = ["exit codes:"]
    for code, text in errors.EXIT_CODES:
        lines.append("  %-4d %s" % (code, text))
    lines.append("with %s=sage (as Sage's sage-download-file and sage-package download,"
                 % errors.SAGE_EXIT_CODES_VAR)
    lines.append("through contrib/sage's wrappers):")
    for code, text in errors.SAGE_EXIT_CODES:
        lines.append("  %-4d %s" % (code, text))
    lines.append("")
    lines.append("environment: SAGE_ROOT, SAGE_DISTFILES, SAGE_SERVER, SAGEDL_MIRRORS (space-separated")
    lines.append("mirror base URLs, like --mirror; set and empty: no mirrors at all),")
    lines.append("http_proxy/https_proxy/no_proxy, SSL_CERT_FILE.")
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
                   help="network timeout in seconds: each read, and the whole response head "
                        "(default 30)")
    g.add_argument("--connect-timeout", type=_seconds, default=None, metavar="S",
                   help="deadline for each name lookup and each TCP connect (default 10, or "
                        "--timeout when shorter)")
    g.add_argument("--low-speed-limit", type=_count, default=1024, metavar="BYTES",
                   help="abandon a source slower than this many bytes/s ... (default 1024)")
    g.add_argument("--low-speed-time", type=_seconds, default=30.0, metavar="S",
                   help="... over this many seconds (default 30)")
    g.add_argument("--retries", type=_count, default=2, metavar="N",
                   help="retries of a source answering 429/503 (default 2)")
    g.add_argument("--limit-rate", type=_rate, default=None, metavar="RATE",
                   help="cap the whole run at RATE bytes/s, as curl: 100K, 1M, 1G "
                        "(powers of 1024; parallel downloads share it)")
    g.add_argument("--max-connections-per-mirror", type=_positive, default=None, metavar="N",
                   help="with several mirrors: connections to each at once, as aria2c's -x "
                        "(default 4)")
    g.add_argument("--split", type=_count, default=None, metavar="N",
                   help="with several mirrors: fetch one file in up to N byte ranges at once "
                        "(default 16; 0 or 1: never split)")
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
    g.add_argument("--continue", "-c", dest="resume", action="store_true",
                   help="accepted for curl and wget habits; resuming is always on: a "
                        "partial download is continued when that is safe")
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


def _positive(text):
    """A whole number >= 1, for argparse."""
    import argparse
    value = _count(text)
    if value < 1:
        raise argparse.ArgumentTypeError("invalid count %r (a whole number >= 1)" % text)
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


def _positive(text):
    """A whole number >= 1, for argparse (--jobs 0 once ran nothing at all)."""
    import argparse
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError("invalid number %r (a whole number >= 1)" % text)
    return value


def _byte_count(text):
    """A size such as 4096, 512M or 4G (powers of 1024), for argparse."""
    import argparse
    import re
    m = re.match(r"^\s*(\d+)\s*([KMGT]?)i?B?\s*$", text, re.I)
    if not m or int(m.group(1)) == 0:
        raise argparse.ArgumentTypeError("invalid size %r (e.g. 4096, 512M, 4G)" % text)
    return int(m.group(1)) << (10 * "KMGT".find(m.group(2).upper()) + 10 if m.group(2) else 0)


def _rate(text):
    """--limit-rate's value, curl's syntax (ratelimit.parse_rate), for argparse."""
    import argparse
    from sagedl.ratelimit import parse_rate
    rate = parse_rate(text)
    if rate is None:
        raise argparse.ArgumentTypeError("invalid rate %r (bytes per second, e.g. 100K, 1M, 1G)"
                                         % text)
    return rate


def argument_parser(prog, description, epilog=None):
    """An argparse parser whose errors are UsageErrors (one line, exit 2):
    every command's, sage-package's subcommands' too."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise UsageError(message, hint="see '%s --help'" % self.prog)

    return Parser(prog=prog, description=description, epilog=epilog,
                  formatter_class=argparse.RawDescriptionHelpFormatter)


def _parser(command, description, selection=False, jobs=False):
    p = argument_parser(PROG + (" " + command if command else ""), description,
                        _exit_code_epilog())
    if selection:
        p.add_argument("--exclude", action="append", default=[], metavar="PKG",
                       help="leave this package out (repeatable)")
        p.add_argument("--has-file", action="append", default=[], metavar="FILE",
                       help="only packages whose directory has FILE (repeatable)")
        p.add_argument("--no-file", action="append", default=[], metavar="FILE",
                       help="only packages whose directory lacks FILE (repeatable)")
    if jobs:
        p.add_argument("--jobs", "-j", type=_positive, default=4, metavar="N",
                       help="parallel downloads (default 4)")
        p.add_argument("--on-error", choices=("stop", "warn"), default="stop",
                       help="stop at the first failure (default) or warn and go on")
    return p


PACKAGES_HELP = "package names, tarball names, or :all:, :standard:, :optional:, :experimental:"


def make_parser():
    p = _parser(None, DESCRIPTION)
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("url_or_tarball", nargs="?", metavar="URL_OR_TARBALL",
                   help="a URL, a tarball name or a package name")
    p.add_argument("destination", nargs="*", metavar="DESTINATION",
                   help="where to write the file (a file, or a directory: one ending in / "
                        "must exist); default: the tarball under $SAGE_DISTFILES, or a URL's "
                        "content on stdout.  A file there is replaced unless a checksum "
                        "verifies it.  A device or FIFO (/dev/null, a pipe) receives the "
                        "bytes once verified and is never replaced; a symlink is never "
                        "written through (exit 6).  A URL here is no destination but "
                        "another file to fetch, as with wget: several files go under their "
                        "own names into the current directory (or -P DIR); a tarball stays "
                        "in $SAGE_DISTFILES")
    p.add_argument("-o", "--output", metavar="PATH",
                   help="same as DESTINATION; '-' writes the file to stdout")
    p.add_argument("-O", "--remote-name", action="store_true",
                   help="save under the URL's file name in the current directory (as curl -O)")
    p.add_argument("-P", "--output-dir", metavar="DIR",
                   help="save each file under its own name in DIR, which must exist (wget's "
                        "-P, curl's --output-dir); a tarball is copied there from "
                        "$SAGE_DISTFILES")
    p.add_argument("-i", "--input-file", metavar="FILE",
                   help="also fetch the URLs or tarball names listed in FILE, one per line "
                        "('-': stdin; blank lines and lines starting with # are skipped), "
                        "as wget -i; they are saved as several files are")
    p.add_argument("--sha256", metavar="HEX", help="expected sha256 of the file")
    p.add_argument("--sha1", metavar="HEX", help="expected sha1 of the file")
    p.add_argument("--size", type=_count, metavar="BYTES", help="expected size of the file")
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


# -- the commands live beside what they do, each taking the run's Session:
# single.py (URL_OR_TARBALL), bulk.py (download), sitemirror.py (make-mirror,
# verify), showmirrors.py (--print-fastest-mirror, list-mirrors).  Planning
# (which sources, in which order) is sources.py's.

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


def _fetch(session, args, stdin):
    """The sage-download-file form: what to fetch (targets.py), where it
    goes (output.py, the one place deciding it), then single.py fetches."""
    from sagedl.output import decide
    from sagedl.single import cmd_fetch
    from sagedl.targets import split_targets
    positionals = ([args.url_or_tarball] if args.url_or_tarball else []) + args.destination
    targets, positional = split_targets(positionals, args.input_file, stdin)
    dest = decide(targets, args.output, positional, args.remote_name, args.output_dir,
                  several=len(targets) > 1 or args.input_file is not None,
                  stdout_is_a_terminal=_stdout_is_a_terminal(session.stdout))
    return cmd_fetch(session, targets, dest)


def main(argv=None, env=None, stdout=None, stderr=None, stdin=None):
    """Run one command line; return its exit code (errors.EXIT_CODES), or
    sage_bootstrap's (errors.SAGE_EXIT_CODES) when the environment asks for
    them, as contrib/sage's wrappers do."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env = os.environ if env is None else env
    code = _main(argv, env, stdout, stderr, stdin)
    if errors.sage_exit_codes(env) and code not in (errors.EXIT_OK, errors.EXIT_INTERRUPTED):
        return errors.sage_exit_code(code, arguments_refused(argv))
    return code


def arguments_refused(argv):
    """Whether the command line itself is wrong (what argparse refuses, or
    sage-download-file with neither a file nor --print-fastest-mirror), as
    opposed to a run that failed.  Parses again, without side effects: only
    asked after a failure, to tell sage_bootstrap's 2 from its 1."""
    if not argv:
        return True
    try:
        if argv[0] in SAGE_PACKAGE_COMMANDS or argv[0].startswith("--"):
            from sagedl import sagepackage
            moved = sagepackage.command_first(argv)
            if moved is not None:
                sagepackage.make_parser(moved[0]).parse_args(moved[1:])
                return False
        command, parser, rest = split_command(argv)
        args = parser.parse_args(rest)
    except UsageError:
        return True
    except SystemExit:      # --help
        return False
    return command is None and not (args.url_or_tarball or args.print_fastest_mirror
                                    or args.version or args.input_file is not None)


def _main(argv, env, stdout, stderr, stdin):
    if stdout is None or stderr is None:
        stdout, stderr = _process_streams(stdout, stderr)
    debug = "--debug" in argv
    if argv == ["--version"]:
        stdout.write(version_line())
        return 0
    if not argv:
        stderr.write(USAGE)
        return errors.EXIT_USAGE
    sage_package = None
    if argv[0] in SAGE_PACKAGE_COMMANDS or (argv[0].startswith("--") and
                                            any(a in SAGE_PACKAGE_COMMANDS for a in argv)):
        # sage-package's read-only subcommands: their own parsers and output rules.
        from sagedl import sagepackage
        sage_package = sagepackage.command_first(argv)
    ctx = None
    old_term = _install_sigterm()
    if debug or "--verbose" in argv or "-v" in argv:
        errors.set_debug(stderr.write)
    try:
        if sage_package is not None:
            from sagedl.sagepackage import cmd_sage_package
            return cmd_sage_package(sage_package, env, stdout)
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
            from sagedl.showmirrors import cmd_list_mirrors
            return cmd_list_mirrors(ctx)
        if command == "make-mirror":
            from sagedl.sitemirror import cmd_make_mirror
            return cmd_make_mirror(ctx)
        if command == "verify":
            from sagedl.sitemirror import cmd_verify
            return cmd_verify(ctx)
        if args.print_fastest_mirror:
            from sagedl.showmirrors import cmd_print_fastest_mirror
            return cmd_print_fastest_mirror(ctx)
        if not args.url_or_tarball and args.input_file is None:
            raise UsageError("nothing to download",
                             hint="give a URL or tarball name, or --print-fastest-mirror")
        if args.url_or_tarball:
            mistyped = _mistyped_command(ctx, args.url_or_tarball)
            if mistyped is not None:
                raise mistyped
        return _fetch(ctx, args, stdin)
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
    """The real stdout/stderr, made safe (bad input is one line, never a
    traceback): text survives any locale
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
