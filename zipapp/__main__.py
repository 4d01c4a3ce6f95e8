"""Root of sagedl.pyz: check the interpreter, isolate it, hand over to sagedl.cli.

This file must parse on any Python (2.4 and 3.0 included) so that a too old
interpreter gets a clear message instead of a SyntaxError: no ``with``, no
``except X as e``, no conditional expressions, no print.
"""
import sys

TOO_OLD = "sagedl needs Python 2.7 or 3.6+; this is Python %d.%d (%s)\n"
REEXEC_FAILED = "sagedl: warning: cannot restart %s isolated from PYTHONPATH/PYTHONHOME (%s); continuing\n"


def too_old(version_info):
    """True when sagedl cannot run on this version (2.7 and 3.6+ are supported)."""
    v = tuple(version_info[:2])
    return v < (2, 7) or ((3, 0) <= v and v < (3, 6))


def needs_isolation(environ, ignore_environment):
    """True when PYTHONPATH/PYTHONHOME can shadow the standard library (a
    half-installed Sage puts its own, possibly broken, modules there) and the
    interpreter does not already ignore them (-E, -I)."""
    if ignore_environment:
        return False
    return bool(environ.get("PYTHONPATH") or environ.get("PYTHONHOME"))


def isolated_argv(executable, archive, argv):
    """The command line that re-runs the archive with -E (ignore PYTHON*
    variables) and -s (no user site-packages); both exist on 2.7 and 3.x."""
    return [executable, "-E", "-s", archive] + list(argv[1:])


def _reexec():
    """Replace this process by an isolated one; return only if that failed."""
    import os
    archive = sys.argv[0]
    exe = sys.executable
    if not exe or not os.path.isfile(exe) or not os.access(exe, os.X_OK):
        sys.stderr.write(REEXEC_FAILED % ("Python", "sys.executable is %r" % (exe,)))
        return
    if not os.path.isfile(archive):
        return  # not started as "python sagedl.pyz" (e.g. runpy.run_path in a test)
    argv = isolated_argv(exe, archive, sys.argv)
    try:
        if os.name == "nt":
            # Windows has no real exec: os.execv would return to the shell at once.
            import subprocess
            sys.exit(subprocess.call(argv))
        os.execv(exe, argv)
    except OSError:
        sys.stderr.write(REEXEC_FAILED % (exe, sys.exc_info()[1]))


def main():
    if too_old(sys.version_info):
        sys.stderr.write(TOO_OLD % (sys.version_info[0], sys.version_info[1], sys.executable or "unknown path"))
        return 2
    import os
    flags = getattr(sys, "flags", None)
    # An interpreter without sys.flags.ignore_environment could not tell us that
    # the -E re-exec took effect: do not risk an exec loop there.
    if needs_isolation(os.environ, getattr(flags, "ignore_environment", True)):
        _reexec()
    _install_bytecode_cache(os)
    from sagedl.cli import main as cli_main
    return cli_main()


def _install_bytecode_cache(os):
    """Load sagedl's modules through a compiled-code cache (see
    _sagedl_bytecode.py); without it every run compiles them again."""
    archive = os.path.dirname(os.path.abspath(__file__))
    if not os.path.isfile(archive):
        return   # not running from the pyz (a test importing this file)
    try:
        _load_importer().install(archive, os.environ)
    except ImportError:
        pass


def _load_importer():
    """The _sagedl_bytecode module, its code taken from this archive's own
    loader (the zipimporter that runpy gave __main__): searching for it
    through the import system cost PyPy3 about 1.5 ms more per start, a
    tenth of what sagedl adds to PyPy's own start-up (bench/README.md)."""
    name = "_sagedl_bytecode"
    get_code = getattr(globals().get("__loader__"), "get_code", None)
    if get_code is None or name in sys.modules:
        return __import__(name)
    module = type(sys)(name)
    sys.modules[name] = module
    try:
        exec(get_code(name), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    return module


if __name__ == "__main__":
    sys.exit(main())
