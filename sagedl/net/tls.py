"""TLS: verification on by default, a CA bundle from a predictable place,
and certificate errors explained in words a user can act on.

The CA certificates come from the first of:

1. ``--ca-bundle FILE``;
2. ``$SSL_CERT_FILE``, then ``$REQUESTS_CA_BUNDLE`` (the variables OpenSSL
   and pip/requests users already set);
3. the system store (OpenSSL's default paths, which also honour
   ``$SSL_CERT_DIR``);
4. only when the system store is empty: certifi's bundle (Mozilla's CA
   list), embedded as ``sagedl/cacert.pem`` (in the pyz and in an installed
   package; tools/refresh_cacert.py refreshes it).  Python.org's macOS build
   before "Install Certificates" and minimal containers have no store, which
   once made Sage avoid python3 on macOS (sagemath #29418, #30950).

A named bundle replaces the system store (as curl's --cacert does).  Which
store was used is said by --debug and in every certificate error.

Certificate errors say which problem it is -- self-signed or unknown CA,
wrong host name, expired or not yet valid -- and what fixes it.  Python 3.7+
and PyPy3 report OpenSSL's verify code; 2.7 and 3.6 only say "certificate
verify failed" (hostname mismatches raise ssl.CertificateError there), so
for those a second, diagnostic handshake finds out which check failed.

Imported only when an https URL is fetched: ssl costs start-up time.
"""

from __future__ import absolute_import

import os
import pkgutil
import socket
import ssl
import time

from sagedl.errors import SourceFailure, UsageError, debug

INSECURE_WARNING = ("warning: TLS certificate verification is disabled "
                    "(--no-check-certificate); only checksums protect these downloads")

# OpenSSL's X509_V_ERR_* codes (x509_vfy.h), the same from 1.0.2 to 3.x.
_UNABLE_TO_GET_ISSUER_CERT = 2
_CERT_NOT_YET_VALID = 9
_CERT_HAS_EXPIRED = 10
_DEPTH_ZERO_SELF_SIGNED_CERT = 18
_SELF_SIGNED_CERT_IN_CHAIN = 19
_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
_UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21
_HOSTNAME_MISMATCH = 62
_IP_ADDRESS_MISMATCH = 64
# X509_V_FLAG_NO_CHECK_TIME (OpenSSL 1.1.0+): verify the chain, not the
# dates.  ssl has no constant for it, but verify_flags takes any bits.
_NO_CHECK_TIME = 0x200000

# What went wrong, as classify_tls_error() names it.
SELF_SIGNED = "self-signed"
UNKNOWN_CA = "unknown-ca"
NOT_TRUSTED = "not-trusted"          # self-signed or unknown CA: 2.7/3.6 cannot tell
WRONG_HOST = "wrong-host"
EXPIRED = "expired"
NOT_YET_VALID = "not-yet-valid"
VERIFY_FAILED = "verify-failed"      # "certificate verify failed", no reason given
NOT_TLS = "not-tls"
OTHER = "other"

_CODES = {
    _DEPTH_ZERO_SELF_SIGNED_CERT: SELF_SIGNED,
    _SELF_SIGNED_CERT_IN_CHAIN: UNKNOWN_CA,
    _UNABLE_TO_GET_ISSUER_CERT: UNKNOWN_CA,
    _UNABLE_TO_GET_ISSUER_CERT_LOCALLY: UNKNOWN_CA,
    _UNABLE_TO_VERIFY_LEAF_SIGNATURE: UNKNOWN_CA,
    _HOSTNAME_MISMATCH: WRONG_HOST,
    _IP_ADDRESS_MISMATCH: WRONG_HOST,
    _CERT_HAS_EXPIRED: EXPIRED,
    _CERT_NOT_YET_VALID: NOT_YET_VALID,
}

