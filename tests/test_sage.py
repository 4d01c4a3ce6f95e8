"""Sage tree metadata: checksums.ini parsing, templates, resolution, sources.

Both real trees (the sdists sage-conf 10.7 and passagemath-conf 10.8.13.post1,
tests/sagetree.py, with Sage's symlinks as real symlinks) are walked in full,
their counts taken from the files with a plain regex, independently of
sagedl's parser; the odd cases (malformed files, symlinks, .upstream.d) are
built per test under tmp_path, from copies of real packages where that helps.
"""

import os
import re
from collections import defaultdict

import pytest
from hypothesis import given, settings, strategies as st

from sagedl.errors import MetadataError, NotFoundError, UsageError
from sagedl.plan.sources import iter_source_urls
from sagedl.sage.checksums import parse_checksums_ini
from sagedl.sage.names import check_filename, expand, strip_patchlevel
from sagedl.sage.tree import HINT_BROKEN, SageTree, Tarball, read_upstream_d

from sagetree import TREES, require_tree

SHA256 = "ab" * 32
SHA1 = "cd" * 20


# -- helpers -----------------------------------------------------------------

def write(path, text, newline="\n"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline=newline) as f:
        f.write(text)


def make_pkg(root, name, checksums=None, version=None, type_="standard"):
    d = os.path.join(str(root), "build", "pkgs", name)
    os.makedirs(d, exist_ok=True)
    write(os.path.join(d, "type"), type_ + "\n")
    if version is not None:
        write(os.path.join(d, "package-version.txt"), version + "\n")
    if checksums is not None:
        write(os.path.join(d, "checksums.ini"), checksums)
    return d


@pytest.fixture(scope="module", params=TREES)
def real(request):
    """The root of a real Sage tree (each of TREES in turn)."""
    return require_tree(request.param)


def pkgs_of(root):
    return os.path.join(root, "build", "pkgs")


def version_of(root, pkg):
    with open(os.path.join(pkgs_of(root), pkg, "package-version.txt")) as f:
        return strip_patchlevel(f.read().strip())


def copy_real(root, *names):
    """Copy passagemath's real packages (their files as text, symlinks
    followed) into a tmp tree."""
    real_pkgs = pkgs_of(require_tree("passagemath-conf"))
    for name in names:
        for fname in os.listdir(os.path.join(real_pkgs, name)):
            path = os.path.join(real_pkgs, name, fname)
            if os.path.isfile(path):
                with open(path, encoding="utf-8") as f:
                    write(os.path.join(str(root), "build", "pkgs", name, fname), f.read())


def record(tarball, sha256=SHA256, sha1=None, upstream_url=None):
    return {"tarball": tarball, "sha256": sha256, "sha1": sha1, "upstream_url": upstream_url}


def raw_entries(root):
    """(package, sha256) of every record, read with a plain regex: an
    independent count.  A symlinked checksums.ini is its owner's, counted there."""
    found = []
    for pkg in sorted(os.listdir(pkgs_of(root))):
        path = os.path.join(pkgs_of(root), pkg, "checksums.ini")
        if os.path.exists(path) and not os.path.islink(path):
            with open(path, encoding="utf-8") as f:
                found += [(pkg, h) for h in re.findall(r"^sha256=(\w+)", f.read(), re.M)]
    return found


# -- the real tree -----------------------------------------------------------

# Template expansions, one per form Sage uses (components, patch levels, a
# micro version like "1p5"), as each pinned sdist's files give them.
TEMPLATES = {
    "sage-conf": {
        "nauty": ("nauty2.8.9.tar.gz", "https://pallini.di.uniroma1.it/nauty2_8_9.tar.gz"),
        "plantri": ("plantri53.tar.gz", None),
        "sqlite": ("sqlite-autoconf-3360000.tar.gz", None),
        "singular": ("singular-4.4.1.tar.gz", "/SOURCES/4-4-1/"),
        "4ti2": (None, "https://github.com/4ti2/4ti2/releases/download/Release_1_6_10/"),
    },
    "passagemath-conf": {
        "nauty": ("nauty2.9.3.tar.gz", "https://pallini.di.uniroma1.it/nauty2_9_3.tar.gz"),
        "plantri": ("plantri58.tar.gz", None),
        "sqlite": ("sqlite-autoconf-3510200.tar.gz", None),
        # 4.4.1p5: no ".pN" suffix to strip, and micro is "1p5" (as in Sage)
        "singular": ("singular-4.4.1p5.tar.gz", "/SOURCES/4-4-1/"),
        "4ti2": (None, "https://github.com/4ti2/4ti2/releases/download/Release_1_6_15/"),
    },
}


