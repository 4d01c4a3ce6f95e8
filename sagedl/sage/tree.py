"""A Sage source tree's package metadata, and which tarball a name means.

Layout read here (all of it is Sage's, sagedl only reads it)::

    SAGE_ROOT/build/pkgs/<pkg>/checksums.ini        tarball=, sha256=, sha1=, upstream_url=
    SAGE_ROOT/build/pkgs/<pkg>/package-version.txt  e.g. "1.0.8.p0" (".pN" is Sage's patch level)
    SAGE_ROOT/build/pkgs/<pkg>/type                 standard / optional / experimental / base
    SAGE_ROOT/.upstream.d/*                         where Sage looks for tarballs, in order

Decisions worth knowing:

* The marker of a Sage tree is a ``build/pkgs`` directory.  It is all that
  downloading needs, and it is also what a bare metadata checkout (no Sage
  sources) has.
* checksums.ini comes in two forms: one record (``tarball=`` plus digests), or
  ``[file name]`` sections holding one record each (wheels per platform).
* Symlinks (Sage links checksums.ini and package-version.txt of one package to
  another's) are read through.  A tarball is attributed to the package that
  owns the *real* checksums.ini (as Sage's ``tarball_package`` does), so the
  same file listed under two packages is one Tarball.  Mirrors may hold it
  under either name (Sage uploads it under the owner; a stock
  ``sage-package download gap_packages`` asks for .../gap_packages/...), so
  both paths are asked for, owner first (``Tarball.mirror_names``), and a
  site mirror holds both (``SageTree.linked_to``).
* When the same file name is listed by distinct (non-linked) checksums.ini
  files, the package whose name is the longest prefix of the file name wins
  (case and ``-``/``_``/``.`` ignored), then the first by name.  Resolving a
  guessable name therefore only needs the few packages whose name is such a
  prefix; the whole tree is indexed (once) only when that guess fails.
* One malformed checksums.ini never stops the others: it is skipped (and kept
  in ``SageTree.broken``) unless the name asked for could be in it.

checksums.py parses one checksums.ini; names.py checks the names read here
(and given on the command line) and expands their VERSION templates.
"""

from __future__ import absolute_import

import errno
import os
import re

from sagedl.engine.fsutil import METADATA_LIMIT
from sagedl.errors import MetadataError, NotFoundError, UsageError
from sagedl.sage.checksums import (LINE_BREAK, SECTION, check_section, parse_checksums_ini,
                                    universal_newlines)
from sagedl.sage.names import check_filename, expand, show as _show, strip_patchlevel
from sagedl.text import native_str

# How many names an error message lists before saying "..."
_LIST_IN_MESSAGE = 3

MSG_NOT_A_TREE = "%s %s is not a Sage tree: it has no build/pkgs directory"
HINT_NOT_A_TREE = ("point it at the top of a Sage source tree "
                   "(the directory that holds build/pkgs/)")
MSG_UNKNOWN = "%s is neither a tarball nor a package of the Sage tree at %s"
MSG_NO_TARBALL = "package %s has no tarball (no checksums.ini)"
MSG_SEVERAL = "package %s has %d tarballs; name the file you want: %s"
HINT_BROKEN = "repair or restore that file in your Sage tree"

# Values for the marker and for Sage's own environment variables.
TREE_MARKER = os.path.join("build", "pkgs")
UPSTREAM_D = ".upstream.d"


def _few(names):
    shown = ", ".join(names[:_LIST_IN_MESSAGE])
    if len(names) > _LIST_IN_MESSAGE:
        shown += ", ... (%d in all)" % len(names)
    return shown


# ---------------------------------------------------------------------------
# Tarballs and the tree

