"""Which mirrors exist: the shipped mirrors.toml and its generator, a user's
file, Sage's live mirror_list (parsed without eval) and its cache."""

import importlib.util
import os
import subprocess
import sys
import zipfile

import pytest
from hypothesis import given, settings, strategies as st

from helpers import write_text
from sagedl import errors
from sagedl.engine.lock import FileLock
from sagedl.errors import MetadataError, SourceFailure
from sagedl.mirrors import mirrorlist
from sagedl.net.urls import base_url_problem
from sagedl.paths import cache_dir, config_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The Sage website's mirrors.yaml, kept beside its generator.
MIRRORS_YAML = os.path.join(ROOT, "tools", "mirrors.yaml")


# -- paths -----------------------------------------------------------------------
def test_paths_follow_xdg_with_an_injected_environment():
    env = {"HOME": "/home/u"}
    assert config_dir(env) == "/home/u/.config/sagedl"
    assert cache_dir(env) == "/home/u/.cache/sagedl"
    env = {"HOME": "/home/u", "XDG_CONFIG_HOME": "/cfg", "XDG_CACHE_HOME": "/cch"}
    assert (config_dir(env), cache_dir(env)) == ("/cfg/sagedl", "/cch/sagedl")
    # The XDG spec: relative values are invalid and ignored; empty means unset.
    env = {"HOME": "/home/u", "XDG_CONFIG_HOME": "rel", "XDG_CACHE_HOME": ""}
    assert (config_dir(env), cache_dir(env)) == ("/home/u/.config/sagedl", "/home/u/.cache/sagedl")


