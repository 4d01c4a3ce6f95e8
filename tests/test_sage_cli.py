"""Sage compatibility: every call form of sage-download-file and sage-package
download, in-process and through the built pyz, against a fixture tree laid
out like Sage's and a loopback mirror in Sage's layout."""

import os
import shutil
import subprocess

import pytest

from helpers import REPO, Tree, assert_one_line_error, clean_env, make_data, mirror_env
from sagedl.errors import EXIT_CHECKSUM, EXIT_METADATA, EXIT_NOT_FOUND, EXIT_USAGE


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path / "sage")
    t.ntl = t.add("ntl", "11.6.0", "ntl-VERSION.tar.gz", make_data(300000, 11))
    t.pari = t.add("pari", "2.17.4.p1", "pari-VERSION.tar.gz", make_data(200000, 12), sha1=False)
    t.opt = t.add("foo_opt", "1.0", "foo_opt-VERSION.tar.bz2", make_data(5000, 13), ptype="optional")
    (t.pkgs / "sagelib").mkdir()                       # no checksums.ini: not downloadable
    (t.pkgs / "sagelib" / "type").write_text("standard\n")
    return t


env_for = mirror_env


def test_tarball_name_goes_to_sage_distfiles_verified(run_cli, tmp_path, tree, mirror):
    r = run_cli(tree.ntl, env=env_for(tmp_path, tree, mirror))
    assert r.code == 0, r
    got = tree.root / "upstream" / tree.ntl
    assert got.read_bytes() == tree.files[tree.ntl]
    assert r.out == ""           # sage-download-file prints nothing on stdout for a tarball
    req = mirror.requests_for(tree.ntl)[0]
    assert req.path == "/ok/spkg/upstream/ntl/" + tree.ntl   # Sage's mirror layout


def test_patch_level_is_stripped_and_sage_distfiles_respected(run_cli, tmp_path, tree, mirror):
    dist = tmp_path / "distfiles"
    r = run_cli("pari-2.17.4.tar.gz", env=env_for(tmp_path, tree, mirror, SAGE_DISTFILES=str(dist)))
    assert r.code == 0, r
    assert (dist / "pari-2.17.4.tar.gz").read_bytes() == tree.files[tree.pari]


def test_sage_root_found_by_walking_up(run_cli, tmp_path, tree, mirror):
    env = env_for(tmp_path, tree, mirror)
    del env["SAGE_ROOT"]
    sub = tree.pkgs / "ntl"
    r = run_cli(tree.ntl, env=env, cwd=sub)
    assert r.code == 0, r
    assert (tree.root / "upstream" / tree.ntl).exists()


def test_cached_verified_file_needs_no_network(run_cli, tmp_path, tree, mirror):
    (tree.root / "upstream").mkdir()
    (tree.root / "upstream" / tree.ntl).write_bytes(tree.files[tree.ntl])
    env = env_for(tmp_path, tree, mirror, SAGEDL_MIRRORS="http://127.0.0.1:9/")  # nothing listens
    r = run_cli(tree.ntl, env=env)
    assert r.code == 0, r
    assert mirror.requests == []


def test_cached_bad_file_is_set_aside_and_fetched_again(run_cli, tmp_path, tree, mirror):
    (tree.root / "upstream").mkdir()
    (tree.root / "upstream" / tree.ntl).write_bytes(b"truncated")
    r = run_cli(tree.ntl, env=env_for(tmp_path, tree, mirror))
    assert r.code == 0, r
    assert (tree.root / "upstream" / tree.ntl).read_bytes() == tree.files[tree.ntl]
    assert (tree.root / "upstream" / (tree.ntl + ".bad")).read_bytes() == b"truncated"


def test_destination_gets_a_copy(run_cli, tmp_path, tree, mirror):
    dest = tmp_path / "copy.tar.gz"
    r = run_cli(tree.ntl, dest, env=env_for(tmp_path, tree, mirror))
    assert r.code == 0, r
    assert dest.read_bytes() == tree.files[tree.ntl]
    assert (tree.root / "upstream" / tree.ntl).exists()


