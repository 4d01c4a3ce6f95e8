"""The CA bundle embedded in the pyz (sagedl/cacert.pem, certifi's), used
only when the system store is empty, through the pyz on every interpreter.

"Empty" is made real: the pyz runs in a private mount namespace where an
empty temporary directory is bind-mounted over /etc/ssl/certs, which holds
OpenSSL's default CA file and directory for every interpreter here (the
python.org macOS build before "Install Certificates" looks like this).  The
mount is invisible outside that one process tree.  A pyz whose embedded
bundle is the test CA proves the fallback really loads certificates; the
real pyz proves the real bundle is there and named in the error.
"""
import os
import shutil
import ssl
import subprocess
import sys

import pytest

from helpers import REPO, Payload, make_data
from nginx import Nginx, require_tool
from pyz import build_pyz, interpreter_params, pyz_path, require_interpreter

trustme = pytest.importorskip("trustme")
TIMEOUT = 120
NAME = "t.tar.gz"
PAYLOAD = Payload(NAME, make_data(150000, 22))


class PKI(object):
    """A test CA (ca.pem) and a leaf it signed for localhost (good.crt/.key)."""

    def __init__(self, directory):
        ca = trustme.CA()
        self.ca = str(directory / "ca.pem")
        ca.cert_pem.write_to_path(self.ca)
        leaf = ca.issue_cert("localhost", "127.0.0.1")
        leaf.private_key_pem.write_to_path(self.key("good", directory))
        with open(self.cert("good", directory), "wb") as f:
            for blob in leaf.cert_chain_pems:
                f.write(blob.bytes())
        self.dir = directory

    def cert(self, kind, directory=None):
        return str((directory or self.dir) / (kind + ".crt"))

    def key(self, kind, directory=None):
        return str((directory or self.dir) / (kind + ".key"))
SYSTEM_CERTS = "/etc/ssl/certs"
REFRESH = os.path.join(REPO, "tools", "refresh_cacert.py")