# Texts, lower-cased, for Pythons or OpenSSLs that give no verify code.
_TEXTS = (
    ("self signed certificate in certificate chain", UNKNOWN_CA),
    ("self-signed certificate in certificate chain", UNKNOWN_CA),
    ("self signed", SELF_SIGNED),
    ("self-signed", SELF_SIGNED),
    ("unable to get local issuer", UNKNOWN_CA),
    ("unable to get issuer", UNKNOWN_CA),
    ("unable to verify the first certificate", UNKNOWN_CA),
    ("hostname mismatch", WRONG_HOST),
    ("ip address mismatch", WRONG_HOST),
    ("doesn't match", WRONG_HOST),
    ("has expired", EXPIRED),
    ("not yet valid", NOT_YET_VALID),
    ("certificate verify failed", VERIFY_FAILED),
    ("wrong version number", NOT_TLS),
    ("unknown protocol", NOT_TLS),
    ("http request", NOT_TLS),
    ("packet length too long", NOT_TLS),
    ("record layer failure", NOT_TLS),
)

# ssl.CertificateError: a ValueError on 2.7/3.6 (hostname mismatch); an
# alias of SSLCertVerificationError (with verify_code) on 3.7+.
_CertificateError = getattr(ssl, "CertificateError", ValueError)
_TLS_ERRORS = (ssl.SSLError, _CertificateError, socket.error, ValueError)

SYSTEM_STORE = "the system CA store"
EMBEDDED_BUNDLE = "cacert.pem"          # package data: sagedl/cacert.pem
CERTIFICATE_FILE_VARS = ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


