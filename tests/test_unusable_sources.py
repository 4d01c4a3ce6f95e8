"""A source that cannot be used is skipped with one warning line, never fatal
while other sources remain (one bad line must not stop a download that
another source can serve): an .upstream.d line that
expands to an invalid URL, a file: line, an ftp: upstream_url (gengetopt and
singular have one in Sage's tree)."""

import pytest

from helpers import Tree, clean_env, make_data
from sagedl.plan.sources import iter_source_urls
from sagedl.sage.tree import SageTree
from sagetree import TREES, require_tree


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path / "sage")
    t.a = t.add("aaa", "1.0", "aaa-VERSION.tar.gz", make_data(20000, 31),
                upstream_url="ftp://ftp.example.org/aaa-VERSION.tar.gz")
    t.b = t.add("bbb", "2.0", "bbb-VERSION.tar.gz", make_data(20000, 32))
    return t


def upstream_d(tree, *lines):
    d = tree.root / ".upstream.d"
    d.mkdir(exist_ok=True)
    (d / "10-test").write_text("\n".join(lines) + "\n")


def run(run_cli, tmp_path, tree, mirror, *argv, **env):
    """A run whose only working source is the loopback mirror in --mirrors-file."""
    mfile = tmp_path / "mirrors.toml"
    mfile.write_text('[[mirror]]\nurl = "%s/ok/"\n' % mirror.url)
    e = clean_env(tmp_path, SAGE_ROOT=str(tree.root), **env)
    return run_cli(*(list(argv) + ["--mirrors-file", mfile]), env=e)


def warnings(err):
    return [l for l in err.splitlines() if l.startswith("sagedl: warning:")]


def test_sage_server_without_slash_skips_the_line_it_breaks(run_cli, tmp_path, tree, mirror):
    # ${SAGE_SERVER}spkg/... with SAGE_SERVER=http://127.0.0.1:PORT gives
    # http://127.0.0.1:PORTspkg/...: a port that is not a number.
    # SAGE_SERVER itself refuses connections, so the line's turn comes.
    upstream_d(tree, "${SAGE_SERVER}spkg/upstream/${SPKG}")
    r = run(run_cli, tmp_path, tree, mirror, tree.b, SAGE_SERVER="http://127.0.0.1:9")
    assert r.code == 0, r
    [w] = warnings(r.err)
    assert ".upstream.d line ${SAGE_SERVER}spkg/upstream/${SPKG}" in w and "does not parse" in w
    assert (tree.root / "upstream" / tree.b).read_bytes() == tree.files[tree.b]


def test_a_file_line_is_skipped_with_one_warning_for_a_whole_bulk_download(run_cli, tmp_path,
                                                                           tree, mirror):
    upstream_d(tree, "file://%s/" % (tmp_path / "elsewhere"))
    r = run(run_cli, tmp_path, tree, mirror, "download", ":all:", "--jobs", "2")
    assert r.code == 0, r
    [w] = warnings(r.err)
    assert "file://" in w and "is not an http or https URL" in w
    assert r.out.splitlines() == [str(tree.root / "upstream" / n) for n in (tree.a, tree.b)]


def test_an_ftp_upstream_url_is_skipped_not_a_usage_error(run_cli, tmp_path, tree, mirror):
    # The mirror lacks the file, so the upstream_url's turn comes: an ftp:
    # URL is skipped with a warning and the run ends "not found" (exit 3),
    # not with a usage error (exit 2) as it did.
    del mirror._files[tree.a]
    r = run(run_cli, tmp_path, tree, mirror, tree.a, "--allow-upstream")
    assert r.code == 3, r
    [w] = warnings(r.err)
    assert "upstream_url of aaa" in w and "ftp://ftp.example.org/aaa-1.0.tar.gz" in w


def test_a_source_never_reached_is_never_planned(run_cli, tmp_path, tree, mirror):
    # Sources are planned one at a time: the mirror serves the file, so the
    # ftp: upstream_url behind it is not even looked at.
    r = run(run_cli, tmp_path, tree, mirror, tree.a, "--allow-upstream")
    assert r.code == 0 and not warnings(r.err), r
    assert (tree.root / "upstream" / tree.a).read_bytes() == tree.files[tree.a]


def test_with_no_usable_source_left_the_error_says_so(run_cli, tmp_path, tree, mirror):
    r = run_cli(tree.a, "--upstream-only", env=clean_env(tmp_path, SAGE_ROOT=str(tree.root)))
    assert r.code == 3, r          # not found on any source, not a usage error
    assert len(warnings(r.err)) == 1 and "ftp:" in r.err
    assert "no source to download from" in r.err


@pytest.mark.parametrize("tree_name", TREES)
@pytest.mark.parametrize("pkg", ["gengetopt", "singular"])
def test_the_real_ftp_upstream_urls_of_sages_tree_are_skipped_not_fatal(pkg, tree_name):
    tarball = SageTree(require_tree(tree_name)).resolve(pkg)
    assert tarball.upstream_url.startswith("ftp:")
    skipped = []
    urls = list(iter_source_urls(tarball, {}, [], ["https://m.example/sage/"], True,
                                 skipped=skipped))
    assert urls == ["https://m.example/sage/spkg/upstream/%s/%s" % (pkg, tarball.filename)]
    assert [(what, url) for what, url, _ in skipped] == [
        ("the upstream_url of %s" % pkg, tarball.upstream_url)]
