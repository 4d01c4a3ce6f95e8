"""sagedl writes only regular files it created: never through a planted
symlink, never over a device, FIFO or socket: a downloader running as
root in a shared directory must not be turned against the machine.

Each test plants something at a name sagedl writes (NAME, NAME.part,
NAME.part.json, its temporary file, NAME.lock, NAME.bad) in a temp dir --
device nodes are made with mknod there (tests run as root), never the real
/dev -- and checks that the planted object and whatever it points to are
untouched and the run ends with one error line and exit 6, or succeeds
without using it.  Runs go through ``python -m sagedl`` (subprocess: a
regression that hashes a FIFO hangs the child, not the test run) under the
test's Python, and the filesystem items also under 2.7 and PyPy3.
"""

import json
import os
import stat
import subprocess
import sys

import pytest

from conftest import REPO, Payload, make_data, clean_env, assert_one_line_error
from faultserver import FaultServer
from pyz import require_interpreter
from sagedl.errors import EXIT_DISK, EXIT_METADATA, EXIT_NETWORK

RUNNERS = ("3.x", "2.7", "pypy3")


class Result(object):
    def __init__(self, p):
        self.code = p.returncode
        self.out = p.stdout
        self.err = p.stderr.decode("utf-8", "replace")

    def __repr__(self):
        return "Result(%r, %r)" % (self.code, self.err[-1500:])


def sagedl(runner, argv, env, timeout=60):
    """Run ``python -m sagedl`` from the source tree under ``runner``."""
    python = sys.executable if runner == "3.x" else require_interpreter(runner)
    env = dict(env, PYTHONPATH=REPO)
    p = subprocess.run([python, "-m", "sagedl"] + [str(a) for a in argv], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return Result(p)


@pytest.fixture
def served():
    p = Payload("f.tar.gz", make_data(200000, 3))
    with FaultServer({p.name: p.data}) as s:
        yield s, p


def mknod_null(path):
    """A character device with /dev/null's numbers, in a temp dir."""
    os.mknod(str(path), stat.S_IFCHR | 0o666, os.makedev(1, 3))


def is_chr(path):
    return stat.S_ISCHR(os.lstat(str(path)).st_mode)


def victim(tmp_path):
    v = tmp_path / "victim"
    v.write_bytes(b"precious\n")
    return v


# -- NAME: the final name ---------------------------------------------------------
@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("planted", ["char-device", "fifo", "socket"])
def test_special_file_at_the_final_name_is_refused_untouched(runner, planted, served, tmp_path):
    """A bulk/tarball target in a shared directory: a device, FIFO or socket
    at NAME is never renamed aside, replaced or hashed (a FIFO would hash
    forever, /dev/null was once renamed to /dev/null.bad)."""
    s, p = served
    d = tmp_path / "dist"
    d.mkdir()
    target = d / p.name
    if planted == "char-device":
        mknod_null(target)
    elif planted == "fifo":
        os.mkfifo(str(target))
    else:
        import socket
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(target))
        sock.close()
    before = os.lstat(str(target))
    r = sagedl(runner, [s.url_for(p.name), str(d) + "/", "--sha256", p.sha256],
               clean_env(tmp_path), timeout=30)
    assert r.code == EXIT_DISK, r
    assert_one_line_error(r.err, "refusing")
    after = os.lstat(str(target))
    assert (after.st_ino, after.st_mode, after.st_rdev) == (before.st_ino, before.st_mode, before.st_rdev)
    assert sorted(os.listdir(str(d))) == [p.name]          # nothing renamed aside
    assert s.requests_for(p.name) == []                       # refused before any request


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("checksum", [True, False])
def test_symlink_at_the_final_name_is_never_replaced(runner, checksum, served, tmp_path):
    s, p = served
    v = victim(tmp_path)
    dest = tmp_path / p.name
    os.symlink(str(v), str(dest))
    r = sagedl(runner, [s.url_for(p.name), dest] + (["--sha256", p.sha256] if checksum else []),
               clean_env(tmp_path))
    assert r.code == EXIT_DISK, r
    assert_one_line_error(r.err, "symbolic link")
    assert os.readlink(str(dest)) == str(v) and v.read_bytes() == b"precious\n"