class TLSConfig(object):
    """Where trust comes from, and the handshake.  ``trust`` names the CA
    source once a context exists (None: no CA certificate found at all)."""

    def __init__(self, ca_bundle=None, verify=True, env=None):
        self.env = env if env is not None else {}
        self.verify = verify
        self.ca_bundle, self.ca_origin = None, None
        if ca_bundle:
            self.ca_bundle, self.ca_origin = ca_bundle, "--ca-bundle"
        else:
            for var in CERTIFICATE_FILE_VARS:
                if self.env.get(var):
                    self.ca_bundle, self.ca_origin = self.env[var], var
                    break
        self.trust = None
        self._contexts = {}
        self._said = False

    def context(self, check_hostname=True):
        if check_hostname not in self._contexts:
            ctx = self._make_context()
            if self.verify and not check_hostname:
                ctx.check_hostname = False
            self._contexts[check_hostname] = ctx
        return self._contexts[check_hostname]

    def _make_context(self):
        ctx = _default_context()
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            return ctx
        if self.ca_bundle:
            where = "%s (from %s)" % (self.ca_bundle, self.ca_origin)
            if not os.path.isfile(self.ca_bundle):
                raise UsageError("CA bundle not found: %s" % where,
                                 hint="give a PEM file of CA certificates")
            try:
                ctx = ssl.create_default_context(cafile=self.ca_bundle)
            except (ssl.SSLError, IOError, OSError, ValueError) as e:
                raise UsageError("cannot load CA bundle %s: %s" % (where, _error_text(e)),
                                 hint="give a PEM file of CA certificates")
            if self.ca_origin == "--ca-bundle":
                self.trust = "--ca-bundle %s" % self.ca_bundle
            else:
                self.trust = "%s=%s" % (self.ca_origin, self.ca_bundle)
            said = "TLS: trusting %s" % self.trust
        elif ctx.get_ca_certs() or _system_store_exists():
            self.trust = SYSTEM_STORE
            said = "TLS: trusting %s (%s)" % (SYSTEM_STORE, _system_store_paths())
        else:
            bundle = embedded_bundle()
            if bundle is not None:
                ctx = ssl.create_default_context(cadata=bundle.decode("ascii"))
                self.trust = embedded_trust(bundle)
            said = ("TLS: trusting %s; OpenSSL's default store (%s) holds no certificate"
                    % (self.trust or "nothing: no bundle embedded", _system_store_paths()))
        if not self._said:          # contexts are made more than once per run
            self._said = True
            debug(said)
        return ctx

    def wrap(self, sock, host, timeout, reconnect=None):
        """The TLS socket over ``sock``, verified for ``host``, or SourceFailure.

        ``reconnect()``, when given, returns a fresh connected socket to the
        same server: used only after a failure, to find out which check failed.
        """
        own_ip_check = self.verify and _is_ip(host) and _ip_matching_broken()
        ctx = self.context(check_hostname=not own_ip_check)  # UsageError: a bad bundle
        sock.settimeout(timeout)
        try:
            tls = ctx.wrap_socket(sock, server_hostname=host)
        except _TLS_ERRORS as e:
            sock.close()
            # 2.7 reports a handshake timeout as SSLError("The read operation timed out").
            if isinstance(e, socket.timeout) or "timed out" in str(e).lower():
                raise SourceFailure(SourceFailure.KIND_NETWORK,
                                    "timed out in the TLS handshake with %s" % host)
            raise self.failure(e, host, reconnect, timeout)
        if own_ip_check:
            try:
                _match_ip(tls.getpeercert(), host)
            except _CertificateError as e:
                tls.close()
                raise self.failure(e, host, reconnect, timeout)
        return tls

    def failure(self, e, host, reconnect=None, timeout=10.0):
        """The SourceFailure for a failed handshake.  Its ``hint`` replaces the
        network hint of the final error when every source failed this way."""
        known = classify_tls_error(e) not in (NOT_TLS, OTHER)
        return SourceFailure(SourceFailure.KIND_NETWORK, self.explain(e, host, reconnect, timeout),
                             hint=TLS_HINT if known else None)

    def explain(self, e, host, reconnect=None, timeout=10.0):
        """describe_tls_error, after a diagnostic handshake where it helps."""
        problem = classify_tls_error(e)
        detail = None
        if (reconnect is not None and self.verify
                and problem in (VERIFY_FAILED, WRONG_HOST, EXPIRED, NOT_YET_VALID)):
            detail = self._diagnose(reconnect, host, timeout)
        return describe_tls_error(e, host, self.trust if self.verify else None, detail)

    def _diagnose(self, reconnect, host, timeout):
        """Handshake again, checking the chain but neither host name nor dates.

        Returns {"problem", "names", "not_before", "not_after"} (what is
        known), or None when the diagnosis itself fails."""
        try:
            sock = reconnect()
        except (SourceFailure, socket.error, IOError, OSError):
            return None
        try:
            ctx = self._make_context()
            ctx.check_hostname = False
            try:
                ctx.verify_flags |= _NO_CHECK_TIME
            except (AttributeError, ValueError):
                pass
            sock.settimeout(timeout)
            try:
                tls = ctx.wrap_socket(sock, server_hostname=host)
            except _TLS_ERRORS as e:
                problem = classify_tls_error(e)
                if problem in (VERIFY_FAILED, SELF_SIGNED, UNKNOWN_CA):
                    # Even without the date and name checks: the chain itself.
                    return {"problem": NOT_TRUSTED if problem == VERIFY_FAILED else problem}
                return None
            try:
                cert = tls.getpeercert() or {}
            finally:
                tls.close()
        except (UsageError, socket.error, ValueError):
            return None
        finally:
            sock.close()
        detail = {"names": _cert_names(cert), "not_before": cert.get("notBefore"),
                  "not_after": cert.get("notAfter"), "problem": None}
        now = time.time()
        try:
            if detail["not_after"] and ssl.cert_time_to_seconds(detail["not_after"]) < now:
                detail["problem"] = EXPIRED
            elif detail["not_before"] and ssl.cert_time_to_seconds(detail["not_before"]) > now:
                detail["problem"] = NOT_YET_VALID
            else:
                detail["problem"] = WRONG_HOST   # chain and dates fine: the name it is
        except ValueError:
            pass
        return detail


