"""Downloads through a real caching proxy: the second fetch comes from squid's cache."""

import pytest

from helpers import clean_env
from squid import Squid


def test_second_fetch_comes_from_the_squid_cache(run_cli, tmp_path, server, payload):
    with Squid() as squid:
        env = clean_env(tmp_path, http_proxy=squid.url)
        url = server.url_for("f.bin")
        for i in (1, 2):
            r = run_cli(url, tmp_path / ("copy%d" % i), "--sha256", payload.sha256, env=env)
            assert r.code == 0, r
            assert (tmp_path / ("copy%d" % i)).read_bytes() == payload.data
        # The origin saw one request; squid answered the second from its cache.
        assert len(server.requests_for("f.bin")) == 1
        log = squid.access_log()
        assert "TCP_MISS/200" in log and ("TCP_MEM_HIT/200" in log or "TCP_HIT/200" in log), log
        # The request went to the proxy in absolute form.
        assert server.requests_for("f.bin")[0].headers.get("via", "").find("squid") >= 0


def test_no_proxy_bypasses_squid(run_cli, tmp_path, server, payload):
    with Squid() as squid:
        env = clean_env(tmp_path, http_proxy=squid.url, no_proxy="127.0.0.1")
        r = run_cli(server.url_for("f.bin"), tmp_path / "f", "--sha256", payload.sha256, env=env)
        assert r.code == 0, r
        assert "f.bin" not in squid.access_log()   # (the readiness probe leaves one empty line)
        assert "via" not in server.requests_for("f.bin")[0].headers
