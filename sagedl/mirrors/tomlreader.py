"""Read TOML: ``tomllib`` where the stdlib has it (3.11+), else a small subset reader.

The subset is exactly what sagedl's own files (mirrors.toml) use: comments,
blank lines, ``[table]``, ``[[array-of-tables]]`` with bare names, bare keys,
basic "strings" with the TOML 1.0 escapes, literal 'strings', decimal
integers, booleans, and one-line arrays of strings.  Anything else raises
MetadataError -- including valid TOML outside the subset (floats, dates,
dotted or quoted keys, inline tables, multi-line strings): the subset reader
may refuse a document, but it never returns a value different from tomllib's.
tests/test_tomlreader.py checks that against tomllib.

Every failure, from either reader, is a MetadataError naming the file and line.
"""

from __future__ import absolute_import

import re
import sys

from sagedl.compat import compat_str
from sagedl.errors import MetadataError

try:  # Python 3.11+
    import tomllib as _tomllib
except ImportError:
    _tomllib = None

try:
    _unichr = unichr  # noqa: F821 (Python 2)
except NameError:
    _unichr = chr

# TOML 1.0 forbids control characters other than tab everywhere, comments
# included (newlines are line separators and never reach this check).
_CONTROL_RE = re.compile(u"[\x00-\x08\x0a-\x1f\x7f]")
_BARE_KEY_RE = re.compile(r"[A-Za-z0-9_-]+")
# Maximal run of characters that can start an unquoted TOML value; the run
# must then be exactly an integer or a boolean.
_TOKEN_RE = re.compile(r"[0-9A-Za-z_.:+-]+")
_INT_RE = re.compile(r"[+-]?(0|[1-9][0-9]*)\Z")
_HEX_RE = re.compile(r"[0-9A-Fa-f]+\Z")
_TOMLLIB_WHERE_RE = re.compile(r"\s*\((?:at line (\d+), column \d+|at end of document)\)\s*$")
_ESCAPES = {u"b": u"\b", u"t": u"\t", u"n": u"\n", u"f": u"\f", u"r": u"\r",
            u'"': u'"', u"\\": u"\\"}
_INT64_MIN, _INT64_MAX = -2 ** 63, 2 ** 63 - 1
_WS = u" \t"


def loads(text, path="<string>"):
    """Parse TOML ``text`` (str or UTF-8 bytes) into a dict."""
    if _tomllib is not None:
        return loads_tomllib(text, path)
    return loads_subset(text, path)


def _to_text(text, path):
    if isinstance(text, bytes):
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise MetadataError(path, text[:e.start].count(b"\n") + 1, "not valid UTF-8")
    if not isinstance(text, compat_str):
        raise MetadataError(path, None, "expected text, got %s" % type(text).__name__)
    return text


def loads_tomllib(text, path="<string>"):
    """tomllib's answer, with its errors turned into MetadataError."""
    if _tomllib is None:
        raise RuntimeError("tomllib needs Python 3.11 or later")
    text = _to_text(text, path)
    try:
        return _tomllib.loads(text)
    except _tomllib.TOMLDecodeError as e:
        message = str(e)
        m = _TOMLLIB_WHERE_RE.search(message)
        lineno = getattr(e, "lineno", None)
        if m:
            message = message[:m.start()]
            if lineno is None and m.group(1):
                lineno = int(m.group(1))
        raise MetadataError(path, lineno, message)
    except RecursionError:  # deeply nested arrays or inline tables
        raise MetadataError(path, None, "nested too deeply")
    except ValueError as e:  # e.g. an integer beyond sys.int_info's digit limit
        raise MetadataError(path, None, str(e))


def loads_subset(text, path="<string>"):
    """Parse the subset described in the module docstring."""
    return _SubsetParser(_to_text(text, path), path).parse()


def _chr(cp):
    if cp > sys.maxunicode:  # a narrow (UCS-2) Python 2 build: surrogate pair
        cp -= 0x10000
        return _unichr(0xD800 + (cp >> 10)) + _unichr(0xDC00 + (cp & 0x3FF))
    return _unichr(cp)