# -- the shipped list and its generator --------------------------------------------
def _generator():
    spec = importlib.util.spec_from_file_location(
        "make_mirrors_toml", os.path.join(ROOT, "tools", "make_mirrors_toml.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerating_mirrors_toml_gives_the_committed_file():
    with open(os.path.join(ROOT, "sagedl", "mirrors.toml"), encoding="utf-8", newline="") as f:
        committed = f.read()
    assert _generator().generate(MIRRORS_YAML) == committed


def test_shipped_list_has_every_active_mirror_of_mirrors_yaml():
    gen = _generator()
    with open(MIRRORS_YAML, encoding="utf-8") as f:
        entries = gen.parse_yaml_list(f.read())
    active = [e for e in entries if e.get("active") is True]
    shipped = mirrorlist.load_shipped()
    assert len(shipped) == len(active) == 38
    assert [m.url for m in shipped] == [e["url"] for e in active]
    xmission = shipped[0]
    assert (xmission.name, xmission.country, xmission.region, xmission.priority) == \
        ("XMission, Utah, USA", "us", "na", 75)
    assert all(m.url.endswith("/") and m.url.split(":")[0] in ("http", "https") for m in shipped)


def test_load_shipped_reads_the_copy_embedded_in_a_zipapp(tmp_path):
    """The pyz has the list at sagedl/mirrors.toml; pkgutil.get_data must find it there."""
    pyz = str(tmp_path / "t.pyz")
    with zipfile.ZipFile(pyz, "w") as z:
        package = os.path.join(ROOT, "sagedl")
        for top, _, files in os.walk(package):
            for name in files:
                if name.endswith(".py"):
                    rel = os.path.relpath(os.path.join(top, name), package)
                    z.write(os.path.join(top, name), "sagedl/" + rel.replace(os.sep, "/"))
        z.writestr("sagedl/mirrors.toml", '[[mirror]]\nurl = "https://only.example/sage"\n')
    code = ("import sys; sys.path.insert(0, %r); from sagedl.mirrors import mirrorlist; "
            "print([m.url for m in mirrorlist.load_shipped()])" % pyz)
    out = subprocess.run([sys.executable, "-I", "-c", code], capture_output=True, text=True,
                         cwd=str(tmp_path), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['https://only.example/sage/']"


def test_mirror_urls_are_normalised_to_end_with_a_slash():
    m = mirrorlist.Mirror("https://h.example/sage")
    assert m.url == "https://h.example/sage/"
    assert m.name == "h.example"
    assert m == mirrorlist.Mirror("https://h.example/sage/")


# -- overrides ---------------------------------------------------------------------
def test_override_order_is_mirrors_file_then_user_file_then_shipped(env, tmp_path):
    assert mirrorlist.load_configured(env=env) == mirrorlist.load_shipped()
    assert mirrorlist.configured_file(env=env) is None
    user = write_text(os.path.join(config_dir(env), "mirrors.toml"),
                  '[[mirror]]\nurl = "https://user.example/"\nname = "Mine"\npriority = 3\n')
    assert mirrorlist.load_configured(env=env) == [mirrorlist.Mirror("https://user.example/", "Mine", "", "", 3)]
    given_file = write_text(str(tmp_path / "given.toml"), "[[mirror]]\nurl = 'http://given.example/s'\n")
    assert [m.url for m in mirrorlist.load_configured(given_file, env)] == ["http://given.example/s/"]
    assert mirrorlist.configured_file(given_file, env) == given_file
    assert mirrorlist.configured_file(None, env) == user


@pytest.mark.parametrize("text, words", [
    ('[[mirror]]\nurl = "ftp://x.example/"\n', "not an http or https URL"),
    ('[[mirror]]\nurl = "file:///etc/"\n', "not an http or https URL"),
    ('[[mirror]]\nname = "no url"\n', "url is missing"),
    ('[[mirror]]\nurl = "https://x.example/"\npriority = "high"\n', "priority must be an integer"),
    ('[[mirror]]\nurl = "https://x.example/"\npriority = true\n', "priority must be an integer"),
    ('[[mirror]]\nurl = "https://x.example/"\nname = 3\n', "name must be a string"),
    ('[[mirror]]\nurl = "https:///nohost"\n', "has no host"),
    ('[[mirror]]\nurl = "https://x.example/a b"\n', "spaces"),
    ("[mirror]\nurl = 'https://x.example/'\n", "no [[mirror]] entries"),
    ("# empty\n", "no [[mirror]] entries"),
    ("[[mirror]]\nurl = https://x\n", "bad.toml:2"),
])
def test_bad_mirrors_files_are_metadata_errors_naming_the_file(tmp_path, text, words):
    path = write_text(str(tmp_path / "bad.toml"), text)
    with pytest.raises(MetadataError) as e:
        mirrorlist.load_file(path)
    assert path in str(e.value) and words in str(e.value)


def test_unreadable_mirrors_file_is_a_metadata_error(tmp_path):
    with pytest.raises(MetadataError) as e:
        mirrorlist.load_configured(str(tmp_path / "missing.toml"), {"HOME": str(tmp_path)})
    assert "missing.toml" in str(e.value) and "cannot read" in str(e.value)


# -- the live list: parsing ----------------------------------------------------------
def test_live_list_parses_comments_quotes_and_python2_reprs():
    text = ("# Sage mirror list\n# generated\n[\n  'https://a.example/sage/',  # first\n"
            '  "http://b.example/s",\n  u\'https://c.example:8443/x/\',\n'
            "  'https://a.example/sage/',\n]\n# end\n")
    assert mirrorlist.parse_mirror_list(text, "list") == [
        "https://a.example/sage/", "http://b.example/s/", "https://c.example:8443/x/"]
    assert mirrorlist.parse_mirror_list(b"['https://a.example/']", "list") == ["https://a.example/"]


@pytest.mark.parametrize("text", [
    "__import__('os').system('x')",
    "[__import__('os').system('x')]",
    "['https://a.example/'] + [__import__('os')]",
    "['https://a.example/'];__import__('os')",
    "['https://a.example/' 'b']",
    "['http://a.example/' + 'x']",
    "[('https://a.example/',)]",
    "[['https://a.example/']]",
    "{'https://a.example/': 1}",
    "[1, 2]",
    "[None]",
    "[]",
    "",
    "# only comments\n",
    "['https://a.example/'",
    "['https://a.example/]",
    "['ftp://a.example/']",
    "['file:///etc/passwd']",
    "['javascript:alert(1)']",
    "['//a.example/']",
    "['https://a.example/\\x00']",
    "['https://a.example/ space']",
    "['https://user:pw@a.example/']",
    "['https://a.example/?q=1']",
    "['https://a.example:99999/']",
    "[b'https://a.example/']",
    "[f'https://a.example/']",
    "['https://a.example/'] trailing",
    "['https://a.example/',,]",
    "[,]",
])
def test_live_list_rejects_anything_but_a_list_of_http_urls(text):
    with pytest.raises(MetadataError):
        mirrorlist.parse_mirror_list(text, "https://www.sagemath.org/mirror_list")


def test_live_list_rejects_huge_input_and_too_many_entries():
    huge = "[" + "'https://a.example/', " * 20000 + "]"
    with pytest.raises(MetadataError) as e:
        mirrorlist.parse_mirror_list(huge, "l")
    assert "larger than" in str(e.value)
    with pytest.raises(MetadataError):
        mirrorlist.parse_mirror_list(huge.encode(), "l")
    many = "[" + ", ".join("'https://m%d.example/'" % i for i in range(mirrorlist.MAX_LIST_ENTRIES + 1)) + "]"
    with pytest.raises(MetadataError) as e:
        mirrorlist.parse_mirror_list(many, "l")
    assert "more than" in str(e.value)
    with pytest.raises(MetadataError):
        mirrorlist.parse_mirror_list(b"['https://a.example/\xff']", "l")


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80),
                 st.text(alphabet="[]'\",#\n u:/.ahpstxe0", max_size=60)))
