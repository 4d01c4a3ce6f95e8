"""TLS: verification on by default, a CA bundle from a predictable place,
and certificate errors explained in words a user can act on.

The CA bundle comes from, in order: --ca-bundle, $SSL_CERT_FILE or
$REQUESTS_CA_BUNDLE, the system store (ssl's default paths), then certifi's
bundle when certifi is importable (it is never required).

Imported only when an https URL is fetched: ssl costs start-up time.
"""

from __future__ import absolute_import

import os
import socket
import ssl

from sagedl.errors import SourceFailure

INSECURE_WARNING = ("warning: TLS certificate verification is disabled "
                    "(--no-check-certificate); only checksums protect these downloads")


class TLSConfig(object):
    def __init__(self, ca_bundle=None, verify=True, env=None):
        self.env = env if env is not None else {}
        self.ca_bundle = ca_bundle or self.env.get("SSL_CERT_FILE") or self.env.get("REQUESTS_CA_BUNDLE")
        self.verify = verify
        self._ctx = None

    def context(self):
        if self._ctx is None:
            self._ctx = self._make_context()
        return self._ctx

    def _make_context(self):
        ctx = ssl.create_default_context()
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        if self.ca_bundle:
            if not os.path.isfile(self.ca_bundle):
                from sagedl.errors import UsageError
                raise UsageError("CA bundle not found: %s" % self.ca_bundle)
            ctx = ssl.create_default_context(cafile=self.ca_bundle)
        elif not ctx.get_ca_certs() and not _system_store_exists():
            try:
                import certifi  # optional
                ctx = ssl.create_default_context(cafile=certifi.where())
            except ImportError:
                pass
        return ctx

    def wrap(self, sock, host, timeout):
        sock.settimeout(timeout)
        try:
            return self.context().wrap_socket(sock, server_hostname=host)
        except socket.timeout:
            sock.close()
            raise SourceFailure(SourceFailure.KIND_NETWORK, "timed out in the TLS handshake with %s" % host)
        except (ssl.SSLError, ssl.CertificateError, socket.error, ValueError) as e:
            sock.close()
            raise SourceFailure(SourceFailure.KIND_NETWORK, describe_tls_error(e, host))


def _system_store_exists():
    paths = ssl.get_default_verify_paths()
    return bool((paths.cafile and os.path.exists(paths.cafile)) or
                (paths.capath and os.path.isdir(paths.capath) and os.listdir(paths.capath)))


FIX_HINT = "pass --ca-bundle FILE (or set SSL_CERT_FILE) if the server uses a private CA"


def describe_tls_error(e, host):
    """Say which certificate problem happened: self-signed, wrong host, expired."""
    text = str(getattr(e, "verify_message", "") or e)
    low = text.lower()
    if "self signed" in low or "self-signed" in low or "unable to get local issuer" in low:
        what = "certificate for %s is not signed by a trusted CA (self-signed or unknown CA); %s" % (host, FIX_HINT)
    elif "hostname" in low or "doesn't match" in low or "not valid for" in low or isinstance(e, getattr(ssl, "CertificateError", ())) and "match" in low:
        what = "certificate does not match the host name %s" % host
    elif "expired" in low:
        what = "certificate for %s has expired (check the server, and this machine's clock)" % host
    elif "not yet valid" in low:
        what = "certificate for %s is not yet valid (check this machine's clock)" % host
    else:
        what = "TLS error with %s: %s" % (host, text)
    return what