def test_source_order_sage_server_then_upstream_d_then_mirrors(run_cli, tmp_path, tree, mirror):
    (tree.root / ".upstream.d").mkdir()
    (tree.root / ".upstream.d" / "20-other").write_text(
        "# a comment\n%s/404/${SPKG}/\n" % mirror.url)
    (tree.root / ".upstream.d" / "10-SAGE_SERVER").write_text("${SAGE_SERVER}/spkg/upstream/${SPKG}/\n")
    env = clean_env(tmp_path, SAGE_ROOT=str(tree.root), SAGE_SERVER=mirror.url + "/503/")
    # No --mirror: the .upstream.d entries apply; the mirror list is --mirrors-file's one entry.
    mfile = tmp_path / "mirrors.toml"
    mfile.write_text('[[mirror]]\nurl = "%s/ok/"\nname = "loopback"\n' % mirror.url)
    r = run_cli(tree.ntl, "--mirrors-file", mfile, "--retries", "0", env=env)
    assert r.code == 0, r
    paths = [q.path for q in mirror.requests_for(tree.ntl) if q.method == "GET"]
    assert paths == ["/503/spkg/upstream/ntl/" + tree.ntl, "/404/ntl/" + tree.ntl,
                     "/ok/spkg/upstream/ntl/" + tree.ntl]


def test_upstream_url_only_with_allow_upstream(run_cli, tmp_path, tmp_path_factory, mirror):
    t = Tree(tmp_path / "sage2")
    data = make_data(7000, 21)
    name = t.add("up", "2.0", "up-VERSION.tar.gz", data, upstream_url="URLBASE/up-VERSION.tar.gz")
    mirror.add(name, data)
    ini = t.pkgs / "up" / "checksums.ini"
    ini.write_text(ini.read_text().replace("URLBASE", mirror.url + "/ok/upstream"))
    env = clean_env(tmp_path, SAGE_ROOT=str(t.root), SAGEDL_MIRRORS=mirror.url + "/404/")
    r = run_cli(name, env=env)
    assert r.code == EXIT_NOT_FOUND, r
    r = run_cli(name, "--allow-upstream", env=env)
    assert r.code == 0, r
    assert mirror.requests_for(name)[-1].path == "/ok/upstream/" + name


def test_unknown_name_suggests_close_names(run_cli, tmp_path, tree, mirror):
    r = run_cli("ntl-11.6.1.tar.gz", env=env_for(tmp_path, tree, mirror))
    assert r.code == EXIT_NOT_FOUND, r
    assert_one_line_error(r.err)
    assert tree.ntl in r.err
    assert mirror.requests == []


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "a/b.tar.gz", "x\x00y", "x\ny"])
def test_hostile_names_refused_before_io(run_cli, tmp_path, tree, mirror, name):
    r = run_cli(name, env=env_for(tmp_path, tree, mirror))
    assert r.code == EXIT_USAGE, r
    assert_one_line_error(r.err)
    assert mirror.requests == []
    assert not (tree.root / "upstream").exists()


def test_malformed_checksums_in_unrelated_package_does_not_matter(run_cli, tmp_path, tree, mirror):
    (tree.pkgs / "broken").mkdir()
    (tree.pkgs / "broken" / "checksums.ini").write_text("tarball=broken-VERSION.tar.gz\nsha256=junk\n")
    (tree.pkgs / "broken" / "package-version.txt").write_text("1\n")
    r = run_cli(tree.ntl, env=env_for(tmp_path, tree, mirror))
    assert r.code == 0, r
    r = run_cli("broken-1.tar.gz", env=env_for(tmp_path, tree, mirror))
    assert r.code == EXIT_METADATA, r
    assert_one_line_error(r.err, "checksums.ini:2")


def test_checksum_mismatch_everywhere(run_cli, tmp_path, tree, mirror):
    r = run_cli(tree.ntl, env=env_for(tmp_path, tree, mirror, SAGEDL_MIRRORS=mirror.url + "/corrupt/"))
    assert r.code == EXIT_CHECKSUM, r
    assert not (tree.root / "upstream" / tree.ntl).exists()


def test_package_download_prints_one_absolute_path_per_package(run_cli, tmp_path, tree, mirror):
    r = run_cli("download", "ntl", "pari", env=env_for(tmp_path, tree, mirror))
    assert r.code == 0, r
    paths = r.out.splitlines()
    assert paths == [str(tree.root / "upstream" / tree.ntl), str(tree.root / "upstream" / tree.pari)]
    assert all(os.path.isabs(p) for p in paths)


def test_package_download_classes_exclude_and_on_error(run_cli, tmp_path, tree, mirror):
    env = env_for(tmp_path, tree, mirror)
    r = run_cli("download", ":standard:", "--exclude", "pari", env=env)
    assert r.code == 0, r
    assert r.out.splitlines() == [str(tree.root / "upstream" / tree.ntl)]
    r = run_cli("download", ":optional:", env=env)
    assert r.out.splitlines() == [str(tree.root / "upstream" / tree.opt)]
    # --on-error warn goes past a file no mirror has, reports it, and exits 0 (as Sage).
    mirror.add("fine", b"")
    del mirror._files[tree.pari]
    shutil.rmtree(tree.root / "upstream")
    r = run_cli("download", "pari", "ntl", "--on-error", "warn", env=env)
    assert r.code == 0, r
    assert r.out.splitlines() == [str(tree.root / "upstream" / tree.ntl)]
    assert "unable to download tarball of pari" in r.err
    # Packages go in Sage's (sorted) order: ntl, then pari, which stops the run.
    r = run_cli("download", "pari", "ntl", "--on-error", "stop", "--jobs", "1", env=env)
    assert r.code == EXIT_NOT_FOUND, r
    assert r.out.splitlines() == [str(tree.root / "upstream" / tree.ntl)]