def test_symlink_to_a_verified_file_counts_as_present(served, tmp_path):
    """Reading through a link is harmless: a distfiles entry linked to a good
    tarball elsewhere is used as is, without any request."""
    s, p = served
    real = tmp_path / "elsewhere.tar.gz"
    real.write_bytes(p.data)
    dest = tmp_path / p.name
    os.symlink(str(real), str(dest))
    r = sagedl("3.x", [s.url_for(p.name), dest, "--sha256", p.sha256], clean_env(tmp_path))
    assert r.code == 0, r
    assert os.readlink(str(dest)) == str(real) and s.requests_for(p.name) == []


# -- NAME.part and NAME.part.json -----------------------------------------------------
def plant_resumable(dest, url, p, link_to):
    """A .part.json that asks for a resume, and NAME.part a symlink to link_to."""
    meta = {"url": url, "etag": None, "last_modified": None, "total": p.size,
            "sha256": p.sha256, "sha1": None}
    with open(str(dest) + ".part.json", "w") as f:
        json.dump(meta, f)
    os.symlink(str(link_to), str(dest) + ".part")


@pytest.mark.parametrize("runner", RUNNERS)
def test_symlink_at_part_is_not_followed_on_resume(runner, served, tmp_path):
    s, p = served
    v = victim(tmp_path)
    dest = tmp_path / p.name
    url = s.url_for(p.name)
    plant_resumable(dest, url, p, v)
    r = sagedl(runner, [url, dest, "--sha256", p.sha256], clean_env(tmp_path))
    assert r.code == EXIT_DISK, r
    assert_one_line_error(r.err, ".part")
    assert v.read_bytes() == b"precious\n"
    assert not dest.exists()


@pytest.mark.parametrize("runner", RUNNERS)
def test_fifo_at_part_is_refused_without_blocking(runner, served, tmp_path):
    s, p = served
    dest = tmp_path / p.name
    os.mkfifo(str(dest) + ".part")
    r = sagedl(runner, [s.url_for(p.name), dest, "--sha256", p.sha256], clean_env(tmp_path),
               timeout=30)
    assert r.code == EXIT_DISK, r
    assert stat.S_ISFIFO(os.lstat(str(dest) + ".part").st_mode)


@pytest.mark.parametrize("runner", RUNNERS)
def test_planted_metadata_temp_names_are_not_written_through(runner, served, tmp_path):
    """NAME.part.json.tmp was a fixed name: a symlink there received the
    JSON.  The temporary file now has a fresh random name, created O_EXCL."""
    s, p = served
    v = victim(tmp_path)
    dest = tmp_path / p.name
    os.symlink(str(v), str(dest) + ".part.json.tmp")
    r = sagedl(runner, [s.url_for(p.name, "reset-at-50000"), dest, "--sha256", p.sha256],
               clean_env(tmp_path))
    assert r.code == EXIT_NETWORK, r
    assert v.read_bytes() == b"precious\n"
    meta = json.loads((tmp_path / (p.name + ".part.json")).read_text())
    assert meta["total"] == p.size


@pytest.mark.parametrize("runner", RUNNERS)
def test_symlink_at_part_json_is_refused(runner, served, tmp_path):
    s, p = served
    v = victim(tmp_path)
    dest = tmp_path / p.name
    os.symlink(str(v), str(dest) + ".part.json")
    r = sagedl(runner, [s.url_for(p.name), dest, "--sha256", p.sha256], clean_env(tmp_path))
    assert r.code == EXIT_DISK, r
    assert v.read_bytes() == b"precious\n" and os.path.islink(str(dest) + ".part.json")


# -- NAME.lock and NAME.bad ---------------------------------------------------------------
@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("planted", ["symlink", "fifo", "char-device"])
def test_planted_lock_is_refused(runner, planted, served, tmp_path):
    s, p = served
    v = victim(tmp_path)
    dest = tmp_path / p.name
    lock = str(dest) + ".lock"
    if planted == "symlink":
        os.symlink(str(v), lock)
    elif planted == "fifo":
        os.mkfifo(lock)
    else:
        mknod_null(lock)
    r = sagedl(runner, [s.url_for(p.name), dest, "--sha256", p.sha256], clean_env(tmp_path),
               timeout=30)
    assert r.code == EXIT_DISK, r
    assert_one_line_error(r.err, ".lock")
    assert v.read_bytes() == b"precious\n"
    assert not os.path.isfile(lock) or os.path.islink(lock)


