"""Which proxy, if any, a URL goes through: the *_proxy / no_proxy conventions.

The rules follow curl and Python's urllib where they agree:

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

import base64
import binascii
import os
import re
import socket

from sagedl.compat import compat_unquote, compat_urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
_IPV4_RE = re.compile(r"^[0-9]{1,3}(\.[0-9]{1,3}){3}$")


def proxy_for(url, env=None):
    """The proxy URL to use for ``url``, or None to connect directly."""
    env = os.environ if env is None else env
    parts = compat_urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    if no_proxy_matches(parts.hostname, _port(parts, scheme), _get(env, "no_proxy", "NO_PROXY")):
        return None
    if scheme == "http":
        names = ["http_proxy"] if "REQUEST_METHOD" in env else ["http_proxy", "HTTP_PROXY"]
    else:
        names = ["https_proxy", "HTTPS_PROXY"]
    proxy = _get(env, *(names + ["all_proxy", "ALL_PROXY"]))
    if not proxy:
        return None
    return proxy if "://" in proxy else "http://" + proxy


def _get(env, *names):
    for name in names:
        value = (env.get(name) or "").strip()
        if value:
            return value
    return None


def _port(parts, scheme):
    try:
        return parts.port or DEFAULT_PORTS[scheme]
    except ValueError:  # a port that is not a number: let the caller fail on it
        return DEFAULT_PORTS[scheme]


def parse_proxy(proxy_url):
    """(scheme, host, port, proxy_authorization_value_or_None) of a proxy URL.

    Raises ValueError for a proxy URL without a host or with a bad port.
    """
    if "://" not in proxy_url:
        proxy_url = "http://" + proxy_url
    parts = compat_urlsplit(proxy_url)
    scheme = parts.scheme.lower()
    if not parts.hostname:
        raise ValueError("proxy %r has no host" % proxy_url)
    port = parts.port or DEFAULT_PORTS.get(scheme, 1080)  # .port raises ValueError
    auth = None
    if parts.username is not None:
        userinfo = "%s:%s" % (compat_unquote(parts.username), compat_unquote(parts.password or ""))
        auth = "Basic " + base64.b64encode(userinfo.encode("utf-8")).decode("ascii")
    return scheme, parts.hostname, port, auth


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
