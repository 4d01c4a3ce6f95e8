"""Sage download mirrors: which exist, which answer fastest, which misbehaved.

* The list: mirrors.toml shipped inside the package (generated from the Sage
  website's mirrors.yaml by tools/make_mirrors_toml.py), or a user's file
  (--mirrors-file, else ~/.config/sagedl/mirrors.toml); and Sage's live
  https://www.sagemath.org/mirror_list, cached for a day.
* Ranking: every mirror is probed at once with non-blocking sockets (a HEAD
  request; the time to the first byte of the answer), under ONE deadline for
  the whole ranking.  Results are cached for an hour.
* Health: the downloader reports each source's outcome; a mirror whose last
  result, less than a day ago, was a failure goes to the end of the ranking.

Everything on disk here is a cache: a corrupt or unwritable file is ignored
(and rewritten next time), never fatal.
"""

import errno
import hashlib
import json
import os
import pkgutil
import random
import re
import select
import socket
import tempfile
import threading
import time

from sagedl import __version__
from sagedl.compat import (compat_makedirs, compat_monotonic, compat_replace, compat_str,
                           compat_text_types, compat_urlsplit)
from sagedl.errors import LockTimeout, MetadataError, SagedlError, SourceFailure
from sagedl.paths import cache_dir, config_dir
from sagedl.tomlreader import loads as toml_loads

DEFAULT_PRIORITY = 50          # what tools/make_mirrors_toml.py writes when mirrors.yaml has none
MIRRORS_TOML = "mirrors.toml"

MIRROR_LIST_URL = "https://www.sagemath.org/mirror_list"
MIRROR_LIST_TTL = 24 * 3600    # Sage's own MirrorList.MAXAGE
MAX_LIST_BYTES = 256 * 1024    # the real list is about 2 KB
MAX_LIST_ENTRIES = 500
MAX_URL_LENGTH = 2048
LIST_FETCH_TIMEOUT = 10.0
LIST_LOCK_TIMEOUT = 30.0       # longer than a fetch: the holder is fetching

RANK_DEADLINE = 1.2
RANK_WANT = 3
RANKING_TTL = 3600
NEAR_BEST_FACTOR = 1.5         # mirrors within 1.5x the best latency + 5 ms
NEAR_BEST_MARGIN = 0.005       # are "as good as the best": pick among them at random
HAPPY_EYEBALLS_DELAY = 0.25    # RFC 8305's connection attempt delay
MAX_DNS_THREADS = 32

HEALTH_WINDOW = 24 * 3600      # a failure this recent demotes the mirror
HEALTH_KEEP = 30 * 24 * 3600   # older records are dropped
HEALTH_MAX_ENTRIES = 500
CACHE_LOCK_TIMEOUT = 5.0

OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"            # not measured: the ranking stopped early

_URL_FORBIDDEN_RE = re.compile(r"[^\x21-\x7e]|[\"'\\<>`{}|^]")


# -- the mirror value and the mirror files -------------------------------------
class Mirror(object):
    """One mirror: its base URL (always ending in '/') and where it is."""

    __slots__ = ("url", "name", "country", "region", "priority")

    def __init__(self, url, name=None, country="", region="", priority=DEFAULT_PRIORITY):
        self.url = url if url.endswith("/") else url + "/"
        self.name = name or _hostname(url) or url
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


def _hostname(url):
    try:
        return compat_urlsplit(url).hostname
    except ValueError:
        return None


def url_problem(url):
    """Why ``url`` cannot be a mirror base URL, or None when it can."""
    if not isinstance(url, compat_text_types):
        return "is not a string"
    if len(url) > MAX_URL_LENGTH:
        return "is too long"
    if _URL_FORBIDDEN_RE.search(url):
        return "contains spaces, quotes or non-ASCII characters"
    try:
        parts = compat_urlsplit(url)
        parts.port  # raises ValueError for a bad port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme.lower() not in ("http", "https"):
        return "is not an http or https URL"
    if not parts.hostname:
        return "has no host"
    if parts.username is not None:
        return "contains a user name"
    if parts.query or parts.fragment:
        return "has a query or fragment"
    return None


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
        problem = "is missing" if url is None else url_problem(url)
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


