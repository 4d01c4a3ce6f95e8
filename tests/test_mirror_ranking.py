"""Ranking mirrors: the parallel probe under one deadline, hung and silent
servers, Happy Eyeballs, DNS that hangs, proxies and TLS.  Every socket is on
127.0.0.1 (tests/loopback.py)."""

import random
import socket
import ssl
import threading

import pytest

from loopback import (OK_RESPONSE, LoopbackProxy, TLSServer, by_url, fill_accept_queues, listener,
                      listener_url, rank)
from sagedl.mirrors import mirrorlist, probe


# -- ranking -----------------------------------------------------------------------
def test_24_mirrors_hung_and_silent_ones_fail_and_a_healthy_one_wins(servers):
    full = [servers.full() for _ in range(8)]
    silent = [servers.silent() for _ in range(8)]
    healthy = [servers.respond() for _ in range(8)]
    servers.start()
    urls = full + silent + healthy
    random.Random(7).shuffle(urls)
    # want=None: no early stop, so every hung mirror meets the deadline.
    ranked = rank(urls, want=None, env={}, rng=random.Random(1))
    assert len(ranked) == 24
    assert ranked[0].mirror.url in healthy and ranked[0].ok
    result = by_url(ranked)
    assert all(result[u].ok and result[u].latency >= 0 for u in healthy)
    for u in full:
        assert result[u].status == probe.FAILED and result[u].latency is None
        assert "timed out" in result[u].reason and "connecting" in result[u].reason
    for u in silent:
        assert result[u].status == probe.FAILED and result[u].latency is None
        assert "timed out" in result[u].reason and "answer" in result[u].reason
    assert [r.ok for r in ranked] == [True] * 8 + [False] * 16
    for u in healthy:
        assert servers.requests[int(u.rsplit(":", 1)[1].strip("/"))][0].startswith("HEAD / HTTP/1.1")


def test_24_mirrors_with_early_stop_ranks_healthy_first(servers):
    full = [servers.full() for _ in range(8)]
    silent = [servers.silent() for _ in range(8)]
    healthy = [servers.respond() for _ in range(8)]
    servers.start()
    ranked = rank(full + silent + healthy, env={}, rng=random.Random(2))
    assert ranked[0].mirror.url in healthy
    assert len([r for r in ranked if r.ok]) >= 3
    result = by_url(ranked)
    # Stopped early: the hung mirrors were cut off, not timed out.
    for u in full + silent:
        assert result[u].status == probe.SKIPPED and result[u].latency is None
        assert result[u].reason.startswith("not measured")


