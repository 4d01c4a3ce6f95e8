"""URLs, the way every part of sagedl that talks to a server sees them.

The transport (downloads) and the mirror probe (ranking) both go through
here to parse and check a URL, find its origin and default port, build a
Basic Authorization value, pick a proxy and resolve a host name with a
deadline.  One layer, so that the two can never follow different rules: a
proxy one of them refuses, the other refuses too.

Proxy rules (*_proxy / no_proxy) follow curl and Python's urllib where they
agree:

* ``http_proxy`` for http URLs, ``https_proxy`` for https URLs, then
  ``all_proxy``; each also in upper case, the lower-case name winning.
  An empty value counts as unset.
* The httpoxy rule: a CGI server turns a request's ``Proxy:`` header into the
  environment variable ``HTTP_PROXY``, so an attacker could pick our proxy.
  When ``REQUEST_METHOD`` is set we are running under CGI and upper-case
  ``HTTP_PROXY`` is ignored (https://httpoxy.org/).
* ``no_proxy`` (or ``NO_PROXY``) is a comma-separated list; ``*`` alone
  matches every host.  A name entry matches that domain and its subdomains:
  ``example.com`` and ``.example.com`` both match ``example.com`` and
  ``a.example.com`` but not ``badexample.com`` (``*.example.com`` is read as
  ``.example.com``).  ``host:port`` matches only that port.  IP literals
  (``10.1.2.3``, ``::1``, ``[::1]:8080``) match exactly, and CIDR blocks
  (``10.0.0.0/8``, ``fe80::/10``) match addresses inside them; names never
  match IP entries (no DNS lookups here).  Matching is case-insensitive and
  ignores surrounding whitespace and a trailing dot.
* A proxy given without a scheme (``proxy:3128``) is an http proxy; one
  without a port uses its scheme's default port (curl would use 1080).
"""

from __future__ import absolute_import

import base64
import binascii
import os
import re
import socket

from sagedl.compat import compat_text_types, compat_unquote, compat_urlsplit
from sagedl.errors import UsageError

DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_LENGTH = 2048
_IPV4_RE = re.compile(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}$")
_URL_FORBIDDEN_RE = re.compile(r"[^\x21-\x7e]|[\"'\\<>`{}|^]")


# -- parsing and checking ----------------------------------------------------------
def redact(url):
    """The URL without user:password, for every message we print."""
    try:
        parts = compat_urlsplit(url)
        parts.port      # an invalid URL: its authority may hide a password
    except ValueError:
        return _redact_raw(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc="***@" + host).geturl()


def _redact_raw(url):
    """A URL urlsplit cannot make sense of (a '/' or ':' in the password,
    say): hide everything from '//' to the last '@'."""
    try:
        head, sep, rest = url.partition("//")
    except (AttributeError, TypeError):
        return "<invalid URL>"
    if sep and "@" in rest:
        return head + sep + "***@" + rest.rsplit("@", 1)[1]
    return url


NOT_HTTP = "is not an http or https URL"


def url_problem(url):
    """Why sagedl cannot request ``url``, or None when it can.

    The one set of rules for every URL the transport or the probe is given:
    text without control characters, a valid authority and port, http or
    https, and a host that encodes to ASCII (IDNA for a Unicode name).  A
    problem reads after "URL": "has no host", "is not an http or https URL".
    """
    if not isinstance(url, compat_text_types):
        return "is not a string"
    if has_control(url):
        return "contains a control character"
    try:
        parts = compat_urlsplit(url)
        parts.port  # raises ValueError for a bad port
    except ValueError as e:
        return "does not parse (%s)" % e
    if parts.scheme.lower() not in DEFAULT_PORTS:
        return NOT_HTTP
    if not parts.hostname:
        return "has no host"
    if parts.port == 0:
        return "has port 0"     # no server listens there; it once meant port 80
    try:
        ascii_host(parts.hostname)
    except UsageError:
        return "has an invalid host name"
    return None


def base_url_problem(url):
    """Why ``url`` cannot be a mirror base URL, or None when it can.

    url_problem's rules, and stricter ones for base URLs read from mirror
    lists and files (they are written back into caches and joined with
    paths): bounded length, printable ASCII without quotes or brackets, no
    user name, no query or fragment.
    """
    if isinstance(url, compat_text_types):
        if len(url) > MAX_URL_LENGTH:
            return "is too long"
        if _URL_FORBIDDEN_RE.search(url):
            return "contains spaces, quotes or non-ASCII characters"
    problem = url_problem(url)
    if problem is not None:
        return problem
    parts = compat_urlsplit(url)
    if parts.username is not None:
        return "contains a user name"
    if parts.query or parts.fragment:
        return "has a query or fragment"
    return None