def load_file(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
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
        problem = url_problem(value)
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
    return "'%s'" % url  # url_problem() guarantees no quote or backslash inside


_FETCHED_AT_RE = re.compile(r"^# fetched-at: ([0-9.eE+-]+)$", re.M)


def _read_list_cache(path):
    """(fetched_at or None, urls) of the cached list, or None if absent or corrupt."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_LIST_BYTES + 1)
    except (IOError, OSError):
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
        from sagedl.lock import FileLock
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


def live_mirrors(url, fetcher, env=None, ttl=MIRROR_LIST_TTL, clock=time.time):
    """The Mirrors of Sage's live list (see live_mirror_list for the fallbacks)."""
    return live_mirror_list(url, fetcher, env=env, ttl=ttl, clock=clock)[0]


def _fetch_list(url, fetcher, timeout):
    try:
        return parse_mirror_list(fetcher(url, timeout), url), None
    except (SagedlError, SourceFailure, EnvironmentError) as e:
        from sagedl.transport import redact
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
    """Atomically replace ``path`` (temp file + rename); a cache write never fails a run."""
    try:
        directory = os.path.dirname(path)
        compat_makedirs(directory)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            compat_replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        return True
    except (IOError, OSError):
        return False


# -- probing ---------------------------------------------------------------------
class Ranked(object):
    """One mirror's place in a ranking.

    status OK: ``latency`` is the seconds from connect start to the first
    byte of the response.  FAILED: latency None, ``reason`` says why.
    SKIPPED: latency None; the ranking stopped before this mirror answered.
    """

    __slots__ = ("mirror", "status", "latency", "reason")

    def __init__(self, mirror, status, latency=None, reason=None):
        self.mirror = mirror
        self.status = status
        self.latency = latency
        self.reason = reason

    @property
    def ok(self):
        return self.status == OK

    def __repr__(self):
        if self.ok:
            return "<Ranked %s %.1f ms>" % (self.mirror.url, self.latency * 1000)
        return "<Ranked %s %s: %s>" % (self.mirror.url, self.status, self.reason)


def rank(mirrors, deadline=RANK_DEADLINE, want=RANK_WANT, env=None, rng=None,
         ssl_context=None, path="", resolver=None):
    """Probe ``mirrors`` in parallel and return them ranked, best first (Ranked list).

    Each probe connects (through the proxy that proxy.proxy_for picks from
    ``env``: an absolute-URI request for http, CONNECT then TLS for https),
    sends ``HEAD <mirror url + path>`` and times the first byte of the
    response.  A mirror answers OK with a status below 400 (below 500 when
    ``path`` is empty: any answer proves a live server at the base URL).

    ONE deadline covers the whole call, resolution included: hung connects
    and silent servers cost nothing beyond it and the call returns by then.
    It returns earlier once ``want`` mirrors answered AND every mirror still
    pending has been running longer than the near-best window (1.5x the best
    latency + 5 ms) -- so no mirror that could still be near-best is cut off.
    Those are SKIPPED, not FAILED.  ``want=None`` waits for every mirror.

    Order: answered mirrors within the near-best window in random order
    (``rng``, so load spreads over equally good mirrors), then the other
    answered ones by latency, then SKIPPED, then FAILED (by priority).

    Name resolution blocks in getaddrinfo, so names are resolved in daemon
    threads (at most MAX_DNS_THREADS at once); IP literals are not resolved.
    A resolver hanging past the deadline is abandoned (its thread ends when
    the system resolver gives up); everything else is closed before return.
    """
    probes = _Prober(_as_mirrors(mirrors), deadline, want, env, ssl_context, path,
                     resolver).run()
    return order_ranking(probes, rng)


def _as_mirrors(mirrors):
    result, seen = [], set()
    for m in mirrors:
        m = m if isinstance(m, Mirror) else Mirror(m)
        if m.url not in seen:
            seen.add(m.url)
            result.append(m)
    return result


def order_ranking(results, rng=None):
    """Pure: the ranking order described in rank(), from unordered Ranked values."""
    rng = rng or random.Random()
    answered = sorted((r for r in results if r.ok), key=lambda r: r.latency)
    if answered:
        limit = answered[0].latency * NEAR_BEST_FACTOR + NEAR_BEST_MARGIN
        near = [r for r in answered if r.latency <= limit]
        rng.shuffle(near)
        answered = near + answered[len(near):]
    by_priority = lambda r: -r.mirror.priority  # noqa: E731 (sorted() is stable)
    skipped = sorted((r for r in results if r.status == SKIPPED), key=by_priority)
    failed = sorted((r for r in results if r.status == FAILED), key=by_priority)
    return answered + skipped + failed


_CONNECT_PENDING = set([errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EALREADY,
                        10035])  # WSAEWOULDBLOCK
_STATUS_RE = re.compile(br"^HTTP/\d\.\d (\d\d\d)")

try:
    import ssl as _ssl
    _SSL_WANT_READ = _ssl.SSLWantReadError
    _SSL_WANT_WRITE = _ssl.SSLWantWriteError
    _SSL_ERRORS = (_ssl.SSLError, getattr(_ssl, "CertificateError", ValueError))
except (ImportError, AttributeError):  # Python built without ssl
    _ssl = None
    _SSL_WANT_READ = _SSL_WANT_WRITE = ()
    _SSL_ERRORS = ()


def _describe(e):
    """A short reason from a socket or TLS exception."""
    if _ssl is not None and isinstance(e, _ssl.SSLError):
        return "TLS error: %s" % (getattr(e, "reason", None) or e)
    if isinstance(e, EnvironmentError) and e.errno:
        return (e.strerror or os.strerror(e.errno)).lower()
    return str(e) or e.__class__.__name__


class _Target(object):
    """Where a probe connects and what it says, decided before any I/O."""

    def __init__(self, mirror, path, env):
        url = mirror.url + path.lstrip("/")
        problem = url_problem(url)
        if problem:
            raise ValueError("URL %s" % problem)
        parts = compat_urlsplit(url)
        self.tls = parts.scheme.lower() == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        bracketed = "[%s]" % self.host if ":" in self.host else self.host
        host_header = bracketed + (":%d" % parts.port if parts.port else "")
        request_path = parts.path or "/"
        self.tunnel = None
        self.connect_host, self.connect_port = self.host, self.port
        self.via = ""
        extra = []
        proxy_url = _proxy_for(url, env)
        if proxy_url:
            from sagedl.proxy import parse_proxy
            try:
                scheme, phost, pport, pauth = parse_proxy(proxy_url)
            except ValueError:
                raise ValueError("bad proxy URL in the environment")
            if scheme != "http":
                raise ValueError("cannot probe through a %s:// proxy (only http://)" % scheme)
            self.connect_host, self.connect_port = phost, pport
            self.via = " to the proxy %s:%d" % (phost, pport)
            auth = ["Proxy-Authorization: %s" % pauth] if pauth else []
            if self.tls:
                authority = "%s:%d" % (bracketed, self.port)  # CONNECT always names the port
                self.tunnel = _http_bytes(["CONNECT %s HTTP/1.1" % authority,
                                           "Host: %s" % authority] + auth)
            else:
                request_path = url  # RFC 7230 5.3.2: absolute-form to a proxy
                extra = auth
        self.request = _http_bytes(["HEAD %s HTTP/1.1" % request_path, "Host: %s" % host_header,
                                    "User-Agent: sagedl/%s (mirror probe)" % __version__,
                                    "Accept: */*", "Connection: close"] + extra)


def _http_bytes(lines):
    try:
        return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
    except (UnicodeError, ValueError):
        raise ValueError("URL is not ASCII")


def _proxy_for(url, env):
    env = os.environ if env is None else env
    if not any(k.lower().endswith("_proxy") for k in env):
        return None
    from sagedl.proxy import proxy_for
    return proxy_for(url, env)


class _Probe(object):
    def __init__(self, mirror, path):
        self.mirror = mirror
        self.target_path = path
        self.target = None
        self.addrs = None        # getaddrinfo results still to try
        self.attempts = []       # live _Attempts (several only while connecting)
        self.started = None      # monotonic time of the first connect
        self.last_start = None
        self.result = None       # Ranked once finished
        self.last_error = None
        self.first_byte = None   # monotonic time the answer's first byte arrived
        self.phase = "resolving"


class _Attempt(object):
    """One socket of one probe, stepping through connect / tunnel / TLS / request / answer."""

    def __init__(self, probe, addrinfo, ssl_context):
        self.probe = probe
        self.ssl_context = ssl_context
        family, socktype, proto, _, sockaddr = addrinfo
        self.phase = "connect"
        self.want_write = True
        self.buf = b""
        self.out = b""
        self.sock = socket.socket(family, socktype, proto)
        try:
            self.sock.setblocking(False)
            err = self.sock.connect_ex(sockaddr)
            if err and err not in _CONNECT_PENDING:
                raise socket.error(err, os.strerror(err))
        except BaseException:
            self.sock.close()
            raise

    def fileno(self):
        return self.sock.fileno()

    def close(self):
        try:
            self.sock.close()
        except EnvironmentError:
            pass

    def step(self, now):
        """Advance on readiness; returns 'connected', 'answered' or None.

        Raises socket/TLS errors and _ProbeFailed for a wrong answer.
        """
        target = self.probe.target
        if self.phase == "connect":
            err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                raise socket.error(err, os.strerror(err))
            if target.tunnel:
                self._start_send("tunnel-send", target.tunnel)
            elif target.tls:
                self._start_tls()
            else:
                self._start_send("send", target.request)
            self.step(now)  # try to make progress at once
            return "connected"
        if self.phase in ("send", "tunnel-send"):
            try:
                sent = self.sock.send(self.out)
            except _SSL_WANT_WRITE:
                return None
            except _SSL_WANT_READ:
                self.want_write = False
                return None
            except socket.error as e:
                if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                    return None
                raise
            self.out = self.out[sent:]
            if not self.out:
                self.phase = "tunnel-read" if self.phase == "tunnel-send" else "read"
                self.want_write = False
            return None
        if self.phase == "tls":
            try:
                self.sock.do_handshake()
            except _SSL_WANT_READ:
                self.want_write = False
                return None
            except _SSL_WANT_WRITE:
                self.want_write = True
                return None
            self._start_send("send", target.request)
            return self.step(now)
        return self._read(now)

    def _start_send(self, phase, data):
        self.phase = phase
        self.out = data
        self.want_write = True

    def _start_tls(self):
        if self.ssl_context is None:
            raise _ProbeFailed("no TLS support in this Python")
        self.sock = self.ssl_context.wrap_socket(self.sock, server_hostname=self.probe.target.host,
                                                 do_handshake_on_connect=False)
        self.phase = "tls"
        self.want_write = True

    def _recv(self):
        try:
            data = self.sock.recv(4096)
        except _SSL_WANT_READ:
            return None
        except socket.error as e:
            if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                return None
            raise
        # TLS may hold more decrypted bytes than the fd signals.
        while data and self.phase == "read" and getattr(self.sock, "pending", None) \
                and self.sock.pending() and len(self.buf) + len(data) < 4096:
            data += self.sock.recv(4096)
        return data

    def _read(self, now):
        data = self._recv()
        if data is None:
            return None
        if not data:
            raise _ProbeFailed("connection closed before an HTTP answer"
                               if not self.buf else "connection closed inside the status line")
        first = not self.buf
        self.buf += data
        if not b"HTTP/".startswith(self.buf[:5]):
            raise _ProbeFailed("not an HTTP server (answered %r)" % self.buf[:20])
        if self.phase == "tunnel-read":
            if b"\r\n\r\n" not in self.buf:
                if len(self.buf) > 16384:
                    raise _ProbeFailed("proxy answer to CONNECT too long")
                return None
            status = self._status()
            if status != 200:
                raise _ProbeFailed("proxy refused CONNECT: HTTP %d" % status)
            self.buf = b""
            self._start_tls()
            return self.step(now)
        if first:
            self.probe.first_byte = now
        if b"\n" not in self.buf:
            if len(self.buf) > 1024:
                raise _ProbeFailed("status line too long")
            return None
        status = self._status()
        limit = 400 if self.probe.target_path else 500
        if status >= limit:
            raise _ProbeFailed("HTTP %d" % status)
        return "answered"

    def _status(self):
        m = _STATUS_RE.match(self.buf)
        if not m:
            raise _ProbeFailed("malformed HTTP status line")
        return int(m.group(1))


class _ProbeFailed(Exception):
    pass


class _Resolver(object):
    """getaddrinfo in daemon threads: the one blocking call, kept off the event loop."""

    def __init__(self, resolve):
        self.resolve = resolve
        self.lock = threading.Lock()
        self.done = {}
        self.queue = []
        self.running = 0

    def submit(self, key):
        self.queue.append(key)
        self._spawn()

    def _spawn(self):
        while self.queue and self.running < MAX_DNS_THREADS:
            key = self.queue.pop(0)
            self.running += 1
            t = threading.Thread(target=self._run, args=(key,), name="sagedl-dns")
            t.daemon = True  # never keeps the process alive past a hung resolver
            t.start()

    def _run(self, key):
        try:
            result = (self.resolve(key[0], key[1]), None)
        except Exception as e:  # gaierror, UnicodeError for bad IDNA, ...
            result = (None, e)
        with self.lock:
            self.done[key] = result

    def take(self):
        with self.lock:
            done, self.done = self.done, {}
        self.running -= len(done)
        self._spawn()
        return done

    def busy(self):
        return self.running > 0 or bool(self.queue)


def _default_resolve(host, port):
    return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)