class Tarball(object):
    """One downloadable file of one package, with its expected digests.

    ``package`` owns the real checksums.ini (symlinks resolved); ``version``
    is the upstream version (package-version.txt without ``.pN``), or None;
    ``checksums_ini`` is the file it came from (for messages).

    Not part of its identity: ``section``, the ``[name]`` of its record (or
    None), which Sage's ``--tags`` matches; ``listed_as``, the package
    directory it was read through -- ``package`` unless that directory's
    checksums.ini is a symlink to ``package``'s (gap_packages -> gap), in
    which case a stock Sage client asks mirrors for it under this name.
    """

    def __init__(self, package, filename, sha256, sha1=None, upstream_url=None,
                 version=None, checksums_ini=None, section=None, listed_as=None):
        self.package = package
        self.filename = filename
        self.sha256 = sha256
        self.sha1 = sha1
        self.upstream_url = upstream_url
        self.version = version
        self.checksums_ini = checksums_ini
        self.section = section
        self.listed_as = listed_as or package

    def mirror_names(self):
        """The package directories a mirror may hold this file under, in the
        order to ask: the owner (where Sage uploads it), then the symlinked
        name a stock ``sage-package download`` asks for."""
        if self.listed_as != self.package:
            return [self.package, self.listed_as]
        return [self.package]

    def _key(self):
        return (self.package, self.filename, self.sha256, self.sha1,
                self.upstream_url, self.version)

    def __eq__(self, other):
        return isinstance(other, Tarball) and self._key() == other._key()

    def __ne__(self, other):  # Python 2 does not derive != from ==
        return not self == other

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        return "Tarball(package=%s, filename=%s, version=%s)" % (
            _show(self.package), _show(self.filename), _show(self.version))


def is_sage_tree(path):
    """The marker: a build/pkgs directory."""
    return os.path.isdir(os.path.join(path, TREE_MARKER))


def _norm(name):
    """Fold the differences between package and file names (Babel-2.1 vs babel)."""
    return name.lower().replace("-", "_").replace(".", "_")


def _read_text(path, limit=METADATA_LIMIT):
    """A metadata file's text: read at most ``limit`` bytes (more is a
    MetadataError), only from a regular file (a FIFO or device is an
    IOError, as an unreadable file), decoded as UTF-8 (UnicodeDecodeError).
    Symlinks are followed: Sage links checksums.ini between packages.
    On 2.7 the text is returned as UTF-8 bytes, the native str, so that it
    mixes with byte paths and argv (see text.native_name)."""
    from sagedl.engine import fsutil
    try:
        data = fsutil.read_bounded(path, limit, follow=True)
    except fsutil.UnsafePath as e:
        raise IOError(errno.EINVAL, "%s is %s, not a regular file" % (path, fsutil.describe(e.kind)))
    except fsutil.TooLarge:
        raise MetadataError(path, None, "larger than %d bytes: not a Sage metadata file" % limit)
    return native_str(data.decode("utf-8"))


