"""TLS: verification is on by default, the CA bundle comes from a documented
order, and each certificate failure (self-signed, unknown CA, wrong host
name, expired, not yet valid) is refused with a message naming that problem
and its fix -- in-process, and through the built pyz under 2.7, 3.6 (which
give no reason for a failed verification), 3.7, 3.13 and PyPy3.

The certificates are made per session with trustme: a test CA, a second CA
nobody trusts, leaf certificates signed by the test CA (good, expired, not
yet valid, for another host name) and a self-signed one.  A real nginx on
loopback serves each; FaultServer stands in where a fault is needed."""

import datetime
import os
import socket
import subprocess
import sys
import types

import pytest

from helpers import Payload, assert_one_line_error, clean_env, make_data
from faultserver import FaultServer
from nginx import Nginx, require_tool
from pyz import interpreter_params, pyz_path, require_interpreter
from sagedl.errors import EXIT_NETWORK, EXIT_OK, EXIT_USAGE
from sagedl.net import tls
from sagedl.net.tls import INSECURE_WARNING

trustme = pytest.importorskip("trustme")

KINDS = ("good", "expired", "future", "wrong-host", "self-signed")
NAME = "t.tar.gz"
PAYLOAD = Payload(NAME, make_data(150000, 21))


class PKI(object):
    """Files: ca.pem (the test CA), other-ca.pem (a CA nobody uses) and
    KIND.crt / KIND.key for each of KINDS."""

    def __init__(self, directory):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.dir = directory
        now = datetime.datetime.now(datetime.timezone.utc)
        day = datetime.timedelta(days=1)
        ca, other = trustme.CA(), trustme.CA()
        self.ca = str(directory / "ca.pem")
        self.other_ca = str(directory / "other-ca.pem")
        ca.cert_pem.write_to_path(self.ca)
        other.cert_pem.write_to_path(self.other_ca)
        here = ("localhost", "127.0.0.1", "::1")
        leaves = {
            "good": ca.issue_cert(*here),
            "expired": ca.issue_cert(*here, not_before=now - 30 * day, not_after=now - day),
            "future": ca.issue_cert(*here, not_before=now + 30 * day, not_after=now + 60 * day),
            "wrong-host": ca.issue_cert("other.example"),
        }
        for kind, leaf in leaves.items():
            leaf.private_key_pem.write_to_path(self.key(kind))
            with open(self.cert(kind), "wb") as f:
                for blob in leaf.cert_chain_pems:
                    f.write(blob.bytes())
        # Self-signed: its own issuer, not a CA, valid for localhost.
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, u"localhost")])
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - day).not_valid_after(now + 30 * day)
                .add_extension(x509.SubjectAlternativeName(
                    [x509.DNSName(u"localhost"), x509.IPAddress(__import__("ipaddress").ip_address(u"127.0.0.1"))]),
                    critical=False)
                .sign(key, hashes.SHA256()))
        with open(self.key("self-signed"), "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        with open(self.cert("self-signed"), "wb") as f:
            f.write(cert.public_bytes(serialization.Encoding.PEM))

    def cert(self, kind):
        return str(self.dir / (kind + ".crt"))

    def key(self, kind):
        return str(self.dir / (kind + ".key"))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def sites(pki, tmp_path_factory):
    """KIND -> https://localhost:PORT, each a real nginx with that certificate."""
    require_tool("nginx")
    root = tmp_path_factory.mktemp("www")
    (root / NAME).write_bytes(PAYLOAD.data)
    servers = [Nginx(str(root), tls_cert=pki.cert(k), tls_key=pki.key(k)) for k in KINDS]
    try:
        for s in servers:
            s.start()
        yield dict((k, "https://localhost:%d" % s.port) for k, s in zip(KINDS, servers))
    finally:
        for s in servers:
            s.stop()


@pytest.fixture
def out(tmp_path):
    d = tmp_path / "out"
    d.mkdir()
    return d


def get(run_cli, site, out, *extra, **kw):
    return run_cli(site + "/" + NAME, out / NAME, "--sha256", PAYLOAD.sha256,
                   "--progress", "none", *extra, **kw)


def assert_refused(r, out, *words):
    assert r.code == EXIT_NETWORK, r
    assert_one_line_error(r.err)
    for w in words:
        assert w in r.err, (w, r.err)
    assert os.listdir(out) == [] or os.listdir(out) == [NAME + ".lock"], os.listdir(out)


# -- verification on, and the CA bundle order -----------------------------------------

def test_verification_is_on_by_default(run_cli, sites, out):
    r = get(run_cli, sites["good"], out)
    assert_refused(r, out, "issued by an unknown CA", "trusted CAs: the system CA store",
                   "--ca-bundle FILE")


def test_ca_bundle_option_trusts_the_test_ca(run_cli, sites, pki, out):
    r = get(run_cli, sites["good"], out, "--ca-bundle", pki.ca)
    assert r.code == EXIT_OK, r
    assert (out / NAME).read_bytes() == PAYLOAD.data


@pytest.mark.parametrize("var", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"])
def test_environment_bundle_trusts_the_test_ca(run_cli, sites, pki, out, tmp_path, var):
    r = get(run_cli, sites["good"], out, env=clean_env(tmp_path, **{var: pki.ca}))
    assert r.code == EXIT_OK, r
    assert (out / NAME).read_bytes() == PAYLOAD.data


def test_ca_bundle_option_beats_ssl_cert_file(run_cli, sites, pki, out, tmp_path):
    r = get(run_cli, sites["good"], out, "--ca-bundle", pki.other_ca,
            env=clean_env(tmp_path, SSL_CERT_FILE=pki.ca))
    assert_refused(r, out, "unknown CA", "trusted CAs: --ca-bundle %s" % pki.other_ca)
    r = get(run_cli, sites["good"], out, "--ca-bundle", pki.ca,
            env=clean_env(tmp_path, SSL_CERT_FILE=pki.other_ca))
    assert r.code == EXIT_OK, r


def test_ssl_cert_file_beats_requests_ca_bundle(run_cli, sites, pki, out, tmp_path):
    r = get(run_cli, sites["good"], out,
            env=clean_env(tmp_path, SSL_CERT_FILE=pki.other_ca, REQUESTS_CA_BUNDLE=pki.ca))
    assert_refused(r, out, "trusted CAs: SSL_CERT_FILE=%s" % pki.other_ca)
    r = get(run_cli, sites["good"], out,
            env=clean_env(tmp_path, SSL_CERT_FILE=pki.ca, REQUESTS_CA_BUNDLE=pki.other_ca))
    assert r.code == EXIT_OK, r


def test_system_store_is_used_when_no_bundle_is_named(run_cli, sites, pki, out, tmp_path, monkeypatch):
    # OpenSSL's default paths honour $SSL_CERT_DIR (a hashed directory) from
    # the process environment; sagedl itself never reads it, so this reaches
    # the test CA only through "the system store".
    openssl = require_tool("openssl")
    certs = tmp_path / "certs"
    certs.mkdir()
    digest = subprocess.check_output([openssl, "x509", "-hash", "-noout", "-in", pki.ca],
                                     universal_newlines=True).strip()
    (certs / (digest + ".0")).write_bytes(open(pki.ca, "rb").read())
    monkeypatch.setenv("SSL_CERT_DIR", str(certs))
    r = get(run_cli, sites["good"], out)
    assert r.code == EXIT_OK, r


def _embedded(monkeypatch, path):
    """Stand the embedded bundle (sagedl/cacert.pem) in with ``path``'s
    certificates, or with nothing when path is None."""
    data = None
    if path is not None:
        with open(path, "rb") as f:
            data = b"# certifi 0.test: a test bundle\n" + f.read()
    monkeypatch.setattr(tls, "embedded_bundle", lambda: data)


def _no_system_store(monkeypatch, tmp_path):
    # The process environment steers OpenSSL's default paths: point both at
    # nothing, and the system store is empty.
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-file.pem"))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path / "no-such-dir"))


def test_embedded_bundle_is_the_last_resort(run_cli, sites, pki, out, tmp_path, monkeypatch):
    _no_system_store(monkeypatch, tmp_path)
    _embedded(monkeypatch, pki.ca)
    r = get(run_cli, sites["good"], out)      # injected env: no SSL_CERT_FILE
    assert r.code == EXIT_OK, r


def test_embedded_bundle_is_named_in_certificate_errors(run_cli, sites, pki, out, tmp_path,
                                                        monkeypatch):
    _no_system_store(monkeypatch, tmp_path)
    _embedded(monkeypatch, pki.other_ca)
    r = get(run_cli, sites["good"], out)
    assert_refused(r, out, "unknown CA", "certifi 0.test's CA bundle inside sagedl",
                   "the system store is empty")


def test_without_any_ca_certificates_the_message_says_so(run_cli, sites, out, tmp_path, monkeypatch):
    _no_system_store(monkeypatch, tmp_path)
    _embedded(monkeypatch, None)
    r = get(run_cli, sites["good"], out)
    assert_refused(r, out, "no CA certificates found on this machine", "ca-certificates")


def test_embedded_bundle_is_not_used_when_the_system_store_exists(run_cli, sites, pki, out,
                                                                  monkeypatch):
    _embedded(monkeypatch, pki.ca)
    r = get(run_cli, sites["good"], out)
    assert_refused(r, out, "unknown CA", "the system CA store")


def test_debug_names_the_store_in_use(run_cli, sites, pki, out, tmp_path, monkeypatch):
    r = get(run_cli, sites["good"], out, "--debug", "--ca-bundle", pki.ca)
    assert r.code == EXIT_OK, r
    assert "sagedl: debug: TLS: trusting --ca-bundle %s\n" % pki.ca in r.err
    r = get(run_cli, sites["good"], out, "--debug", "--force")
    assert "sagedl: debug: TLS: trusting the system CA store (" in r.err, r
    _no_system_store(monkeypatch, tmp_path)
    _embedded(monkeypatch, pki.ca)
    r = get(run_cli, sites["good"], out, "--debug", "--force")
    assert r.code == EXIT_OK, r
    assert ("sagedl: debug: TLS: trusting certifi 0.test's CA bundle inside sagedl (the system "
            "store is empty); OpenSSL's default store (%s, %s) holds no certificate\n"
            % (tmp_path / "no-such-file.pem", tmp_path / "no-such-dir")) in r.err, r.err


@pytest.mark.parametrize("how", ["--ca-bundle", "SSL_CERT_FILE"])
def test_missing_ca_bundle_is_a_usage_error_naming_its_origin(run_cli, sites, out, tmp_path, how):
    missing = str(tmp_path / "missing.pem")
    if how == "--ca-bundle":
        r = get(run_cli, sites["good"], out, "--ca-bundle", missing)
    else:
        r = get(run_cli, sites["good"], out, env=clean_env(tmp_path, SSL_CERT_FILE=missing))
    assert r.code == EXIT_USAGE, r
    assert_one_line_error(r.err, "CA bundle not found: %s (from %s)" % (missing, how))


def test_unreadable_ca_bundle_is_a_usage_error(run_cli, sites, out, tmp_path):
    junk = tmp_path / "junk.pem"
    junk.write_text("this is not a certificate\n")
    r = get(run_cli, sites["good"], out, "--ca-bundle", junk)
    assert r.code == EXIT_USAGE, r
    assert_one_line_error(r.err, "cannot load CA bundle %s" % junk)


# -- each certificate problem, named, with its fix -------------------------------------

def test_self_signed_certificate_is_refused_saying_so(run_cli, sites, pki, out):
    r = get(run_cli, sites["self-signed"], out, "--ca-bundle", pki.ca)
    assert_refused(r, out, "is self-signed", "pass its certificate with --ca-bundle FILE")


def test_wrong_host_name_is_refused_saying_so(run_cli, sites, pki, out):
    r = get(run_cli, sites["wrong-host"], out, "--ca-bundle", pki.ca)
    assert_refused(r, out, "does not match the host name localhost", "it is for other.example",
                   "use a URL with a host name the certificate covers")


def test_expired_certificate_is_refused_saying_so(run_cli, sites, pki, out):
    r = get(run_cli, sites["expired"], out, "--ca-bundle", pki.ca)
    assert_refused(r, out, "has expired on ", "the server must renew it", "clock")


def test_not_yet_valid_certificate_is_refused_saying_so(run_cli, sites, pki, out):
    r = get(run_cli, sites["future"], out, "--ca-bundle", pki.ca)
    assert_refused(r, out, "is not valid yet", "check this machine's clock")


def test_ip_address_urls_match_ip_subject_alt_names(run_cli, sites, pki, out):
    r = get(run_cli, sites["good"].replace("localhost", "127.0.0.1"), out, "--ca-bundle", pki.ca)
    assert r.code == EXIT_OK, r
    os.unlink(str(out / NAME))
    r = get(run_cli, sites["wrong-host"].replace("localhost", "127.0.0.1"), out, "--ca-bundle", pki.ca)
    assert_refused(r, out, "does not match the host name 127.0.0.1")


def test_no_check_certificate_downloads_with_a_warning(run_cli, sites, out):
    r = get(run_cli, sites["self-signed"], out, "--no-check-certificate")
    assert r.code == EXIT_OK, r
    assert "sagedl: " + INSECURE_WARNING in r.err.splitlines()
    assert (out / NAME).read_bytes() == PAYLOAD.data


def test_a_certificate_failure_fails_over_to_the_next_source(run_cli, sites, pki, out):
    r = get(run_cli, sites["expired"], out, "--ca-bundle", pki.ca,
            "--mirror", sites["good"] + "/", "--progress", "lines")
    assert r.code == EXIT_OK, r
    assert "has expired" in r.err
    assert (out / NAME).read_bytes() == PAYLOAD.data


def test_plain_http_server_behind_an_https_url_is_named(run_cli, out):
    with FaultServer({NAME: PAYLOAD.data}) as s:
        r = get(run_cli, s.url.replace("http://", "https://") + "/ok", out)
    assert_refused(r, out, "did not answer with TLS", "http://")


def test_a_server_that_never_handshakes_times_out(run_cli, out):
    # Listening, never accepting: the kernel completes TCP, nobody answers TLS.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        url = "https://127.0.0.1:%d" % listener.getsockname()[1]
        r = get(run_cli, url, out, "--timeout", "1")
    assert_refused(r, out, "timed out in the TLS handshake")


# -- the 2.7 / 3.6 diagnosis, exercised on this interpreter ---------------------------

OPAQUE = "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed (_ssl.c:727)"


def opaque_error():
    """What 2.7 and 3.6 raise for every chain or date problem: no reason."""
    e = tls.ssl.SSLError(1, OPAQUE)
    e.reason = "CERTIFICATE_VERIFY_FAILED"
    return e


def reconnect_to(site):
    port = int(site.rsplit(":", 1)[1])
    return lambda: socket.create_connection(("127.0.0.1", port), 10)


@pytest.mark.parametrize("kind, words", [
    ("expired", ["has expired on "]),
    ("future", ["is not valid yet (valid from "]),
    # Here the second handshake has a verify code; 2.7/3.6 get "self-signed
    # or issued by an unknown CA" (test_certificate_checks_through_the_pyz).
    ("self-signed", ["is self-signed", "--ca-bundle FILE"]),
])
def test_opaque_verify_failure_is_diagnosed_by_a_second_handshake(sites, pki, kind, words):
    config = tls.TLSConfig(pki.ca)
    config.context()
    message = config.explain(opaque_error(), "localhost", reconnect_to(sites[kind]))
    for w in words:
        assert w in message, message


def test_opaque_failure_without_a_diagnosis_still_names_the_fix():
    config = tls.TLSConfig()
    config.context()
    message = config.explain(opaque_error(), "example.org")
    assert "failed verification" in message and "--ca-bundle FILE" in message


def test_hostname_messages_of_old_pythons_are_read():
    # 2.7 / 3.6: ssl.CertificateError, a ValueError, with the names inside.
    e = ValueError("hostname 'localhost' doesn't match either of 'a.example', 'b.example'")
    assert tls.classify_tls_error(e) == tls.WRONG_HOST
    message = tls.describe_tls_error(e, "localhost")
    assert "does not match the host name localhost (it is for a.example, b.example)" in message


@pytest.mark.parametrize("text, problem", [
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self signed certificate (_ssl.c:1123)",
     tls.SELF_SIGNED),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed certificate in "
     "certificate chain", tls.UNKNOWN_CA),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer "
     "certificate", tls.UNKNOWN_CA),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: certificate has expired", tls.EXPIRED),
    ("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: Hostname mismatch, certificate "
     "is not valid for 'x'.", tls.WRONG_HOST),
    ("[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1002)", tls.NOT_TLS),
    ("[SSL: RECORD_LAYER_FAILURE] record layer failure", tls.NOT_TLS),
    ("[SSL: SSLV3_ALERT_HANDSHAKE_FAILURE] sslv3 alert handshake failure", tls.OTHER),
])
def test_error_texts_without_a_verify_code_are_classified(text, problem):
    # PyPy and OpenSSL versions differ in spelling; the code is missing on 2.7/3.6.
    assert tls.classify_tls_error(tls.ssl.SSLError(1, text)) == problem