class _SubsetParser(object):

    def __init__(self, text, path):
        self.text = text
        self.path = path
        self.lineno = 0

    def error(self, message):
        raise MetadataError(self.path, self.lineno, message)

    def parse(self):
        root = {}
        current = root
        arrays = set()  # names created by [[name]]: the only ones [[ ]] may extend
        lines = self.text.split(u"\n")
        for self.lineno, line in enumerate(lines, 1):
            if line.endswith(u"\r") and self.lineno < len(lines):  # CRLF is a newline
                line = line[:-1]
            bad = _CONTROL_RE.search(line)
            if bad:
                self.error("control character U+%04X" % ord(bad.group()))
            pos = self.skip_ws(line, 0)
            if pos == len(line) or line[pos] == u"#":
                continue
            if line.startswith(u"[[", pos):
                name, pos = self.key(line, self.skip_ws(line, pos + 2))
                pos = self.expect(line, self.skip_ws(line, pos), u"]]")
                if name in root and name not in arrays:
                    self.error("[[%s]]: %s is already defined as something else" % (name, name))
                if name not in root:
                    root[name] = []
                    arrays.add(name)
                current = {}
                root[name].append(current)
            elif line[pos] == u"[":
                name, pos = self.key(line, self.skip_ws(line, pos + 1))
                pos = self.expect(line, self.skip_ws(line, pos), u"]")
                if name in root:
                    self.error("[%s]: %s is already defined" % (name, name))
                current = root[name] = {}
            else:
                name, pos = self.key(line, pos)
                pos = self.expect(line, self.skip_ws(line, pos), u"=")
                value, pos = self.value(line, self.skip_ws(line, pos))
                if name in current:
                    self.error("duplicate key %r" % (name,))
                current[name] = value
            self.end_of_line(line, pos)
        return root

    @staticmethod
    def skip_ws(line, pos):
        while pos < len(line) and line[pos] in _WS:
            pos += 1
        return pos

    def expect(self, line, pos, token):
        if not line.startswith(token, pos):
            self.error("expected %r, found %r" % (str(token), line[pos:pos + 10]))
        return pos + len(token)

    def end_of_line(self, line, pos):
        pos = self.skip_ws(line, pos)
        if pos < len(line) and line[pos] != u"#":
            self.error("unexpected text %r" % (line[pos:pos + 20],))

    def key(self, line, pos):
        m = _BARE_KEY_RE.match(line, pos)
        if not m:
            if pos < len(line) and line[pos] in u"\"'":
                self.error("quoted keys are not supported")
            self.error("expected a bare key, found %r" % (line[pos:pos + 10],))
        if m.end() < len(line) and line[m.end()] == u".":
            self.error("dotted keys are not supported")
        return m.group(), m.end()

    def value(self, line, pos):
        if pos == len(line) or line[pos] == u"#":
            self.error("missing value")
        c = line[pos]
        if c in u"\"'":
            return self.string(line, pos)
        if c == u"[":
            return self.array(line, pos)
        m = _TOKEN_RE.match(line, pos)
        if not m:
            self.error("unsupported value starting %r" % (line[pos:pos + 10],))
        token = m.group()
        if token in (u"true", u"false"):
            return token == u"true", m.end()
        # The length test keeps int() away from huge digit strings (slow on
        # 2.7, refused by 3.11's int_max_str_digits limit).
        if len(token) > 20 or not _INT_RE.match(token):
            self.error("unsupported value %r (only strings, decimal integers, "
                       "booleans and arrays of strings)" % (token,))
        number = int(token)
        if not _INT64_MIN <= number <= _INT64_MAX:
            self.error("integer %s out of 64-bit range" % token)
        return number, m.end()

    def array(self, line, pos):
        items = []
        pos = self.skip_ws(line, pos + 1)
        while True:
            if pos == len(line):
                self.error("unterminated array (arrays must fit on one line)")
            if line[pos] == u"]":
                return items, pos + 1
            if line[pos] not in u"\"'":
                self.error("arrays may only hold strings")
            item, pos = self.string(line, pos)
            items.append(item)
            pos = self.skip_ws(line, pos)
            if line.startswith(u",", pos):
                pos = self.skip_ws(line, pos + 1)
            elif not line.startswith(u"]", pos):
                self.error("expected ',' or ']' in array")

    def string(self, line, pos):
        quote = line[pos]
        if line.startswith(quote * 3, pos):
            self.error("multi-line strings are not supported")
        if quote == u"'":
            end = line.find(u"'", pos + 1)
            if end < 0:
                self.error("unterminated literal string")
            return line[pos + 1:end], end + 1
        out = []
        i = pos + 1
        while True:
            if i >= len(line):
                self.error("unterminated string")
            c = line[i]
            if c == u'"':
                return u"".join(out), i + 1
            if c != u"\\":
                out.append(c)
                i += 1
                continue
            esc = line[i + 1:i + 2]
            if esc in _ESCAPES:
                out.append(_ESCAPES[esc])
                i += 2
            elif esc in (u"u", u"U"):
                width = 4 if esc == u"u" else 8
                digits = line[i + 2:i + 2 + width]
                if len(digits) != width or not _HEX_RE.match(digits):
                    self.error("\\%s needs %d hex digits" % (esc, width))
                cp = int(digits, 16)
                if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                    self.error("\\%s%s is not a Unicode scalar value" % (esc, digits))
                out.append(_chr(cp))
                i += 2 + width
            else:
                self.error("invalid escape %r" % (u"\\" + esc,))