def _numeric(host, port):
    """getaddrinfo for an IP literal (no lookup, cannot block), or None for a name."""
    try:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None


class _Prober(object):
    def __init__(self, mirrors, deadline, want, env, ssl_context, path, resolver):
        self.mirrors = mirrors
        self.deadline = float(deadline)
        self.want = want
        self.env = env
        self.path = path or ""
        self.ssl_context = ssl_context
        self.resolver = _Resolver(resolver or _default_resolve)
        self.waiting = {}  # (host, port) -> probes waiting for that resolution

    def run(self):
        self.start = compat_monotonic()
        self.end = self.start + self.deadline
        probes = [_Probe(m, self.path) for m in self.mirrors]
        try:
            for p in probes:
                self._prepare(p)
            self._loop(probes)
        finally:
            for p in probes:
                for a in p.attempts:
                    a.close()
                p.attempts = []
        return [p.result for p in probes]

    def _prepare(self, p):
        try:
            p.target = _Target(p.mirror, self.path, self.env)
        except ValueError as e:
            self._fail(p, str(e))
            return
        if p.target.tls and self.ssl_context is None and _ssl is not None:
            self.ssl_context = _ssl.create_default_context()
        key = (p.target.connect_host, p.target.connect_port)
        numeric = _numeric(*key)
        if numeric is not None:
            self._resolved(p, numeric, compat_monotonic())
            return
        if key not in self.waiting:
            self.waiting[key] = []
            self.resolver.submit(key)
        self.waiting[key].append(p)

    def _resolved(self, p, addrs, now):
        if p.result is not None:
            return
        p.addrs = list(addrs)
        p.phase = "connect"
        if not p.addrs:
            self._fail(p, "host has no address")
            return
        p.started = now
        self._next_attempt(p, now)

    def _next_attempt(self, p, now):
        while p.addrs:
            addr = p.addrs.pop(0)
            try:
                p.attempts.append(_Attempt(p, addr, self.ssl_context))
                p.last_start = now
                return
            except EnvironmentError as e:
                p.last_error = _describe(e)
        if not p.attempts:
            self._fail(p, "cannot connect%s: %s" % (p.target.via, p.last_error or "no address"))

    def _fail(self, p, reason):
        for a in p.attempts:
            a.close()
        p.attempts = []
        p.result = Ranked(p.mirror, FAILED, None, reason)

    def _stop_time(self, probes, answered):
        """When ranking may stop early (see rank()), or None while it may not."""
        if not self.want or self.want <= 0 or len(answered) < self.want:
            return None
        best = min(p.result.latency for p in answered)
        window = best * NEAR_BEST_FACTOR + NEAR_BEST_MARGIN
        pending = [p.started or self.start for p in probes if p.result is None]
        return max(pending) + window if pending else None

    def _loop(self, probes):
        while True:
            now = compat_monotonic()
            for key, (addrs, err) in self.resolver.take().items():
                for p in self.waiting.pop(key, []):
                    if err is not None:
                        self._fail(p, "cannot resolve %s%s: %s"
                                   % (key[0], " (proxy)" if p.target.via else "", _describe(err)))
                    else:
                        self._resolved(p, addrs, now)
            for p in probes:  # Happy Eyeballs (RFC 8305): try the next address too
                if (p.result is None and p.addrs and p.attempts and p.phase == "connect"
                        and now - p.last_start >= HAPPY_EYEBALLS_DELAY):
                    self._next_attempt(p, now)
            pending = [p for p in probes if p.result is None]
            if not pending:
                return
            answered = [p for p in probes if p.result is not None and p.result.ok]
            stop = self._stop_time(probes, answered)
            if now >= self.end or (stop is not None and now >= stop):
                break
            timeout = min(self.end, stop if stop is not None else self.end) - now
            if self.resolver.busy():
                timeout = min(timeout, 0.01)  # resolver threads cannot wake select
            for p in pending:  # wake up for the next Happy Eyeballs attempt
                if p.phase == "connect" and p.addrs and p.attempts:
                    timeout = min(timeout, p.last_start + HAPPY_EYEBALLS_DELAY - now)
            readers, writers = [], []
            for p in pending:
                for a in p.attempts:
                    (writers if a.want_write else readers).append(a)
            ready = _wait(readers, writers, max(timeout, 0))
            now = compat_monotonic()
            for a in ready:
                self._step(a, now)
        early = now < self.end
        answered = len([p for p in probes if p.result is not None and p.result.ok])
        for p in probes:
            if p.result is not None:
                continue
            if early:
                p.result = Ranked(p.mirror, SKIPPED, None,
                                  "not measured: %d faster mirrors answered first" % answered)
            else:
                self._fail(p, "timed out after %.1f s %s" % (self.deadline, _phase_words(p)))

    def _step(self, a, now):
        p = a.probe
        if p.result is not None or a not in p.attempts:
            return
        try:
            outcome = a.step(now)
        except (_ProbeFailed, EnvironmentError, ValueError) + _SSL_ERRORS as e:
            a.close()
            p.attempts.remove(a)
            p.last_error = _describe(e)
            if p.phase == "connect" and a.phase == "connect":
                if not p.attempts:
                    self._next_attempt(p, now)
                return
            self._fail(p, p.last_error)
            return
        if outcome == "connected" or (p.phase == "connect" and a.phase != "connect"):
            for other in p.attempts:  # this address won: drop the others
                if other is not a:
                    other.close()
            p.attempts = [a]
            p.addrs = []
            p.phase = "talking"
        if outcome == "answered":
            a.close()
            p.attempts = []
            p.result = Ranked(p.mirror, OK, p.first_byte - p.started, None)


