"""Checking: what a file must be (size, sha256, sha1), hashed while streaming.

A mismatch error carries both digests, so a user can tell a stale checksum
from a bad mirror.
"""

from __future__ import absolute_import

import re

from sagedl.compat import compat_buffer_slice
from sagedl.errors import UsageError

# The digests sagedl checks and their lengths in hex digits: what --sha256,
# --sha1 and checksums.ini (sage/tree.py) must give.
DIGEST_LENGTHS = (("sha256", 64), ("sha1", 40))
HEX = dict(DIGEST_LENGTHS)


class Expected(object):
    """The known facts about a file.  Any of them may be None."""

    def __init__(self, size=None, sha256=None, sha1=None):
        self.size = size
        self.sha256 = _check_hex("sha256", sha256)
        self.sha1 = _check_hex("sha1", sha1)

    def known(self):
        """True when the content is pinned by a digest (a size alone is not enough)."""
        return bool(self.sha256 or self.sha1)

    def __repr__(self):
        return "Expected(size=%r, sha256=%r, sha1=%r)" % (self.size, self.sha256, self.sha1)


def _check_hex(name, value):
    if value is None:
        return None
    value = value.strip().lower()
    if not re.match(r"^[0-9a-f]{%d}$" % HEX[name], value):
        raise UsageError("invalid %s digest %r (want %d hex digits)" % (name, value, HEX[name]))
    return value


class Hasher(object):
    """sha256 always (every Sage checksum has it, and make-mirror writes it
    to SHA256SUMS), sha1 only when it is to be checked."""

    def __init__(self, expected):
        self.expected = expected
        import hashlib   # not at import: sage/tree.py needs DIGEST_LENGTHS on a quick start-up
        self.sha256 = hashlib.sha256()
        self.sha1 = hashlib.sha1() if expected.sha1 else None
        self.size = 0

    def update(self, data):
        self.sha256.update(data)
        if self.sha1 is not None:
            self.sha1.update(data)
        self.size += len(data)

    def mismatch(self):
        """None if everything known matches, else a one-line reason."""
        e = self.expected
        if e.size is not None and self.size != e.size:
            return "size %d, expected %d" % (self.size, e.size)
        got = self.sha256.hexdigest()
        if e.sha256 and got != e.sha256:
            return "sha256 %s, expected %s" % (got, e.sha256)
        if e.sha1 and self.sha1.hexdigest() != e.sha1:
            return "sha1 %s, expected %s" % (self.sha1.hexdigest(), e.sha1)
        return None

    def short_mismatch(self):
        """The same, with digests cut to 12 hex digits: for per-source lists."""
        e = self.expected
        if e.size is not None and self.size != e.size:
            return "size %d, expected %d" % (self.size, e.size)
        if e.sha256 and self.sha256.hexdigest() != e.sha256:
            return "got sha256 %s..." % self.sha256.hexdigest()[:12]
        if e.sha1 and self.sha1.hexdigest() != e.sha1:
            return "got sha1 %s..." % self.sha1.hexdigest()[:12]
        return None


def hash_file(path, expected, limit=None, block=1 << 20, fileobj=None):
    """Hash the first ``limit`` bytes of path (all if None) into a new Hasher.
    ``fileobj``: read from this already opened file instead of opening path
    (the engine opens NAME.part without following symlinks)."""
    try:
        if fileobj is not None:
            return _hash_from(fileobj, expected, limit, block)
        with open(path, "rb", 0) as f:
            return _hash_from(f, expected, limit, block)
    except (IOError, OSError) as e:
        # An unreadable file (another user's, mode 0600) is a one-line
        # error, exit 6, for the engine, verify DIR and make-mirror alike:
        # it once surfaced as "internal error".
        from sagedl.engine.fsutil import access_error
        raise access_error("read", path, e)


def _hash_from(f, expected, limit, block):
    h = Hasher(expected)
    buf = bytearray(block)
    view = memoryview(buf)
    left = limit
    while left is None or left > 0:
        n = f.readinto(view if left is None or left >= block else view[:left])
        if not n:
            break
        h.update(compat_buffer_slice(buf, view, n))
        if left is not None:
            left -= n
    return h


def verify_file(path, expected):
    """(ok, reason) for an existing file."""
    h = hash_file(path, expected)
    reason = h.mismatch()
    return reason is None, reason