def test_wrong_answers_fail_and_any_answer_at_the_base_url_counts(servers):
    garbage = servers.respond(b"SSH-2.0-OpenSSH_9.6\r\n")
    forbidden = servers.respond(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    broken = servers.respond(b"HTTP/1.1 503 Service Unavailable\r\n\r\n")
    closes = servers.respond(b"")
    gone = listener(1)
    refused = listener_url(gone)
    gone.close()  # nothing listens there any more: connection refused
    servers.start()
    result = by_url(rank([garbage, forbidden, broken, closes, refused], want=None, env={},
                           deadline=5))
    assert "not an HTTP server" in result[garbage].reason
    assert result[forbidden].ok  # a live server that forbids listing its base URL
    assert result[broken].reason == "HTTP 503"
    assert "closed" in result[closes].reason
    assert "refused" in result[refused].reason


def test_with_a_path_only_success_counts(servers):
    missing = servers.respond(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    present = servers.respond()
    servers.start()
    result = by_url(rank([missing, present], want=None, env={}, path="spkg/upstream/a/a.tgz",
                           deadline=5))
    assert result[missing].reason == "HTTP 404" and result[present].ok
    port = int(present.rsplit(":", 1)[1].strip("/"))
    assert servers.requests[port][0].startswith("HEAD /spkg/upstream/a/a.tgz HTTP/1.1")


def test_explicit_ports_and_ipv6_literals_are_honoured():
    try:
        s6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s6.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    s6.listen(4)
    url = "http://[::1]:%d/" % s6.getsockname()[1]
    got = {}

    def serve():
        c = s6.accept()[0]
        got["head"] = c.recv(4096).decode("latin-1")
        c.sendall(OK_RESPONSE)
        c.close()
    t = threading.Thread(target=serve)
    t.start()
    ranked = rank([url], want=None, env={}, deadline=5)
    t.join(10)
    s6.close()
    assert ranked[0].ok
    assert "Host: [::1]:%d\r\n" % int(url.rsplit(":", 1)[1].strip("/")) in got["head"]


def test_a_hanging_name_resolver_costs_no_more_than_the_deadline(servers):
    healthy = servers.respond()
    servers.start()
    release = threading.Event()

    def resolver(host, port):
        release.wait(30)  # a resolver that never answers within the ranking
        raise socket.gaierror("gave up")
    try:
        ranked = rank(["http://hangs.invalid/", healthy], want=None, env={}, deadline=0.5,
                        resolver=resolver)
    finally:
        release.set()
    result = by_url(ranked)
    assert result[healthy].ok
    assert "resolving" in result["http://hangs.invalid/"].reason


def test_resolver_errors_are_reasons(servers):
    def resolver(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    ranked = rank(["http://nowhere.invalid/"], env={}, deadline=2, resolver=resolver)
    assert ranked[0].status == probe.FAILED and "cannot resolve nowhere.invalid" in ranked[0].reason


def test_next_address_is_tried_when_the_first_hangs_or_refuses(servers):
    hung = listener(0)
    fillers = fill_accept_queues([hung])
    healthy = servers.respond()
    servers.start()
    port = int(healthy.rsplit(":", 1)[1].strip("/"))
    refused = listener(1)
    refused_port = refused.getsockname()[1]
    refused.close()

    def info(p):
        return (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", p))

    def resolver(host, p):
        return {"hang.test": [info(hung.getsockname()[1]), info(port)],
                "refuse.test": [info(refused_port), info(port)]}[host]
    try:
        ranked = rank(["http://hang.test/", "http://refuse.test/"], want=None, env={},
                        deadline=5, resolver=resolver)
    finally:
        for s in fillers + [hung]:
            s.close()
    assert all(r.ok for r in ranked), ranked


def test_the_fastest_mirror_is_drawn_at_random_among_the_near_best():
    def ranked(latencies):
        return [probe.Ranked(mirrorlist.Mirror("https://m%d.example/" % i), probe.OK, lat)
                for i, lat in enumerate(latencies)]
    # best 10 ms: the window is 10 * 1.5 + 5 = 20 ms.
    results = ranked([0.050, 0.0199, 0.010, 0.021, 0.012]) + [
        probe.Ranked(mirrorlist.Mirror("https://dead.example/", priority=1), probe.FAILED, None, "x"),
        probe.Ranked(mirrorlist.Mirror("https://dead2.example/", priority=99), probe.FAILED, None, "x"),
        probe.Ranked(mirrorlist.Mirror("https://later.example/"), probe.SKIPPED, None, "not measured")]
    near = {"https://m1.example/", "https://m2.example/", "https://m4.example/"}
    firsts = set()
    for seed in range(40):
        order = [r.mirror.url for r in probe.order_ranking(results, random.Random(seed))]
        assert set(order[:3]) == near
        assert order[3:] == ["https://m3.example/", "https://m0.example/",
                             "https://later.example/", "https://dead2.example/",
                             "https://dead.example/"]
        firsts.add(order[0])
    assert firsts == near
    assert probe.order_ranking(results, random.Random(5))[0].mirror.url == \
        probe.order_ranking(results, random.Random(5))[0].mirror.url


def test_rank_accepts_mirrors_and_drops_duplicates(servers):
    url = servers.respond()
    servers.start()
    ranked = rank([mirrorlist.Mirror(url, "Named"), url], env={}, deadline=5)
    assert len(ranked) == 1 and ranked[0].mirror.name == "Named" and ranked[0].ok


def test_bad_urls_fail_without_io():
    ranked = rank(["ftp://x.example/", "http://h\u00e9.example/"], env={}, deadline=1)
    assert all(r.status == probe.FAILED for r in ranked)


# -- proxies -------------------------------------------------------------------------
def test_http_mirrors_are_probed_through_the_proxy(servers):
    url = servers.respond()
    servers.start()
    proxy = LoopbackProxy()
    try:
        ranked = rank([url], want=None, env={"http_proxy": proxy.url}, deadline=5)
    finally:
        proxy.close()
    assert ranked[0].ok
    assert proxy.seen == ["HEAD %s HTTP/1.1" % url]  # absolute-form to the proxy
    assert servers.requests[int(url.rsplit(":", 1)[1].strip("/"))]  # and on to the mirror


def test_no_proxy_makes_the_probe_direct(servers):
    url = servers.respond()
    servers.start()
    proxy = LoopbackProxy()
    try:
        ranked = rank([url], env={"http_proxy": proxy.url, "no_proxy": "localhost, 127.0.0.1"},
                        deadline=5)
    finally:
        proxy.close()
    assert ranked[0].ok and proxy.seen == []


def test_https_mirrors_are_probed_with_tls_directly_and_through_connect(tls_files):
    certfile, keyfile = tls_files
    server = TLSServer(certfile, keyfile)
    proxy = LoopbackProxy()
    trusting = ssl.create_default_context(cafile=certfile)
    try:
        direct = rank([server.url], want=None, env={}, ssl_context=trusting, deadline=5)
        tunnelled = rank([server.url], want=None, env={"https_proxy": proxy.url},
                           ssl_context=trusting, deadline=5)
        untrusted = rank([server.url], want=None, env={}, deadline=5,
                           ssl_context=ssl.create_default_context())
    finally:
        proxy.close()
        server.close()
    assert direct[0].ok and tunnelled[0].ok
    port = int(server.url.rsplit(":", 1)[1].strip("/"))
    assert proxy.seen == ["CONNECT 127.0.0.1:%d HTTP/1.1" % port]
    assert any(h.startswith("HEAD / HTTP/1.1") for h in server.heads)
    assert untrusted[0].status == probe.FAILED and "TLS" in untrusted[0].reason


def test_a_proxy_refusing_connect_fails_the_mirror():
    proxy = LoopbackProxy(refuse_connect=True)
    try:
        ranked = rank(["https://127.0.0.1:9/"], env={"https_proxy": proxy.url}, deadline=5)
    finally:
        proxy.close()
    assert ranked[0].reason == "proxy refused CONNECT: HTTP 403"


def test_an_unreachable_proxy_is_named_in_the_reason():
    gone = listener(1)
    port = gone.getsockname()[1]
    gone.close()
    ranked = rank(["http://127.0.0.1:9/"], env={"http_proxy": "127.0.0.1:%d" % port},
                    deadline=5)
    assert ranked[0].reason.startswith("cannot connect to the proxy 127.0.0.1:%d: " % port)


def test_socks_proxies_are_reported_not_silently_bypassed():
    ranked = rank(["http://127.0.0.1:9/"], env={"all_proxy": "socks5://127.0.0.1:1080"},
                    deadline=1)
    assert ranked[0].status == probe.FAILED and "socks5" in ranked[0].reason


