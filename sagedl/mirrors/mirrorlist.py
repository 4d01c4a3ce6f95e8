"""Which Sage mirrors exist: the Mirror value, mirrors.toml, and Sage's live list.

* mirrors.toml is shipped inside the package (generated from the Sage
  website's mirrors.yaml by tools/make_mirrors_toml.py); a user's file
  (--mirrors-file, else ~/.config/sagedl/mirrors.toml) replaces it.
* Sage's live https://www.sagemath.org/mirror_list (or a list an
  .upstream.d line names) is fetched with a short deadline, parsed without
  eval, and cached for a day; a broken download never replaces a good cache.

Which of them answers fastest is probe.py's job; which misbehaved lately,
health.py's.  Everything on disk here is a cache: a corrupt or unwritable
file is ignored (and rewritten next time), never fatal.
"""

from __future__ import absolute_import

import hashlib
import os
import pkgutil
import re
import time

from sagedl.compat import compat_makedirs, compat_text_types, compat_urlsplit
from sagedl.errors import LockTimeout, MetadataError, SagedlError, SourceFailure
from sagedl.mirrors.tomlreader import loads as toml_loads
from sagedl.net.urls import base_url_problem, hostname, redact
from sagedl.paths import cache_dir, config_dir

DEFAULT_PRIORITY = 50          # what tools/make_mirrors_toml.py writes when mirrors.yaml has none
MIRRORS_TOML = "mirrors.toml"

MIRROR_LIST_URL = "https://www.sagemath.org/mirror_list"
MIRROR_LIST_TTL = 24 * 3600    # Sage's own MirrorList.MAXAGE
MAX_LIST_BYTES = 256 * 1024    # the real list is about 2 KB
MAX_LIST_ENTRIES = 500
LIST_FETCH_TIMEOUT = 10.0
LIST_LOCK_TIMEOUT = 30.0       # longer than a fetch: the holder is fetching


# -- the mirror value and the mirror files -------------------------------------
class Mirror(object):
    """One mirror: its base URL (always ending in '/') and where it is."""

    __slots__ = ("url", "name", "country", "region", "priority")

    def __init__(self, url, name=None, country="", region="", priority=DEFAULT_PRIORITY):
        self.url = url if url.endswith("/") else url + "/"
        self.name = name or hostname(url) or redact(url)
        self.country = country
        self.region = region
        self.priority = priority

    def _key(self):
        return (self.url, self.name, self.country, self.region, self.priority)

    def __eq__(self, other):
        return isinstance(other, Mirror) and self._key() == other._key()

    def __ne__(self, other):  # Python 2 does not derive != from ==
        return not self == other

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return "Mirror(%r, %r)" % (self.url, self.name)




def mirrors_from_data(data, path):
    """The Mirrors of a parsed mirrors.toml; MetadataError naming ``path`` if malformed.

    Unknown keys are ignored, so newer files still load in older sagedl.
    """
    entries = data.get("mirror")
    if not isinstance(entries, list) or not entries:
        raise MetadataError(path, None, "no [[mirror]] entries",
                            hint="each mirror is a [[mirror]] table with at least url = \"...\"")
    mirrors = []
    seen = set()
    for n, entry in enumerate(entries, 1):
        where = "mirror #%d" % n
        if not isinstance(entry, dict):
            raise MetadataError(path, None, "%s is not a table" % where)
        url = entry.get("url")
        problem = "is missing" if url is None else base_url_problem(url)
        if problem:
            raise MetadataError(path, None, "%s: url %s" % (where, problem),
                                hint="a mirror url looks like \"https://host/path/\"")
        fields = {}
        for key in ("name", "country", "region"):
            value = entry.get(key, "")
            if not isinstance(value, compat_text_types):
                raise MetadataError(path, None, "%s: %s must be a string" % (where, key))
            fields[key] = value
        priority = entry.get("priority", DEFAULT_PRIORITY)
        if isinstance(priority, bool) or not isinstance(priority, (int, type(2 ** 64))):
            raise MetadataError(path, None, "%s: priority must be an integer" % where)
        mirror = Mirror(url, fields["name"] or None, fields["country"], fields["region"], priority)
        if mirror.url not in seen:
            seen.add(mirror.url)
            mirrors.append(mirror)
    return mirrors


def parse_mirrors_toml(data, path):
    return mirrors_from_data(toml_loads(data, path), path)


def load_shipped():
    """The mirror list shipped with sagedl, sagedl/mirrors.toml.

    pkgutil.get_data reads it alike from the pyz, from a pip-installed
    package (package data) and from a source checkout.
    """
    where = "sagedl/" + MIRRORS_TOML
    try:
        data = pkgutil.get_data("sagedl", MIRRORS_TOML)
    except (IOError, OSError):
        data = None
    if data is None:
        raise SagedlError("the shipped mirror list (%s) is missing" % where,
                          hint="this sagedl is incompletely installed; use --mirror URL "
                               "or --mirrors-file FILE meanwhile")
    return parse_mirrors_toml(data, where)