def classify_tls_error(e):
    """One of the problem names above, from the exception alone."""
    code = getattr(e, "verify_code", None)
    if code in _CODES:
        return _CODES[code]
    if code is None and isinstance(e, _CertificateError) and not isinstance(e, ssl.SSLError):
        return WRONG_HOST    # 2.7 / 3.6: match_hostname's error
    text = (str(getattr(e, "verify_message", None) or "") + " " + _error_text(e)).lower()
    for needle, problem in _TEXTS:
        if needle in text:
            return problem
    if getattr(e, "reason", None) == "CERTIFICATE_VERIFY_FAILED":
        return VERIFY_FAILED
    return OTHER


TLS_HINT = ("this is a certificate problem, not a network one; --no-check-certificate "
            "skips verification (then only checksums protect the download)")
FIX_CA = "pass the CA's certificate with --ca-bundle FILE (or set SSL_CERT_FILE)"


def describe_tls_error(e, host, trust=SYSTEM_STORE, detail=None):
    """Say which certificate problem happened, and how to fix it: one line.

    ``trust`` names where the trusted CAs came from (None: nowhere);
    ``detail`` is a diagnosis (see TLSConfig._diagnose) that may refine an
    opaque "certificate verify failed" and add names and dates."""
    problem = classify_tls_error(e)
    detail = detail or {}
    if problem == VERIFY_FAILED:
        problem = detail.get("problem") or problem
    who = "the TLS certificate of %s" % host
    by = " (trusted CAs: %s)" % trust if trust else ""
    if problem in (SELF_SIGNED, UNKNOWN_CA, NOT_TRUSTED, VERIFY_FAILED) and trust is None:
        return ("%s cannot be verified: no CA certificates found on this machine (the "
                "system store is empty and this sagedl embeds none); install the "
                "ca-certificates package, or pass --ca-bundle FILE" % who)
    if problem == SELF_SIGNED:
        return ("%s is self-signed%s; if you trust the server, pass its certificate with "
                "--ca-bundle FILE (or set SSL_CERT_FILE)" % (who, by))
    if problem == UNKNOWN_CA:
        return "%s is issued by an unknown CA%s; %s" % (who, by, FIX_CA)
    if problem == NOT_TRUSTED:
        return ("%s is self-signed or issued by an unknown CA%s; %s" % (who, by, FIX_CA))
    if problem == WRONG_HOST:
        names = detail.get("names") or _names_from_message(e)
        covers = " (it is for %s)" % ", ".join(names[:4]) if names else ""
        return ("%s does not match the host name %s%s; use a URL with a host name "
                "the certificate covers, or fix the server's certificate" % (who, host, covers))
    if problem == EXPIRED:
        when = " on %s" % detail["not_after"] if detail.get("not_after") else ""
        return ("%s has expired%s; the server must renew it (or, if this machine's clock "
                "is wrong, fix the clock)" % (who, when))
    if problem == NOT_YET_VALID:
        when = " (valid from %s)" % detail["not_before"] if detail.get("not_before") else ""
        return "%s is not valid yet%s; check this machine's clock and time zone" % (who, when)
    if problem == VERIFY_FAILED:
        return "%s failed verification (%s)%s; %s" % (who, _error_text(e), by, FIX_CA)
    if problem == NOT_TLS:
        return ("%s did not answer with TLS (%s); is it an http:// URL?"
                % (host, _error_text(e)))
    if isinstance(e, socket.error) and not isinstance(e, ssl.SSLError):
        return "connection error in the TLS handshake with %s: %s" % (host, _error_text(e))
    return "TLS error with %s: %s" % (host, _error_text(e))


def _error_text(e):
    text = getattr(e, "strerror", None) if not isinstance(e, ssl.SSLError) else None
    return text or str(e) or e.__class__.__name__


def _names_from_message(e):
    """2.7/3.6: "hostname 'h' doesn't match either of 'a', 'b'" -> ['a', 'b']."""
    text = str(e)
    if "match" not in text:
        return []
    tail = text.split("match", 1)[1]
    return [p for i, p in enumerate(tail.split("'")) if i % 2 == 1]


