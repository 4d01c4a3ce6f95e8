"""sage-package's read-only subcommands, answered without sage_bootstrap.

Why this exists (the seed problem): Sage's build scripts ask
``sage-package`` about packages before they download anything, and
``sage-package`` runs Sage's own Python code under ``sage-bootstrap-python``.
While Sage's half-installed ``python3`` is first on PATH and PYTHONPATH points
at a broken standard library, that fails; the callers do not notice:

* ``sage-spkg`` runs ``eval $(sage-package properties --format=shell PKG)``,
  gets nothing, takes the package for one without a tarball, and
  ``sage-spkg -d PKG`` exits 0 having downloaded nothing;
* ``bootstrap`` uses ``list``, ``properties --format=shell :all:`` and
  ``tarball`` the same way.

The pyz's shell preamble finds a working system Python (and runs it with -E,
ignoring PYTHONPATH), so answering these subcommands here keeps the fetch
path alive.  ``contrib/sage/sage-package`` sends ``properties``, ``list``,
``tarball``, ``name`` (this module) and ``download`` (sagedl's own download
command) to the pyz, and every other subcommand to Sage's original script.

Errors: one ``sagedl: error:`` line and exit 1 wherever sage_bootstrap dies
with a traceback (1), 2 for bad arguments (argparse's 2, as Sage).  Sage's
callers only look at the output, but the codes are kept all the same.
"""

from __future__ import absolute_import

import errno
import io
import os

from sagedl.compat import PY2
from sagedl.errors import EXIT_FAILURE, UsageError
from sagedl.sage.bootstrap import MSG_NOT_REFERENCED, SagePackageError, Tree, quote
from sagedl.sage.selection import select
from sagedl.text import printable, utf8

PROG = "sagedl"
COMMANDS = ("properties", "list", "tarball", "name")



# ---------------------------------------------------------------------------
# The subcommands: each returns the lines to print

def properties_lines(tree, selectors, fmt="plain"):
    names = select(tree, selectors)
    lines = []
    for name in names:
        pkg = tree.package(name)
        if len(names) > 1 and fmt == "plain":
            lines.append([name, ":"])
        for prop in tree.dialect.properties:
            value = getattr(pkg, prop, None)
            if value is None:
                value = "none" if prop.startswith("version") else ""
            if isinstance(value, bool):
                value = str(value)
            if fmt == "plain":   # Sage: u"        {0:28} {1}".format(prop + ":", value)
                lines.append(["        ", (prop + ":").ljust(28), " ", value])
            elif tree.dialect.shell_quote:
                lines.append([prop, "_", name, "=", quote(value)])
            else:                # Sage 10.7: "{0}_{1}='{2}'"
                lines.append([prop, "_", name, "='", value, "'"])
    return lines


def tarball_lines(tree, name):
    names = tree.package(name).tarball_filenames()
    if not tree.dialect.sections:
        return [[names[0] if names else "None"]]   # Sage 10.7: print(package.tarball.filename)
    return [[f] for f in names]


def name_lines(tree, tarball):
    filename = os.path.basename(tarball)
    owner = None
    for pkg in tree.all():
        if filename in pkg.tarball_filenames():
            owner = pkg.tarball_package
    if owner is None:
        raise SagePackageError(MSG_NOT_REFERENCED % printable(filename))
    return [[owner.name]]


# ---------------------------------------------------------------------------
# Command line

def _parser(command):
    from sagedl.options import argument_parser
    p = argument_parser("%s %s" % (PROG, command), _DESCRIPTIONS[command] + _COMMON_DESCRIPTION)
    p.add_argument("--sage-root", metavar="DIR",
                   help="the Sage tree (default: $SAGE_ROOT, or found by walking up from the "
                        "current directory)")
    p.add_argument("--log", metavar="LEVEL", help="accepted for Sage compatibility; ignored")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    return p


_COMMON_DESCRIPTION = """

Same arguments and byte-identical output as Sage's sage-package (without
needing Sage's Python); errors exit 1, bad arguments 2."""

_DESCRIPTIONS = {
    "properties": "Print properties of the given packages (sage-package properties).",
    "list": "Print a list of packages known to Sage, sorted (sage-package list).",
    "tarball": "Print the tarball file names of a package (sage-package tarball).",
    "name": "Print the package a tarball belongs to (sage-package name).",
}

_PACKAGE_CLASS = "[PACKAGE_NAME|pkg:pypi/DISTRIBUTION-NAME|:PACKAGE_TYPE:]"


def make_parser(command):
    """sage_bootstrap's parser for ``command`` (cmdline.py), plus sagedl's
    --sage-root, --log and --debug."""
    p = _parser(command)
    if command == "list":
        p.add_argument("package_class", metavar=_PACKAGE_CLASS,
                       default=[":all-or-nothing:"], nargs="*",
                       help="package name, pkg:pypi/ followed by a distribution name, or one "
                            "of :all:, :standard:, :optional:, :experimental: (default :all:, "
                            "or nothing with --include/--exclude-dependencies)")
        p.add_argument("--has-file", action="append", default=[], metavar="FILENAME",
                       dest="has_files", help="only packages with this file (A|B: either)")
        p.add_argument("--no-file", action="append", default=[], metavar="FILENAME",
                       dest="no_files", help="only packages without this file (A|B: neither)")
        p.add_argument("--tree", action="append", default=[], metavar="TREEVAR", dest="trees",
                       help="only packages installed to this tree (SAGE_LOCAL, SAGE_VENV)")
        p.add_argument("--exclude", nargs="*", action="append", default=[],
                       metavar="PACKAGE_NAME", help="exclude packages from the list")
        p.add_argument("--include-dependencies", action="store_true",
                       help="include the (ordinary) dependencies recursively")
        p.add_argument("--exclude-dependencies", action="store_true",
                       help="exclude the (ordinary) dependencies recursively")
    elif command == "properties":
        p.add_argument("package_class", metavar=_PACKAGE_CLASS, nargs="+",
                       help="package name, pkg:pypi/ followed by a distribution name, or one "
                            "of :all:, :standard:, :optional:, :experimental:")
        p.add_argument("--format", default="plain",
                       help="output format: plain (default) or shell (any other value "
                            "means shell too, as in Sage)")
    elif command == "name":
        p.add_argument("tarball_filename", help="tarball filename")
    elif command == "tarball":
        p.add_argument("package_name", help="package name")
    return p