# -- the built pyz under the interpreters whose ssl modules differ ---------------------

PYZ_CASES = {
    # case: (site, extra argv, env extra, exit code, words in stderr)
    "ca-bundle": ("good", ["--ca-bundle", "{ca}"], {}, 0, []),
    "ip-address": ("good@127.0.0.1", ["--ca-bundle", "{ca}"], {}, 0, []),
    "ssl-cert-file": ("good", [], {"SSL_CERT_FILE": "{ca}"}, 0, []),
    "option-beats-env": ("good", ["--ca-bundle", "{other}"], {"SSL_CERT_FILE": "{ca}"}, 5,
                         ["unknown CA", "trusted CAs: --ca-bundle"]),
    "default-store": ("good", [], {}, 5, ["unknown CA", "the system CA store"]),
    "self-signed": ("self-signed", ["--ca-bundle", "{ca}"], {}, 5, ["self-signed"]),
    "wrong-host": ("wrong-host", ["--ca-bundle", "{ca}"], {}, 5,
                   ["does not match the host name localhost", "other.example"]),
    "expired": ("expired", ["--ca-bundle", "{ca}"], {}, 5, ["has expired on "]),
    "not-yet-valid": ("future", ["--ca-bundle", "{ca}"], {}, 5, ["is not valid yet"]),
    "no-check-certificate": ("self-signed", ["--no-check-certificate"], {}, 0, [INSECURE_WARNING]),
}