def check_url(url):
    """The split URL, or UsageError when url_problem finds one: foreign
    schemes (file:, ftp:, data:, ...) are refused before any I/O."""
    problem = url_problem(url)
    if problem is None:
        return compat_urlsplit(url)
    shown = redact(url) if isinstance(url, compat_text_types) else url
    if problem == NOT_HTTP:
        scheme = compat_urlsplit(url).scheme
        raise UsageError("refusing URL scheme %r in %s" % (str(scheme + ":"), shown),
                         hint="only http and https URLs are allowed")
    raise UsageError("invalid URL %r: it %s" % (shown[:200], problem))


def has_control(text):
    return any(ord(c) < 0x20 or ord(c) == 0x7f for c in text)


def ascii_host(host):
    """The host as sent in Host, SNI and DNS: ASCII, IDNA for a Unicode name."""
    try:
        if isinstance(host, bytes):     # a Python 2 str
            host.decode("ascii")
        else:
            host.encode("ascii")
        return host
    except UnicodeError:
        pass
    try:
        if isinstance(host, bytes):
            host = host.decode("utf-8")
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UsageError("invalid host name %r in URL" % (host,))


def hostname(url):
    """The host of ``url``, or None when it has none or does not parse."""
    try:
        return compat_urlsplit(url).hostname
    except ValueError:
        return None


# -- origins and credentials ---------------------------------------------------------
def port_of(parts):
    """The port a split URL connects to: its own, else its scheme's default
    (0 for a scheme without one).  Raises ValueError for a bad port."""
    port = parts.port
    return port if port is not None else DEFAULT_PORTS.get(parts.scheme.lower(), 0)


def origin(parts):
    """(scheme, host, port) of a split URL, lower-cased, the port made explicit:
    what RFC 6454 calls the origin.  Credentials never cross origins, and a
    mirror's health is its origin's."""
    return parts.scheme.lower(), (parts.hostname or "").lower(), port_of(parts)


def origin_key(url):
    """scheme://host:port of a URL as one string (a cache key), or the URL
    itself when it does not parse."""
    try:
        scheme, host, port = origin(compat_urlsplit(url))
    except ValueError:
        return url
    if ":" in host:
        host = "[%s]" % host
    return "%s://%s:%d" % (scheme, host, port)


def basic_auth(parts):
    """The Basic credentials (RFC 7617) of a split URL's user:password, or None."""
    if parts.username is None:
        return None
    raw = "%s:%s" % (compat_unquote(parts.username), compat_unquote(parts.password or ""))
    return "Basic " + base64.b64encode(raw.encode("utf-8")).decode("ascii")


# -- proxies -------------------------------------------------------------------------
def proxy_for(url, env=None):
    """The proxy URL to use for ``url``, or None to connect directly."""
    env = os.environ if env is None else env
    if not any(k.lower().endswith("_proxy") for k in env):
        return None   # the common case, decided without parsing anything
    parts = compat_urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = port_of(parts)
    except ValueError:  # a port that is not a number: let the caller fail on it
        port = DEFAULT_PORTS[scheme]
    if no_proxy_matches(parts.hostname, port, _get(env, "no_proxy", "NO_PROXY")):
        return None
    if scheme == "http":
        names = ["http_proxy"] if "REQUEST_METHOD" in env else ["http_proxy", "HTTP_PROXY"]
    else:
        names = ["https_proxy", "HTTPS_PROXY"]
    proxy = _get(env, *(names + ["all_proxy", "ALL_PROXY"]))
    if not proxy:
        return None
    return proxy if "://" in proxy else "http://" + proxy


def server_key(parts, env):
    """(scheme, host, port, proxy) of a split URL: what a connection is made
    to, the key of the connection pool and of the run's HostMemory."""
    return (parts.scheme.lower(), ascii_host(parts.hostname), port_of(parts),
            proxy_for(parts.geturl(), env))


def _get(env, *names):
    for name in names:
        value = (env.get(name) or "").strip()
        if value:
            return value
    return None


def parse_proxy(proxy_url):
    """(scheme, host, port, proxy_authorization_value_or_None) of a proxy URL.

    Raises ValueError for a proxy URL without a host or with a bad port.
    """
    if "://" not in proxy_url:
        proxy_url = "http://" + proxy_url
    parts = compat_urlsplit(proxy_url)
    scheme = parts.scheme.lower()
    if not parts.hostname:
        raise ValueError("the proxy %s has no host" % redact(proxy_url))
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        raise ValueError("the proxy %s has a bad port" % redact(proxy_url))
    port = port or DEFAULT_PORTS.get(scheme, 1080)
    return scheme, parts.hostname, port, basic_auth(parts)


PROXY_HINT = "point http_proxy/https_proxy/all_proxy at an http:// proxy, or unset them"


