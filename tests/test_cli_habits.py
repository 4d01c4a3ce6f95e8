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
from helpers import REPO, Tree, assert_one_line_error, clean_env, make_data
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


def test_verbose_says_the_sources(mirror, tree, env, tmp_path):
    dest = tmp_path / "v.tar.gz"
    r = run(["-v", "--mirror", mirror.url + "/ok/", tree.ntl, dest], env)
    assert r.returncode == 0, r.err
    assert ("sagedl: debug: sources for %s: %s/ok/spkg/upstream/ntl/%s\n"
            % (tree.ntl, mirror.url, tree.ntl)) in r.err
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


# -- where the file went, and several files in one call ------------------------------------

def saved_lines(err):
    return [l for l in err.splitlines() if l.startswith("sagedl: saved to ")]


def test_a_finished_download_says_where_the_file_went(mirror, tree, env, tmp_path):
    dest = tmp_path / "got.tar.gz"
    r = run([mirror.url + "/ok/" + tree.ntl, dest], env)
    assert r.returncode == 0, r.err
    assert saved_lines(r.err) == ["sagedl: saved to %s" % dest]
    # By tarball name: the distfiles, where a user would not look first.
    r = run(["--mirror", mirror.url + "/ok/", tree.pari], env)
    assert r.returncode == 0, r.err
    assert saved_lines(r.err) == ["sagedl: saved to %s" % upstream(tree, tree.pari)]
    # Present and verified: said as Sage says it, not as saved again.
    r = run(["--mirror", mirror.url + "/ok/", tree.pari], env)
    assert r.returncode == 0, r.err
    assert r.err.startswith("Using cached file %s" % upstream(tree, tree.pari))
    assert saved_lines(r.err) == []
    # Copied to a DESTINATION from the distfiles: the copy is where it went.
    r = run(["--mirror", mirror.url + "/ok/", tree.pari, tmp_path], env)
    assert saved_lines(r.err) == ["sagedl: saved to %s" % (tmp_path / tree.pari)], r.err


def test_quiet_does_not_say_where_the_file_went(mirror, tree, env, tmp_path):
    r = run(["-q", mirror.url + "/ok/" + tree.ntl, tmp_path / "x"], env)
    assert (r.returncode, r.err) == (0, "")
    r = run(["-q", "--mirror", mirror.url + "/ok/", "download", "ntl", "pari"], env)
    assert (r.returncode, r.err) == (0, "")


def test_content_on_stdout_is_not_said_to_be_saved(mirror, tree, env, tmp_path):
    r = run([mirror.url + "/ok/" + tree.six], env, cwd=str(tmp_path))
    assert r.returncode == 0 and r.stdout == tree.files[tree.six], r.err
    assert saved_lines(r.err) == []


def test_a_bulk_download_says_the_directory_once(mirror, tree, env):
    r = run(["--mirror", mirror.url + "/ok/", "download", "ntl", "pari", "six"], env)
    assert r.returncode == 0, r.err
    # stdout lists each path; stderr names the directory once, after the summary.
    assert len(r.out.splitlines()) == 3
    assert saved_lines(r.err) == ["sagedl: saved to %s/" % (tree.root / "upstream")]
    assert r.err.index("3 fetched") < r.err.index("sagedl: saved to")
    r = run(["--mirror", mirror.url + "/ok/", "download", "ntl", "pari", "six"], env)
    assert saved_lines(r.err) == [], r.err               # nothing new was saved


def test_a_bulk_download_of_one_file_says_its_path(mirror, tree, env):
    r = run(["--mirror", mirror.url + "/ok/", "download", "six"], env)
    assert r.returncode == 0, r.err
    assert saved_lines(r.err) == ["sagedl: saved to %s" % upstream(tree, tree.six)]


def wrapper_env(env):
    """The environment of Sage's sage-download-file, as sagedl's drop-in wrapper runs it."""
    return dict(env, SAGEDL_PYZ=pyz_path())


