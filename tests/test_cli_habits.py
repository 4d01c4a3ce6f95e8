"""The command line as pip, git, curl and wget users expect it,
through the built pyz: options anywhere, a mistyped subcommand, -O, -o -,
-v, a URL on a terminal, short usage, and messages that fit the failure.

Every run's mirrors are loopback FaultServers (SAGEDL_MIRRORS / --mirror);
the one test about an unresolvable host runs in tools/offline.
"""
import os
import pty
import re
import select
import subprocess
import sys

import pytest

from faultserver import FaultServer
from helpers import REPO, Tree, clean_env, make_data
from netns import require_offline
from pyz import pyz_path
from sagedl import errors

TIMEOUT = 120


def run(argv, env, cwd=None, prefix=()):
    p = subprocess.run(list(prefix) + [sys.executable, pyz_path()] + [str(a) for a in argv],
                       env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=TIMEOUT)
    p.out = p.stdout.decode("utf-8", "replace")
    p.err = p.stderr.decode("utf-8", "replace")
    return p


def run_on_a_terminal(argv, env, cwd):
    """Run the pyz with stdout (only) on a pty; (exit code, what the terminal
    showed, stderr)."""
    master, slave = pty.openpty()
    try:
        p = subprocess.Popen([sys.executable, pyz_path()] + [str(a) for a in argv], env=env,
                             cwd=cwd, stdout=slave, stderr=subprocess.PIPE)
    finally:
        os.close(slave)
    shown = b""
    try:
        while True:
            ready, _, _ = select.select([master], [], [], TIMEOUT)
            if not ready:
                p.kill()
                raise AssertionError("no output and no end within %ss" % TIMEOUT)
            try:
                chunk = os.read(master, 65536)
            except OSError:      # EIO: the child closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        err = p.stderr.read().decode("utf-8", "replace")
        code = p.wait(TIMEOUT)
    finally:
        os.close(master)
        p.stderr.close()
    return code, shown, err


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path / "sage")
    t.ntl = t.add("ntl", "11.6.0", "ntl-VERSION.tar.gz", make_data(30000, 31))
    t.pari = t.add("pari", "2.17.4", "pari-VERSION.tar.gz", make_data(20000, 32))
    t.six = t.add("six", "1.17.0", "six-VERSION.tar.gz", make_data(10000, 33))
    return t


@pytest.fixture
def mirror(tree):
    with FaultServer(tree.files) as s:
        yield s


@pytest.fixture
def env(tmp_path, tree):
    return clean_env(tmp_path, SAGE_ROOT=str(tree.root))


def upstream(tree, name):
    return str(tree.root / "upstream" / name)


# -- options before a subcommand and between positionals --------------------------------

def test_global_options_before_the_subcommand(tree, mirror, env):
    r = run(["-q", "--mirror", mirror.url + "/ok/", "download", "six"], env)
    assert r.returncode == 0, r.err
    assert r.out == upstream(tree, tree.six) + "\n"
    assert r.err == ""                                   # -q reached the subcommand


def test_mirror_option_before_the_subcommand_with_several_packages(tree, mirror, env):
    r = run(["--mirror", mirror.url + "/ok/", "download", "ntl", "pari"], env)
    assert r.returncode == 0, r.err
    assert r.out.splitlines() == [upstream(tree, tree.ntl), upstream(tree, tree.pari)]


def test_options_between_positionals(tree, mirror, env):
    r = run(["download", "ntl", "-q", "six", "--mirror", mirror.url + "/ok/", "pari"], env)
    assert r.returncode == 0, r.err
    # Sorted by package, as sage-package download prints them.
    assert r.out.splitlines() == [upstream(tree, n) for n in (tree.ntl, tree.pari, tree.six)]
    assert r.err == ""


def test_url_form_with_options_between_url_and_destination(tree, mirror, env, tmp_path):
    data = tree.files[tree.ntl]
    import hashlib
    dest = tmp_path / "got.tar.gz"
    r = run([mirror.url + "/ok/" + tree.ntl, "--sha256", hashlib.sha256(data).hexdigest(), "-q",
             dest], env)
    assert r.returncode == 0, r.err
    assert dest.read_bytes() == data


