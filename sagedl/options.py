"""The command line's options: every argparse parser sagedl has, how argv
is split into a command and its arguments, and the immutable values a
parsed command line becomes (RunSettings, and one request per command).

Why a module of its own: cli.py dispatches and turns errors into exit
codes; what the options are (their names, types, defaults, help) is a
different job, and sage-package's subcommands (commands/sagepackage.py)
build their parsers with the same ``argument_parser``, so its errors read
the same.  Nothing here plans or fetches.
"""

from __future__ import absolute_import

from sagedl import errors
from sagedl.errors import UsageError

PROG = "sagedl"
COMMANDS = ("download", "list-mirrors", "make-mirror", "verify")
# sage-package properties/list/tarball/name, answered by sagedl/commands/sagepackage.py
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
    """A whole number >= 1, for argparse (--jobs 0 once ran nothing at all)."""
    return _whole_number(text, 1)


def _count(text):
    """A whole number >= 0, for argparse."""
    return _whole_number(text, 0)


def _whole_number(text, least):
    import argparse
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError("invalid count %r (a whole number >= %d)" % (text, least))
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
    from sagedl.engine.ratelimit import parse_rate
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


# -- the commands live beside what they do, each taking the run's Session and its request:
# single.py (URL_OR_TARBALL), bulk.py (download), sitemirror.py (make-mirror,
# verify), showmirrors.py (--print-fastest-mirror, list-mirrors).  Planning
# (which sources, in which order) is sources.py's.

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


# -- what a command line asks for: immutable values -----------------------------
# argparse's Namespace stops here.  It is mutable, and an option a command's
# parser lacks is no error but a getattr default somewhere below; these
# values have every field, set once.  requests() is the one place that reads
# a Namespace: the layers below take a RunSettings (through the Session) and
# their command's request.

class Value(object):
    """A record whose fields (the subclass's __slots__) are all given at
    construction and never change: no setters, and tuples, not lists."""

    __slots__ = ()

    def __init__(self, **fields):
        missing = [f for f in self.__slots__ if f not in fields]
        unknown = sorted(f for f in fields if f not in self.__slots__)
        if missing or unknown:
            raise TypeError("%s: missing %s, unknown %s"
                            % (self.__class__.__name__, missing, unknown))
        for name in self.__slots__:
            object.__setattr__(self, name, fields[name])

    def __setattr__(self, name, value):
        raise AttributeError("%s is immutable" % self.__class__.__name__)

    def __delattr__(self, name):
        raise AttributeError("%s is immutable" % self.__class__.__name__)

    def fields(self):
        return dict((name, getattr(self, name)) for name in self.__slots__)

    def __eq__(self, other):
        return type(self) is type(other) and self.fields() == other.fields()

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((type(self),) + tuple(getattr(self, name) for name in self.__slots__))

    def __repr__(self):
        return "%s(%s)" % (self.__class__.__name__, ", ".join(
            "%s=%r" % (name, getattr(self, name)) for name in self.__slots__))


class RunSettings(Value):
    """What every command shares (_add_common's options): where sources come
    from, the network's limits, the display, the files' rules.  None: the
    option was not given, and its user (Session, the scheduler) applies the
    default its help names."""

    __slots__ = (
        # sources
        "mirrors", "mirrors_file", "allow_upstream", "upstream_only", "sage_root",
        # network
        "timeout", "connect_timeout", "low_speed_limit", "low_speed_time", "retries",
        "limit_rate", "per_mirror", "split", "check_certificate", "ca_bundle",
        # display: --log's Sage levels folded into quiet and debug
        "quiet", "debug", "progress",
        # files
        "force", "lock_timeout", "max_size")


class FetchRequest(Value):
    """``sagedl URL_OR_TARBALL [DESTINATION...]`` (sage-download-file):
    the positionals in order, and what says where the bytes go and what
    they must hash to."""

    __slots__ = ("positionals", "input_file", "output", "remote_name", "output_dir",
                 "size", "sha256", "sha1")


class MirrorsRequest(Value):
    """``--print-fastest-mirror`` (fastest) and ``list-mirrors``."""

    __slots__ = ("fastest", "no_probe")


class DownloadRequest(Value):
    """``sagedl download PKG...`` (sage-package download)."""

    __slots__ = ("packages", "exclude", "has_file", "no_file", "tags", "jobs", "on_error")


class MakeMirrorRequest(Value):
    """``sagedl make-mirror DIR [PKG...]``."""

    __slots__ = ("directory", "packages", "exclude", "has_file", "no_file", "jobs", "on_error",
                 "base_url")