def tree_name(root):
    return [name for name in TREES if require_tree(name) == root][0]


def linked(root, pkg):
    return os.path.islink(os.path.join(pkgs_of(root), pkg, "checksums.ini"))


def test_real_tree_every_entry_resolves_to_its_own_package_and_digests(real):
    tree = SageTree(real)
    per_package = [(pkg, t) for pkg in tree.packages() if not linked(real, pkg)
                   for t in tree.tarballs(pkg)]
    assert len(per_package) == len(raw_entries(real)) > 300
    assert sorted((pkg, t.sha256) for pkg, t in per_package) == sorted(raw_entries(real))
    assert tree.broken == []

    by_name = defaultdict(list)
    for pkg, t in per_package:
        assert t.package == pkg
        for text in (t.filename, t.upstream_url or ""):
            assert "VERSION" not in text and "${" not in text, (pkg, text)
        by_name[t.filename].append(t)

    for pkg, t in per_package:
        got = tree.resolve(t.filename)
        assert (got.filename, got.sha256, got.sha1) == (t.filename, t.sha256, t.sha1)
        if len(by_name[t.filename]) == 1:
            assert got.package == pkg
        else:
            assert got.package in [s.package for s in by_name[t.filename]]

    # A package whose checksums.ini is a symlink lists its owner's tarballs,
    # owned by the owner (Sage's own rule when it uploads them).
    links = [pkg for pkg in tree.packages() if linked(real, pkg)]
    assert "gfortran" in links and "pplpy_doc" in links
    for pkg in links:
        owner = os.path.basename(os.path.dirname(os.path.realpath(
            os.path.join(pkgs_of(real), pkg, "checksums.ini"))))
        assert {t.package for t in tree.tarballs(pkg)} == {owner}, pkg

    walked = list(tree.all_tarballs())
    assert len(walked) == len(raw_entries(real))
    assert sorted((t.package, t.filename) for t in walked) == \
        sorted((pkg, t.filename) for pkg, t in per_package)


def test_real_tree_shared_file_names_go_to_the_package_named_like_the_file(real):
    tree = SageTree(real)
    # gap's tarball is listed by gap_packages (and passagemath's gap_pkg_*)
    # too; gcc's by gfortran; pplpy's by pplpy_doc.
    assert tree.resolve("gap-%s.tar.gz" % version_of(real, "gap")).package == "gap"
    for owner, other in (("gcc", "gfortran"), ("pplpy", "pplpy_doc")):
        for t in tree.tarballs(owner):
            assert tree.resolve(t.filename).package == owner
            assert tree.resolve(other).filename == tree.tarballs(owner)[0].filename


def test_real_tree_templates_with_components_and_patchlevels(real):
    tree = SageTree(real)
    for pkg, (filename, url) in sorted(TEMPLATES[tree_name(real)].items()):
        t = tree.resolve(pkg)
        if filename:
            assert t.filename == filename, pkg
        if url and url.startswith("https:"):
            assert t.upstream_url.startswith(url), (pkg, t.upstream_url)
        elif url:
            assert url in t.upstream_url, (pkg, t.upstream_url)


def test_resolving_a_guessable_name_parses_only_a_few_files(real):
    tree = SageTree(real)
    assert tree.resolve("gap-%s.tar.gz" % version_of(real, "gap")).package == "gap"
    assert tree.parse_count <= 3
    tree.resolve(TEMPLATES[tree_name(real)]["sqlite"][0])
    # case differs from the package
    tree.resolve("Babel-%s-py3-none-any.whl" % version_of(real, "babel"))
    tree.resolve("nauty")
    assert tree.parse_count <= 8


def test_unguessable_names_build_the_full_index_once(real):
    tree = SageTree(real)
    files = sum(os.path.exists(os.path.join(pkgs_of(real), p, "checksums.ini"))
                for p in tree.packages())
    assert tree.resolve("liblrcalc-%s.tar.gz" % version_of(real, "lrcalc")).package == "lrcalc"
    assert tree.parse_count == files
    assert tree.resolve("texinfo-%s.tar.xz" % version_of(real, "info")).package == "info"
    assert tree.parse_count == files


def test_package_listing(real):
    tree = SageTree(real)
    packages = tree.packages()
    on_disk = [p for p in os.listdir(pkgs_of(real)) if os.path.isdir(os.path.join(pkgs_of(real), p))]
    assert packages == sorted(packages) == sorted(on_disk) and len(packages) > 400


# -- parse_checksums_ini -----------------------------------------------------

def records_of(text, path):
    """The records alone (the parser also gives their line numbers and section)."""
    return [r for r, _, _ in parse_checksums_ini(text, path)]


