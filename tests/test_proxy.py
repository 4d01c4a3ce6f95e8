"""proxy_for: the *_proxy variables, httpoxy, and no_proxy matching; which
proxies sagedl speaks to at all (the transport and the probe alike)."""

import socket

import pytest

from helpers import clean_env
from loopback import rank
from sagedl.errors import EXIT_NETWORK
from sagedl.mirrors import probe
from sagedl.net.urls import no_proxy_matches, parse_proxy, proxy_endpoint, proxy_for

P = "http://proxy.test:3128"


@pytest.mark.parametrize("url, env, expected", [
    ("http://h.example/", {"http_proxy": P}, P),
    ("http://h.example/", {"HTTP_PROXY": P}, P),
    ("https://h.example/", {"https_proxy": P}, P),
    ("https://h.example/", {"HTTPS_PROXY": P}, P),
    # Each scheme has its own variable.
    ("https://h.example/", {"http_proxy": P}, None),
    ("http://h.example/", {"https_proxy": P}, None),
    # all_proxy is the fallback, for both.
    ("http://h.example/", {"all_proxy": P}, P),
    ("https://h.example/", {"ALL_PROXY": P}, P),
    ("https://h.example/", {"https_proxy": P, "all_proxy": "http://other:1"}, P),
    # Lower case wins; an empty value is unset.
    ("http://h.example/", {"http_proxy": P, "HTTP_PROXY": "http://upper:1"}, P),
    ("http://h.example/", {"http_proxy": "", "HTTP_PROXY": P}, P),
    ("http://h.example/", {"http_proxy": "  "}, None),
    # No scheme means http://.
    ("http://h.example/", {"http_proxy": "proxy.test:3128"}, P),
    ("http://h.example/", {}, None),
    ("ftp://h.example/", {"all_proxy": P}, None),
])
def test_proxy_variables(url, env, expected):
    assert proxy_for(url, env) == expected


def test_httpoxy_upper_case_http_proxy_is_ignored_under_cgi():
    cgi = {"REQUEST_METHOD": "GET", "HTTP_PROXY": "http://attacker:1"}
    assert proxy_for("http://h.example/", cgi) is None
    assert proxy_for("http://h.example/", dict(cgi, http_proxy=P)) == P
    # Only HTTP_PROXY can come from a request header; HTTPS_PROXY still counts.
    assert proxy_for("https://h.example/", dict(cgi, HTTPS_PROXY=P)) == P


@pytest.mark.parametrize("host, port, no_proxy, expected", [
    ("h.example", 80, "*", True),
    ("h.example", 80, "a.test, *", True),
    ("example.com", 80, "example.com", True),
    ("a.example.com", 80, "example.com", True),
    ("a.b.example.com", 80, "example.com", True),
    ("badexample.com", 80, "example.com", False),
    ("example.com", 80, ".example.com", True),
    ("a.example.com", 80, ".example.com", True),
    ("badexample.com", 80, ".example.com", False),
    ("a.example.com", 80, "*.example.com", True),
    ("example.com.evil", 80, "example.com", False),
    ("EXAMPLE.com", 80, " Example.COM ", True),
    ("example.com.", 80, "example.com", True),
    ("example.com", 80, "example.com.", True),
    ("example.com", 8080, "example.com:8080", True),
    ("example.com", 80, "example.com:8080", False),
    ("a.example.com", 443, ".example.com:443", True),
    ("10.1.2.3", 80, "10.1.2.3", True),
    ("10.1.2.30", 80, "10.1.2.3", False),
    ("110.1.2.3", 80, "10.1.2.3", False),
    ("10.1.2.3", 80, "10.0.0.0/8", True),
    ("11.1.2.3", 80, "10.0.0.0/8", False),
    ("10.1.2.3", 80, "10.1.2.3/32", True),
    ("1.2.3.4", 80, "3.4", False),          # no suffix matching for addresses
    ("::1", 80, "::1", True),
    ("::1", 80, "0:0:0:0:0:0:0:1", True),   # compared as addresses, not text
    ("::1", 8080, "[::1]:8080", True),
    ("::1", 80, "[::1]:8080", False),
    ("fe80::1", 80, "fe80::/10", True),
    ("2001:db8::1", 80, "fe80::/10", False),
    ("10.1.2.3", 80, "::/0", False),        # families never mix
    ("localhost", 80, "127.0.0.1", False),  # names never match addresses (no DNS)
    ("h.example", 80, "", False),
    ("h.example", 80, " , ,", False),
    ("h.example", 80, "h.example:notaport, x", False),
])
def test_no_proxy_matching(host, port, no_proxy, expected):
    assert no_proxy_matches(host, port, no_proxy) is expected