class VerifyRequest(Value):
    """``sagedl verify DIR [PKG...]``."""

    __slots__ = ("directory", "packages", "exclude", "has_file", "no_file")


class SagePackageRequest(Value):
    """sage-package's read-only subcommands (commands/sagepackage.py's
    parsers): ``command`` is properties, list, tarball or name; a field that
    subcommand has no argument for is None."""

    __slots__ = ("command", "sage_root", "package_class", "has_files", "no_files", "trees",
                 "exclude", "include_dependencies", "exclude_dependencies", "format",
                 "package_name", "tarball_filename")


# Options that reach no request, and why.
NOT_CARRIED = {
    "version": "answered by cli.py before any request is built",
    "verbose": "read from argv by cli.py before parsing, so a refused command line is verbose too",
    "resume": "accepted for curl and wget habits; resuming is always on",
    "tree": "accepted and, as by sage_bootstrap's download, not applied",
}


def run_settings(args):
    """The RunSettings of a parsed command line (any command's)."""
    level = (args.log or "").upper()
    return RunSettings(
        mirrors=tuple(args.mirror), mirrors_file=args.mirrors_file,
        allow_upstream=args.allow_upstream, upstream_only=args.upstream_only,
        sage_root=args.sage_root,
        timeout=args.timeout, connect_timeout=args.connect_timeout,
        low_speed_limit=args.low_speed_limit, low_speed_time=args.low_speed_time,
        retries=args.retries, limit_rate=args.limit_rate,
        per_mirror=args.max_connections_per_mirror, split=args.split,
        check_certificate=not args.no_check_certificate, ca_bundle=args.ca_bundle,
        quiet=args.quiet or level in ("WARNING", "ERROR", "CRITICAL"),
        debug=args.debug or level == "DEBUG", progress=args.progress,
        force=args.force, lock_timeout=args.lock_timeout, max_size=args.max_size)


def request(command, args):
    """The request of ``command`` (None: the sage-download-file form) from
    its parsed command line."""
    if command is None:
        if args.print_fastest_mirror:
            return MirrorsRequest(fastest=True, no_probe=False)
        return FetchRequest(
            positionals=tuple(([args.url_or_tarball] if args.url_or_tarball else [])
                              + args.destination),
            input_file=args.input_file, output=args.output, remote_name=args.remote_name,
            output_dir=args.output_dir, size=args.size, sha256=args.sha256, sha1=args.sha1)
    if command == "list-mirrors":
        return MirrorsRequest(fastest=False, no_probe=args.no_probe)
    selection = dict(packages=tuple(args.packages), has_file=tuple(args.has_file),
                     no_file=tuple(args.no_file))
    if command == "download":
        # --exclude A B --exclude C: a list per use
        return DownloadRequest(exclude=tuple(n for names in args.exclude for n in names),
                               tags=tuple(args.tags), jobs=args.jobs, on_error=args.on_error,
                               **selection)
    if command == "make-mirror":
        return MakeMirrorRequest(directory=args.directory, exclude=tuple(args.exclude),
                                 jobs=args.jobs, on_error=args.on_error, base_url=args.base_url,
                                 **selection)
    if command == "verify":
        return VerifyRequest(directory=args.directory, exclude=tuple(args.exclude), **selection)
    raise UsageError("unknown command %s" % command)


# sage-package's options that reach no request, and why.
SAGE_PACKAGE_NOT_CARRIED = {
    "log": "accepted for Sage compatibility; ignored",
    "debug": "read from argv by cli.py (a traceback on errors)",
}


def sage_package_request(command, args):
    """The SagePackageRequest of a sage-package subcommand's parsed arguments."""
    fields = dict.fromkeys(SagePackageRequest.__slots__)
    fields.update(command=command, sage_root=args.sage_root)
    if command == "list":
        fields.update(package_class=tuple(args.package_class), has_files=tuple(args.has_files),
                      no_files=tuple(args.no_files), trees=tuple(args.trees),
                      # --exclude A B --exclude C: a group per use
                      exclude=tuple(tuple(group) for group in args.exclude),
                      include_dependencies=args.include_dependencies,
                      exclude_dependencies=args.exclude_dependencies)
    elif command == "properties":
        fields.update(package_class=tuple(args.package_class), format=args.format)
    elif command == "tarball":
        fields.update(package_name=args.package_name)
    elif command == "name":
        fields.update(tarball_filename=args.tarball_filename)
    else:
        raise UsageError("unknown sage-package subcommand %s" % command)
    return SagePackageRequest(**fields)