def test_one_record_read_as_sage_bootstrap_reads_it():
    # CRLF and bare CR are line ends (text mode); comments, blank lines and
    # unknown keys are ignored; a repeated key takes the last value.
    text = ("# a comment\r\n; another\r\n\r\n"
            "tarball=foo-VERSION.tar.gz\r\n"
            "sha1=" + SHA1 + "\r"
            "sha256=" + "ab" * 32 + "\r\n"
            "sha256=" + SHA256 + "\n"
            "md5=0123\r\n"
            "upstream_url=https://example.org/foo-${VERSION}.tar.gz\r\n")
    assert records_of(text, "x.ini") == [
        record("foo-VERSION.tar.gz", SHA256, SHA1, "https://example.org/foo-${VERSION}.tar.gz")]


def test_lines_sage_bootstrap_ignores_are_ignored():
    # Sage matches "key=" at the very start of a line: " sha1=..." and
    # "sha1 = ..." are not assignments there, nor anything else.
    text = ("tarball=foo.tgz\nsha256=%s\n  sha1=%s\nsha1 = %s\njunk\n\ufeffmd5=1\n"
            % (SHA256, "00" * 20, "00" * 20))
    assert records_of(text, "x.ini") == [record("foo.tgz")]


def test_missing_optional_keys_are_none():
    text = "tarball=foo.tgz\nsha256=%s\n" % SHA256
    assert records_of(text, "x.ini") == [record("foo.tgz")]


def test_section_form_and_a_repeated_section_starting_afresh():
    text = ("[a-1.0-py3-none-any.whl]\ntarball=a-1.0-py3-none-any.whl\nsha256=%s\n\n"
            "[a-1.0-cp311-win32.whl]\ntarball=x\n"
            "[a-1.0-py3-none-any.whl]\ntarball=a-1.0-py3-none-any.whl\nsha256=%s\n"
            "[a-1.0-cp311-win32.whl]\ntarball=a-1.0-cp311-win32.whl\n"
            "sha256=%s\nsha1=%s\nupstream_url=https://x/a.whl\n"
            % (SHA256, "cd" * 32, "ef" * 32, SHA1))
    assert records_of(text, "x.ini") == [
        record("a-1.0-py3-none-any.whl", "cd" * 32),
        record("a-1.0-cp311-win32.whl", "ef" * 32, SHA1, "https://x/a.whl")]


def test_empty_file_has_no_records():
    assert records_of("# nothing\n\n", "x.ini") == []


@pytest.mark.parametrize("text, lineno, words", [
    ("tarball=a.tgz\nsha256 %s\n" % SHA256, 1, "no sha256="),
    ("# c\nsha256=%s\n" % SHA256, 2, "no tarball="),
    ("\ntarball=a.tgz\nsha1=%s\n" % SHA1, 2, "no sha256="),
    ("tarball=a.tgz\nsha256=\nsha1=%s\n" % SHA1, 2, "no sha256="),
    ("tarball=a.tgz\nsha256=%s\n" % SHA256[:-1], 2, "64 lower-case hex"),
    ("tarball=a.tgz\nsha256=%s\n" % SHA256.upper(), 2, "64 lower-case hex"),
    ("tarball=a.tgz\nsha256=%s \n" % SHA256, 2, "64 lower-case hex"),
    ("tarball=a.tgz\nsha256=%s\n" % ("g" * 64), 2, "64 lower-case hex"),
    ("tarball=a.tgz\nsha256=%s\nsha256=%s0\n" % (SHA256, SHA256), 3, "64 lower-case hex"),
    ("tarball=a.tgz\nsha256=%s\nsha1=%s0\n" % (SHA256, SHA1), 3, "40 lower-case hex"),
    ("tarball=a.tgz\nsha256=%s\nsha1=\n" % SHA256, 3, "40 lower-case hex"),
    ("[a.whl]\nsha256=%s\n" % SHA256, 1, "section [a.whl] has no tarball="),
    ("[a.whl]\n[b.whl]\ntarball=b.whl\nsha256=%s\n" % SHA256, 1, "no tarball="),
])
def test_malformed_files_name_the_line(text, lineno, words):
    with pytest.raises(MetadataError) as info:
        records_of(text, "pkgs/foo/checksums.ini")
    assert info.value.path == "pkgs/foo/checksums.ini"
    assert info.value.lineno == lineno
    assert words in str(info.value)
    assert str(info.value).startswith("pkgs/foo/checksums.ini:%d: " % lineno)