def test_live_list_parser_only_returns_urls_or_raises_metadata_error(text):
    try:
        found = mirrorlist.parse_mirror_list(text, "fuzz")
    except MetadataError:
        return
    assert found and all(base_url_problem(u) is None and u.endswith("/") for u in found)


# -- the live list: cache and fallbacks ------------------------------------------------
LIST_URL = mirrorlist.MIRROR_LIST_URL
GOOD_LIST = b"# comment\n['https://mirrors.xmission.com/sage/', 'https://new.example/sage/']\n"


class Fetcher(object):
    def __init__(self, result):
        self.result = result
        self.calls = 0

    def __call__(self, url, timeout):
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def never_called(url, timeout):
    raise AssertionError("the network must not be used here")


def test_live_list_is_fetched_cached_and_named_from_the_shipped_list(env):
    fetch = Fetcher(GOOD_LIST)
    mirrors, origin, problem = mirrorlist.live_mirror_list(LIST_URL, fetch, env=env, clock=lambda: 1000.0)
    assert (origin, problem, fetch.calls) == ("fetched", None, 1)
    assert [m.url for m in mirrors] == ["https://mirrors.xmission.com/sage/",
                                        "https://new.example/sage/"]
    assert mirrors[0].name == "XMission, Utah, USA" and mirrors[1].name == "new.example"
    # Within the TTL the cache answers, without the network.
    again, origin, _ = mirrorlist.live_mirror_list(LIST_URL, never_called, env=env,
                                          clock=lambda: 1000.0 + 86399)
    assert (again, origin) == (mirrors, "cache")


def test_expired_cache_is_refreshed(env):
    mirrorlist.live_mirror_list(LIST_URL, Fetcher(GOOD_LIST), env=env, clock=lambda: 1000.0)
    newer = Fetcher(b"['https://other.example/']")
    mirrors, origin, _ = mirrorlist.live_mirror_list(LIST_URL, newer, env=env, clock=lambda: 1000.0 + 86400)
    assert origin == "fetched" and [m.url for m in mirrors] == ["https://other.example/"]
    mirrors, origin, _ = mirrorlist.live_mirror_list(LIST_URL, never_called, env=env,
                                            clock=lambda: 1000.0 + 86401)
    assert origin == "cache" and [m.url for m in mirrors] == ["https://other.example/"]


def test_cache_stamped_in_the_future_is_not_trusted(env):
    mirrorlist.live_mirror_list(LIST_URL, Fetcher(GOOD_LIST), env=env, clock=lambda: 5000.0)
    fetch = Fetcher(b"['https://other.example/']")
    _, origin, _ = mirrorlist.live_mirror_list(LIST_URL, fetch, env=env, clock=lambda: 1000.0)
    assert origin == "fetched" and fetch.calls == 1