def _refresh_tool():
    import importlib.util
    spec = importlib.util.spec_from_file_location("refresh_cacert", REFRESH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return PKI(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def site(pki, tmp_path_factory):
    require_tool("nginx")
    root = tmp_path_factory.mktemp("www")
    (root / NAME).write_bytes(PAYLOAD.data)
    server = Nginx(str(root), tls_cert=pki.cert("good"), tls_key=pki.key("good"))
    server.start()
    try:
        yield "https://localhost:%d/%s" % (server.port, NAME)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def test_ca_pyz(pki, tmp_path_factory):
    """The real sources, but sagedl/cacert.pem holds only the test CA."""
    root = tmp_path_factory.mktemp("repo")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(os.path.join(REPO, "sagedl"), str(root / "sagedl"), ignore=ignore)
    with open(pki.ca, "rb") as f:
        (root / "sagedl" / "cacert.pem").write_bytes(b"# certifi 0.test: test CA\n" + f.read())
    return build_pyz(str(root / "test-ca.pyz"), repo_root=str(root))


@pytest.fixture(scope="module")
def no_system_store(tmp_path_factory):
    """A command prefix running its command with /etc/ssl/certs empty."""
    unshare = shutil.which("unshare")
    empty = tmp_path_factory.mktemp("empty-certs")
    cmd = [unshare or "unshare", "-m", "--", "sh", "-c",
           'mount --bind "$0" %s && exec "$@"' % SYSTEM_CERTS, str(empty)]
    ok = unshare and subprocess.run(cmd + ["ls", SYSTEM_CERTS], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, timeout=TIMEOUT)
    if not ok or ok.returncode != 0 or ok.stdout.strip():
        message = "cannot bind-mount over %s in a mount namespace (needs root)" % SYSTEM_CERTS
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return cmd


def env_for(tmp_path):
    env = dict((k, v) for k, v in os.environ.items() if not k.startswith("PYTHON")
               and k not in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"))
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    return env


def fetch(prefix, python, pyz, url, dest, env, *extra):
    return subprocess.run(prefix + [python, pyz, url, str(dest), "--sha256", PAYLOAD.sha256,
                                    "--progress", "none"] + list(extra),
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=TIMEOUT)


LABELS = interpreter_params()


@pytest.mark.parametrize("label", LABELS)
def test_empty_system_store_falls_back_to_the_embedded_bundle(label, site, test_ca_pyz,
                                                              no_system_store, tmp_path):
    python = require_interpreter(label)
    dest = tmp_path / NAME
    r = fetch(no_system_store, python, test_ca_pyz, site, dest, env_for(tmp_path), "--debug")
    assert r.returncode == 0, r.stderr
    assert dest.read_bytes() == PAYLOAD.data
    assert ("sagedl: debug: TLS: trusting certifi 0.test's CA bundle inside sagedl (the system "
            "store is empty); OpenSSL's default store (/usr/lib/ssl/cert.pem, ") in r.stderr


@pytest.mark.parametrize("label", LABELS)
def test_the_real_pyz_names_its_certifi_bundle_when_the_store_is_empty(label, site,
                                                                      no_system_store, tmp_path):
    python = require_interpreter(label)
    with open(os.path.join(REPO, "sagedl", "cacert.pem"), "rb") as f:
        version = _refresh_tool().embedded_version(f.readline().decode("ascii"))
    r = fetch(no_system_store, python, pyz_path(), site, tmp_path / NAME, env_for(tmp_path))
    assert r.returncode == 5, r.stderr
    # The test CA is in no real bundle: refused, and the message says whose
    # CAs were asked -- not "no CA certificates found on this machine".
    # (2.7 and 3.6 cannot tell self-signed from an unknown CA.)
    assert "issued by an unknown CA" in r.stderr, r.stderr
    assert ("(trusted CAs: certifi %s's CA bundle inside sagedl (the system store is empty))"
            % version) in r.stderr, r.stderr
    assert not (tmp_path / NAME).exists()


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.13", "pypy3")))
def test_with_a_system_store_the_embedded_bundle_is_not_used(label, site, test_ca_pyz, tmp_path):
    python = require_interpreter(label)
    r = fetch([], python, test_ca_pyz, site, tmp_path / NAME, env_for(tmp_path), "--debug")
    assert r.returncode == 5, r.stderr
    assert "sagedl: debug: TLS: trusting the system CA store (" in r.stderr
    assert "trusted CAs: the system CA store" in r.stderr


def test_the_committed_bundle_is_certifis_with_a_version_header():
    with open(os.path.join(REPO, "sagedl", "cacert.pem"), "rb") as f:
        data = f.read()
    first, rest = data.split(b"\n", 1)
    assert _refresh_tool().embedded_version(first.decode("ascii") + "\n")
    assert rest.count(b"-----BEGIN CERTIFICATE-----") > 100
    # Every certificate parses (what the fallback loads with cadata=).
    ctx = ssl.create_default_context(cadata=data.decode("ascii"))
    assert len(ctx.get_ca_certs()) == rest.count(b"-----BEGIN CERTIFICATE-----")


def test_refresh_tool_takes_certifis_bytes_from_a_wheel(tmp_path, pki):
    import zipfile
    wheel = tmp_path / "certifi-2099.1.2-py3-none-any.whl"
    with open(pki.ca, "rb") as f:
        pem = b"# a comment as certifi writes them\n" + f.read()
    with zipfile.ZipFile(str(wheel), "w") as z:
        z.writestr("certifi/cacert.pem", pem)
        z.writestr("certifi/__init__.py", '__version__ = "2099.01.02"\n')
    out = tmp_path / "cacert.pem"
    r = subprocess.run([sys.executable, REFRESH, "--from", str(wheel), "-o", str(out)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                       timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    data = out.read_bytes()
    assert data.startswith(b"# certifi 2099.01.02: ")
    assert data.split(b"\n", 1)[1] == pem
    r = subprocess.run([sys.executable, REFRESH, "--from", str(wheel), "-o", str(out), "--check"],
                       stdout=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)
    assert r.returncode == 0, r.stdout