def test_a_package_named_like_a_command_is_the_subcommands_argument(tree, env):
    name = tree.add("verify", "1.0", "verify-VERSION.tar.gz", make_data(500, 34))
    with FaultServer(tree.files) as s:
        r = run(["-q", "--mirror", s.url + "/ok/", "download", "verify"], env)
    assert r.returncode == 0, r.err
    assert r.out == upstream(tree, name) + "\n"


def test_mistyped_subcommand_gets_a_suggestion(tree, env):
    r = run(["dowload", "six"], env)
    assert r.returncode == errors.EXIT_USAGE, r.err
    assert r.err == ("sagedl: error: dowload is not a sagedl command, nor a package or tarball name\n"
                     "sagedl: hint: did you mean 'sagedl download'?\n")
    r = run(["-q", "lst-mirrors"], env)
    assert r.returncode == errors.EXIT_USAGE and "did you mean 'sagedl list-mirrors'?" in r.err


def test_no_arguments_prints_a_short_usage(env):
    r = run([], env)
    assert r.returncode == errors.EXIT_USAGE
    assert r.out == ""
    assert r.err.startswith("usage: sagedl [options] URL_OR_TARBALL [DESTINATION]\n")
    assert r.err.endswith("Try 'sagedl --help' for more.\n")
    assert len(r.err.splitlines()) <= 6


# -- curl and wget habits ---------------------------------------------------------------

def test_url_without_destination_on_a_terminal_is_refused(mirror, tree, env, tmp_path):
    code, shown, err = run_on_a_terminal([mirror.url + "/ok/" + tree.ntl], env, str(tmp_path))
    assert code == errors.EXIT_USAGE, err
    assert shown == b""                                     # nothing binary on the terminal
    assert err == ("sagedl: error: not writing a download to the terminal\n"
                   "sagedl: hint: give a DESTINATION, -O to save it as its file name here, "
                   "or -o - to write it to the terminal anyway\n")
    assert mirror.requests_for(tree.ntl) == []              # refused before any request


def test_dash_o_dash_writes_to_the_terminal_when_asked(mirror, tree, env, tmp_path):
    code, shown, err = run_on_a_terminal([mirror.url + "/ok/" + tree.six, "-o", "-", "-q"], env,
                                         str(tmp_path))
    assert code == 0, err
    # The terminal's line discipline turns \n into \r\n: compare lengths.
    assert len(shown) >= len(tree.files[tree.six])
    assert not (tmp_path / "-").exists()


def test_url_without_destination_in_a_pipe_goes_to_stdout(mirror, tree, env, tmp_path):
    r = run([mirror.url + "/ok/" + tree.six, "-q"], env, cwd=str(tmp_path))
    assert r.returncode == 0, r.err
    assert r.stdout == tree.files[tree.six]                 # sage-download-file URL | ...
    assert os.listdir(str(tmp_path)) == [] or "-" not in os.listdir(str(tmp_path))


@pytest.mark.parametrize("how", [["-o", "-"], ["-"]])
def test_dash_means_stdout_not_a_file_named_dash(mirror, tree, env, tmp_path, how):
    r = run([mirror.url + "/ok/" + tree.six, "-q"] + how, env, cwd=str(tmp_path))
    assert r.returncode == 0, r.err
    assert r.stdout == tree.files[tree.six]
    assert not (tmp_path / "-").exists()


def test_dash_o_dash_for_a_tarball_name_writes_it_to_stdout_too(mirror, tree, env, tmp_path):
    r = run(["--mirror", mirror.url + "/ok/", tree.pari, "-o", "-", "-q"], env, cwd=str(tmp_path))
    assert r.returncode == 0, r.err
    assert r.stdout == tree.files[tree.pari]
    assert open(upstream(tree, tree.pari), "rb").read() == tree.files[tree.pari]
    assert not (tmp_path / "-").exists()


def test_remote_name_saves_under_the_urls_file_name_here(mirror, tree, env, tmp_path):
    here = tmp_path / "here"
    here.mkdir()
    r = run(["-O", mirror.url + "/ok/" + tree.ntl, "-q"], env, cwd=str(here))
    assert r.returncode == 0, r.err
    assert r.out == ""
    assert (here / tree.ntl).read_bytes() == tree.files[tree.ntl]
    r = run(["-O", mirror.url + "/ok/" + tree.ntl, "x"], env, cwd=str(here))
    assert r.returncode == errors.EXIT_USAGE
    assert "-O saves under the URL's file name" in r.err