WRAPPER = os.path.join(REPO, "contrib", "sage", "sage-download-file")
CLOSED = "http://127.0.0.1:9/"      # the discard port: nothing listens on loopback


def test_print_fastest_mirror_with_no_mirror_answering_exits_5(env):
    r = run(["--print-fastest-mirror", "--mirror", CLOSED, "--mirror", CLOSED + "other/"], env)
    assert r.returncode == errors.EXIT_NETWORK, r.err
    assert r.out == ""                                     # no URL a script could take
    assert "sagedl: error: no mirror answered: " in r.err, r.err
    assert "Traceback" not in r.err
    # Sage's sage-download-file answers the first mirror there, exit 0 (its
    # own offline test expects that): the drop-in wrapper keeps it.
    p = subprocess.run(["sh", WRAPPER, "--print-fastest-mirror", "--mirror", CLOSED],
                       env=wrapper_env(env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=TIMEOUT)
    assert (p.returncode, p.stdout) == (0, CLOSED.encode() + b"\n"), p.stderr


def test_list_mirrors_exits_5_when_every_mirror_failed(env, mirror):
    r = run(["list-mirrors", "--mirror", CLOSED], env)
    assert r.returncode == errors.EXIT_NETWORK, r.err
    assert CLOSED in r.out and "failed" in r.out           # the table still says why
    assert "sagedl: error: no mirror answered: " in r.err
    r = run(["list-mirrors", "--mirror", CLOSED, "--mirror", mirror.url + "/ok/"], env)
    assert r.returncode == 0, r.err                        # one answered: a ranking
    r = run(["list-mirrors", "--no-probe", "--mirror", CLOSED], env)
    assert r.returncode == 0, r.err                        # nothing measured, nothing failed


@pytest.mark.parametrize("how", [[], ["-O"], ["-P", "DIR"], ["--output-dir", "DIR"],
                                 ["--output-dir=DIR"]])
def test_several_urls_are_each_saved_under_their_own_name(mirror, tree, env, tmp_path, how):
    here, there = tmp_path / "here", tmp_path / "there"
    here.mkdir()
    there.mkdir()
    how = [h.replace("DIR", str(there)) for h in how]
    into = there if how and how != ["-O"] else here
    urls = [mirror.url + "/ok/" + n for n in (tree.ntl, tree.six)]
    r = run(how + urls, env, cwd=str(here))
    assert r.returncode == 0, r.err
    assert r.out == ""
    for n in (tree.ntl, tree.six):
        assert (into / n).read_bytes() == tree.files[n]
    assert saved_lines(r.err) == ["sagedl: saved to %s" % (into / n) for n in (tree.ntl, tree.six)]
    assert "destination" not in r.err


def test_one_url_into_an_output_dir(mirror, tree, env, tmp_path):
    r = run(["-q", "-P", tmp_path, mirror.url + "/ok/" + tree.six], env)
    assert r.returncode == 0, r.err
    assert (tmp_path / tree.six).read_bytes() == tree.files[tree.six]


def test_a_tarball_name_into_an_output_dir_is_copied_from_the_distfiles(mirror, tree, env,
                                                                         tmp_path):
    r = run(["-q", "--mirror", mirror.url + "/ok/", "--output-dir", tmp_path, tree.six], env)
    assert r.returncode == 0, r.err
    assert (tmp_path / tree.six).read_bytes() == tree.files[tree.six]
    assert open(upstream(tree, tree.six), "rb").read() == tree.files[tree.six]


def test_a_second_positional_that_is_no_url_is_still_a_destination(mirror, tree, env, tmp_path):
    r = run([mirror.url + "/ok/" + tree.ntl, "named.tar.gz"], env, cwd=str(tmp_path))
    assert r.returncode == 0, r.err
    assert (tmp_path / "named.tar.gz").read_bytes() == tree.files[tree.ntl]
    assert not (tmp_path / tree.ntl).exists()


def test_several_urls_one_failing_fetch_the_others_and_fail(mirror, tree, env, tmp_path):
    urls = [mirror.url + "/404/" + tree.ntl, mirror.url + "/ok/" + tree.six]
    r = run(urls, env, cwd=str(tmp_path))
    assert r.returncode == errors.EXIT_NOT_FOUND, r.err
    assert (tmp_path / tree.six).read_bytes() == tree.files[tree.six]
    assert not (tmp_path / tree.ntl).exists()
    assert "sagedl: 1 of 2 files failed" in r.err
    assert "Traceback" not in r.err


@pytest.mark.parametrize("how", [["-o", "one.tar.gz"], ["-o", "-"]])
def test_several_urls_refuse_one_output_file(mirror, tree, env, tmp_path, how):
    urls = [mirror.url + "/ok/" + n for n in (tree.ntl, tree.six)]
    r = run(how + urls, env, cwd=str(tmp_path))
    assert r.returncode == errors.EXIT_USAGE, r.err
    assert "names one file, and several are to be downloaded" in r.err
    assert mirror.requests_for(tree.ntl) == []


def test_a_directory_after_several_urls_points_at_output_dir(mirror, tree, env, tmp_path):
    urls = [mirror.url + "/ok/" + n for n in (tree.ntl, tree.six)]
    r = run(urls + [str(tmp_path) + "/"], env, cwd=str(tmp_path))
    assert r.returncode == errors.EXIT_USAGE, r.err
    assert "sagedl: hint: save them into a directory with -P DIR" in r.err
    assert mirror.requests_for(tree.ntl) == []


def input_list(tmp_path, lines):
    path = tmp_path / "list.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_input_file_lists_urls_and_tarball_names(mirror, tree, env, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    listing = input_list(tmp_path, ["# what the build needs", "", "  " + mirror.url + "/ok/"
                                    + tree.ntl + "  ", "\t", tree.pari, "   # indented comment"])
    r = run(["-i", listing, "-P", out, "--mirror", mirror.url + "/ok/"], env)
    assert r.returncode == 0, r.err
    assert (out / tree.ntl).read_bytes() == tree.files[tree.ntl]
    # A tarball name: into the distfiles, and a copy into -P DIR.
    assert open(upstream(tree, tree.pari), "rb").read() == tree.files[tree.pari]
    assert (out / tree.pari).read_bytes() == tree.files[tree.pari]
    assert sorted(os.listdir(str(out))) == sorted([tree.ntl, tree.pari])


