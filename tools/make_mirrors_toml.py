#!/usr/bin/env python3
"""Generate sagedl/mirrors.toml (the shipped list) from the Sage website's mirrors.yaml.

Usage:  python3 tools/make_mirrors_toml.py [MIRRORS_YAML] [-o OUT | --check]

Only ``active: true`` entries are kept, in the order of the YAML file.  The
YAML is parsed here by hand (the subset that file uses: a list of flat
mappings with plain, "double" or 'single' quoted scalars) so the tool needs
no third-party package; anything outside that subset stops the tool with the
offending line, rather than silently producing a wrong list.

``--check`` compares with the committed file and exits 1 when they differ
(tests/test_mirror_list.py runs the same comparison).
"""

import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The Sage website's mirror list (conf/mirrors.yaml of its repository,
# github.com/sagemath/website), copied here unchanged so the shipped list can
# be regenerated and checked from a clone alone.
DEFAULT_YAML = os.path.join(HERE, "mirrors.yaml")
DEFAULT_OUT = os.path.join(ROOT, "sagedl", "mirrors.toml")

# A missing priority means "no preference".  The explicit values in
# mirrors.yaml span 1..90, so 50 is the neutral middle; sagedl only uses
# priority to order mirrors it could not measure (higher first).
DEFAULT_PRIORITY = 50

REGIONS = [
    ("na", "North America"),
    ("sa", "South America"),
    ("e", "Europe"),
    ("a", "Asia"),
    ("af", "Africa"),
    ("aus", "Australia and Oceania (used by mirrors.yaml, not listed in its header)"),
    ("g", "global (CDN)"),
]

_KEY_RE = re.compile(r"^(-\s+|\s+)([A-Za-z_][A-Za-z0-9_]*):(?:\s+(.*))?$")
_DQ_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "t": "\t"}


class YamlError(Exception):
    pass


def _strip_plain_comment(value):
    # In a plain YAML scalar a comment starts at " #".
    i = value.find(" #")
    return (value[:i] if i >= 0 else value).rstrip()


def _scalar(raw, lineno):
    raw = raw.strip()
    if raw.startswith('"'):
        out, i = [], 1
        while i < len(raw):
            c = raw[i]
            if c == "\\":
                nxt = raw[i + 1:i + 2]
                if nxt == "u" and re.match(r"[0-9A-Fa-f]{4}$", raw[i + 2:i + 6] or "x"):
                    out.append(chr(int(raw[i + 2:i + 6], 16)))
                    i += 6
                    continue
                if nxt not in _DQ_ESCAPES:
                    raise YamlError("line %d: unsupported escape \\%s" % (lineno, nxt))
                out.append(_DQ_ESCAPES[nxt])
                i += 2
                continue
            if c == '"':
                rest = raw[i + 1:].strip()
                if rest and not rest.startswith("#"):
                    raise YamlError("line %d: text after closing quote" % lineno)
                return "".join(out)
            out.append(c)
            i += 1
        raise YamlError("line %d: unterminated double-quoted string" % lineno)
    if raw.startswith("'"):
        m = re.match(r"^'((?:[^']|'')*)'\s*(#.*)?$", raw)
        if not m:
            raise YamlError("line %d: bad single-quoted string" % lineno)
        return m.group(1).replace("''", "'")
    value = _strip_plain_comment(raw)
    if value in ("true", "false"):
        return value == "true"
    if re.match(r"^-?[0-9]+$", value):
        return int(value)
    if not value or value[0] in "[]{}&*!|>%@`":
        raise YamlError("line %d: unsupported YAML value %r" % (lineno, raw))
    return value


def parse_yaml_list(text):
    """The list of flat mappings in ``text`` (the mirrors.yaml subset)."""
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _KEY_RE.match(line)
        if not m:
            raise YamlError("line %d: not a 'key: value' line: %r" % (lineno, line))
        lead, key, raw = m.groups()
        if lead.startswith("-"):
            entries.append({})
        elif not entries:
            raise YamlError("line %d: key outside a list item" % lineno)
        if raw is None:
            raise YamlError("line %d: nested or empty value for %r" % (lineno, key))
        if key in entries[-1]:
            raise YamlError("line %d: duplicate key %r" % (lineno, key))
        entries[-1][key] = _scalar(raw, lineno)
    return entries


