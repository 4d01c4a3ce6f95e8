"""The compat module's shims are a conscious list: adding one changes this test."""

import subprocess

import pytest

from pyz import interpreter_params, require_interpreter, REPO

EXPECTED = ["PY2", "PYPY", "compat_buffer_slice", "compat_integer_types", "compat_makedirs",
            "compat_monotonic",
            "compat_quote", "compat_replace", "compat_shlex_quote", "compat_str",
            "compat_text_types", "compat_unquote", "compat_urljoin", "compat_urlsplit"]


def test_the_list_of_shims_is_pinned():
    from sagedl import compat
    assert sorted(compat.COMPAT_NAMES) == sorted(EXPECTED)


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.6", "3.13", "pypy3")))
def test_shims_behave_alike_everywhere(label, tmp_path):
    python = require_interpreter(label)
    code = r'''
import sys, os
sys.path.insert(0, %r)
from sagedl.compat import *
from sagedl import compat as c
b = bytearray(b"abcdef")
assert bytes(bytearray(c.compat_buffer_slice(b, memoryview(b), 3))) == b"abc"
assert c.compat_buffer_slice(b, memoryview(b), 6) is b
assert c.compat_urlsplit("http://u:p@h:8/x?q").port == 8
assert c.compat_quote("a b") == "a%%20b" and c.compat_unquote("a%%20b") == "a b"
d = os.path.join(%r, "x", "y")
c.compat_makedirs(d); c.compat_makedirs(d)
open(d + "/f", "w").close(); open(d + "/g", "w").close()
c.compat_replace(d + "/f", d + "/g")
assert os.listdir(d) == ["g"]
assert c.compat_monotonic() <= c.compat_monotonic()
sys.stdout.write("ok")
''' % (REPO, str(tmp_path))
    out = subprocess.run([python, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert out.stdout == b"ok", out.stderr