def test_input_file_dash_is_stdin_and_positionals_come_first(mirror, tree, env, tmp_path):
    listing = (mirror.url + "/ok/" + tree.six + "\n").encode()
    p = subprocess.run([sys.executable, pyz_path(), "-q", "-i", "-", mirror.url + "/ok/" + tree.ntl],
                       input=listing, env=env, cwd=str(tmp_path), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr
    assert (tmp_path / tree.six).read_bytes() == tree.files[tree.six]
    assert (tmp_path / tree.ntl).read_bytes() == tree.files[tree.ntl]
    assert [q.path.rsplit("/", 1)[-1] for q in mirror.requests if q.method == "GET"] \
        == [tree.ntl, tree.six]


@pytest.mark.parametrize("flag", ["-c", "--continue"])
def test_continue_is_accepted_and_resuming_is_automatic(tree, env, tmp_path, flag):
    """-c changes nothing: an interrupted download is resumed with or without it."""
    data = tree.files[tree.ntl]
    dest = tmp_path / tree.ntl
    with FaultServer(tree.files) as s:
        url = s.url + "/reset-at-12000,once/" + tree.ntl
        r = run([url, dest], env)
        assert r.returncode != 0
        assert (tmp_path / (tree.ntl + ".part")).stat().st_size == 12000
        r = run([flag, url, dest], env)
        assert r.returncode == 0, r.err
        assert dest.read_bytes() == data
        ranges = [q.headers.get("range") for q in s.requests_for(tree.ntl) if q.method == "GET"]
    assert ranges[-1] == "bytes=12000-", ranges
    assert "accepted for curl and wget habits; resuming is always" in run(["--help"], env).out


def test_a_rate_limited_download_completes_and_verifies(mirror, tree, env, tmp_path):
    import hashlib
    data = tree.files[tree.pari]
    dest = tmp_path / "limited"
    r = run(["--limit-rate", "16K", "--sha256", hashlib.sha256(data).hexdigest(),
             mirror.url + "/ok/" + tree.pari, dest], env)
    assert r.returncode == 0, r.err
    assert dest.read_bytes() == data


def test_a_bulk_download_under_a_rate_limit_completes(mirror, tree, env):
    r = run(["--limit-rate", "64K", "--mirror", mirror.url + "/ok/", "-j", "3", "download", "ntl",
             "pari", "six"], env)
    assert r.returncode == 0, r.err
    for n in (tree.ntl, tree.pari, tree.six):
        assert open(upstream(tree, n), "rb").read() == tree.files[n]


def test_time_held_back_by_the_rate_limit_is_no_stall(mirror, tree, env, tmp_path):
    """A cap far below --low-speed-limit: the stall rule must not count the
    limit's own waits, or every limited download would be abandoned."""
    small = tree.add("tiny", "1.0", "tiny-VERSION.tar.gz", make_data(3000, 35))
    with FaultServer(tree.files) as s:
        r = run(["--limit-rate", "1K", "--low-speed-limit", "1000000", "--low-speed-time", "1",
                 s.url + "/ok/" + small, tmp_path / "t"], env)
    assert r.returncode == 0, r.err
    assert "stalled" not in r.err


BAD_VALUES = [
    (["--limit-rate", "0", "URL"], "invalid rate '0'"),
    (["--limit-rate", "fast", "URL"], "invalid rate 'fast'"),
    (["--limit-rate", "-1", "URL"], "argument --limit-rate"),
    (["--limit-rate", "1X", "URL"], "invalid rate '1X'"),
    (["--limit-rate", "1.5.2M", "URL"], "invalid rate"),
    (["URL", "--limit-rate"], "argument --limit-rate: expected one argument"),
    (["-P", "NOWHERE", "URL"], "--output-dir NOWHERE: no such directory"),
    (["--output-dir", "AFILE", "URL"], "--output-dir AFILE: no such directory"),
    (["--output-dir", "HERE", "-o", "x", "URL"], "--output-dir names a directory"),
    (["-i", "NOWHERE"], "cannot read -i NOWHERE: No such file or directory"),
    (["-i", "HERE"], "cannot read -i HERE: Is a directory"),
    (["-i", "EMPTY"], "-i EMPTY lists nothing to download"),
    (["URL", "-i"], "argument -i/--input-file: expected one argument"),
    (["--continue=yes", "URL"], "argument --continue/-c: ignored explicit argument 'yes'"),
]


@pytest.mark.parametrize("argv,text", BAD_VALUES, ids=[" ".join(a) for a, _ in BAD_VALUES])
def test_bad_values_of_the_new_options_are_one_line_usage_errors(mirror, tree, env, tmp_path,
                                                                  argv, text):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "empty").write_text("# nothing\n\n")
    names = {"NOWHERE": str(tmp_path / "nowhere"), "AFILE": str(tmp_path / "afile"),
             "HERE": str(tmp_path), "EMPTY": str(tmp_path / "empty"),
             "URL": mirror.url + "/ok/" + tree.six}

    def real(a):
        for k, v in names.items():
            a = a.replace(k, v)
        return a
    r = run([real(a) for a in argv], env, cwd=str(tmp_path))
    assert r.returncode == errors.EXIT_USAGE, r.err
    assert_one_line_error(r.err, real(text))
    assert mirror.requests_for(tree.six) == []