@pytest.mark.parametrize("runner", RUNNERS)
def test_planted_bad_name_is_not_replaced(runner, served, tmp_path):
    s, p = served
    v = victim(tmp_path)
    dest = tmp_path / p.name
    dest.write_bytes(b"stale")
    os.symlink(str(v), str(dest) + ".bad")
    r = sagedl(runner, [s.url_for(p.name), dest, "--sha256", p.sha256], clean_env(tmp_path))
    assert r.code == EXIT_DISK, r
    assert dest.read_bytes() == b"stale" and v.read_bytes() == b"precious\n"


# -- hostile metadata ----------------------------------------------------------------------
BAD_META = [
    {"total": [1]}, {"total": "abc"}, {"total": 1e400}, {"total": True}, {"total": -5},
    {"etag": ["x"]}, {"etag": '"v1"\r\nX-Evil: 1'}, {"url": 7}, {"sha256": {"a": 1}},
    "not-a-dict", None,
]


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("bad", range(len(BAD_META)))
def test_hostile_part_json_is_no_metadata(runner, bad, served, tmp_path):
    s, p = served
    dest = tmp_path / p.name
    url = s.url_for(p.name)
    meta = {"url": url, "etag": '"v1"', "last_modified": None, "total": p.size,
            "sha256": None, "sha1": None}
    spec = BAD_META[bad]
    if isinstance(spec, dict):
        meta.update(spec)
        text = json.dumps(meta).replace("Infinity", "1e400")
    else:
        text = json.dumps(spec)
    (tmp_path / (p.name + ".part.json")).write_text(text)
    (tmp_path / (p.name + ".part")).write_bytes(p.data[:1000])
    for _ in range(2):       # the first run recovers; the second sees no leftovers
        r = sagedl(runner, [url, dest], clean_env(tmp_path))
        assert r.code == 0, r
        assert dest.read_bytes() == p.data
    assert not os.path.exists(str(dest) + ".part.json")


def test_huge_part_json_is_ignored_not_read_whole(served, tmp_path):
    """Valid metadata padded past the bound (64 KiB) is not read: no resume."""
    s, p = served
    dest = tmp_path / p.name
    url = s.url_for(p.name)
    meta = {"url": url, "etag": None, "last_modified": None, "total": p.size,
            "sha256": p.sha256, "sha1": None}
    with open(str(dest) + ".part.json", "w") as f:
        f.write(json.dumps(meta) + " " * (1 << 20))
    (tmp_path / (p.name + ".part")).write_bytes(p.data[:1000])
    r = sagedl("3.x", [url, dest, "--sha256", p.sha256], clean_env(tmp_path))
    assert r.code == 0, r
    assert dest.read_bytes() == p.data
    assert not s.requests_for(p.name)[0].range


# -- resume without a checksum never joins two versions -----------------------------------
@pytest.mark.parametrize("runner", RUNNERS)
def test_206_with_another_validator_restarts(runner, tmp_path):
    """The partial holds v1's head; the server now has v2 and (wrongly)
    honours the Range despite If-Range.  Its 206 names v2's ETag: sagedl must
    start over, not append v2's tail to v1's head."""
    v1, v2 = make_data(100000, 21), make_data(100000, 22)
    with FaultServer({"f.tar.gz": v2}) as s:
        dest = tmp_path / "f.tar.gz"
        url = s.url_for("f.tar.gz", "ignore-if-range")
        (tmp_path / "f.tar.gz.part").write_bytes(v1[:40000])
        (tmp_path / "f.tar.gz.part.json").write_text(json.dumps(
            {"url": url, "etag": '"v1-etag"', "last_modified": None, "total": len(v1),
             "sha256": None, "sha1": None}))
        r = sagedl(runner, [url, dest], clean_env(tmp_path))
        assert r.code == 0, r
        assert dest.read_bytes() == v2
        reqs = s.requests_for("f.tar.gz")
        assert reqs[0].headers.get("if-range") == '"v1-etag"' and reqs[0].status == 206
        assert reqs[-1].status == 200 and not reqs[-1].range


