"""The messages Sage's own tests (build/test in Sage's tree) look for.

* test_package_cmdline.test_download: a cached file makes stderr start with
  "Using cached file" (tests/test_sage_options.py checks that one);
* test_download_cmdline.test_print_mirror_list_no_network:
  ``sage-download-file --print-fastest-mirror --timeout=0.001`` with every
  proxy pointing at a closed port exits 0, prints one URL, and says on
  stderr "Downloading the mirror list failed" (sagedl itself, not called
  as sage-download-file, exits 5 there and prints no URL).
"""

import os
import subprocess

import pytest

from helpers import REPO, clean_env
from pyz import pyz_path
from sagedl.mirrors import mirrorlist
from netns import require_offline
from sagedl.errors import EXIT_NETWORK
from sagetree import TREES, copy_tree, require_tree

DEAD = "http://127.0.0.1:9/"    # a closed loopback port


def small_tree(root, upstream_d):
    (root / "build" / "pkgs").mkdir(parents=True)
    (root / ".upstream.d").mkdir()
    for name, line in upstream_d.items():
        (root / ".upstream.d" / name).write_text(line + "\n")
    return root


def test_print_fastest_mirror_says_the_list_download_failed_and_answers(run_cli, tmp_path):
    tree = small_tree(tmp_path / "sage", {"30-mirror_list": DEAD + "mirror_list"})
    env = clean_env(tmp_path, SAGE_ROOT=str(tree), http_proxy=DEAD, https_proxy=DEAD)
    # A day-old list in the cache, naming a loopback mirror: used when the
    # refresh fails (nothing here may reach a real mirror).
    cache = mirrorlist._list_cache_path(env, DEAD + "mirror_list")
    os.makedirs(os.path.dirname(cache))
    with open(cache, "wb") as f:
        f.write(mirrorlist._serialise_list([DEAD + "sage/"], DEAD + "mirror_list", 0.0))
    # As Sage's sage-download-file (what its drop-in wrapper says it is).
    sage_env = dict(env, SAGEDL_CALLED_AS="sage-download-file")
    r = run_cli("--print-fastest-mirror", "--timeout=0.001", env=sage_env)
    assert (r.code, r.out) == (0, DEAD + "sage/\n"), r
    assert "Downloading the mirror list failed" in r.err, r
    # As sagedl: no mirror answered is a network failure, with no URL.
    r = run_cli("--print-fastest-mirror", "--timeout=0.001", env=env)
    assert (r.code, r.out) == (EXIT_NETWORK, ""), r
    assert "sagedl: error: no mirror answered: " in r.err, r


def test_print_fastest_mirror_is_sage_server_when_set(run_cli, tmp_path):
    tree = small_tree(tmp_path / "sage", {"30-mirror_list": DEAD + "mirror_list"})
    env = clean_env(tmp_path, SAGE_ROOT=str(tree), SAGE_SERVER="http://127.0.0.1:9/site")
    r = run_cli("--print-fastest-mirror", env=env)
    assert (r.code, r.out) == (0, "http://127.0.0.1:9/site/\n"), r


@pytest.mark.parametrize("tree_name", TREES)
def test_print_fastest_mirror_offline_in_the_real_tree(tmp_path, tree_name):
    """Sage's own test command, through the installed drop-in, in a network
    namespace: the live list cannot be fetched and no mirror answers.  Both
    trees: sage-conf's .upstream.d names the live mirror_list, passagemath's
    only GitHub release pages."""
    offline = require_offline()
    root = copy_tree(str(tmp_path / "sage"), require_tree(tree_name))
    subprocess.run(["sh", os.path.join(REPO, "contrib", "sage", "install.sh"), root, pyz_path()],
                   check=True, stdout=subprocess.PIPE, timeout=60)
    env = clean_env(tmp_path, SAGE_ROOT=root, http_proxy=DEAD, https_proxy=DEAD,
                    ftp_proxy=DEAD, rsync_proxy=DEAD)
    p = subprocess.run(offline + [os.path.join(root, "build", "bin", "sage-download-file"),
                        "--print-fastest-mirror", "--timeout=0.001"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
    out, err = p.stdout.decode(), p.stderr.decode()
    assert p.returncode == 0, err
    assert out.startswith("http") and len(out.splitlines()) == 1 and " " not in out.strip(), out
    assert "Downloading the mirror list failed" in err, err
