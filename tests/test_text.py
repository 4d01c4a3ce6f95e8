"""Python 2 text handling lives in two modules: compat.py (the shims) and
text.py (the conversions of names and text).  Any other module naming
Python 2's ``unicode`` or testing ``sys.version_info`` would be an eighth
place to keep in step; and every module imports absolutely."""

import io
import os
import subprocess
import tokenize

import pytest

from helpers import Tree, assert_one_line_error, clean_env, make_data
from pyz import REPO, TIMEOUT, interpreter_params, pyz_path, require_interpreter

pytestmark = pytest.mark.timeout(60)

SAGEDL = os.path.join(REPO, "sagedl")
ALLOWED = ("compat.py",)


def modules():
    found = []
    for top, _, files in os.walk(SAGEDL):
        found.extend(os.path.relpath(os.path.join(top, n), SAGEDL) for n in files if n.endswith(".py"))
    return sorted(found)


def names(path):
    """The NAME tokens of a module's code (comments and strings left out)."""
    with io.open(path, "rb") as f:
        return [(t.string, t.start[0]) for t in tokenize.tokenize(f.readline)
                if t.type == tokenize.NAME]


def test_no_module_but_compat_names_unicode_or_sys_version_info():
    offences = []
    for name in modules():
        if name in ALLOWED:
            continue
        toks = names(os.path.join(SAGEDL, name))
        for i, (tok, line) in enumerate(toks):
            after_sys = i and toks[i - 1][0] == "sys"
            if tok in ("unicode", "long") or (tok == "version_info" and after_sys):
                offences.append("%s:%d: %s" % (name, line, tok))
    assert offences == []


def test_every_module_imports_absolutely():
    lacking = []
    for name in modules():
        with io.open(os.path.join(SAGEDL, name), encoding="utf-8") as f:
            source = f.read()
        if "from __future__ import absolute_import" not in source:
            lacking.append(name)
    assert lacking == []


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.6", "3.13", "pypy3")))
def test_the_conversions_agree_everywhere(label):
    python = require_interpreter(label)
    code = r'''
import sys
sys.path.insert(0, %r)
from sagedl import text
from sagedl.compat import PY2
e = u"\u00e9t\u00e9"
assert text.native_str(e) == (e.encode("utf-8") if PY2 else e)
assert text.native_str(b"x") == b"x"
assert text.from_native(e.encode("utf-8")) == (e if PY2 else e.encode("utf-8"))
assert text.from_native(b"\xff") == b"\xff"
assert text.printable(b"caf\xc3\xa9") == u"caf\u00e9" and text.printable(b"\xff") == u"\ufffd"
assert text.utf8(e) == b"\xc3\xa9t\xc3\xa9" and text.utf8(b"\xff") == b"\xff"
if not PY2:
    assert text.printable(b"\xc3\xa9".decode("ascii", "surrogateescape")) == u"\u00e9"
    assert text.utf8(b"\xff".decode("ascii", "surrogateescape")) == b"\xff"
sys.stdout.write("ok")
''' % REPO
    out = subprocess.run([python, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=60)
    assert out.stdout == b"ok", out.stderr


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.6", "3.13", "pypy3")))
@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
def test_a_non_ascii_name_in_an_error_is_one_line_everywhere(label, locale, tmp_path):
    # sage-package's errors (text on 2.7) and the download's (bytes on 2.7)
    # go through the one report: joined to the prefix, never str(error).
    python = require_interpreter(label)
    tree = Tree(tmp_path / u"sag\u00e9")
    tree.add("pkga", "1.0", "pkga-VERSION.tar.gz", make_data(100, 1))
    env = clean_env(tmp_path, SAGE_ROOT=str(tree.root), LC_ALL=locale,
                    SAGEDL_MIRRORS="http://127.0.0.1:9/")
    for argv, code in (([u"tarball", u"\u00e9t\u00e9"], 1),
                       ([u"pkga-2.0-\u00e9t\u00e9.tar.gz"], 3)):
        r = subprocess.run([python, pyz_path()] + argv, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT)
        err = r.stderr.decode("utf-8", "replace")
        assert r.returncode == code, err
        assert_one_line_error(err, u"\u00e9t\u00e9")