def _phase_words(p):
    if p.phase == "resolving":
        return "resolving the host name"
    if p.phase == "connect":
        return "connecting"
    a = p.attempts[0] if p.attempts else None
    return {"tunnel-send": "sending CONNECT to the proxy",
            "tunnel-read": "waiting for the proxy's CONNECT answer",
            "tls": "in the TLS handshake", "send": "sending the request"}.get(
        a.phase if a else "", "waiting for an answer")


def _wait(readers, writers, timeout):
    """The attempts ready among readers/writers, waiting at most ``timeout`` seconds.

    poll() where available (no FD_SETSIZE limit), select() elsewhere.  An
    error or hang-up counts as ready: the step then meets the error.
    """
    if not readers and not writers:
        if timeout > 0:
            time.sleep(timeout)  # only while resolvers run; bounded by the caller
        return []
    try:
        if hasattr(select, "poll"):
            poller = select.poll()
            by_fd = {}
            for a in readers:
                poller.register(a.fileno(), select.POLLIN)
                by_fd[a.fileno()] = a
            for a in writers:
                poller.register(a.fileno(), select.POLLOUT)
                by_fd[a.fileno()] = a
            return [by_fd[fd] for fd, _ in poller.poll(int(timeout * 1000 + 0.999))]
        r, w, x = select.select(readers, writers, writers, timeout)  # Windows: failed connects in x
        return list(set(r) | set(w) | set(x))
    except (select.error, OSError, IOError) as e:
        if (e.args and e.args[0] == errno.EINTR) or getattr(e, "errno", None) == errno.EINTR:
            return []  # Python 2 does not retry EINTR itself (PEP 475 is 3.5+)
        raise