# -- credentials ------------------------------------------------------------------------------
@pytest.mark.parametrize("runner", RUNNERS)
def test_part_json_holds_no_credentials_and_is_private(runner, served, tmp_path):
    s, p = served
    dest = tmp_path / p.name
    url = s.url_for(p.name, "reset-at-50000,once").replace("http://", "http://user:s3cret@")
    env = clean_env(tmp_path)
    r = sagedl(runner, [url, dest], env)
    assert r.code == EXIT_NETWORK, r
    meta_path = str(dest) + ".part.json"
    assert b"s3cret" not in open(meta_path, "rb").read()
    assert stat.S_IMODE(os.stat(meta_path).st_mode) == 0o600
    # and it still resumes from the same URL (the stored key has no password)
    r = sagedl(runner, [url, dest], env)
    assert r.code == 0, r
    assert dest.read_bytes() == p.data
    last = s.requests_for(p.name)[-1]
    assert last.status == 206 and last.headers.get("if-range")


# -- one network failure, one exit code --------------------------------------------------------
@pytest.mark.parametrize("fault", ["close-at-1000", "reset-at-1000"])
def test_short_body_and_reset_give_the_same_exit_code(fault, served, tmp_path):
    s, p = served
    r = sagedl("3.x", [s.url_for(p.name, fault), tmp_path / p.name], clean_env(tmp_path))
    assert r.code == EXIT_NETWORK, r


# -- an existing DESTINATION ---------------------------------------------------------------------
@pytest.mark.parametrize("runner", RUNNERS)
def test_url_onto_existing_destination_without_checksum_downloads_again(runner, served, tmp_path):
    s, p = served
    dest = tmp_path / "out.tar.gz"
    dest.write_bytes(b"an older version")
    r = sagedl(runner, [s.url_for(p.name), dest], clean_env(tmp_path))
    assert r.code == 0, r
    assert dest.read_bytes() == p.data
    assert not os.path.exists(str(dest) + ".bad")
    # With a size only, still downloaded again: a size does not pin content.
    dest.write_bytes(b"x" * p.size)
    r = sagedl(runner, [s.url_for(p.name), dest, "--size", p.size], clean_env(tmp_path))
    assert r.code == 0, r
    assert dest.read_bytes() == p.data


def test_existing_destination_is_kept_when_the_checksum_verifies(served, tmp_path):
    s, p = served
    dest = tmp_path / "out.tar.gz"
    dest.write_bytes(p.data)
    r = sagedl("3.x", [s.url_for(p.name), dest, "--sha256", p.sha256], clean_env(tmp_path))
    assert r.code == 0, r
    assert s.requests_for(p.name) == []


# -- make-mirror's files, the caches -------------------------------------------------------
@pytest.fixture
def small_tree(tmp_path):
    from helpers import Tree
    t = Tree(tmp_path / "sage")
    t.name = t.add("pkga", "1.0", "pkga-VERSION.tar.gz", make_data(20000, 31))
    return t


def make_mirror(runner, tree, site, s, tmp_path):
    env = clean_env(tmp_path, SAGE_ROOT=str(tree.root), SAGEDL_MIRRORS=s.url + "/ok/")
    return sagedl(runner, ["make-mirror", site, "-q"], env)


def make_mirror_over_a_symlink(runner, tree, tmp_path, planted):
    """make-mirror into a site where ``planted`` is a symlink to a victim
    file; returns (result, site, victim)."""
    site = tmp_path / "site"
    (site / "spkg" / "upstream" / "pkga").mkdir(parents=True)
    v = victim(tmp_path)
    os.symlink(str(v), str(site / planted))
    with FaultServer(tree.files) as s:
        r = make_mirror(runner, tree, site, s, tmp_path)
    return r, site, v


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("planted", ["SHA256SUMS.part", "mirror_list.part",
                                     "spkg/upstream/pkga/pkga-1.0.tar.gz.part"])