def test_verbose_says_the_sources_and_where_the_file_went(mirror, tree, env, tmp_path):
    dest = tmp_path / "v.tar.gz"
    r = run(["-v", "--mirror", mirror.url + "/ok/", tree.ntl, dest], env)
    assert r.returncode == 0, r.err
    assert ("sagedl: debug: sources for %s: %s/ok/spkg/upstream/ntl/%s\n"
            % (tree.ntl, mirror.url, tree.ntl)) in r.err
    assert "sagedl: debug: saved %s\n" % dest in r.err
    assert "Traceback" not in r.err


# -- messages -----------------------------------------------------------------------------

def test_unknown_tarball_name_is_exit_3_everywhere(tree, env):
    r = run(["nosuch-1.0.tar.gz"], env)
    assert r.returncode == errors.EXIT_NOT_FOUND == 3, r.err
    help_text = run(["--help"], env).out
    assert "  3    not found: no such package or tarball, or no source has the file" in help_text
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    rows = dict(re.findall(r"^\| (\d+) \| (.*?) \|$", readme, re.M))
    for code, text in errors.EXIT_CODES:
        assert str(code) in rows, code
    assert "no such package or tarball" in rows["3"]
    assert "unknown" not in rows["2"] and "tarball name" not in rows["2"]


def test_an_old_version_suggests_the_packages_current_tarball(tree, env):
    r = run(["ntl-6.2.1.tar.bz2"], env)
    assert r.returncode == 3
    assert "sagedl: hint: did you mean %s" % tree.ntl in r.err, r.err


def test_each_source_failure_is_said_once(tree, env):
    with FaultServer(tree.files) as s:
        r = run(["--mirror", s.url + "/404/", "--mirror", s.url + "/410/", "--progress", "lines",
                 tree.ntl], env)
    assert r.returncode == 3
    assert r.err.count("HTTP 404") == 1 and r.err.count("HTTP 410") == 1, r.err


def test_a_503_everywhere_hints_at_a_busy_server_not_the_timeout(tree, env):
    with FaultServer(tree.files) as s:
        r = run(["--mirror", s.url + "/503/", "--retries", "0", tree.ntl], env)
    assert r.returncode == errors.EXIT_NETWORK, r.err
    assert "sagedl: hint: the server is busy or in maintenance" in r.err
    assert "--timeout" not in r.err


def test_a_dns_failure_hints_at_dns_not_the_timeout(tree, env):
    r = run(["--mirror", "http://sage-mirror.invalid/", tree.ntl], env,
            prefix=require_offline())
    assert r.returncode == errors.EXIT_NETWORK, r.err
    assert "sagedl: hint: a host name did not resolve" in r.err, r.err
    assert "--timeout" not in r.err


def test_a_bad_checksum_for_a_plain_url_does_not_blame_the_sage_tree(mirror, tree, env, tmp_path):
    r = run([mirror.url + "/ok/" + tree.ntl, tmp_path / "x", "--sha256", "0" * 64], env)
    assert r.returncode == errors.EXIT_CHECKSUM, r.err
    assert "Sage tree" not in r.err and "mirrors" not in r.err, r.err
    assert "check those values and the URL" in r.err
    # A Sage tarball from the mirrors still gets the Sage advice.
    with FaultServer(tree.files) as s:
        r = run(["--mirror", s.url + "/corrupt/", tree.ntl], env)
    assert r.returncode == errors.EXIT_CHECKSUM
    assert "is your Sage tree up to date?" in r.err


def test_list_mirrors_fits_80_columns(env):
    r = run(["list-mirrors", "--no-probe"], env)
    assert r.returncode == 0, r.err
    lines = r.out.splitlines()
    assert len(lines) == 1 + 2 * 38          # the shipped list: 38 mirrors
    assert max(len(line) for line in lines) <= 80, max(lines, key=len)
    assert lines[:3] == [" #  latency  health   url",
                         " 1  -        unknown  https://mirrors.xmission.com/sage/",
                         "    XMission, Utah, USA (na)"]


def test_help_names_the_subcommands(env):
    r = run(["--help"], env)
    assert r.returncode == 0, r.err
    assert "commands (options may come before or after them; 'sagedl COMMAND --help'):" in r.out
    for command in ("download PKG...", "list-mirrors", "make-mirror DIR [PKG...]",
                    "verify DIR [PKG...]", "properties, list, tarball, name"):
        assert "\n  " + command in r.out, command