# -- ranking cache and health record ---------------------------------------------
def _origin(url):
    """scheme://host:port of a URL: health is a server's, whatever the file."""
    try:
        parts = compat_urlsplit(url)
        scheme = parts.scheme.lower()
        host = (parts.hostname or "").lower()
        port = parts.port or {"http": 80, "https": 443}.get(scheme, 0)
    except ValueError:
        return url
    if ":" in host:
        host = "[%s]" % host
    return "%s://%s:%d" % (scheme, host, port)


def _read_json(path):
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read(4 << 20).decode("utf-8"))
    except (IOError, OSError, ValueError, UnicodeError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path, data):
    return _write_quietly(path, json.dumps(data, sort_keys=True, indent=1).encode("utf-8"))


def _number(x):
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def load_health(env=None):
    """origin -> record dict (ok, reason, last, last_ok, last_failure, failures)."""
    data = _read_json(os.path.join(cache_dir(env), "health.json")) or {}
    records = data.get("mirrors")
    if data.get("version") != 1 or not isinstance(records, dict):
        return {}
    good = {}
    for origin, rec in records.items():
        if (isinstance(rec, dict) and isinstance(rec.get("ok"), bool) and _number(rec.get("last"))
                and isinstance(rec.get("reason"), compat_text_types + (type(None),))):
            good[origin] = rec
    return good