# A mirrors.toml is a few KiB; a bigger one is not a mirror list (what
# sagedl reads from disk is bounded, and a FIFO is never waited on).
MAX_TOML_BYTES = 1 << 20


def load_file(path):
    from sagedl.engine import fsutil
    try:
        data = fsutil.read_bounded(path, MAX_TOML_BYTES, follow=True)
    except fsutil.TooLarge:
        raise MetadataError(path, None, "larger than %d bytes: not a mirror list" % MAX_TOML_BYTES)
    except fsutil.UnsafePath as e:
        raise MetadataError(path, None, "cannot read: it is %s" % fsutil.describe(e.kind))
    except (IOError, OSError) as e:
        raise MetadataError(path, None, "cannot read: %s" % (e.strerror or e))
    return parse_mirrors_toml(data, path)


def configured_file(mirrors_file=None, env=None):
    """The mirrors file in force: --mirrors-file, else the user's, else None (shipped)."""
    if mirrors_file:
        return mirrors_file
    user = os.path.join(config_dir(env), MIRRORS_TOML)
    return user if os.path.isfile(user) else None


def load_configured(mirrors_file=None, env=None):
    """Mirrors from --mirrors-file PATH > config_dir/mirrors.toml > the shipped list."""
    path = configured_file(mirrors_file, env)
    return load_file(path) if path else load_shipped()


# -- Sage's live mirror list -----------------------------------------------------
def parse_mirror_list(text, origin):
    """The base URLs in Sage's mirror_list: '#' comments, then a Python list of strings.

    Parsed by hand, never evaluated: only a list of quoted http(s) URLs is
    accepted, its size bounded; anything else is a MetadataError.  An empty
    list is an error too (it would leave nothing to download from).
    """
    if isinstance(text, bytes):
        if len(text) > MAX_LIST_BYTES:
            raise MetadataError(origin, None, "mirror list larger than %d bytes" % MAX_LIST_BYTES)
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise MetadataError(origin, None, "mirror list is not UTF-8 text")
    if len(text) > MAX_LIST_BYTES:
        raise MetadataError(origin, None, "mirror list larger than %d bytes" % MAX_LIST_BYTES)
    urls = _ListScanner(text, origin).scan()
    if not urls:
        raise MetadataError(origin, None, "the mirror list is empty")
    seen = set()
    result = []
    for url in urls:
        url = url if url.endswith("/") else url + "/"
        if url not in seen:
            seen.add(url)
            result.append(url)
    return result


class _ListScanner(object):
    """A tokenizer for exactly: comments, whitespace, [ 'str', "str", ... ]."""

    def __init__(self, text, origin):
        self.text = text
        self.origin = origin
        self.pos = 0

    def error(self, message):
        raise MetadataError(self.origin, self.text.count("\n", 0, self.pos) + 1, message)

    def skip(self):
        text, n = self.text, len(self.text)
        while self.pos < n:
            c = text[self.pos]
            if c in " \t\r\n\f":
                self.pos += 1
            elif c == "#":
                end = text.find("\n", self.pos)
                self.pos = n if end < 0 else end
            else:
                return

    def peek(self):
        self.skip()
        return self.text[self.pos:self.pos + 1]

    def scan(self):
        if self.peek() != "[":
            self.error("expected a Python list of mirror URLs")
        self.pos += 1
        urls = []
        while True:
            c = self.peek()
            if c == "]":
                self.pos += 1
                break
            urls.append(self.string())
            if len(urls) > MAX_LIST_ENTRIES:
                self.error("more than %d mirrors" % MAX_LIST_ENTRIES)
            c = self.peek()
            if c == ",":
                self.pos += 1
            elif c != "]":
                self.error("expected ',' or ']' after a URL")
        if self.peek():
            self.error("unexpected text after the list")
        return urls

    def string(self):
        text = self.text
        if text[self.pos:self.pos + 1] in ("u", "U"):  # a Python 2 repr()
            self.pos += 1
        quote = text[self.pos:self.pos + 1]
        if quote not in ("'", '"'):
            self.error("expected a quoted URL, found %r" % (text[self.pos:self.pos + 20],))
        end = text.find(quote, self.pos + 1)
        if end < 0:
            self.error("unterminated string")
        value = text[self.pos + 1:end]
        if "\n" in value or "\\" in value:
            self.error("unsupported string (newline or escape)")
        problem = base_url_problem(value)
        if problem:
            self.error("%r %s" % (value[:80], problem))
        self.pos = end + 1
        return value


def _list_cache_path(env, url):
    name = "mirror_list"
    if url != MIRROR_LIST_URL:  # a different list (e.g. from .upstream.d) gets its own file
        name += "-" + hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return os.path.join(cache_dir(env), name)