_names = st.text("abcXYZ019._-", min_size=1, max_size=30)
_records = st.lists(st.fixed_dictionaries({
    "tarball": _names,
    "sha256": st.binary(min_size=32, max_size=32).map(bytes.hex),
    "sha1": st.none() | st.binary(min_size=20, max_size=20).map(bytes.hex),
    "upstream_url": st.none() | _names.map(lambda n: "https://example.org/" + n),
}), min_size=1, max_size=4, unique_by=lambda r: r["tarball"])


@settings(max_examples=60, deadline=None)
@given(records=_records, newline=st.sampled_from(["\n", "\r\n", "\r"]),
       pad=st.sampled_from([""]), sectioned=st.booleans())
def test_rendered_records_parse_back(records, newline, pad, sectioned):
    if not sectioned:
        records = records[:1]
    lines = ["# generated"]
    for r in records:
        if sectioned:
            lines.append("[%s]" % r["tarball"])
        lines += ["%s%s%s=%s%s%s" % (pad, k, pad, pad, r[k], pad)
                  for k in ("tarball", "sha1", "sha256", "upstream_url") if r[k] is not None]
        lines.append("")
    assert records_of(newline.join(lines), "g.ini") == records


# -- templates ---------------------------------------------------------------

@pytest.mark.parametrize("template, version, expected", [
    ("foo-VERSION.tar.gz", "1.2.3", "foo-1.2.3.tar.gz"),
    ("foo-${VERSION}.tar.gz", "1.2.3", "foo-1.2.3.tar.gz"),
    ("awali-all-vVERSION.tgz", "2.3.0", "awali-all-v2.3.0.tgz"),
    ("p${VERSION_MAJOR}${VERSION_MINOR}.tgz", "5.8", "p58.tgz"),
    ("x/${VERSION_MAJOR}_${VERSION_MINOR}_${VERSION_MICRO}/VERSION", "2.9.3", "x/2_9_3/2.9.3"),
    ("bare VERSION_MAJOR.VERSION_MINOR.VERSION_MICRO/VERSION", "1.2.3", "bare 1.2.3/1.2.3"),
    ("foo-VERSION", "1.0.4p2", "foo-1.0.4p2"),
    ("foo-VERSION_MICRO", "4.4.1p5", "foo-1p5"),
    ("foo-${REVISION}-VERSION", "1.0", "foo-${REVISION}-1.0"),   # left as Sage leaves it
    ("foo-${VERSION", "1.0", "foo-${1.0"),
    ("galpol.tgz", None, "galpol.tgz"),
    ("lit-1.0.tgz", "9.9", "lit-1.0.tgz"),
])
def test_expand(template, version, expected):
    assert expand(template, version) == expected


def test_bare_version_does_not_clobber_component_names():
    assert expand("VERSION_MAJOR-VERSION", "7.1") == "7-7.1"
    assert expand("${VERSION_MINOR}VERSION_MINOR", "7.1") == "11"


@pytest.mark.parametrize("template, version, words", [
    ("foo-${VERSION_MICRO}", "2.9", "VERSION_MICRO"),
    ("foo-VERSION_MINOR", "3", "VERSION_MINOR"),
    ("foo-VERSION", None, "no package-version.txt"),
    ("v-VERSION", "VERSION", "does not end"),   # Sage substitutes again, for ever
])
def test_expand_errors(template, version, words):
    with pytest.raises(UsageError) as info:
        expand(template, version)
    assert words in str(info.value)


def test_strip_patchlevel_cuts_at_the_last_pN_as_sage_bootstrap():
    assert strip_patchlevel("1.0.8.p0") == "1.0.8"
    assert strip_patchlevel("20210214.p12\n") == "20210214"
    assert strip_patchlevel("2.3.p1.post2") == "2.3"
    assert strip_patchlevel("1.p2.p3") == "1.p2"
    assert strip_patchlevel("4.4.1p5") == "4.4.1p5"


def test_template_errors_in_a_tree_name_the_line(tmp_path):
    make_pkg(tmp_path, "foo", "tarball=foo-VERSION.tgz\nsha256=%s\n"
             "upstream_url=https://x/${VERSION_MICRO}/foo.tgz\n" % SHA256, version="2.9.p1")
    make_pkg(tmp_path, "bar", "tarball=bar-VERSION.tgz\nsha256=%s\n" % SHA256)  # no version
    tree = SageTree(str(tmp_path))
    with pytest.raises(MetadataError) as info:
        tree.resolve("foo")
    assert (info.value.lineno, "VERSION_MICRO" in str(info.value)) == (3, True)
    with pytest.raises(MetadataError) as info:
        tree.resolve("bar")
    assert info.value.lineno == 1 and info.value.path.endswith("bar/checksums.ini")