def _cert_names(cert):
    names = [value for kind, value in cert.get("subjectAltName", ()) if kind in ("DNS", "IP Address")]
    if not names:
        for rdn in cert.get("subject", ()):
            names.extend(value for key, value in rdn if key == "commonName")
    return [n.strip() for n in names]


def _default_context():
    """ssl.create_default_context(), even where the system store is missing:
    PyPy3 then raises FileNotFoundError from load_default_certs (CPython
    ignores a missing default file); an empty store it is."""
    try:
        return ssl.create_default_context()
    except (IOError, OSError):
        pass
    proto = getattr(ssl, "PROTOCOL_TLS_CLIENT", None)
    if proto is not None:
        return ssl.SSLContext(proto)      # CERT_REQUIRED and check_hostname already
    ctx = ssl.SSLContext(ssl.PROTOCOL_SSLv23)
    ctx.options |= ssl.OP_NO_SSLv2 | ssl.OP_NO_SSLv3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.check_hostname = True
    return ctx


def embedded_bundle():
    """The bytes of sagedl/cacert.pem, or None (a checkout or install without it)."""
    try:
        data = pkgutil.get_data("sagedl", EMBEDDED_BUNDLE)
    except (IOError, OSError):
        return None
    return data if data and b"-----BEGIN CERTIFICATE-----" in data else None


def embedded_trust(bundle):
    """How errors and --debug name the embedded bundle: with its certifi version."""
    first = bundle.split(b"\n", 1)[0].decode("ascii", "replace")
    version = first.split()[2].rstrip(":") if first.startswith("# certifi ") else "unknown"
    return "certifi %s's CA bundle inside sagedl (the system store is empty)" % version


def _system_store_paths():
    """Where OpenSSL looks: its compiled-in file and directory, or the
    $SSL_CERT_FILE / $SSL_CERT_DIR of the process that replace them."""
    paths = ssl.get_default_verify_paths()
    return "%s, %s" % (os.environ.get(paths.openssl_cafile_env) or paths.openssl_cafile,
                       os.environ.get(paths.openssl_capath_env) or paths.openssl_capath)


def _system_store_exists():
    paths = ssl.get_default_verify_paths()
    try:
        return bool((paths.cafile and os.path.exists(paths.cafile)) or
                    (paths.capath and os.path.isdir(paths.capath) and os.listdir(paths.capath)))
    except OSError:
        return False


def _is_ip(host):
    for family in (socket.AF_INET, getattr(socket, "AF_INET6", None)):
        if family is None:
            continue
        try:
            socket.inet_pton(family, host)
            return True
        except (socket.error, ValueError, TypeError, UnicodeError):
            pass
    return False


_IP_MATCHING = {}


def _ip_matching_broken():
    """Python 2.7's ssl.match_hostname ignores IP addresses in subjectAltName,
    so a correct certificate for https://127.0.0.1 is refused.  3.6 matches
    them; 3.7+ leaves the check to OpenSSL."""
    if "broken" not in _IP_MATCHING:
        broken = False
        match = getattr(ssl, "match_hostname", None)
        if match is not None and not hasattr(ssl, "HAS_NEVER_CHECK_COMMON_NAME"):
            try:
                match({"subjectAltName": (("IP Address", "127.0.0.1"),)}, "127.0.0.1")
            except (_CertificateError, ValueError):
                broken = True
        _IP_MATCHING["broken"] = broken
    return _IP_MATCHING["broken"]


def _match_ip(cert, host):
    """Match an IP address against the certificate's IP subjectAltNames."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    want = socket.inet_pton(family, host)
    for kind, value in (cert or {}).get("subjectAltName", ()):
        if kind != "IP Address":
            continue
        try:
            if socket.inet_pton(family, value.strip()) == want:
                return
        except (socket.error, ValueError):
            continue
    names = _cert_names(cert or {})
    raise _CertificateError("hostname '%s' doesn't match %s"
                            % (host, ", ".join("'%s'" % n for n in names) or "any name"))