def toml_string(s):
    """A TOML basic string; non-ASCII text is kept as UTF-8 for readability."""
    out = []
    for c in s:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append("\\u%04X" % ord(c))
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def mirror_records(entries):
    records = []
    for n, e in enumerate(entries, 1):
        if e.get("active") is not True:
            continue
        for key in ("url", "name", "cat"):
            if not isinstance(e.get(key), str) or not e[key]:
                raise YamlError("entry %d: missing %r" % (n, key))
        if not re.match(r"^https?://[^/\s]+/", e["url"]):
            raise YamlError("entry %d: url %r is not http(s)" % (n, e["url"]))
        priority = e.get("priority", DEFAULT_PRIORITY)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise YamlError("entry %d: priority %r is not an integer" % (n, priority))
        records.append([
            ("url", e["url"]),
            ("name", e["name"]),
            # A few entries have only the flag; it carries the same code.
            ("country", str(e.get("country", e.get("flag", "")))),
            ("region", e["cat"]),
            ("priority", priority),
        ])
    return records


def render(records, source_name):
    lines = [
        "# Sage download mirrors shipped with sagedl.",
        "#",
        "# GENERATED by tools/make_mirrors_toml.py from the `active: true` entries of",
        "# the Sage website's %s; do not edit by hand.  Regenerate with:" % source_name,
        "#     python3 tools/make_mirrors_toml.py path/to/mirrors.yaml",
        "# tests/test_mirror_list.py fails when this file and the generator disagree.",
        "#",
        "# Override: --mirrors-file PATH, else $XDG_CONFIG_HOME/sagedl/mirrors.toml",
        "# (default ~/.config/sagedl/mirrors.toml), in this same format.",
        "#",
        "# Fields of each [[mirror]]:",
        "#   url       base URL of the Sage mirror (http or https, ends with '/')",
        "#   name      human-readable location, as on the Sage website",
        "#   country   two-letter code as in mirrors.yaml (it writes 'uk' for the UK)",
        "#   region    the `cat` of mirrors.yaml:",
    ]
    for code, meaning in REGIONS:
        lines.append("#               %-4s %s" % (code, meaning))
    lines += [
        "#   priority  the `priority` of mirrors.yaml, %d when it gives none.  sagedl" % DEFAULT_PRIORITY,
        "#             ranks by measured latency and uses priority (higher first) only",
        "#             to order mirrors it could not measure.",
    ]
    for rec in records:
        lines.append("")
        lines.append("[[mirror]]")
        for key, value in rec:
            if isinstance(value, int):
                lines.append("%s = %d" % (key, value))
            else:
                lines.append("%s = %s" % (key, toml_string(value)))
    return "\n".join(lines) + "\n"


def generate(yaml_path):
    with open(yaml_path, encoding="utf-8") as f:
        entries = parse_yaml_list(f.read())
    return render(mirror_records(entries), os.path.basename(yaml_path))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("yaml", nargs="?", default=DEFAULT_YAML)
    ap.add_argument("-o", "--output", default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true",
                    help="exit 1 if OUTPUT differs from what would be generated")
    args = ap.parse_args(argv)
    try:
        text = generate(args.yaml)
    except (OSError, YamlError) as e:
        sys.stderr.write("make_mirrors_toml: %s: %s\n" % (args.yaml, e))
        return 2
    if args.check:
        try:
            with open(args.output, encoding="utf-8", newline="") as f:
                same = f.read() == text
        except OSError:
            same = False
        sys.stdout.write("%s is %s\n" % (args.output, "up to date" if same else "OUT OF DATE"))
        return 0 if same else 1
    with open(args.output, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