def test_version_file_patchlevel_is_stripped(tmp_path):
    make_pkg(tmp_path, "bzip2", "tarball=bzip2-VERSION.tar.gz\nsha256=%s\n" % SHA256,
             version="1.0.8.p0")
    t = SageTree(str(tmp_path)).resolve("bzip2-1.0.8.tar.gz")
    assert (t.package, t.version, t.sha1, t.upstream_url) == ("bzip2", "1.0.8", None, None)


# -- resolution in small trees -------------------------------------------------

def test_malformed_unrelated_package_does_not_stop_others(tmp_path):
    copy_real(tmp_path, "gap", "nauty", "pplpy", "clarabel", "zlib")
    zlib_ini = tmp_path / "build/pkgs/zlib/checksums.ini"
    zlib_ini.write_text(zlib_ini.read_text().replace("sha256=", "sha256=Z"))
    tree = SageTree(str(tmp_path))
    assert tree.resolve("gap-4.16.1.tar.gz").package == "gap"     # passagemath's versions
    assert tree.resolve("nauty").filename == "nauty2.9.3.tar.gz"
    # no package is named like this file: found through the full index
    assert tree.resolve("passagemath_ppl-0.8.10.1.tar.gz").package == "pplpy"
    walked = list(tree.all_tarballs())
    assert {t.package for t in walked} == {"gap", "nauty", "pplpy", "clarabel"}
    assert len(walked) == 8
    assert [(e.path, e.lineno) for e in tree.broken] == [(str(zlib_ini), 3)]
    assert tree.broken[0].hint == HINT_BROKEN
    with pytest.raises(NotFoundError) as info:
        tree.resolve("zzz-1.0.tgz")
    assert "%s:3" % zlib_ini in info.value.hint  # says what was skipped


def test_asking_for_the_malformed_package_names_file_and_line(tmp_path):
    copy_real(tmp_path, "gap", "zlib", "lrcalc", "lrcalc_python")
    zlib_ini = tmp_path / "build/pkgs/zlib/checksums.ini"
    zlib_ini.write_text(zlib_ini.read_text().replace("sha256=9a93", "sha256=zz93"))
    lrcalc_ini = tmp_path / "build/pkgs/lrcalc/checksums.ini"
    # a repeated key takes the last value, which must be safe
    lrcalc_ini.write_text("# broken\n" + lrcalc_ini.read_text() + "sha256=%s\n" % ("0" * 63))
    for name, ini, line in [("zlib", zlib_ini, 3), ("zlib-1.3.1.tar.gz", zlib_ini, 3),
                            # not named like its package: found by a lenient scan
                            ("liblrcalc-2.1.tar.gz", lrcalc_ini, 6)]:
        tree = SageTree(str(tmp_path))
        with pytest.raises(MetadataError) as info:
            tree.resolve(name)
        assert str(info.value).startswith("%s:%d: " % (ini, line))
    # a broken package named like the file does not hide the real owner ...
    assert SageTree(str(tmp_path)).resolve("lrcalc-2.1.tar.gz").package == "lrcalc_python"
    # ... but when nothing valid lists the name, the broken package may be the one
    with pytest.raises(MetadataError) as info:
        SageTree(str(tmp_path)).resolve("lrcalc-2.2.tar.gz")
    assert info.value.path == str(lrcalc_ini)


def test_unknown_names_suggest_close_ones(tmp_path):
    make_pkg(tmp_path, "gap", "tarball=gap-VERSION.tar.gz\nsha256=%s\n" % SHA256, "4.16.0")
    make_pkg(tmp_path, "nauty", "tarball=nauty${VERSION}.tar.gz\nsha256=%s\n" % SHA256, "2.9.3")
    tree = SageTree(str(tmp_path))
    for name, suggestion in [("gap-4.15.0.tar.gz", "gap-4.16.0.tar.gz"),
                             ("nauty2.9.3.tar.bz2", "nauty2.9.3.tar.gz"),
                             ("GAP-4.16.0.TAR.GZ", "gap-4.16.0.tar.gz"),
                             ("gapp", "gap")]:
        with pytest.raises(NotFoundError) as info:
            tree.resolve(name)
        assert name in str(info.value)
        assert "did you mean" in info.value.hint and suggestion in info.value.hint
    with pytest.raises(NotFoundError) as info:
        tree.resolve("completely-unrelated-zzz.zip")
    assert info.value.hint is None