def find_root(explicit, env, cwd=None):
    """--sage-root, else $SAGE_ROOT exactly as set (Sage prints paths under
    it verbatim; the wrapper sets it as Sage's own location would), else
    the first directory up from cwd that holds build/pkgs."""
    if explicit is not None:
        return explicit
    if "SAGE_ROOT" in env:
        return env["SAGE_ROOT"]
    from sagedl.sage.tree import SageTree
    tree = SageTree.discover(None, env={}, cwd=cwd)
    if tree is None:
        raise SagePackageError("no Sage tree found",
                               hint="run inside a Sage source tree, or set SAGE_ROOT "
                                    "(or pass --sage-root DIR)")
    return tree.root


def run(request, env):
    """The lines (lists of str parts) that ``sage-package COMMAND`` prints,
    for an options.SagePackageRequest."""
    command = request.command
    tree = Tree(find_root(request.sage_root, env))
    if command == "list":
        if request.trees and not tree.dialect.list_tree:
            # This tree's sage-package has no such option: argparse's refusal.
            raise UsageError("unrecognized arguments: --tree", hint="see 'sagedl list --help'")
        selectors = request.package_class
        if selectors == (":all-or-nothing:",):
            selectors = ([] if request.include_dependencies or request.exclude_dependencies
                         else [":all:"])
        return [[n] for n in select(tree, selectors, has_files=request.has_files,
                                    no_files=request.no_files, trees=request.trees,
                                    exclude=request.exclude,
                                    include_dependencies=request.include_dependencies,
                                    exclude_dependencies=request.exclude_dependencies)]
    if command == "properties":
        return properties_lines(tree, request.package_class, request.format)
    if command == "tarball":
        return tarball_lines(tree, request.package_name)
    if command == "name":
        return name_lines(tree, request.tarball_filename)
    raise UsageError("unknown sage-package subcommand %s" % command)


def render(lines):
    return b"".join(b"".join(utf8(p) for p in line) + b"\n" for line in lines)


def _write(stream, data):
    out = getattr(stream, "buffer", None)
    if out is None:
        if PY2 or isinstance(stream, io.RawIOBase) or isinstance(stream, io.BufferedIOBase):
            out = stream
        else:   # a text stream without a buffer (an in-process test's StringIO)
            stream.write(data.decode("utf-8", "surrogateescape"))
            stream.flush()
            return
    out.write(data)
    out.flush()


def _argv_text(argv):
    """On 2.7 argv holds bytes: as text (UTF-8), like 3.x's (names are
    compared with text read from files).  Not UTF-8 there: one error line."""
    if not PY2:
        return list(argv)
    text = []
    for arg in argv:
        try:
            text.append(arg.decode("utf-8") if isinstance(arg, bytes) else arg)
        except UnicodeDecodeError:
            raise SagePackageError("argument %r is not UTF-8" % (arg,))
    return text


# Options that may come before the subcommand: sage-package's own --log
# ("sage --package --log=DEBUG list"), and sagedl's --sage-root and --debug.
LEADING_WITH_VALUE = ("--log", "--sage-root")


def command_first(argv):
    """argv with the subcommand moved first, if argv is [leading options]
    COMMAND ARGS... (the subcommand's parser takes the options anywhere);
    else None."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in COMMANDS:
            return [a] + argv[:i] + argv[i + 1:]
        if a in LEADING_WITH_VALUE:
            i += 2
        elif a == "--debug" or any(a.startswith(o + "=") for o in LEADING_WITH_VALUE):
            i += 1
        else:
            return None
    return None


def cmd_sage_package(argv, env, stdout):
    """``sagedl COMMAND ARGS...`` for COMMAND in COMMANDS: prints the answer
    and returns the exit code; errors are SagedlErrors, which cli.main
    reports as every other command's."""
    command = argv[0]
    try:
        from sagedl.options import sage_package_request
        args = make_parser(command).parse_args(_argv_text(argv[1:]))
        data = render(run(sage_package_request(command, args), env))
    except RuntimeError as e:   # RecursionError (3.5+) is one
        raise SagePackageError("%s: %s" % (e.__class__.__name__, e))
    except UnicodeError as e:   # a name or path this locale cannot encode or decode
        raise SagePackageError("%s (try LC_ALL=C.UTF-8)" % e)
    try:
        _write(stdout, data)
    except (IOError, OSError) as e:
        if e.errno == errno.EPIPE:   # `sage-package list | head`: the reader is gone
            return EXIT_FAILURE
        raise SagePackageError("cannot write the output: %s" % (e.strerror or e))
    return 0