class SageTree(object):
    """Read-only view of SAGE_ROOT/build/pkgs; parses lazily, caches, counts.

    ``parse_count`` counts checksums.ini files parsed (to prove laziness);
    ``broken`` lists the MetadataError of each malformed package met so far
    (all of them after a full ``all_tarballs()`` walk).
    """

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.pkgs_dir = os.path.join(self.root, TREE_MARKER)
        if not os.path.isdir(self.pkgs_dir):
            raise UsageError(MSG_NOT_A_TREE % ("directory", self.root), HINT_NOT_A_TREE)
        self.parse_count = 0
        self.broken = []
        self._packages = None
        self._norm_packages = None
        self._loaded = {}  # package -> list of Tarball, or its MetadataError
        self._index = None  # file name -> list of Tarball
        self._real_pkgs_dir = os.path.realpath(self.pkgs_dir)
        self._links = None  # owner -> packages whose checksums.ini links to it
        self._sections = None  # whether this tree's Sage reads [sections]

    def __repr__(self):
        return "SageTree(%s)" % _show(self.root)

    # -- discovery ---------------------------------------------------------

    @classmethod
    def discover(cls, explicit=None, env=None, cwd=None):
        """The tree to use: --sage-root, else $SAGE_ROOT, else walk up from cwd.

        Returns None when no tree is found by walking up.  An explicit root
        or SAGE_ROOT that is not a tree is a UsageError: the user asked for it.
        """
        env = os.environ if env is None else env
        if explicit is not None:
            return cls._named(explicit, "--sage-root")
        if env.get("SAGE_ROOT"):
            return cls._named(env["SAGE_ROOT"], "SAGE_ROOT")
        try:
            here = os.path.abspath(cwd if cwd is not None else os.getcwd())
        except OSError:  # the working directory was deleted
            return None
        while True:
            if is_sage_tree(here):
                return cls(here)
            parent = os.path.dirname(here)
            if parent == here:
                return None
            here = parent

    @classmethod
    def _named(cls, path, origin):
        if not path or not is_sage_tree(path):
            hint = HINT_NOT_A_TREE
            if origin == "SAGE_ROOT":
                hint = "unset SAGE_ROOT or " + hint
            raise UsageError(MSG_NOT_A_TREE % (origin, _show(path)), hint)
        return cls(path)

    def distfiles(self, env=None):
        """Where tarballs live: $SAGE_DISTFILES, else SAGE_ROOT/upstream (Sage's default)."""
        env = os.environ if env is None else env
        return env.get("SAGE_DISTFILES") or os.path.join(self.root, "upstream")

    # -- packages ----------------------------------------------------------

    def packages(self):
        """Sorted names of the package directories."""
        if self._packages is None:
            try:
                names = os.listdir(self.pkgs_dir)
            except OSError as e:
                raise MetadataError(self.pkgs_dir, None, "cannot list: %s" % e.strerror)
            self._packages = sorted(n for n in names if not n.startswith(".")
                                    and os.path.isdir(os.path.join(self.pkgs_dir, n)))
        return list(self._packages)

    def _package_set(self):
        if self._norm_packages is None:
            self._norm_packages = dict((p, _norm(p)) for p in self.packages())
        return self._norm_packages

    def _check_package(self, name):
        name = check_filename(name, "package name")
        if name not in self._package_set():
            import difflib   # error paths only
            close = difflib.get_close_matches(name, self.packages(), 3)
            raise NotFoundError("no package %s in the Sage tree at %s" % (name, self.root),
                                "did you mean %s?" % ", ".join(close) if close else None)
        return name

    def tarballs(self, name):
        """The package's Tarballs (empty if it has no checksums.ini).

        Raises the package's MetadataError if its metadata is malformed.
        """
        return list(self._load(self._check_package(name)))

    def linked_to(self, owner):
        """The packages whose checksums.ini is a symlink to ``owner``'s
        (gap -> gap_packages, gap_pkg_*; gcc -> gfortran), sorted."""
        if self._links is None:
            links = {}
            for pkg in self.packages():
                path = os.path.join(self.pkgs_dir, pkg, "checksums.ini")
                if os.path.islink(path):
                    real_owner = self._owner(pkg, path)
                    if real_owner != pkg:
                        links.setdefault(real_owner, []).append(pkg)
            self._links = links
        return list(self._links.get(owner, ()))

    def all_tarballs(self):
        """Every Tarball of the tree once, skipping (into .broken) malformed packages."""
        seen = set()
        for pkg in self.packages():
            try:
                tarballs = self._load(pkg)
            except MetadataError:
                continue
            for t in tarballs:
                # A symlinked checksums.ini yields its owner's tarball again.
                if (t.package, t.filename) not in seen:
                    seen.add((t.package, t.filename))
                    yield t

    # -- resolution --------------------------------------------------------

    def resolve(self, name):
        """The Tarball meant by a tarball file name or a package name.

        A package directory named ``name`` (or ``name`` with case and '-'
        folded, when it has no '.') means that package's only tarball.
        Otherwise ``name`` must equal an expanded tarball file name exactly.
        """
        name = check_filename(name)
        pkg = self._package_named(name)
        if pkg is not None:
            return self._resolve_package(pkg)
        return self._resolve_filename(name)

    def _package_named(self, name):
        packages = self._package_set()
        if name in packages:
            return name
        if "." not in name:
            folded = [p for p, n in packages.items() if n == _norm(name)]
            if len(folded) == 1:
                return folded[0]
        return None

    def _resolve_package(self, pkg):
        tarballs = self._load(pkg)
        if not tarballs:
            raise NotFoundError(MSG_NO_TARBALL % pkg,
                                "Sage builds it from its own sources or installs it with pip")
        if len(tarballs) > 1:
            raise UsageError(MSG_SEVERAL % (pkg, len(tarballs),
                                            _few([t.filename for t in tarballs])))
        return tarballs[0]

    def _resolve_filename(self, name):
        guessed_errors = []
        matches = []
        for pkg in self._candidates(name):
            try:
                matches.extend(t for t in self._load(pkg) if t.filename == name)
            except MetadataError as e:
                guessed_errors.append(e)
        if not matches:
            matches = self._full_index().get(name, [])
        if matches:
            return min(matches, key=lambda t: self._preference(name, t.package))
        # Nothing valid lists it: blame a malformed package that could.
        if guessed_errors:
            raise guessed_errors[0]
        for pkg in self.packages():
            error = self._loaded.get(pkg)
            if isinstance(error, MetadataError) and name in self._lenient_filenames(pkg):
                raise error
        raise self._not_found(name)

    def _candidates(self, name):
        """Packages whose folded name is a prefix of the folded file name, longest first."""
        folded = _norm(name)
        found = [p for p, n in self._package_set().items() if folded.startswith(n)]
        return sorted(found, key=lambda p: self._preference(name, p))

    def _preference(self, filename, pkg):
        """Sort key: longest package-name prefix of the file name first, then by name."""
        n = self._package_set().get(pkg, _norm(pkg))
        return (-len(n) if _norm(filename).startswith(n) else 0, pkg)

    def _full_index(self):
        if self._index is None:
            index = {}
            for t in self.all_tarballs():
                index.setdefault(t.filename, []).append(t)
            self._index = index
        return self._index

    def _not_found(self, name):
        pool = sorted(self._full_index()) + self.packages()
        same = [c for c in pool if _norm(c) == _norm(name)]
        # ntl-6.2.1.tar.bz2 (an old version) means ntl's current tarball,
        # not the tarballs spelled most alike (brial-1.2.15.tar.bz2, ...).
        current = []
        for pkg in self._candidates(name)[:1]:
            try:
                current = [t.filename for t in self._load(pkg) if t.filename not in same]
            except MetadataError:
                pass
        import difflib   # error paths only
        close = same + current
        close += [c for c in difflib.get_close_matches(name, pool, 3, 0.6) if c not in close]
        hints = ["did you mean %s?" % ", ".join(close[:3])] if close else []
        if self.broken:
            hints.append("%d package(s) with malformed metadata were skipped: %s"
                         % (len(self.broken), self.broken[0]))
        return NotFoundError(MSG_UNKNOWN % (name, self.root), "; ".join(hints) or None)

    # -- loading -----------------------------------------------------------

    def _load(self, pkg):
        cached = self._loaded.get(pkg)
        if cached is None:
            try:
                cached = self._parse_package(pkg)
            except MetadataError as e:
                cached = e.with_hint(HINT_BROKEN)
                self.broken.append(cached)
            self._loaded[pkg] = cached
        if isinstance(cached, MetadataError):
            raise cached
        return cached

    def _version(self, pkg):
        """The version without patch level as sage_bootstrap reads it (an
        empty file is an empty version), or None without the file."""
        path = os.path.join(self.pkgs_dir, pkg, "package-version.txt")
        try:
            version = _read_text(path)
        except (IOError, OSError):
            return None
        except UnicodeDecodeError:
            raise MetadataError(path, None, "not UTF-8")
        return strip_patchlevel(universal_newlines(version))

    def _owner(self, pkg, path):
        """The package whose directory holds the real checksums.ini (Sage's tarball_package)."""
        real = os.path.realpath(path)
        real_dir = os.path.dirname(real)
        if (os.path.basename(real) == "checksums.ini"
                and os.path.dirname(real_dir) == self._real_pkgs_dir
                and os.path.basename(real_dir) in self._package_set()):
            return os.path.basename(real_dir)
        return pkg

    def _parse_package(self, pkg):
        path = os.path.join(self.pkgs_dir, pkg, "checksums.ini")
        if not os.path.lexists(path):
            return []
        try:
            text = _read_text(path)
        except (IOError, OSError) as e:
            raise MetadataError(path, None, "cannot read: %s" % (e.strerror or e))
        except UnicodeDecodeError:
            raise MetadataError(path, None, "not UTF-8")
        self.parse_count += 1
        version = self._version(pkg)
        owner = self._owner(pkg, path)
        tarballs = []
        if self._sections is None:
            from sagedl.sage.bootstrap import dialect
            self._sections = dialect(self.root).sections
        for record, linenos, section in parse_checksums_ini(text, path, self._sections):
            try:
                filename = check_filename(expand(record["tarball"], version))
            except UsageError as e:
                raise MetadataError(path, linenos.get("tarball", linenos[""]), e.message)
            check_section(record, linenos, section, filename, path, version)
            try:
                upstream_url = expand(record["upstream_url"], version)
            except UsageError as e:
                raise MetadataError(path, linenos["upstream_url"], e.message)
            tarballs.append(Tarball(owner, filename, record["sha256"], record["sha1"],
                                    upstream_url, version, path, section, pkg))
        return tarballs

    def _lenient_filenames(self, pkg):
        """File names a malformed checksums.ini seems to list (only to blame it)."""
        try:
            text = _read_text(os.path.join(self.pkgs_dir, pkg, "checksums.ini"))
            version = self._version(pkg)
        except (IOError, OSError, UnicodeDecodeError, MetadataError):
            return []
        names = []
        for line in LINE_BREAK.split(text):
            line = line.strip()
            m = SECTION.match(line) or re.match(r"^tarball\s*=(.*)$", line, re.I)
            if m:
                try:
                    names.append(expand(m.group(1).strip(), version))
                except UsageError:
                    pass
        return names