def test_package_names_resolve_to_their_single_tarball(tmp_path):
    make_pkg(tmp_path, "babel", "tarball=Babel-VERSION-py3-none-any.whl\nsha256=%s\n" % SHA256,
             "2.18.0")
    make_pkg(tmp_path, "multi",
             # the second section's tarball= names its file once VERSION is substituted
             "[m-1-a.whl]\ntarball=m-1-a.whl\nsha256=%s\n"
             "[m-1-b.whl]\ntarball=m-VERSION-b.whl\nsha256=%s\n" % (SHA256, SHA256), "1")
    make_pkg(tmp_path, "sagelib", version="10.7")
    tree = SageTree(str(tmp_path))
    assert tree.resolve("babel").filename == "Babel-2.18.0-py3-none-any.whl"
    assert tree.resolve("Babel").package == "babel"  # case and '-' folded for package names
    assert tree.resolve("Babel-2.18.0-py3-none-any.whl").package == "babel"
    with pytest.raises(UsageError) as info:
        tree.resolve("multi")
    assert "m-1-a.whl" in str(info.value) and "m-1-b.whl" in str(info.value)
    assert tree.resolve("m-1-b.whl").package == "multi"
    with pytest.raises(NotFoundError):
        tree.resolve("sagelib")
    assert tree.tarballs("sagelib") == []
    with pytest.raises(NotFoundError):
        tree.tarballs("nosuch")


def test_hostile_tarball_name_in_metadata_is_refused(tmp_path):
    make_pkg(tmp_path, "evil", "tarball=../../evil-VERSION\nsha256=%s\n" % SHA256, "1.0")
    make_pkg(tmp_path, "good", "tarball=good-1.tgz\nsha256=%s\n" % SHA256)
    tree = SageTree(str(tmp_path))
    with pytest.raises(MetadataError) as info:
        tree.tarballs("evil")
    assert info.value.lineno == 1 and "path" in str(info.value)
    assert [t.filename for t in tree.all_tarballs()] == ["good-1.tgz"]


def test_symlinked_checksums_ini_gives_one_tarball_owned_by_the_real_file(tmp_path):
    make_pkg(tmp_path, "zz_owner", "tarball=thing-VERSION.tar.gz\nsha256=%s\n" % SHA256, "3.1")
    link_dir = make_pkg(tmp_path, "aa_link")
    os.symlink("../zz_owner/checksums.ini", os.path.join(link_dir, "checksums.ini"))
    os.symlink("../zz_owner/package-version.txt", os.path.join(link_dir, "package-version.txt"))
    os.symlink("zz_owner", str(tmp_path / "build/pkgs/mm_dirlink"))  # a linked package dir
    tree = SageTree(str(tmp_path))
    assert tree.packages() == ["aa_link", "mm_dirlink", "zz_owner"]
    for name in ("thing-3.1.tar.gz", "aa_link", "mm_dirlink", "zz_owner"):
        t = tree.resolve(name)
        assert (t.package, t.filename, t.version) == ("zz_owner", "thing-3.1.tar.gz", "3.1")
    walked = [(t.package, t.filename) for t in tree.all_tarballs()]
    assert walked == [("zz_owner", "thing-3.1.tar.gz")]


def test_copies_of_a_file_name_go_to_the_longest_package_prefix_then_first_by_name(tmp_path):
    ini = "tarball=foo_bar-VERSION.tgz\nsha256=%s\n" % SHA256
    for pkg in ("aaa", "foo", "foo_bar", "zzz"):
        make_pkg(tmp_path, pkg, ini, "1.0")
    make_pkg(tmp_path, "b_copy", "tarball=other-1.tgz\nsha256=%s\n" % SHA256)
    make_pkg(tmp_path, "a_copy", "tarball=other-1.tgz\nsha256=%s\n" % SHA256)
    tree = SageTree(str(tmp_path))
    assert tree.resolve("foo_bar-1.0.tgz").package == "foo_bar"
    assert tree.resolve("other-1.tgz").package == "a_copy"  # no package named like it


def test_dangling_checksums_symlink_is_a_broken_package(tmp_path):
    d = make_pkg(tmp_path, "ghost")
    os.symlink("../nowhere/checksums.ini", os.path.join(d, "checksums.ini"))
    make_pkg(tmp_path, "good", "tarball=good-1.tgz\nsha256=%s\n" % SHA256)
    tree = SageTree(str(tmp_path))
    assert [t.filename for t in tree.all_tarballs()] == ["good-1.tgz"]
    assert len(tree.broken) == 1 and tree.broken[0].path.endswith("ghost/checksums.ini")
    with pytest.raises(MetadataError):
        tree.resolve("ghost")


def test_tarball_repr_and_equality():
    t = Tarball("gap", "gap-4.16.0.tar.gz", SHA256, version="4.16.0")
    assert repr(t) == "Tarball(package='gap', filename='gap-4.16.0.tar.gz', version='4.16.0')"
    assert t == Tarball("gap", "gap-4.16.0.tar.gz", SHA256, version="4.16.0")
    assert t != Tarball("gap", "gap-4.16.0.tar.gz", "00" * 32, version="4.16.0")


