"""checksums.ini, read as sage_bootstrap reads it, and checked.

Why a module of its own: the parser is where sagedl must take exactly what
Sage takes (a section, an assignment, any other line ignored), and refuse
what Sage would fail on or download unchecked; tree.py decides which
package and tarball a name means, from records this module hands it.
"""

from __future__ import absolute_import

import re

from sagedl.engine.verify import DIGEST_LENGTHS
from sagedl.errors import MetadataError, UsageError
from sagedl.sage.names import expand, show

RECORD_KEYS = ("tarball", "sha256", "sha1", "upstream_url")


# sage_bootstrap's patterns, applied with match() to each line as read in
# text mode (universal newlines, the newline kept): a section or an
# assignment must start the line; every other line is ignored.
SECTION = re.compile(r"\[([-a-zA-Z0-9_.]*)\]")
LINE_BREAK = re.compile(r"\r\n|\r|\n")
_ASSIGNMENT = re.compile(r"([a-zA-Z0-9_]*)=(.*)")
_DIGEST = {"sha256": re.compile(r"^[0-9a-f]{64}$"), "sha1": re.compile(r"^[0-9a-f]{40}$")}


def universal_newlines(text):
    """text with CRLF and CR as LF, as Python's text mode reads a file
    (sage_bootstrap opens its files so): a bare CR ends a line there."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def parse_checksums_ini(text, path, sections=True):
    """Records of a checksums.ini: (record, {key: line number}, section)
    each.  A record is a dict with the RECORD_KEYS; ``sha1`` and
    ``upstream_url`` are None when absent; values are still templates (see
    expand); other keys (md5=, cksum= of old trees) are ignored.  The
    section is the ``[section]`` name (None for the one-record form): Sage
    matches ``--tags`` against it.  Without ``sections`` (a tree whose
    sage_bootstrap predates them, Sage 10.7: sagebootstrap.Dialect), a
    section line is ignored as Sage's ignores it: one record.

    Read as sage_bootstrap reads it (build/sage_bootstrap/package.py), so
    that sagedl takes what Sage takes: a line starting ``[name]`` (name of
    letters, digits and ``-_.``) opens a section, and a section seen again
    starts afresh where it first stood; a line starting ``key=`` assigns
    everything after the ``=`` (spaces included), a repeated key taking the
    last value; any other line is ignored.  Lines before any section form
    the unnamed record.  Then refused, where Sage would fail or download
    without a check worth the name: a record without ``tarball=`` or whose
    name is not a plain file name, a ``sha256`` that is not 64 lower-case
    hex digits (Sage compares it to a lower-case digest: anything else
    never verifies), no sha256 at all (Sage would trust sha1 alone, or
    nothing), a ``sha1`` that is not 40 of them, a section whose
    ``tarball=`` names another file once VERSION is substituted.
    """
    order = []
    found = {}   # section name or None -> (record, {key: line number})
    section = None
    for lineno, line in enumerate(universal_newlines(text).split("\n"), 1):
        match = SECTION.match(line) if sections else None
        if match is not None:
            section = match.group(1)
            if section not in found:
                order.append(section)
            found[section] = ({}, {"": lineno})
            continue
        match = _ASSIGNMENT.match(line)
        if match is None:
            continue
        if section not in found:
            order.append(section)
            found[section] = ({}, {"": lineno})
        key, value = match.groups()
        record, linenos = found[section]
        record[key] = value
        linenos[key] = lineno
    return [_finish_record(found[name][0], found[name][1], name, path) for name in order]


def _finish_record(raw, linenos, section, path):
    start = linenos[""]
    record = dict((key, raw.get(key)) for key in RECORD_KEYS)
    if record["tarball"] is None:
        what = "record" if section is None else "section [%s]" % section
        raise MetadataError(path, start, "%s has no tarball=" % what)
    if not record["sha256"]:
        # Every entry of Sage's tree has sha256; sha1 is legacy, not enough alone.
        raise MetadataError(path, linenos.get("sha256", start),
                            "no sha256= for %s" % record["tarball"])
    for key, length in DIGEST_LENGTHS:
        value = record[key]
        if value is not None and not _DIGEST[key].match(value):
            raise MetadataError(path, linenos[key], "%s= must be %d lower-case hexadecimal "
                                "digits, found %s" % (key, length, show(value[:80])))
    record["upstream_url"] = record["upstream_url"] or None
    return record, linenos, section


def check_section(record, linenos, section, filename, path, version):
    """A ``[section]`` names its file: ``tarball=`` must name the same one
    once VERSION is substituted in both (wheel sections write
    ``tarball=pkg-VERSION-...whl`` under ``[pkg-1.0-...whl]``)."""
    if section is None or section == filename:
        return
    try:
        same = expand(section, version) == filename
    except UsageError:
        same = False
    if not same:
        raise MetadataError(path, linenos.get("tarball", linenos[""]),
                            "tarball=%s does not match its section [%s]"
                            % (record["tarball"], section))
