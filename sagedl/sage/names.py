"""The names a Sage tree gives its files: which names are safe to use as
paths and in URLs, where a mirror serves a file, and the VERSION templates
of checksums.ini.

Why a module of its own: every name sagedl reads from a Sage tree or from
the command line passes through check_filename before any I/O, including on
a run that never reads a Sage tree (a URL and a file name); that check must
not cost the import of the tree's reader.
"""

from __future__ import absolute_import

import os

from sagedl.compat import compat_text_types
from sagedl.errors import UsageError
from sagedl.text import native_str

# Longer names are refused: 255 bytes is NAME_MAX on Linux, macOS and the BSDs.
MAX_FILENAME_BYTES = 255

MSG_UNSAFE = "unsafe %s %s: %s"
HINT_UNSAFE = "give a plain file name such as gap-4.16.0.tar.gz, or a package name such as gap"

# Where a Sage mirror serves a package's file: MIRROR_DIR/PKG/FILE.
MIRROR_DIR = "spkg/upstream"


def show(s):
    """repr() without Python 2's u prefix, so messages read the same everywhere."""
    r = repr(s)
    if r[:2] in ("u'", 'u"'):
        r = r[1:]
    return r


# ---------------------------------------------------------------------------
# File names

def check_filename(name, what="tarball name"):
    """Return ``name`` (the native str) if it is a plain file name, else raise UsageError.

    Called before any I/O on a user-supplied name and on every file name read
    from checksums.ini: the name becomes a path under SAGE_DISTFILES and part
    of URLs, so a '/', '..' or control character must never get that far.
    """
    if isinstance(name, bytes):  # Python 2 str, or Python 3 bytes
        try:
            name = name.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(MSG_UNSAFE % (what, show(name), "not UTF-8"), HINT_UNSAFE)
    if not isinstance(name, compat_text_types):
        raise UsageError(MSG_UNSAFE % (what, show(name), "not a string"), HINT_UNSAFE)
    reason = _unsafe_reason(name)
    if reason:
        raise UsageError(MSG_UNSAFE % (what, show(name), reason), HINT_UNSAFE)
    # 2.7: the native str (UTF-8 bytes), which joins with byte paths such as
    # a non-ASCII SAGE_ROOT; unicode there raised UnicodeDecodeError.
    return native_str(name)


def _invisible_char(name):
    """The first control or invisible character of name, or None."""
    if all(" " <= ch < "\x7f" for ch in name):
        return None     # printable ASCII, the usual case: no unicodedata import
    import unicodedata
    for ch in name:
        # Cc: C0/C1 controls incl. NUL; Cf: invisible format characters such as
        # U+202E (right-to-left override), which disguise a name on screen;
        # Cs: lone surrogates (undecodable bytes); Zl/Zp: line separators.
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            return ch
    return None


def _unsafe_reason(name):
    if not name:
        return "empty"
    bad = _invisible_char(name)
    if bad is not None:
        return "contains the invisible or control character U+%04X" % ord(bad)
    if "/" in name or "\\" in name:
        return "a path, not a plain file name"
    if name in (".", ".."):
        return "not a file name"
    if name != name.strip():
        return "leading or trailing whitespace"
    if os.path.isabs(name):
        return "an absolute path"
    if len(name.encode("utf-8")) > MAX_FILENAME_BYTES:
        return "longer than %d bytes" % MAX_FILENAME_BYTES
    return None


def mirror_path(package, filename):
    """spkg/upstream/PKG/FILE: a file's place on a Sage mirror, relative to
    its base.  The one definition of the layout: sources.py quotes the parts
    and appends it to a base URL, sitemirror.py writes and reads site
    mirrors with it."""
    return "%s/%s/%s" % (MIRROR_DIR, package, filename)


# ---------------------------------------------------------------------------
# Versions and templates: sage_bootstrap's rules, so that a tarball's name
# is the one Sage computes (and looks for in upstream/ and on mirrors)

def strip_patchlevel(version):
    """package-version.txt's text without Sage's patch level, as
    sage_bootstrap reads it: '1.0.8.p0' -> '1.0.8', and the *last* ``.pN``
    anywhere ends the version ('2.3.p1.post2' -> '2.3')."""
    from sagedl.sage.bootstrap import split_version
    return split_version(version)[0]


def expand(template, version):
    """Substitute VERSION, ${VERSION} and ${VERSION_MAJOR/MINOR/MICRO} as
    sage_bootstrap does (sagebootstrap.substitute): one occurrence at a
    time until none is left, the components being the dot-separated parts
    ('4.4.1p5' has micro '1p5').  ``version`` is already without its patch
    level.  Raises UsageError for a missing version or component, or a
    substitution that would not end; other ``${...}`` stay as they are, as
    in Sage.
    """
    if template is None:
        return None
    from sagedl.sage.bootstrap import SagePackageError, substitute
    try:
        return substitute(template, version, "")
    except SagePackageError as e:
        raise UsageError("%s: %s" % (show(template), e.message.replace("package  ", "")))