# -- hostile names -------------------------------------------------------------

HOSTILE = ["", ".", "..", "../gap-4.16.0.tar.gz", "a/b.tgz", "/etc/passwd", "a\\b.tgz",
           "..\\x", "a\x00b", "a\nb", "a\rb", "tab\tname", "\x7fdel", "x\u202egz.exe",
           "\u2028", " gap.tgz", "gap.tgz ", "x" * 256, "\u00e9" * 128,
           b"\xff\xfe.tgz", None, 42]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_refused(name):
    with pytest.raises(UsageError):
        check_filename(name)


def test_hostile_names_are_refused_before_any_io(tmp_path):
    make_pkg(tmp_path, "gap", "tarball=gap.tgz\nsha256=%s\n" % SHA256)
    tree = SageTree(str(tmp_path))
    # any I/O on the tree would now fail with a MetadataError or NotFoundError
    os.rename(str(tmp_path / "build"), str(tmp_path / "gone"))
    for name in HOSTILE:
        with pytest.raises(UsageError) as info:
            tree.resolve(name)
        assert not isinstance(info.value, MetadataError)
        assert "unsafe" in str(info.value)
    assert tree.parse_count == 0


def test_ordinary_names_pass():
    for name in ["gap-4.16.0.tar.gz", "bliss-0.77+scipopt-0.1.zip", "a..b.tgz",
                 "\u00e9t\u00e9.tgz", b"gap.tgz", "x" * 255]:
        assert check_filename(name) == (name.decode() if isinstance(name, bytes) else name)


# -- discovery and directories -------------------------------------------------

def test_discovery_order(tmp_path):
    a, b, c = (tmp_path / n for n in "abc")
    for root in (a, b, c):
        make_pkg(root, "gap")
    nested = c / "src" / "deep"
    nested.mkdir(parents=True)
    env = {"SAGE_ROOT": str(b)}
    assert SageTree.discover(str(a), env, str(nested)).root == str(a)
    assert SageTree.discover(None, env, str(nested)).root == str(b)
    assert SageTree.discover(None, {"SAGE_ROOT": ""}, str(nested)).root == str(c)
    assert SageTree.discover(None, {}, str(c)).root == str(c)
    assert SageTree.discover(None, {}, str(tmp_path)) is None


@pytest.mark.parametrize("explicit, env, words", [
    ("NOT_A_TREE", {}, "--sage-root"),
    (None, {"SAGE_ROOT": "NOT_A_TREE"}, "SAGE_ROOT"),
    ("", {}, "--sage-root"),
])
def test_explicit_root_that_is_not_a_tree_is_an_error(tmp_path, explicit, env, words):
    make_pkg(tmp_path, "gap")  # a tree up from cwd must not rescue a wrong explicit root
    (tmp_path / "NOT_A_TREE").mkdir()
    env = dict((k, str(tmp_path / v)) for k, v in env.items())
    if explicit:
        explicit = str(tmp_path / explicit)
    with pytest.raises(UsageError) as info:
        SageTree.discover(explicit, env, str(tmp_path))
    assert words in str(info.value) and "build/pkgs" in info.value.hint


def test_distfiles(tmp_path):
    make_pkg(tmp_path, "gap")
    tree = SageTree(str(tmp_path))
    assert tree.distfiles({}) == os.path.join(str(tmp_path), "upstream")
    assert tree.distfiles({"SAGE_DISTFILES": ""}) == os.path.join(str(tmp_path), "upstream")
    assert tree.distfiles({"SAGE_DISTFILES": "/var/cache/sage"}) == "/var/cache/sage"


# -- .upstream.d and sources ---------------------------------------------------

def make_upstream_d(root):
    d = os.path.join(str(root), ".upstream.d")
    write(os.path.join(d, "20-github"), "# releases\nhttps://gh.example/rel/10.7/\n\n"
          "https://gh.example/rel/10.6\n")
    write(os.path.join(d, "10-SAGE_SERVER"), "# when set\n${SAGE_SERVER}/spkg/upstream/${SPKG}/\n",
          newline="\r\n")
    write(os.path.join(d, "30-mirrors"), "https://www.example.org/mirror_list\n")
    write(os.path.join(d, "25-local"), "file://${SAGE_ROOT}/cache/${SPKG}/\n")
    write(os.path.join(d, "20-github~"), "https://backup.example/\n")
    write(os.path.join(d, "#21-autosave#"), "https://autosave.example/\n")
    write(os.path.join(d, ".22-hidden"), "https://hidden.example/\n")