def _serialise_list(urls, url, fetched_at):
    lines = ["# sagedl cache of %s" % url, "# fetched-at: %r" % float(fetched_at), "["]
    lines += ["    %s," % _py_quote(u) for u in urls]
    return ("\n".join(lines + ["]"]) + "\n").encode("utf-8")


def _py_quote(url):
    return "'%s'" % url  # base_url_problem() guarantees no quote or backslash inside


_FETCHED_AT_RE = re.compile(r"^# fetched-at: ([0-9.eE+-]+)$", re.M)


def _read_list_cache(path):
    """(fetched_at or None, urls) of the cached list, or None if absent or corrupt."""
    from sagedl.engine import fsutil
    try:
        data = fsutil.read_bounded(path, MAX_LIST_BYTES)
    except (IOError, OSError, ValueError, SagedlError):   # absent, too large, not a file
        return None
    try:
        urls = parse_mirror_list(data, path)
    except MetadataError:
        return None
    m = _FETCHED_AT_RE.search(data.decode("utf-8"))
    try:
        fetched_at = float(m.group(1)) if m else None
    except ValueError:
        fetched_at = None
    return fetched_at, urls


def _is_fresh(stamp, now, ttl):
    # A stamp in the future (clock changed) is not trusted.
    return stamp is not None and 0 <= now - stamp < ttl


def live_mirror_list(url, fetcher, env=None, ttl=MIRROR_LIST_TTL, clock=time.time,
                     fallback=None, fetch_timeout=LIST_FETCH_TIMEOUT,
                     lock_timeout=LIST_LOCK_TIMEOUT):
    """(mirrors, origin, problem): Sage's live mirror list, from the best place available.

    Order: a fresh cache ("cache") > a download ("fetched") > a stale cache
    ("stale cache") > ``fallback`` (default: the shipped list; "shipped").
    ``problem`` says why the download was not used, when it was not.
    ``fetcher(url, timeout) -> bytes`` raises SagedlError or SourceFailure.

    The refresh happens under a lock so concurrent sagedl processes fetch
    once; the cache is replaced atomically and only by a list that parsed
    (an empty or broken download never replaces a good cache).
    """
    path = _list_cache_path(env, url)
    cached = _read_list_cache(path)
    if cached and _is_fresh(cached[0], clock(), ttl):
        return _enrich(cached[1]), "cache", None
    problem = None
    try:
        compat_makedirs(os.path.dirname(path))
        from sagedl.engine.lock import FileLock
        with FileLock(path + ".lock", lock_timeout, "refreshing the Sage mirror list"):
            cached = _read_list_cache(path)  # another process may have refreshed it
            if cached and _is_fresh(cached[0], clock(), ttl):
                return _enrich(cached[1]), "cache", None
            urls, problem = _fetch_list(url, fetcher, fetch_timeout)
            if urls:
                _write_quietly(path, _serialise_list(urls, url, clock()))
                return _enrich(urls), "fetched", None
    except (LockTimeout, SagedlError, EnvironmentError) as e:
        # No cache directory, no lock: still try the network, without caching.
        if problem is None:
            urls, problem = _fetch_list(url, fetcher, fetch_timeout)
            if urls:
                return _enrich(urls), "fetched", None
            problem = problem or str(e)
    if cached:
        return _enrich(cached[1]), "stale cache", problem
    return (load_shipped() if fallback is None else list(fallback)), "shipped", problem


def _fetch_list(url, fetcher, timeout):
    try:
        return parse_mirror_list(fetcher(url, timeout), url), None
    except (SagedlError, SourceFailure, EnvironmentError) as e:
        from sagedl.net.urls import redact
        return None, (str(e) if isinstance(e, MetadataError) else "%s: %s" % (redact(url), e))


def _enrich(urls):
    """Mirrors for live-list URLs, named from the shipped list where it knows them."""
    try:
        known = dict((_same_mirror_key(m.url), m) for m in load_shipped())
    except SagedlError:
        known = {}
    result = []
    for url in urls:
        m = known.get(_same_mirror_key(url))
        result.append(Mirror(url, m.name, m.country, m.region, m.priority) if m else Mirror(url))
    return result


def _same_mirror_key(url):
    # The live list and mirrors.yaml sometimes differ only in http vs https.
    parts = compat_urlsplit(url)
    return ((parts.hostname or "").lower(), parts.path.rstrip("/"))


def _write_quietly(path, data):
    """Atomically replace ``path`` (fsutil.write_atomic: a fresh O_EXCL
    temporary file, then a rename; a symlink or device there is refused);
    a cache write never fails a run."""
    from sagedl.engine import fsutil
    try:
        compat_makedirs(os.path.dirname(path))
        fsutil.write_atomic(path, data)
        return True
    except (IOError, OSError, SagedlError):
        return False