@pytest.mark.parametrize("bad", [
    b"", b"[]", b"<html>Service Unavailable</html>", b"__import__('os').system('x')",
    SourceFailure(SourceFailure.KIND_NETWORK, "connection refused"),
    errors.SagedlError("offline"),
])
def test_broken_download_never_replaces_a_good_cache(env, bad):
    mirrorlist.live_mirror_list(LIST_URL, Fetcher(GOOD_LIST), env=env, clock=lambda: 1000.0)
    path = os.path.join(cache_dir(env), "mirror_list")
    with open(path, "rb") as f:
        before = f.read()
    mirrors, origin, problem = mirrorlist.live_mirror_list(LIST_URL, Fetcher(bad), env=env,
                                                  clock=lambda: 1000.0 + 2 * 86400)
    assert origin == "stale cache" and problem
    assert [m.url for m in mirrors][1] == "https://new.example/sage/"
    with open(path, "rb") as f:
        assert f.read() == before


def test_offline_without_cache_falls_back_to_the_shipped_list(env):
    offline = Fetcher(SourceFailure(SourceFailure.KIND_NETWORK, "no route to host"))
    mirrors, origin, problem = mirrorlist.live_mirror_list(LIST_URL, offline, env=env)
    assert origin == "shipped" and "no route to host" in problem
    assert mirrors == mirrorlist.load_shipped()
    fallback = [mirrorlist.Mirror("https://fb.example/")]
    assert mirrorlist.live_mirror_list(LIST_URL, offline, env=env, fallback=fallback)[0] == fallback


def test_corrupt_cache_is_ignored_and_rewritten(env):
    path = write_text(os.path.join(cache_dir(env), "mirror_list"), "\x00garbage[[[")
    mirrors, origin, _ = mirrorlist.live_mirror_list(LIST_URL, Fetcher(GOOD_LIST), env=env)
    assert origin == "fetched"
    assert mirrorlist.parse_mirror_list(open(path, "rb").read(), path) == [m.url for m in mirrors]
    assert not [n for n in os.listdir(cache_dir(env)) if n.startswith(".tmp")]


def test_unwritable_cache_still_gives_the_downloaded_list(tmp_path):
    blocker = tmp_path / "cachefile"
    blocker.write_text("not a directory")
    env = {"HOME": str(tmp_path), "XDG_CACHE_HOME": str(blocker)}
    mirrors, origin, _ = mirrorlist.live_mirror_list(LIST_URL, Fetcher(GOOD_LIST), env=env)
    assert origin == "fetched" and len(mirrors) == 2


def test_a_busy_lock_does_not_block_the_list(env):
    """Another process refreshing (holding the lock) costs at most lock_timeout."""
    mirrorlist.live_mirror_list(LIST_URL, Fetcher(GOOD_LIST), env=env, clock=lambda: 1000.0)
    path = os.path.join(cache_dir(env), "mirror_list")
    with FileLock(path + ".lock", 5, "test holder"):
        offline = Fetcher(errors.SagedlError("offline"))
        mirrors, origin, _ = mirrorlist.live_mirror_list(LIST_URL, offline, env=env, lock_timeout=0.05,
                                                clock=lambda: 1000.0 + 2 * 86400)
    assert origin == "stale cache" and offline.calls == 1 and len(mirrors) == 2


def test_another_list_url_gets_its_own_cache_file(env):
    mirrorlist.live_mirror_list(LIST_URL, Fetcher(GOOD_LIST), env=env)
    other = "http://127.0.0.1:1/mirror_list"
    mirrors, origin, _ = mirrorlist.live_mirror_list(other, Fetcher(b"['https://x.example/']"), env=env)
    assert origin == "fetched" and [m.url for m in mirrors] == ["https://x.example/"]
    assert len([n for n in os.listdir(cache_dir(env)) if n.startswith("mirror_list")
                and not n.endswith(".lock")]) == 2