def test_read_upstream_d_order_and_kinds(tmp_path):
    make_upstream_d(tmp_path)
    assert read_upstream_d(str(tmp_path)) == [
        ("url", "${SAGE_SERVER}/spkg/upstream/${SPKG}/"),
        ("url", "https://gh.example/rel/10.7/"),
        ("url", "https://gh.example/rel/10.6"),
        ("url", "file://%s/cache/${SPKG}/" % tmp_path),
        ("mirror_list", "https://www.example.org/mirror_list"),
    ]
    assert read_upstream_d(str(tmp_path / "nothing")) == []


def test_sources_in_sage_order(tmp_path):
    make_upstream_d(tmp_path)
    entries = read_upstream_d(str(tmp_path))
    t = Tarball("gap", "gap-4.16.0.tar.gz", SHA256, upstream_url="https://up.example/gap.tgz")
    asked = []

    def mirror_lists(url):
        asked.append(url)
        return ["https://m2.example/sage", "https://m1.example/"]

    env = {"SAGE_SERVER": "http://127.0.0.1:8080/"}
    mirrors = ["https://m1.example", "https://m3.example/"]
    skipped = []
    urls = list(iter_source_urls(t, env, entries, mirrors, True, mirror_lists, skipped))
    # a file: line is no source sagedl can use: left out, and reported
    assert skipped == [(".upstream.d line file://%s/cache/${SPKG}/" % tmp_path,
                        "file://%s/cache/gap/gap-4.16.0.tar.gz" % tmp_path,
                        "is not an http or https URL")]
    assert urls == [
        # $SAGE_SERVER, and the 10-SAGE_SERVER line giving the same URL
        "http://127.0.0.1:8080/spkg/upstream/gap/gap-4.16.0.tar.gz",
        "https://gh.example/rel/10.7/gap-4.16.0.tar.gz",
        "https://gh.example/rel/10.6/gap-4.16.0.tar.gz",
        "https://m2.example/sage/spkg/upstream/gap/gap-4.16.0.tar.gz",  # from the mirror list
        "https://m1.example/spkg/upstream/gap/gap-4.16.0.tar.gz",
        "https://m3.example/spkg/upstream/gap/gap-4.16.0.tar.gz",  # passed-in mirrors
        "https://up.example/gap.tgz",
    ]
    assert asked == ["https://www.example.org/mirror_list"]

    # no SAGE_SERVER: its line is skipped; no resolver: the mirror list is the caller's;
    # no allow_upstream: no upstream URL
    assert list(iter_source_urls(t, {}, entries, ["https://m1.example/"], False)) == [
        "https://gh.example/rel/10.7/gap-4.16.0.tar.gz",
        "https://gh.example/rel/10.6/gap-4.16.0.tar.gz",
        "https://m1.example/spkg/upstream/gap/gap-4.16.0.tar.gz",
    ]


def test_sources_quote_the_file_name_and_skip_unknown_placeholders():
    t = Tarball("bliss", "bliss 0.77+scipopt#1.zip", SHA256)
    entries = [("url", "https://a.example/${UNKNOWN}/"), ("url", "https://b.example/x/")]
    assert list(iter_source_urls(t, {}, entries, [], True)) == [
        "https://b.example/x/bliss%200.77+scipopt%231.zip"]
    assert list(iter_source_urls(Tarball("p", "f.tgz", SHA256, upstream_url="https://u/f.tgz"),
                                 {"SAGE_SERVER": "https://s.example///"}, [], [], True)) == [
        "https://s.example/spkg/upstream/p/f.tgz", "https://u/f.tgz"]


def test_a_section_must_name_the_file_its_tarball_names_after_substitution(tmp_path):
    make_pkg(tmp_path, "w", "[w-1.0-py3-none-any.whl]\ntarball=w-VERSION-py3-none-any.whl\n"
             "sha256=%s\n" % SHA256, "1.0.p2")
    make_pkg(tmp_path, "v", "[v-1.0-py3-none-any.whl]\ntarball=v-VERSION-py3-none-any.whl\n"
             "sha256=%s\n" % SHA256, "2.0")
    make_pkg(tmp_path, "u", "[u-VERSION-py3-none-any.whl]\ntarball=u-2.0-py3-none-any.whl\n"
             "sha256=%s\n" % SHA256, "2.0")
    tree = SageTree(str(tmp_path))
    assert tree.resolve("w").filename == "w-1.0-py3-none-any.whl"
    assert tree.resolve("u").filename == "u-2.0-py3-none-any.whl"
    with pytest.raises(MetadataError) as info:
        tree.resolve("v")
    assert "does not match its section" in str(info.value) and info.value.lineno == 2
