"""The optional urllib3 transport (``--transport urllib3``; urllib3 1.26 or 2.x).

Same interface and the same policy as transport.Transport (redirects,
downgrades, credentials, Accept-Encoding: identity, TLS configuration and
error words), with urllib3's connection pools underneath.  It exists to be
measured against the standard-library transport (bench/); see the README for
which one earned ``--transport auto``.

One difference is inherent: urllib3 bounds each recv() by the read timeout
but not the response head as a whole, so a server that dribbles header bytes
is only caught by the stdlib transport.  The body stall rule (download.py)
applies to both.
"""

from __future__ import absolute_import

from sagedl.errors import SourceFailure
from sagedl.transport import Transport, _basic_auth, check_url, read_all, redact


def available():
    try:
        import urllib3  # noqa: F401
        return True
    except ImportError:
        return False


class Urllib3Transport(Transport):
    name = "urllib3"

    def __init__(self, *args, **kwargs):
        Transport.__init__(self, *args, **kwargs)
        import urllib3
        self._u3 = urllib3
        self._managers = {}

    def _manager(self, proxy_url, https):
        key = (proxy_url, https)
        mgr = self._managers.get(key)
        if mgr is None:
            kw = {"num_pools": 16, "maxsize": 4}
            if https:
                kw["ssl_context"] = self._tls().context()
            if proxy_url:
                headers = {}
                from sagedl.compat import compat_urlsplit
                auth = _basic_auth(compat_urlsplit(proxy_url))
                if auth:
                    headers["Proxy-Authorization"] = auth
                mgr = self._u3.ProxyManager(proxy_url, proxy_headers=headers, **kw)
            else:
                mgr = self._u3.PoolManager(**kw)
            self._managers[key] = mgr
        return mgr

    def close(self):
        for mgr in self._managers.values():
            mgr.clear()
        self._managers.clear()

    def _open_once(self, url, method, headers):
        u3 = self._u3
        parts = check_url(url)
        https = parts.scheme.lower() == "https"
        mgr = self._manager(self._proxy_for(parts), https)
        h = {"User-Agent": self.user_agent, "Accept-Encoding": "identity", "Accept": "*/*"}
        auth = _basic_auth(parts)
        if auth:
            h["Authorization"] = auth
        h.update(headers or {})
        clean = url
        if "@" in parts.netloc:
            clean = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()
        try:
            r = mgr.urlopen(method, clean, headers=h, redirect=False, retries=False,
                            preload_content=False, decode_content=False,
                            timeout=u3.Timeout(connect=self.connect_timeout, read=self.timeout))
        except Exception as e:
            raise _failure(u3, e, parts.hostname)
        return Urllib3Response(u3, r, method, url)


class Urllib3Response(object):
    def __init__(self, u3, r, method, url):
        self._u3 = u3
        self._r = r
        self.url = url
        self.status = r.status
        self.reason = getattr(r, "reason", "") or ""
        self.headers = {}
        for k, v in r.headers.items():
            k = k.lower()
            self.headers[k] = self.headers[k] + ", " + v if k in self.headers else v
        self.length = None
        if "content-length" in self.headers and "chunked" not in self.headers.get("transfer-encoding", ""):
            try:
                self.length = int(self.headers["content-length"].split(",")[0])
            except ValueError:
                raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                    "invalid Content-Length %r" % self.headers["content-length"])
        self._got = 0
        self._done = method == "HEAD"
        # urllib3 2.x has read1 (at most one recv); on 1.26 the http.client
        # response underneath has it (3.5+).
        self._read1 = getattr(r, "read1", None) or r._fp.read1

    def header(self, name, default=None):
        return self.headers.get(name.lower(), default)

    def readinto(self, view):
        if self._done:
            return 0
        want = len(view)
        if self.length is not None:
            want = min(want, self.length - self._got)
            if want == 0:
                self._done = True
                return 0
        try:
            data = self._read1(want)
        except Exception as e:
            raise _failure(self._u3, e, None)
        n = len(data)
        if n == 0:
            self._done = True
            if self.length is not None and self._got < self.length:
                raise SourceFailure(SourceFailure.KIND_PROTOCOL,
                                    "connection closed early (short body; expected %d bytes)" % self.length)
            return 0
        view[:n] = data
        self._got += n
        return n

    def read_all(self, limit=1 << 20):
        return read_all(self, limit)

    @property
    def will_close(self):
        return not self._done

    @will_close.setter
    def will_close(self, value):
        if value:
            self._done = False

    def close(self):
        r, self._r = self._r, None
        if r is None:
            return
        if not self._done:
            r.close()      # the connection is in an unknown state: drop it
        r.release_conn()


def _failure(u3, e, host):
    exc = u3.exceptions
    if isinstance(e, (SourceFailure,)):
        return e
    if isinstance(e, exc.SSLError):
        from sagedl.tls import describe_tls_error
        inner = e.args[0] if e.args and isinstance(e.args[0], Exception) else e
        return SourceFailure(SourceFailure.KIND_NETWORK, describe_tls_error(inner, host or "server"))
    if isinstance(e, (exc.ConnectTimeoutError,)):
        return SourceFailure(SourceFailure.KIND_NETWORK, "timed out connecting to %s" % host)
    if isinstance(e, exc.ReadTimeoutError):
        return SourceFailure(SourceFailure.KIND_NETWORK, "no data (read timeout)")
    if isinstance(e, exc.NewConnectionError):
        return SourceFailure(SourceFailure.KIND_NETWORK, "cannot connect to %s" % host)
    if isinstance(e, getattr(exc, "IncompleteRead", ())) or "IncompleteRead" in repr(e):
        return SourceFailure(SourceFailure.KIND_PROTOCOL, "connection closed early (short body)")
    if isinstance(e, (exc.ProtocolError, exc.HTTPError)):
        return SourceFailure(SourceFailure.KIND_NETWORK, "connection error: %s" % redact(str(e))[:200])
    if isinstance(e, (IOError, OSError)):
        return SourceFailure(SourceFailure.KIND_NETWORK, "connection error: %s" % (e.strerror or e))
    return SourceFailure(SourceFailure.KIND_NETWORK, "%s: %s" % (e.__class__.__name__, str(e)[:200]))
