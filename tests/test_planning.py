"""sources.py's pure planning helpers: the order of mirrors a bulk download
gives each file, and which ranked mirrors are worth trying at all."""

from sagedl.mirrors.mirrorlist import Mirror
from sagedl.mirrors.probe import FAILED, OK, SKIPPED, Ranked
from sagedl.plan.sources import rotated, usable_bases

BASES = ["https://m%d.example/" % i for i in range(6)]


def test_jobs_take_turns_among_the_three_best_and_keep_the_rest_in_order():
    assert [rotated(BASES, i)[:3] for i in range(4)] == [
        BASES[0:3], [BASES[1], BASES[2], BASES[0]], [BASES[2], BASES[0], BASES[1]], BASES[0:3]]
    for i in range(6):
        order = rotated(BASES, i)
        assert sorted(order) == sorted(BASES)
        assert order[3:] == BASES[3:]              # the slower mirrors stay behind
        assert BASES[0] in order[:3]               # the best is never sent to the back


def test_rotation_of_few_or_no_mirrors():
    assert rotated([], 5) == []
    assert rotated(BASES[:1], 7) == BASES[:1]
    assert rotated(BASES[:2], 1) == [BASES[1], BASES[0]]


def test_mirrors_whose_probe_failed_are_dropped_unless_none_answered():
    def r(i, status):
        return Ranked(Mirror(BASES[i]), status, 0.01 if status == OK else None, "x")
    assert usable_bases([r(0, OK), r(1, FAILED), r(2, SKIPPED)]) == [BASES[0], BASES[2]]
    dead = [r(i, FAILED) for i in range(5)]
    assert usable_bases(dead) == BASES[:3]         # offline: the first few by priority


def test_a_file_sage_server_serves_costs_no_mirror_probe(run_cli, tmp_path):
    """The mirrors are ranked only when their turn comes: SAGE_SERVER (a site
    mirror) serving the file means the public list is never probed; when it
    fails, the ranked mirrors follow."""
    from faultserver import FaultServer
    from helpers import Tree, clean_env, make_data
    tree = Tree(tmp_path / "sage")
    name = tree.add("pkg", "1.0", "pkg-VERSION.tar.gz", make_data(20000, 5))
    other = tree.add("qqq", "2.0", "qqq-VERSION.tar.gz", make_data(20000, 6))
    with FaultServer({name: tree.files[name]}) as site, FaultServer(tree.files) as public:
        mfile = tmp_path / "mirrors.toml"
        mfile.write_text('[[mirror]]\nurl = "%s/ok/"\n' % public.url)
        env = clean_env(tmp_path, SAGE_ROOT=str(tree.root), SAGE_SERVER=site.url + "/ok/")
        r = run_cli(name, "--mirrors-file", mfile, env=env)
        assert r.code == 0, r
        assert public.requests == []                   # not even a ranking probe
        r = run_cli(other, "--mirrors-file", mfile, env=env)   # the site lacks it
        assert r.code == 0, r
        assert [q.method for q in public.requests] == ["HEAD", "GET"]