def proxy_endpoint(proxy_url):
    """(host, port, Proxy-Authorization value or None) of the proxy to connect to.

    Only http:// proxies are spoken to (a plain request for http URLs,
    CONNECT for https ones).  Anything else -- socks4/5://, an https://
    proxy, no host, a bad port -- raises ValueError saying so.  The
    transport and the probe both ask here, so a proxy one of them refuses,
    the other refuses too, with the same words (it once sent a plain GET to
    a SOCKS port while the probe refused it).
    """
    scheme, host, port, auth = parse_proxy(proxy_url)
    if scheme != "http":
        raise ValueError("cannot use the %s:// proxy %s: only http:// proxies are supported"
                         % (scheme, redact(proxy_url)))
    return host, port, auth


def _ip(text):
    """(family, integer) for an IP literal, else None."""
    text = text.split("%", 1)[0]  # an IPv6 zone id does not change the address
    try:
        if _IPV4_RE.match(text):
            return 4, int(binascii.hexlify(socket.inet_aton(text)), 16)
        if ":" in text and hasattr(socket, "inet_pton"):  # not on 2.7 for Windows
            return 6, int(binascii.hexlify(socket.inet_pton(socket.AF_INET6, text)), 16)
    except (socket.error, ValueError):
        pass
    return None


def _parse_entry(entry):
    """(host, port_or_None, prefix_bits_or_None) of one no_proxy entry, or None."""
    port = None
    if entry.startswith("["):
        end = entry.find("]")
        if end < 0:
            return None
        host, rest = entry[1:end], entry[end + 1:]
        if rest:
            if not rest.startswith(":"):
                return None
            port = rest[1:]
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    else:  # a name, an IPv4 address, or an IPv6 address without brackets
        host = entry
    if port is not None:
        if not port.isdigit():
            return None
        port = int(port)
    bits = None
    if "/" in host:
        host, bits = host.split("/", 1)
        if not bits.isdigit():
            return None
        bits = int(bits)
    return host, port, bits


def no_proxy_matches(host, port, no_proxy):
    """Whether ``host`` (port ``port``) is excluded from proxying by ``no_proxy``."""
    if not no_proxy or not host:
        return False
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    host_ip = _ip(host)
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if entry == "*":
            return True
        parsed = _parse_entry(entry) if entry else None
        if parsed is None:
            continue
        entry_host, entry_port, bits = parsed
        if entry_port is not None and entry_port != port:
            continue
        entry_ip = _ip(entry_host)
        if entry_ip is not None:
            if host_ip is None or host_ip[0] != entry_ip[0]:
                continue
            width = 32 if entry_ip[0] == 4 else 128
            keep = width if bits is None else min(bits, width)
            if host_ip[1] >> (width - keep) == entry_ip[1] >> (width - keep):
                return True
            continue
        if host_ip is not None or bits is not None:
            continue  # names never match addresses, and a CIDR needs an address
        domain = entry_host.rstrip(".")
        if domain.startswith("*."):
            domain = domain[1:]
        domain = domain.lstrip(".")
        if domain and (host == domain or host.endswith("." + domain)):
            return True
    return False


# -- name resolution -------------------------------------------------------------------
# The system resolver has no timeout of ours: a dead DNS server would hang a
# download, or the whole ranking, for as long as the resolver likes.  So a
# name is looked up in a daemon thread the caller can stop waiting for: the
# transport waits up to its connect timeout (resolve), the probe polls many
# lookups within its one deadline (Lookup.done).  An abandoned lookup ends
# when the system resolver gives up.  Address literals need no thread.

def getaddrinfo(host, port):
    """The addresses to connect a TCP socket to (blocks for a name)."""
    return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)


def numeric_addresses(host, port):
    """getaddrinfo for an IP literal (no lookup, cannot block), or None for a name."""
    try:
        return socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST)
    except (socket.gaierror, UnicodeError, ValueError):
        return None


class Lookup(object):
    """One name lookup, ``resolve(host, port)`` (default getaddrinfo), running
    in a daemon thread from the moment it is made."""

    def __init__(self, host, port, resolve=None):
        import threading   # only when a name is looked up: not on start-up
        self.infos = None
        self.error = None
        self._done = threading.Event()
        t = threading.Thread(target=self._run, args=(resolve or getaddrinfo, host, port),
                             name="sagedl-dns")
        t.daemon = True   # never keeps the process alive past a hung resolver
        t.start()

    def _run(self, resolve, host, port):
        try:
            self.infos = resolve(host, port)
        except Exception as e:  # gaierror, UnicodeError for bad IDNA, ...: the caller's
            self.error = e
        finally:
            self._done.set()

    def done(self):
        return self._done.is_set()

    def result(self, timeout):
        """The addresses; socket.timeout after ``timeout`` seconds, or the lookup's error."""
        if not self._done.wait(timeout):
            raise socket.timeout("name resolution")
        if self.error is not None:
            raise self.error
        return self.infos


def resolve(host, port, timeout):
    """getaddrinfo with a deadline: socket.timeout after ``timeout`` seconds."""
    infos = numeric_addresses(host, port)
    if infos is not None:
        return infos
    return Lookup(host, port).result(timeout)
