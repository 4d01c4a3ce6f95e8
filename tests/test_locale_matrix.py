"""Every stream sagedl writes survives any locale on every interpreter.

The matrix: each interpreter x {LANG=C, LC_ALL=C.UTF-8} x {an ASCII Sage
tree and tarball name, a non-ASCII one (SAGE_ROOT, SAGE_DISTFILES and the
tarball all contain 'é')} runs the built pyz three ways: a single fetch, a
bulk ``download``, and ``list-mirrors --no-probe`` over a mirrors file whose
names are not ASCII.  Sources are a loopback FaultServer only: nothing
reaches a real mirror.  Python 2.7 once failed here with "internal error:
UnicodeDecodeError" on every fetch from a non-ASCII SAGE_ROOT, and 3.6 under
LANG=C with UnicodeEncodeError in list-mirrors.
"""

import os
import subprocess

import pytest

from conftest import make_data
from faultserver import FaultServer
from pyz import LABELS, pyz_path, require_interpreter
import pyz as pyzmod

LOCALES = {"LANG=C": {"LANG": "C"}, "LC_ALL=C.UTF-8": {"LC_ALL": "C.UTF-8"}}
NAMES = {"ascii": ("sage", "pkga", "pkga-VERSION.tar.gz"),
         "non-ascii": (u"sag\u00e9", "pkgb", u"pkgb-VERSION-\u00e9t\u00e9.tar.gz")}

MIRRORS_TOML = u'''\
[[mirror]]
url = "%s/ok/"
name = "Universit\u00e9 de Montr\u00e9al \u2014 loopback"
country = "Canad\u00e1"
'''


def _tree(root, pkg, template, data):
    import hashlib
    d = os.path.join(root, "build", "pkgs", pkg)
    os.makedirs(d)
    os.makedirs(os.path.join(root, "build", "bin"))
    with open(os.path.join(d, "checksums.ini"), "w", encoding="utf-8") as f:
        f.write(u"tarball=%s\nsha256=%s\n" % (template, hashlib.sha256(data).hexdigest()))
    with open(os.path.join(d, "package-version.txt"), "w") as f:
        f.write("1.0\n")
    with open(os.path.join(d, "type"), "w") as f:
        f.write("standard\n")
    return template.replace("VERSION", "1.0")


def _env(tmp, locale, **extra):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.path.join(tmp, "home"),
           "XDG_CACHE_HOME": os.path.join(tmp, "cache"),
           "XDG_CONFIG_HOME": os.path.join(tmp, "config")}
    env.update(LOCALES[locale])
    env.update(extra)
    return env


def _run(python, argv, env):
    return subprocess.run([python, pyz_path()] + list(argv), env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=pyzmod.TIMEOUT)


def _ok(r):
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 0, err
    assert "internal error" not in err and "Traceback" not in err, err


@pytest.mark.parametrize("names", sorted(NAMES))
@pytest.mark.parametrize("locale", sorted(LOCALES))
@pytest.mark.parametrize("label", LABELS)
def test_fetch_bulk_and_list_mirrors_in_any_locale(label, locale, names, tmp_path):
    python = require_interpreter(label)
    rootname, pkg, template = NAMES[names]
    tmp = str(tmp_path)
    root = os.path.join(tmp, rootname)
    data = make_data(30000, 7)
    name = _tree(root, pkg, template, data)
    distfiles = os.path.join(tmp, u"dist\u00e9" if names == "non-ascii" else "dist")
    with FaultServer({name: data}) as s:
        mfile = os.path.join(tmp, "mirrors.toml")
        with open(mfile, "w", encoding="utf-8") as f:
            f.write(MIRRORS_TOML % s.url)
        env = _env(tmp, locale, SAGE_ROOT=root, SAGE_DISTFILES=distfiles)
        # A single fetch by tarball name, then again (present, verified).
        for _ in range(2):
            r = _run(python, [name, "--mirrors-file", mfile], env)
            _ok(r)
        os.unlink(os.path.join(distfiles, name))
        # A bulk download prints the path, byte for byte.
        r = _run(python, ["download", pkg, "--mirrors-file", mfile], env)
        _ok(r)
        assert r.stdout == os.fsencode(os.path.join(distfiles, name)) + b"\n"
        # list-mirrors: non-ASCII mirror names to stdout whatever the locale.
        r = _run(python, ["list-mirrors", "--no-probe", "--mirrors-file", mfile], env)
        _ok(r)
        assert b"Universit" in r.stdout
        # A URL to a DESTINATION directory with a non-ASCII name.
        dest = os.path.join(tmp, u"out\u00e9" if names == "non-ascii" else "out")
        os.mkdir(dest)
        r = _run(python, [s.url + "/ok/" + name, dest + os.sep], env)
        _ok(r)
    with open(os.path.join(dest, name), "rb") as f:
        assert f.read() == data