def record_result(url, ok, reason, env=None, clock=time.time):
    """Note a download outcome for ``url``'s server (the CLI calls this per source).

    Returns False when the record could not be written (busy or read-only
    cache); health is advisory, so that is not an error.
    """
    return record_results([(url, ok, reason, clock())], env=env, clock=clock)


def record_results(results, env=None, clock=time.time):
    """record_result for many (url, ok, reason, when) at once, in order: one
    lock and one rewrite of health.json (a bulk download of 300 files took a
    cross-process lock per file, which serialised its workers)."""
    if not results:
        return True
    now = clock()
    directory = cache_dir(env)
    path = os.path.join(directory, "health.json")
    try:
        compat_makedirs(directory)
        from sagedl.lock import FileLock
        with FileLock(path + ".lock", CACHE_LOCK_TIMEOUT, "the mirror health record"):
            records = load_health(env)
            for url, ok, reason, when in results:
                key = _origin(url)
                rec = dict(records.get(key) or {})
                rec["ok"] = bool(ok)
                rec["reason"] = None if ok else ("%s" % (reason,) if reason else "failed")
                rec["last"] = when
                if ok:
                    rec["last_ok"] = when
                    rec["failures"] = 0
                else:
                    rec["last_failure"] = when
                    rec["failures"] = int(rec.get("failures") or 0) + 1
                records[key] = rec
            recent = sorted(((r["last"], o) for o, r in records.items()
                             if now - r["last"] < HEALTH_KEEP), reverse=True)
            keep = dict((o, records[o]) for _, o in recent[:HEALTH_MAX_ENTRIES])
            return _write_json(path, {"version": 1, "mirrors": keep})
    except (LockTimeout, SagedlError, EnvironmentError, ValueError):  # ValueError: bad text on 2.7
        return False