@pytest.mark.parametrize("case", sorted(PYZ_CASES))
@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.6", "3.7", "3.13", "pypy3")))
def test_certificate_checks_through_the_pyz(label, case, sites, pki, tmp_path):
    python = require_interpreter(label)
    site, extra, env_extra, code, words = PYZ_CASES[case]
    fill = lambda s: s.format(ca=pki.ca, other=pki.other_ca)
    if "@" in site:
        site, host = site.split("@")
        base = sites[site].replace("localhost", host)
    else:
        base = sites[site]
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("PYTHON")
               and k not in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"))
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.update((k, fill(v)) for k, v in env_extra.items())
    dest = tmp_path / NAME
    p = subprocess.run([python, pyz_path(), base + "/" + NAME, str(dest), "--sha256", PAYLOAD.sha256,
                        "--progress", "none"] + [fill(a) for a in extra],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=120)
    assert p.returncode == code, p.stderr
    for w in words:
        assert w in p.stderr, (w, p.stderr)
    if code == 0:
        assert dest.read_bytes() == PAYLOAD.data
    else:
        assert_one_line_error(p.stderr)
        assert not dest.exists()


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.6", "3.13", "pypy3")))
def test_handshake_timeout_through_the_pyz(label, tmp_path):
    # 2.7 words a handshake timeout as an SSLError, 3.x as socket.timeout.
    python = require_interpreter(label)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        url = "https://localhost:%d/%s" % (listener.getsockname()[1], NAME)
        p = subprocess.run([python, pyz_path(), url, str(tmp_path / NAME), "--timeout", "1"],
                           env=clean_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=120)
    assert p.returncode == EXIT_NETWORK, p.stderr
    assert_one_line_error(p.stderr, "timed out in the TLS handshake with localhost")
