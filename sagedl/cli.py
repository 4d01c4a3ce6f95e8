"""The command line: ``main(argv=None, env=None) -> exit code``.

Two call forms, both drop-in compatible with Sage's tools:

  sagedl [options] URL_OR_TARBALL [DESTINATION]      (sage-download-file)
  sagedl [options] [-P DIR] URL URL... [-i FILE]     (several files, as wget)
  sagedl download [options] PKG_OR_CLASS...          (sage-package download)

plus ``sagedl --print-fastest-mirror``, ``list-mirrors``, ``make-mirror``,
``verify`` and sage-package's read-only subcommands.  This module parses
(with options.py's parsers), dispatches to the module that does the work,
and turns errors into exit codes; it plans nothing.

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
from sagedl.compat import PYPY
from sagedl.errors import SagedlError, UsageError
from sagedl.options import (COMMANDS, PROG, SAGE_PACKAGE_COMMANDS, MirrorsRequest, request,
                            run_settings, split_command)

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


def _collect_on_pypy(env):
    """PyPy only: collect start-up's garbage before it grows the process
    (engine/nursery.py says why and what it saves).  Not for --version."""
    if PYPY:
        from sagedl.engine.nursery import collect_startup_garbage
        collect_startup_garbage(env)


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


def _fetch(session, req, stdin):
    """The sage-download-file form (a FetchRequest): what to fetch
    (targets.py), where it goes (output.py, the one place deciding it),
    then single.py fetches."""
    from sagedl.commands.single import cmd_fetch
    from sagedl.commands.targets import split_targets
    from sagedl.plan.output import decide
    targets, positional = split_targets(list(req.positionals), req.input_file, stdin)
    dest = decide(targets, req.output, positional, req.remote_name, req.output_dir,
                  several=len(targets) > 1 or req.input_file is not None,
                  stdout_is_a_terminal=_stdout_is_a_terminal(session.stdout))
    return cmd_fetch(session, req, targets, dest)


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
            from sagedl.commands import sagepackage
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
    _collect_on_pypy(env)           # start-up's imports are done
    sage_package = None
    if argv[0] in SAGE_PACKAGE_COMMANDS or (argv[0].startswith("--") and
                                            any(a in SAGE_PACKAGE_COMMANDS for a in argv)):
        # sage-package's read-only subcommands: their own parsers and output rules.
        from sagedl.commands import sagepackage
        sage_package = sagepackage.command_first(argv)
    ctx = None
    old_term = _install_sigterm()
    if debug or "--verbose" in argv or "-v" in argv:
        errors.set_debug(stderr.write)
    try:
        if sage_package is not None:
            from sagedl.commands.sagepackage import cmd_sage_package
            return cmd_sage_package(sage_package, env, stdout)
        command, parser, argv = split_command(argv)
        args = parser.parse_args(argv)
        if command is None and args.version:
            stdout.write(version_line())
            return 0
        # The one place a Namespace becomes the values the layers below take.
        settings, req = run_settings(args), request(command, args)
        from sagedl.session import Session
        ctx = Session(settings, env, stdout, stderr)
        _collect_on_pypy(env)       # the command is set up; its work starts
        if command == "download":
            from sagedl.commands.bulk import cmd_download
            return cmd_download(ctx, req)
        if command == "list-mirrors":
            from sagedl.commands.showmirrors import cmd_list_mirrors
            return cmd_list_mirrors(ctx, req)
        if command == "make-mirror":
            from sagedl.commands.sitemirror import cmd_make_mirror
            return cmd_make_mirror(ctx, req)
        if command == "verify":
            from sagedl.commands.sitemirror import cmd_verify
            return cmd_verify(ctx, req)
        if isinstance(req, MirrorsRequest):     # --print-fastest-mirror
            from sagedl.commands.showmirrors import cmd_print_fastest_mirror
            return cmd_print_fastest_mirror(ctx)
        if not req.positionals and req.input_file is None:
            raise UsageError("nothing to download",
                             hint="give a URL or tarball name, or --print-fastest-mirror")
        if args.url_or_tarball:
            mistyped = _mistyped_command(ctx, args.url_or_tarball)
            if mistyped is not None:
                raise mistyped
        return _fetch(ctx, req, stdin)
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
    from sagedl.engine import fsutil
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