def is_unhealthy(record, now, window=HEALTH_WINDOW):
    """The last result was a failure, less than ``window`` seconds ago."""
    return bool(record) and record.get("ok") is False and 0 <= now - record["last"] < window


def demote_unhealthy(ranked, health, now, window=HEALTH_WINDOW):
    """Pure: the ranking with recently failed mirrors moved back, order otherwise kept.

    They go behind every mirror not known to be bad, but stay ahead of the
    mirrors whose probe just failed: a mirror that answers now is a better
    last resort than one that cannot even be reached.
    """
    bad = [r for r in ranked if r.status != FAILED
           and is_unhealthy(health.get(_origin(r.mirror.url)), now, window)]
    bad_ids = set(id(r) for r in bad)
    good = [r for r in ranked if id(r) not in bad_ids and r.status != FAILED]
    return good + bad + [r for r in ranked if r.status == FAILED]


def _ranking_key(mirrors, path, env):
    # The same mirrors through another proxy, or for another path, rank differently.
    material = sorted("%s|%s" % (m.url, _proxy_for(m.url + path.lstrip("/"), env) or "")
                      for m in mirrors)
    return hashlib.sha256(("\n".join(material) + "\n" + path).encode("utf-8")).hexdigest()


def _cached_ranking(path, key, mirrors, now, ttl):
    data = _read_json(path)
    if not data or data.get("version") != 1 or data.get("key") != key:
        return None
    if not _number(data.get("saved")) or not _is_fresh(data["saved"], now, ttl):
        return None
    by_url = dict((m.url, m) for m in mirrors)
    results = []
    for item in data.get("results") or []:
        try:
            mirror = by_url.pop(item["url"])
            status, latency, reason = item["status"], item["latency"], item["reason"]
        except (KeyError, TypeError):
            return None
        if status not in (OK, FAILED, SKIPPED) or (status == OK) != _number(latency):
            return None
        results.append(Ranked(mirror, status, latency, reason))
    return results if not by_url else None  # every mirror must be in it


