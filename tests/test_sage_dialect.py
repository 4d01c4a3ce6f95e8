"""The drop-in answers as the tree's own sage_bootstrap: which release it is is
read from its sources (sagebootstrap.dialect).  The real trees are compared
byte for byte in test_sage_package_diff.py and test_sage_metadata_fuzz.py;
these small trees pin each detected difference without a download."""

import os

from helpers import run_in_process
from sagedl.sage import bootstrap as sagebootstrap

# The lines of Sage 10.7's sage_bootstrap that tell it from current Sage's.
OLD = {
    "app.py": "props = kwds.pop('props', ['path', 'version_with_patchlevel', 'type', 'source', "
              "'trees', 'purl'])\nprint(\"{0}_{1}='{2}'\".format(p, package_name, value))\n",
    "package.py": "def tarball(self):\n",
    "cmdline.py": "app.list_cls(*args.package_class, has_files=args.has_files)\n",
    "expand_class.py": "except FileNotFoundError:\n",
}
CURRENT = {
    "app.py": "props = kwds.pop('props', ['path', 'version_with_patchlevel', 'type', 'source', "
              "'trees', 'purl', 'description', 'uses_python_package_check'])\n"
              "print(u\"{0}_{1}={2}\".format(p, package_name, quote(value)))\n",
    "package.py": "def tarballs(self):\nopen('purl.txt')\n'src/pyproject.toml.m4'\n",
    "cmdline.py": "trees=args.trees,\n",
    "expand_class.py": "except (ValueError, FileNotFoundError):\n",
}


def make_tree(root, sources):
    code = os.path.join(str(root), "build", "sage_bootstrap")
    os.makedirs(code)
    for name, text in sources.items():
        with open(os.path.join(code, name), "w") as f:
            f.write(text)
    pkg = os.path.join(str(root), "build", "pkgs", "whl")
    os.makedirs(pkg)
    for name, text in (("type", "standard\n"), ("package-version.txt", "1.0.p1\n"),
                       ("checksums.ini", "[whl-1.0-a.whl]\ntarball=whl-VERSION-a.whl\n"
                                         "sha256=%s\n[whl-1.0-b.whl]\ntarball=whl-VERSION-b.whl\n"
                                         "sha256=%s\n" % ("a" * 64, "b" * 64))):
        with open(os.path.join(pkg, name), "w") as f:
            f.write(text)
    nothing = os.path.join(str(root), "build", "pkgs", "nothing")
    os.makedirs(nothing)
    with open(os.path.join(nothing, "type"), "w") as f:
        f.write("optional\n")
    return str(root)


def run(root, *argv):
    result = run_in_process(argv, {"SAGE_ROOT": root})
    return result.code, result.out


def test_each_difference_follows_the_trees_own_sage_bootstrap(tmp_path):
    old = make_tree(tmp_path / "old", OLD)
    new = make_tree(tmp_path / "new", CURRENT)
    d = sagebootstrap.dialect(old)
    assert (d.properties, d.shell_quote, d.sections, d.list_tree, d.purl_file, d.pyproject,
            d.lenient_deps) == (("path", "version_with_patchlevel", "type", "source", "trees",
                                 "purl"), False, False, False, False, False, False)
    assert sagebootstrap.dialect(new).__dict__ == sagebootstrap.CURRENT.__dict__
    # properties: the list and the quoting
    code, out = run(old, "properties", "--format=shell", "nothing")
    assert code == 0 and out.splitlines()[-1] == "purl_nothing='pkg:generic/nothing'"
    code, out = run(new, "properties", "--format=shell", "nothing")
    assert out.splitlines()[-2:] == ["description_nothing=''",
                                     "uses_python_package_check_nothing=False"]
    # tarball: sections or one record ('None' without one)
    assert run(new, "tarball", "whl") == (0, "whl-1.0-a.whl\nwhl-1.0-b.whl\n")
    assert run(old, "tarball", "whl") == (0, "whl-1.0-b.whl\n")     # the last tarball= wins
    assert run(old, "tarball", "nothing") == (0, "None\n")
    assert run(new, "tarball", "nothing") == (0, "")
    # list --tree is no option of 10.7's
    assert run(old, "list", "--tree", "SAGE_LOCAL")[0] == 2
    assert run(new, "list", "--tree", "SAGE_LOCAL") == (0, "nothing\nwhl\n")


def test_a_tree_without_sage_bootstrap_is_read_as_current_sage(tmp_path):
    os.makedirs(str(tmp_path / "build" / "pkgs"))
    assert sagebootstrap.dialect(str(tmp_path)) is sagebootstrap.CURRENT