def test_make_mirror_temporary_names_are_not_written_through(runner, planted, small_tree,
                                                             tmp_path):
    """The fixed temporary names make-mirror used are symlinks to a victim:
    temporary files now have fresh random names, created O_EXCL."""
    r, site, v = make_mirror_over_a_symlink(runner, small_tree, tmp_path, planted)
    assert r.code == 0, r
    assert v.read_bytes() == b"precious\n"
    assert (site / "spkg" / "upstream" / "pkga" / small_tree.name).read_bytes() == \
        small_tree.files[small_tree.name]


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("planted", ["SHA256SUMS", "spkg/upstream/pkga/pkga-1.0.tar.gz"])
def test_make_mirror_refuses_a_symlink_at_a_served_name(runner, planted, small_tree, tmp_path):
    r, site, v = make_mirror_over_a_symlink(runner, small_tree, tmp_path, planted)
    assert r.code == EXIT_DISK, r
    assert "refusing" in r.err and "Traceback" not in r.err
    assert v.read_bytes() == b"precious\n" and os.path.islink(str(site / planted))


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("name", ["health.json", "ranking.json"])
@pytest.mark.parametrize("planted", ["symlink", "fifo"])
def test_planted_cache_files_are_neither_followed_nor_waited_on(runner, name, planted, served,
                                                                tmp_path):
    """The mirror health record and ranking cache: a symlink there is not
    written through, a FIFO is not read (it would block)."""
    s, p = served
    cache = tmp_path / "cache" / "sagedl"
    cache.mkdir(parents=True)
    v = victim(tmp_path)
    if planted == "symlink":
        os.symlink(str(v), str(cache / name))
    else:
        os.mkfifo(str(cache / name))
    mfile = tmp_path / "mirrors.toml"
    mfile.write_text('[[mirror]]\nurl = "%s/ok/"\nname = "loopback"\n' % s.url)
    env = clean_env(tmp_path)
    r = sagedl(runner, ["list-mirrors", "--mirrors-file", mfile], env, timeout=60)
    assert r.code == 0, r
    r = sagedl(runner, ["--print-fastest-mirror", "--mirrors-file", mfile], env, timeout=60)
    assert r.code == 0, r
    assert v.read_bytes() == b"precious\n"
    assert (os.path.islink if planted == "symlink" else
            lambda f: stat.S_ISFIFO(os.lstat(f).st_mode))(str(cache / name))


# -- bounded, regular-file-only reads of metadata ------------------------------------------------
def plant_hostile_metadata(path, how, start):
    """Replace ``path`` with a 2 MiB file beginning with ``start`` (past
    every metadata bound), or with a FIFO (a reader that waits would hang)."""
    if os.path.lexists(str(path)):
        os.unlink(str(path))
    if how == "huge":
        with open(str(path), "wb") as f:
            f.write(start + b" " * (2 << 20) + b"\n")
    else:
        os.mkfifo(str(path))
    return path


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("what", ["checksums.ini", "package-version.txt"])
@pytest.mark.parametrize("how", ["huge", "fifo"])
def test_hostile_sage_metadata_is_one_error_line(runner, what, how, small_tree, tmp_path):
    plant_hostile_metadata(small_tree.pkgs / "pkga" / what, how, b"1.0")
    env = clean_env(tmp_path, SAGE_ROOT=str(small_tree.root), SAGEDL_MIRRORS="http://127.0.0.1:9/")
    r = sagedl(runner, [small_tree.name], env, timeout=60)
    assert r.code == EXIT_METADATA, r
    # (an unreadable package-version.txt is reported as "no version" in checksums.ini)
    assert_one_line_error(r.err, "pkgs/pkga/")
    if how == "huge":
        assert "larger than" in r.err, r


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("what", ["checksums.ini", "package-version.txt"])
@pytest.mark.parametrize("how", ["huge", "fifo"])
def test_hostile_sage_metadata_is_one_error_line_for_sage_package_too(runner, what, how,
                                                                      small_tree, tmp_path):
    """sage-package's own subcommands read the tree as sage_bootstrap does,
    through the same bound: no hang on a FIFO, no 200 MB read."""
    plant_hostile_metadata(small_tree.pkgs / "pkga" / what, how, b"1.0")
    env = clean_env(tmp_path, SAGE_ROOT=str(small_tree.root))
    for argv in (["tarball", "pkga"], ["properties", "--format=shell", "pkga"]):
        r = sagedl(runner, argv, env, timeout=60)
        assert r.code == 1, (argv, r)
        assert_one_line_error(r.err, "pkgs/pkga/" + what)
        assert ("larger than" if how == "huge" else "FIFO") in r.err, r