def test_no_proxy_applies_to_urls_with_their_effective_port():
    env = {"https_proxy": P, "http_proxy": P, "no_proxy": "example.com:443,[::1]"}
    assert proxy_for("https://a.example.com/x", env) is None
    assert proxy_for("https://a.example.com:8443/x", env) == P
    assert proxy_for("http://a.example.com/x", env) == P
    assert proxy_for("http://[::1]:9/", env) is None
    assert proxy_for("http://h.example/", dict(env, NO_PROXY="h.example", no_proxy="")) is None


def test_parse_proxy():
    assert parse_proxy("proxy.test") == ("http", "proxy.test", 80, None)
    assert parse_proxy("http://proxy.test:3128/") == ("http", "proxy.test", 3128, None)
    assert parse_proxy("socks5://s.test") == ("socks5", "s.test", 1080, None)
    scheme, host, port, auth = parse_proxy("http://us%40er:p%3Ass@[::1]:8")
    assert (scheme, host, port) == ("http", "::1", 8)
    import base64
    assert base64.b64decode(auth.split(" ")[1]) == b"us@er:p:ss"
    with pytest.raises(ValueError):
        parse_proxy("http://:3128")
    with pytest.raises(ValueError):
        parse_proxy("http://proxy.test:99999")


@pytest.mark.parametrize("proxy", ["socks5://127.0.0.1:1080", "socks4://127.0.0.1:1080",
                                   "https://127.0.0.1:3129"])
def test_only_http_proxies_are_spoken_to(proxy):
    with pytest.raises(ValueError) as e:
        proxy_endpoint(proxy)
    assert "only http:// proxies are supported" in str(e.value)
    assert proxy_endpoint("proxy.test:3128") == ("proxy.test", 3128, None)


def test_a_socks_proxy_is_refused_alike_by_transport_and_probe(run_cli, tmp_path):
    # Nothing may be sent to the SOCKS port: a plain GET there once went out.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0)
    proxy = "socks5://127.0.0.1:%d" % listener.getsockname()[1]
    try:
        env = clean_env(tmp_path, all_proxy=proxy)
        r = run_cli("http://127.0.0.1:9/f.tar.gz", tmp_path / "f.tar.gz", env=env)
        ranked = rank(["http://127.0.0.1:9/"], env={"all_proxy": proxy}, deadline=1)
        with pytest.raises((BlockingIOError, socket.timeout)):
            listener.accept()
    finally:
        listener.close()
    assert r.code == EXIT_NETWORK, r
    words = "cannot use the socks5:// proxy %s: only http:// proxies are supported" % proxy
    assert words in r.err and "hint: point http_proxy" in r.err
    assert ranked[0].status == probe.FAILED and ranked[0].reason == words


def test_an_unreachable_proxy_is_named_once_with_its_port_by_transport_and_probe(run_cli, tmp_path):
    # "cannot connect to proxy http://127.0.0.1:9/:9" once doubled the port.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()  # a closed loopback port: connect is refused at once
    proxy = "http://127.0.0.1:%d" % port
    env = clean_env(tmp_path, http_proxy=proxy)
    r = run_cli("http://origin.test/f.tar.gz", tmp_path / "f.tar.gz", env=env)
    ranked = rank(["http://origin.test/"], env={"http_proxy": proxy}, deadline=1)
    words = "cannot connect to the proxy 127.0.0.1:%d: " % port
    assert r.code == EXIT_NETWORK, r
    assert words in r.err and "%d/:%d" % (port, port) not in r.err, r
    assert ranked[0].reason.startswith(words), ranked[0].reason