def test_print_fastest_mirror_with_explicit_mirrors(run_cli, tmp_path, tree, mirror):
    r = run_cli("--print-fastest-mirror", "--mirror", mirror.url + "/ok", env=env_for(tmp_path, tree, mirror))
    assert (r.code, r.out) == (0, mirror.url + "/ok/\n"), r


# -- the drop-in wrappers, through the built pyz ------------------------------
@pytest.fixture
def installed(tree):
    from pyz import pyz_path
    (tree.root / "build" / "bin" / "sage-package").write_text("#!/bin/sh\necho original \"$@\"\n")
    (tree.root / "build" / "bin" / "sage-package").chmod(0o755)
    subprocess.run(["sh", os.path.join(REPO, "contrib", "sage", "install.sh"), str(tree.root),
                    pyz_path()], check=True, stdout=subprocess.PIPE)
    return tree.root / "build" / "bin"


def test_sage_spkg_call_form_gets_exactly_one_path(tmp_path, tree, mirror, installed):
    env = env_for(tmp_path, tree, mirror)
    env["PATH"] = str(installed) + os.pathsep + env["PATH"]
    p = subprocess.run(["sh", "-c", 'PKG_SRC=$(sage-package download ntl) || exit 9; '
                                    'printf "%s" "$PKG_SRC"'],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode() == str(tree.root / "upstream" / tree.ntl)
    # Subcommands off the fetch path still reach Sage's own script.
    p = subprocess.run(["sage-package", "config"], env=env, stdout=subprocess.PIPE, timeout=60)
    assert p.stdout == b"original config\n"


@pytest.mark.parametrize("form", ["tarball", "tarball-dest", "url-dest", "url-stdout", "quiet",
                                  "no-check-certificate", "allow-upstream", "fastest-mirror"])
def test_sage_download_file_forms_through_the_pyz(tmp_path, tree, mirror, installed, form):
    env = env_for(tmp_path, tree, mirror)
    tool = str(installed / "sage-download-file")
    url = mirror.url_for(tree.ntl)
    dest = str(tmp_path / "d.tar.gz")
    argv = {"tarball": [tree.ntl], "tarball-dest": [tree.ntl, dest],
            "url-dest": [url, dest], "url-stdout": [url],
            "quiet": ["--quiet", "--timeout", "10", "--log", "INFO", tree.ntl],
            "no-check-certificate": ["--no-check-certificate", tree.ntl],
            "allow-upstream": ["--allow-upstream", tree.ntl],
            "fastest-mirror": ["--print-fastest-mirror"]}[form]
    p = subprocess.run([tool] + argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    assert p.returncode == 0, p.stderr
    data = tree.files[tree.ntl]
    if form == "fastest-mirror":
        assert p.stdout == (mirror.url + "/ok/\n").encode()
        return
    if form == "no-check-certificate":
        assert b"warning: TLS certificate verification is disabled" in p.stderr
    if form == "url-stdout":
        assert p.stdout == data
    elif form in ("tarball-dest", "url-dest"):
        assert open(dest, "rb").read() == data
    else:
        assert (tree.root / "upstream" / tree.ntl).read_bytes() == data
    if form == "quiet":
        assert p.stderr == b"" and p.stdout == b""


def test_print_fastest_mirror_and_list_mirrors_rank_the_configured_list(run_cli, tmp_path, tree, mirror):
    import socket
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)                    # accepts, never answers HTTP
    try:
        mfile = tmp_path / "mirrors.toml"
        mfile.write_text('[[mirror]]\nurl = "http://127.0.0.1:%d/"\nname = "mute"\n'
                         '[[mirror]]\nurl = "%s/ok/"\nname = "good one"\nregion = "e"\n'
                         % (mute.getsockname()[1], mirror.url))
        env = clean_env(tmp_path, SAGE_ROOT=str(tree.root))
        r = run_cli("--print-fastest-mirror", "--mirrors-file", mfile, env=env)
        assert (r.code, r.out) == (0, mirror.url + "/ok/\n"), r
        r = run_cli("list-mirrors", "--mirrors-file", mfile, env=env)
        assert r.code == 0, r
        lines = r.out.splitlines()     # two lines a mirror: figures and url, then name
        assert "good one" in lines[2] and "mute" in lines[4], r.out
        assert "ms" in lines[1]
    finally:
        mute.close()


def test_upstream_only_skips_every_mirror(run_cli, tmp_path, mirror):
    t = Tree(tmp_path / "sage3")
    data = make_data(9000, 31)
    name = t.add("up", "3.0", "up-VERSION.tar.gz", data, upstream_url="URLBASE/up-VERSION.tar.gz")
    mirror.add(name, data)
    ini = t.pkgs / "up" / "checksums.ini"
    ini.write_text(ini.read_text().replace("URLBASE", mirror.url + "/ok/upstream"))
    env = clean_env(tmp_path, SAGE_ROOT=str(t.root), SAGE_SERVER=mirror.url + "/404/",
                    SAGEDL_MIRRORS=mirror.url + "/404/")
    r = run_cli(name, "--upstream-only", env=env)
    assert r.code == 0, r
    assert [q.path for q in mirror.requests_for(name)] == ["/ok/upstream/" + name]
    r = run_cli("ntl-11.6.0.tar.gz", "--upstream-only", env=clean_env(tmp_path, SAGE_ROOT=str(t.root)))
    assert r.code != 0


def test_mirrors_that_fail_the_probe_are_not_tried_one_by_one(run_cli, tmp_path, tree, mirror):
    import socket
    dead = []
    for _ in range(5):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead.append(s.getsockname()[1])
        s.close()                      # refused at once
    mfile = tmp_path / "mirrors.toml"
    mfile.write_text("".join('[[mirror]]\nurl = "http://127.0.0.1:%d/"\nname = "dead %d"\n' % (p, p)
                             for p in dead)
                     + '[[mirror]]\nurl = "%s/ok/"\nname = "good"\n' % mirror.url)
    env = clean_env(tmp_path, SAGE_ROOT=str(tree.root))
    r = run_cli(tree.ntl, "--mirrors-file", mfile, "--progress", "lines", env=env)
    assert r.code == 0, r
    assert "dead" not in r.err and "127.0.0.1:%d" % dead[0] not in r.err


def test_dots_progress_for_sage_logs(run_cli, tmp_path, tree, mirror):
    r = run_cli(tree.ntl, "--progress", "dots", env=env_for(tmp_path, tree, mirror))
    assert r.code == 0, r
    bar = [l for l in r.err.splitlines() if l.startswith("[")]
    assert bar and bar[0].startswith("[" + "." * 70) and bar[0].rstrip().endswith("]"), r.err


def test_bulk_download_records_mirror_health_once(run_cli, tmp_path, tree, mirror):
    import json
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()                           # refused at once
    env = env_for(tmp_path, tree, mirror,
                  SAGEDL_MIRRORS="http://127.0.0.1:%d/ %s/ok/" % (dead, mirror.url))
    r = run_cli("download", ":all:", "--jobs", "3", env=env)
    assert r.code == 0, r
    health = json.loads((tmp_path / "cache" / "sagedl" / "health.json").read_text())["mirrors"]
    assert health["http://127.0.0.1:%d" % dead]["ok"] is False
    assert health["http://127.0.0.1:%d" % dead]["failures"] >= 1
    assert health["http://127.0.0.1:%d" % mirror.port]["ok"] is True


def test_upstream_d_mirror_list_is_fetched_and_ranked_once_per_run(run_cli, tmp_path, tree, mirror,
                                                                    monkeypatch):
    from sagedl.mirrors import mirrorlist
    calls = []
    real = mirrorlist.live_mirror_list

    def counted(*a, **kw):
        calls.append(a[0])
        return real(*a, **kw)
    monkeypatch.setattr(mirrorlist, "live_mirror_list", counted)
    mirror.add("mirror_list", ("# Sage mirror list\n['%s/ok/']\n" % mirror.url).encode())
    (tree.root / ".upstream.d").mkdir()
    (tree.root / ".upstream.d" / "30-mirror_list").write_text("%s/ok/mirror_list\n" % mirror.url)
    mfile = tmp_path / "mirrors.toml"
    mfile.write_text('[[mirror]]\nurl = "%s/404/"\nname = "configured"\n' % mirror.url)
    env = clean_env(tmp_path, SAGE_ROOT=str(tree.root))
    r = run_cli("download", ":all:", "--mirrors-file", mfile, "--jobs", "2", env=env)
    assert r.code == 0, r
    assert len(r.out.splitlines()) == 3
    assert len([q for q in mirror.requests_for("mirror_list") if q.method == "GET"]) == 1
    assert calls == ["%s/ok/mirror_list" % mirror.url]   # once, not once per tarball