@pytest.mark.parametrize("runner", RUNNERS)
@pytest.mark.parametrize("how", ["huge", "fifo"])
def test_hostile_mirrors_file_is_one_error_line(runner, how, tmp_path):
    path = plant_hostile_metadata(tmp_path / "mirrors.toml", how, b"#")
    r = sagedl(runner, ["list-mirrors", "--no-probe", "--mirrors-file", path], clean_env(tmp_path),
               timeout=60)
    assert r.code == EXIT_METADATA, r
    assert_one_line_error(r.err, "mirrors.toml")
    assert ("larger than" if how == "huge" else "FIFO") in r.err, r


@pytest.mark.parametrize("runner", RUNNERS)
def test_planted_bytecode_cache_entries_are_neither_followed_nor_waited_on(runner, served,
                                                                          tmp_path):
    """The pyz's compiled-module cache: a FIFO planted at an entry would hang
    every start, a symlink would be read or written through."""
    from pyz import pyz_path
    s, p = served
    python = sys.executable if runner == "3.x" else require_interpreter(runner)
    env = clean_env(tmp_path)
    argv = [python, pyz_path(), s.url_for(p.name), str(tmp_path / "out"), "-q"]
    first = subprocess.run(argv, env=env, stderr=subprocess.PIPE, timeout=60)
    assert first.returncode == 0, first.stderr
    entries = sorted(os.path.join(d, n) for d, _, names in os.walk(str(tmp_path / "cache"))
                     for n in names if n.endswith(".bin"))
    assert len(entries) > 3, entries
    v = victim(tmp_path)
    os.unlink(entries[0])
    os.mkfifo(entries[0])
    os.unlink(entries[1])
    os.symlink(str(v), entries[1])
    again = subprocess.run(argv, env=env, stderr=subprocess.PIPE, timeout=60)
    assert again.returncode == 0, again.stderr
    assert v.read_bytes() == b"precious\n"
    assert stat.S_ISFIFO(os.lstat(entries[0]).st_mode) and os.path.islink(entries[1])


# -- NAME.bad: set aside, never silently overwritten ----------------------------------------
@pytest.mark.parametrize("runner", RUNNERS)
def test_an_older_bad_file_is_never_overwritten(runner, served, tmp_path):
    """The README promises a set-aside file is never silently deleted: the
    second bad file once replaced the first NAME.bad.  They are numbered."""
    s, p = served
    dest = tmp_path / p.name
    (tmp_path / (p.name + ".bad")).write_bytes(b"first bad\n")
    for n, content in ((1, b"second bad\n"), (2, b"third bad\n")):
        dest.write_bytes(content)
        r = sagedl(runner, [s.url_for(p.name), dest, "--sha256", p.sha256], clean_env(tmp_path))
        assert r.code == 0, r
        assert dest.read_bytes() == p.data
        assert (tmp_path / ("%s.bad.%d" % (p.name, n))).read_bytes() == content
        assert "moved to %s.bad.%d" % (p.name, n) in r.err, r
    assert (tmp_path / (p.name + ".bad")).read_bytes() == b"first bad\n"


@pytest.mark.parametrize("runner", RUNNERS)
def test_force_replaces_a_file_that_verifies_without_setting_it_aside(runner, served, tmp_path):
    s, p = served
    dest = tmp_path / p.name
    dest.write_bytes(p.data)
    r = sagedl(runner, [s.url_for(p.name), dest, "--sha256", p.sha256, "--force"],
               clean_env(tmp_path))
    assert r.code == 0, r
    assert len(s.requests_for(p.name)) == 1          # downloaded again, as --force says
    assert not any(n.startswith(p.name + ".bad") for n in os.listdir(str(tmp_path))), \
        os.listdir(str(tmp_path))
    assert dest.read_bytes() == p.data
    dest.write_bytes(b"not it\n")                    # a bad one is still set aside
    r = sagedl(runner, [s.url_for(p.name), dest, "--sha256", p.sha256, "--force"],
               clean_env(tmp_path))
    assert r.code == 0, r
    assert (tmp_path / (p.name + ".bad")).read_bytes() == b"not it\n"