# ---------------------------------------------------------------------------
# .upstream.d (sources.py turns its entries into URLs)

def read_upstream_d(root, distfiles=None):
    """Entries of SAGE_ROOT/.upstream.d: ("url", template) or ("mirror_list", url).

    Files are read in name order (Sage skips names with '~' or '#', editor
    backups; so do we, and dotfiles too), lines in order, blanks and '#'
    comments skipped.  A line ending in ``mirror_list`` names a mirror list;
    any other line is a URL prefix to which the file name is appended, with
    ${SPKG} and ${SAGE_SERVER} left for sources.iter_source_urls.  ${SAGE_ROOT} and
    ${SAGE_DISTFILES} are substituted here, as Sage does when reading.
    A missing directory means no entries; an unreadable file, a FIFO or a
    device is skipped (as Sage skips unreadable files); a file that is not
    UTF-8 or is over fsutil.METADATA_LIMIT is a MetadataError.
    """
    directory = os.path.join(root, UPSTREAM_D)
    if distfiles is None:
        distfiles = os.path.join(root, "upstream")
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    entries = []
    for name in names:
        path = os.path.join(directory, name)
        if "~" in name or "#" in name or name.startswith(".") or not os.path.isfile(path):
            continue
        try:
            text = _read_text(path)
        except (IOError, OSError):
            continue  # Sage ignores unreadable files too
        except UnicodeDecodeError:
            raise MetadataError(path, None, "not UTF-8")
        for line in LINE_BREAK.split(text):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            line = line.replace("${SAGE_ROOT}", root).replace("${SAGE_DISTFILES}", distfiles)
            entries.append(("mirror_list" if line.endswith("mirror_list") else "url", line))
    return entries
