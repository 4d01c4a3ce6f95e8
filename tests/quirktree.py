"""A small Sage tree whose packages provoke sage_bootstrap's rules one by one.

tests/test_sage_package.py states the rules on it; tests/test_sage_package_diff.py
runs Sage's own sage-package on it too, so those statements are Sage's.
"""

import os


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def make_quirk_tree(root):
    """Write the tree at ``root`` (a pathlib.Path); returns root."""
    pkgs = root / "build" / "pkgs"

    def pkg(name, ptype="standard", version=None, checksums=None, **files):
        d = pkgs / name
        write(d / "type", ptype + "\n")
        if version is not None:
            write(d / "package-version.txt", version + "\n")
        if checksums is not None:
            write(d / "checksums.ini", checksums)
        for fname, text in files.items():
            write(d / fname.replace("__", "/").replace("_DOT_", "."), text)
        return d

    pkg("plain", version="1.2.3.p4", checksums="tarball=plain-VERSION.tar.gz\nsha256=00\n",
        **{"SPKG_DOT_rst": "plain: a plain package\n=====\n"})
    # The patch level is the last ".pN", even in the middle; the rest is dropped.
    pkg("midpatch", "optional", version="2.3.p1.post2",
        checksums="tarball=midpatch-${VERSION_MAJOR}-VERSION_MINOR-VERSION.zip\n")
    pkg("wheels", "optional", version="1.0",
        checksums="[wheels-1.0-b.whl]\ntarball=wheels-VERSION-b.whl\n"
                  "[wheels-1.0-a.whl]\ntarball=wheels-VERSION-a.whl\n")
    pkg("pipped", "experimental", version="5", checksums=None,
        **{"requirements_DOT_txt": "# comment\nPipped_Dist >=1\n",
           "SPKG_DOT_rst": "=====\npipped: \u00e9l\u00e8ve \"quoted\" it's\n"})
    pkg("scripted", **{"spkg-install_DOT_in": "true\n", "trees_DOT_txt": "SAGE_VENV # x\n",
                       "purl_DOT_txt": "pkg:generic/other-name\n",
                       "spkg-configure_DOT_m4": "SAGE_PYTHON_PACKAGE_CHECK([x])\n"})
    pkg("bare", "base")
    # A copy of plain's checksums.ini through a symlink: plain owns the tarball.
    d = pkg("linked", "optional", version="1.2.3.p4")
    os.symlink("../plain/checksums.ini", str(d / "checksums.ini"))
    (pkgs / "notype").mkdir()
    return root