def rank_cached(mirrors, env=None, clock=time.time, ttl=RANKING_TTL, refresh=False,
                rng=None, deadline=RANK_DEADLINE, want=RANK_WANT, ssl_context=None, path="",
                health_window=HEALTH_WINDOW):
    """rank(), reusing a ranking of the same mirrors less than ``ttl`` old, then
    demoting mirrors whose last download failed within ``health_window``.

    The cache keeps latencies, not the order: the near-best choice is drawn
    again on each call, so one cached ranking still spreads the load.  A
    ranking where nothing answered is not cached (offline now, maybe not soon).
    """
    mirrors = _as_mirrors(mirrors)
    now = clock()
    cache_path = os.path.join(cache_dir(env), "ranking.json")
    key = _ranking_key(mirrors, path, env)
    results = None if refresh else _cached_ranking(cache_path, key, mirrors, now, ttl)
    if results is None:
        results = _Prober(mirrors, deadline, want, env, ssl_context, path, None).run()
        if any(r.ok for r in results):
            _write_json(cache_path, {
                "version": 1, "saved": now, "key": key,
                "results": [{"url": r.mirror.url, "status": r.status, "latency": r.latency,
                             "reason": r.reason} for r in results]})
    return demote_unhealthy(order_ranking(results, rng), load_health(env), now, health_window)


# -- the --list-mirrors table ----------------------------------------------------
def _ago(seconds):
    if seconds < 60:
        return "just now"
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return "%d %s ago" % (seconds // size, unit)


def format_table(ranked, health, now=None, window=HEALTH_WINDOW):
    """Pure: a text table of a ranking: name, region, latency, health, last result, url."""
    now = time.time() if now is None else now
    rows = [("#", "name", "region", "latency", "health", "last result", "url")]
    for n, r in enumerate(ranked, 1):
        if r.ok:
            latency = ("%.1f ms" if r.latency < 0.01 else "%.0f ms") % (r.latency * 1000)
        elif r.status == SKIPPED:
            latency = "-"
        else:
            latency = _clip("failed: %s" % r.reason, 40)
        rec = health.get(_origin(r.mirror.url))
        if not rec:
            state, last = "unknown", "-"
        else:
            state = "failing" if is_unhealthy(rec, now, window) else "ok"
            what = "ok" if rec["ok"] else _clip(rec.get("reason") or "failed", 40)
            last = "%s, %s" % (what, _ago(max(0, now - rec["last"])))
        rows.append((str(n), r.mirror.name, r.mirror.region or "-", latency, state, last,
                     r.mirror.url))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [row[i].ljust(widths[i]) if i else row[i].rjust(widths[i])
                 for i in range(len(widths))]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def _clip(text, width):
    text = " ".join(compat_str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."
