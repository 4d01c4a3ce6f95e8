"""Stand-in that makes ``import functools`` / ``import contextlib`` yield the
standard library's module.  zipapp/build.py stores this file twice at the root
of sagedl.pyz, as functools.py and as contextlib.py.

Why: ``python3.6 ... python3.11 sagedl.pyz`` imports runpy, which imports
importlib.util -> contextlib -> functools (3.6: importlib -> types ->
functools), before the archive's __main__ runs and with PYTHONPATH ahead of
the standard library.  A half-installed library on PYTHONPATH with a broken
functools.py (Sage's "ImportError: No module named _functools") then kills the
interpreter with "Could not import runpy module".  By then the archive is
already sys.path[0], so these files are found first.  3.12+ and 2.7 never get
here at start-up, but later imports do, so this must be fully transparent.

It imports the real module with the archive and PYTHONPATH hidden, then leaves
that module in sys.modules[__name__]: importlib's _load_unlocked (3.x) and
PyImport_ExecCodeModuleEx (2.7) both hand the importer whatever sys.modules
holds once this body has run.  Only sys and os are used (site.py has loaded
os already); the file is compiled on every start, so it stays small.
"""
import os
import sys

_name = __name__
_archive = os.path.dirname(os.path.abspath(__file__))
_hidden = [_archive]
if not sys.flags.ignore_environment:
    _hidden.extend([os.path.abspath(_p) for _p in
                    os.environ.get("PYTHONPATH", "").split(os.pathsep) if _p])
_saved = sys.path[:]
# Entries may be relative ("sagedl.pyz" on 3.6-3.8), hence abspath.
sys.path[:] = [_p for _p in _saved
               if not isinstance(_p, type(_archive))
               or (os.path.abspath(_p) not in _hidden
                   and not os.path.abspath(_p).startswith(_archive + os.sep))]
# Keep a reference: Python 2.7 sets a module's globals to None as soon as the
# module object dies, which would happen here, mid-body.
_shim = sys.modules.pop(_name)
try:
    __import__(_name)
finally:
    sys.path[:] = _saved  # in place: the interpreter keeps a reference to this list
