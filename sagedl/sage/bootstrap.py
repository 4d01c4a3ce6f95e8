"""sage_bootstrap's view of a Sage tree's packages, ported: Package, the
class selectors (PackageClass) and the dependency rules, for the
sage-package subcommands (sagepackage.py) and the download selection
(bulk.py, through selection.py, which combines packages and walks their
dependencies).

The output must be byte-identical to sage_bootstrap's, because shell scripts
eval it.  So this is a port of the parts of sage_bootstrap's ``package.py``,
``expand_class.py`` and ``app.py`` that these commands use, with their rules
kept on purpose, quirks included (tests/test_sage_package_diff.py compares
both over every package of two real trees, and tests/test_sage_metadata_fuzz.py
over fuzzed metadata).  It answers as the tree's own sage_bootstrap, whose
release it reads from the sources (Dialect: Sage 10.7's is older than
current Sage's).  ``sagedl.sage.tree`` reads checksums.ini for downloading with
the same rules (split_version, substitute) plus the refusals that keep a
download verifiable; the two views stay apart because a Package here
carries everything sage-package prints, and a Tarball there only what a
download needs.  The quirks:

* the patch level is the *last* ``.pN`` anywhere in package-version.txt
  (``2.3.p1.post2`` is version ``2.3``, patch level 1);
* ``VERSION``, ``VERSION_MAJOR`` ... are substituted one at a time until
  none is left, bare or as ``${...}``;
* ``list NAME`` prints NAME without looking it up, and the file filters
  (``--has-file``, ``--no-file``, ``--tree``) only apply to ``:class:``
  selectors;
* ``properties --format=X`` prints shell assignments for any X but ``plain``;
* ``name`` scans the packages in directory order, the last match wins.
"""

from __future__ import absolute_import

import errno
import io
import os
import re

from sagedl.compat import compat_shlex_quote
from sagedl.errors import EXIT_FAILURE, SagedlError
from sagedl.text import from_native, native_str, printable

CLASSES = {":all:": None, ":standard:": "standard", ":optional:": "optional",
           ":experimental:": "experimental"}
TYPES = ("base", "standard", "optional", "experimental")
PURL_PREFIXES = ("pkg:", "pypi/", "generic")
# expand_class.include_recursive_dependencies: Makefile variables -> packages
SUBSTITUTED = {"PYTHON": "python3", "MP_LIBRARY": "gmp", "BLAS": "openblas"}

MSG_NOT_A_TREE = "%s is not a Sage tree: it has no build/pkgs directory"
MSG_NO_PACKAGE = "no package %s in the Sage tree at %s (no build/pkgs/%s/type)"
MSG_NOT_REFERENCED = "tarball %s is not referenced by any Sage package"


class SagePackageError(SagedlError):
    """A failure where sage_bootstrap raises: exit 1, as its traceback does."""
    exit_code = EXIT_FAILURE


class PackageNameError(SagePackageError):
    """sage_bootstrap's ValueError: a malformed name, or an unknown PURL."""


class NoSuchPackage(SagePackageError):
    """sage_bootstrap's FileNotFoundError: no build/pkgs/NAME/type."""


# ---------------------------------------------------------------------------
# Reading files as sage_bootstrap does (text, universal newlines)

def _open_text(path):
    """The file as Sage opens it (UTF-8 text, universal newlines), but read
    through fsutil's bound: at most 1 MiB, only from a regular file (a FIFO
    would block, /dev/zero would never end)."""
    from sagedl.engine import fsutil
    try:
        data = fsutil.read_bounded(path, fsutil.METADATA_LIMIT, follow=True)
    except fsutil.UnsafePath as e:
        raise SagePackageError("%s is %s, not a regular file"
                               % (printable(path), fsutil.describe(e.kind)))
    except fsutil.TooLarge:
        raise SagePackageError("%s is larger than %d bytes: not a Sage metadata file"
                               % (printable(path), fsutil.METADATA_LIMIT))
    return io.StringIO(data.decode("utf-8"), newline=None)


def _read(path, what):
    """The file's text; IOError/OSError pass through (Sage catches those);
    undecodable bytes become a SagePackageError (Sage dies there too), and so
    does a file sagedl will not read whole (see _open_text)."""
    try:
        f = _open_text(path)
    except UnicodeDecodeError:
        raise SagePackageError("%s: not UTF-8 text" % printable(path))
    return what(f)


def _read_optional(path, what):
    try:
        return _read(path, what)
    except (IOError, OSError):
        return None
    except UnicodeEncodeError:   # a name this locale cannot spell: no such file here
        return None


def _is_file(path):
    try:
        return os.path.isfile(path)
    except (UnicodeEncodeError, ValueError):   # 3.6's isfile lets them through
        return False


def _exists(path):
    try:
        return os.path.exists(path)
    except (UnicodeEncodeError, ValueError):
        return False


def _whole(f):
    return f.read()


def _first_line(f):
    return f.readline()


def _lines(f):
    return f.readlines()


_SECTION = re.compile(r"\[(?P<section>[-a-zA-Z0-9_.]*)\]")
_ASSIGNMENT = re.compile(r"(?P<var>[a-zA-Z0-9_]*)=(?P<value>.*)")
_VERSION_PATCHLEVEL = re.compile(r"(?P<version>.*)\.p(?P<patchlevel>[0-9]+)")
_NAME_DESCRIPTION = re.compile(r"(?P<name>[^:]*): (?P<description>.*)")
SUBSTITUTE_VARIABLE = re.compile(r"\$\((?P<variable>.*)\)\Z")   # Sage: fullmatch (3.4+)
_TOML_LIST_BEGIN = re.compile(r"^(?P<key>[-a-z]*) *= *\[")
_TOML_LIST_END = re.compile(r"^[]]")
_SPKG_INSTALL_REQUIRES = re.compile(r"^ *SPKG_INSTALL_REQUIRES_(?P<spkg>[a-z0-9_]*)")
_PURL = re.compile(r'^ *"(?P<purl>pkg:.*)"')
_DISTRIBUTION = re.compile(r'^ *"(?P<distribution>[-_A-Za-z0-9.]*)"')

# Substitution order matters: VERSION is a prefix of the other three.
_VARIABLES = ("VERSION_MAJOR", "VERSION_MINOR", "VERSION_MICRO", "VERSION")
# sage_bootstrap loops until no variable is left, forever if a version
# contains the text VERSION; we give up after this many substitutions.
_MAX_SUBSTITUTIONS = 1000


def parse_checksums(lines, sections=True):
    """sage_bootstrap's checksums.ini reading: {section or None: {var: value}},
    as an ordered list of (key, dict) (Python 3's dict order, on every Python).
    Without ``sections`` (Sage 10.7), a section line is ignored like any
    other that assigns nothing: one record."""
    order = []
    result = {}
    key = None
    for line in lines:
        match = _SECTION.match(line) if sections else None
        if match is not None:
            key = match.group("section")
            if key not in result:
                order.append(key)
            result[key] = {}
            continue
        match = _ASSIGNMENT.match(line)
        if match is None:
            continue
        var, value = match.groups()
        if key not in result:
            order.append(key)
            result[key] = {}
        result[key][var] = value
    return [(k, result[k]) for k in order]


def parse_pyproject(lines):
    """sage_bootstrap's reading of src/pyproject.toml.m4: {list key: set of names/PURLs}."""
    found = {}
    key = None
    for line in lines:
        match = _TOML_LIST_BEGIN.match(line)
        if match:
            key = match.group("key")
            line = line[match.end():]
        match = _TOML_LIST_END.match(line)
        if match:
            key = None
            line = line[match.end():]
        if not key:
            continue
        for regex, group, prefix in ((_SPKG_INSTALL_REQUIRES, "spkg", ""), (_PURL, "purl", ""),
                                     (_DISTRIBUTION, "distribution", "pkg:pypi/")):
            match = regex.match(line)
            if match:
                found.setdefault(key, set()).add(prefix + match.group(group))
                break
    return found


def quote(value):
    """shlex.quote (Python 3.3+) / pipes.quote (2.7): Sage's compat.quote."""
    return compat_shlex_quote(value)


def split_version(text):
    """package-version.txt's text as (version, patch level), sage_bootstrap's
    way: stripped, then cut at the *last* ``.pN`` (a match, not a full
    match: ``2.3.p1.post2`` is version 2.3, patch level 1); -1 without one."""
    text = text.strip()
    match = _VERSION_PATCHLEVEL.match(text)
    if match is None:
        return text, -1
    return match.group("version"), int(match.group("patchlevel"))


def _component(version, var, name):
    if version is None:
        raise SagePackageError("package %s uses %s but has no package-version.txt"
                               % (printable(name), var))
    if var == "VERSION":
        return version
    index = ("VERSION_MAJOR", "VERSION_MINOR", "VERSION_MICRO").index(var)
    parts = version.split(".")
    if index >= len(parts):
        raise SagePackageError("package %s uses %s but its version %s has no such "
                               "component" % (printable(name), var, version))
    return parts[index]


def substitute(pattern, version, name):
    """sage_bootstrap's template rule: VERSION, VERSION_MAJOR/MINOR/MICRO
    and their ${...} forms, one occurrence at a time until none is left
    (so a value holding the text VERSION is substituted again; Sage then
    loops for ever, sagedl gives up).  ``version`` is split_version's;
    ``name`` the package, for messages."""
    for _ in range(_MAX_SUBSTITUTIONS):
        for var in _VARIABLES:
            braced = "${" + var + "}"
            if braced in pattern:
                pattern = pattern.replace(braced, _component(version, var, name), 1)
                break
            if var in pattern:
                pattern = pattern.replace(var, _component(version, var, name), 1)
                break
        else:
            return pattern
    raise SagePackageError("package %s: VERSION substitution does not end (its version "
                           "contains VERSION)" % printable(name))


# ---------------------------------------------------------------------------
# The tree and its packages

# What ``properties`` prints, in current sage_bootstrap's order.
PROPERTIES = ("path", "version_with_patchlevel", "type", "source", "trees", "purl",
              "description", "uses_python_package_check")


class Dialect(object):
    """Where the tree's own sage_bootstrap answers differently from another
    release's: the drop-in answers as *that tree's* code would.  Sage 10.7
    (PyPI's sage-conf) predates what current Sage and passagemath do:

    ``properties``   its own default list of properties; shell values always
                     in single quotes (current: shlex-quoted, bools as text)
    ``sections``     checksums.ini ``[sections]``, several tarballs per
                     package (10.7: one flat record, section lines ignored;
                     ``tarball`` of a package without one prints ``None``)
    ``list_tree``    ``list --tree``
    ``purl_file``    purl.txt overrides the computed PURL
    ``pyproject``    src/pyproject.toml.m4's lists count as dependencies (10.7:
                     only ``dependencies``' names before '|')
    ``lenient_deps`` --include-dependencies maps $(PYTHON) & co. and skips
                     malformed names (10.7: a malformed name is an error)
    """

    def __init__(self, properties=PROPERTIES, shell_quote=True, sections=True,
                 list_tree=True, purl_file=True, pyproject=True, lenient_deps=True):
        self.properties = tuple(properties)
        self.shell_quote = shell_quote
        self.sections = sections
        self.list_tree = list_tree
        self.purl_file = purl_file
        self.pyproject = pyproject
        self.lenient_deps = lenient_deps


CURRENT = Dialect()
_PROPS_DEFAULT = re.compile(r"kwds\.pop\(\s*'props',\s*\[([^\]]*)\]")


def dialect(root):
    """The Dialect of the sage_bootstrap in ``root``/build, read from its
    sources as text (never run); CURRENT when they are not there (a bare
    metadata checkout) or unreadable."""
    code = {}
    for name in ("app", "package", "cmdline", "expand_class"):
        try:
            f = _open_text(os.path.join(root, "build", "sage_bootstrap", name + ".py"))
            code[name] = f.read()
        except (IOError, OSError, UnicodeError, SagePackageError):
            return CURRENT
    found = _PROPS_DEFAULT.search(code["app"])
    properties = re.findall(r"'([A-Za-z_]+)'", found.group(1)) if found else PROPERTIES
    return Dialect(properties=properties or PROPERTIES,
                   shell_quote="quote(value)" in code["app"],
                   sections="def tarballs(self)" in code["package"],
                   list_tree="trees=args.trees" in code["cmdline"],
                   purl_file="purl.txt" in code["package"],
                   pyproject="pyproject.toml.m4" in code["package"],
                   lenient_deps="ValueError, FileNotFoundError" in code["expand_class"])


class Tree(object):
    """SAGE_ROOT/build/pkgs as sage_bootstrap sees it; packages cached by name.

    ``root`` is used as given (Sage takes $SAGE_ROOT verbatim), so the
    ``path`` property prints the same string.
    """

    def __init__(self, root):
        self.root = root
        self.pkgs_dir = os.path.join(root, "build", "pkgs")
        if not os.path.isdir(self.pkgs_dir):
            raise SagePackageError(MSG_NOT_A_TREE % printable(root or "."),
                                   hint="set SAGE_ROOT to the top of a Sage source tree")
        self._packages = {}
        self._all = None
        self.dialect = dialect(root)

    def package(self, name):
        """sage_bootstrap's Package(name): a package name, or a PURL
        (pkg:pypi/NAME, pkg:generic/NAME, pypi/NAME, generic/NAME)."""
        if name.startswith("pypi/") or name.startswith("generic/"):
            name = "pkg:" + name
        if name.startswith("pkg:"):
            return self._by_purl(name)
        if any(name.startswith(prefix) for prefix in PURL_PREFIXES):
            # Sage leaves such a Package uninitialised and then dies on it.
            raise PackageNameError("%s is neither a package name nor a PURL such as "
                                   "pkg:generic/NAME" % printable(name))
        pkg = self._packages.get(name)
        if pkg is None:
            pkg = self._packages[name] = Package(self, name)
        return pkg

    def _by_purl(self, purl):
        purl = purl.replace("_", "-").lower()
        for prefix in ("pkg:generic/", "pkg:pypi/"):
            if purl.startswith(prefix):  # the fast path: the PURL names its package
                try:
                    pkg = self.package(purl[len(prefix):].replace("-", "_"))
                    if pkg.purl == purl:
                        return pkg
                except SagePackageError:
                    pass
                break
        for pkg in self.all():
            if pkg.purl == purl:
                return pkg
        raise PackageNameError("no package for PURL %s" % printable(purl))

    def all(self):
        """Every package (a directory entry with a ``type`` file), in the
        directory's own order, as Sage's Package.all()."""
        if self._all is None:
            try:
                entries = [from_native(n) for n in os.listdir(self.pkgs_dir)]
            except OSError as e:
                raise SagePackageError("cannot list %s: %s" % (printable(self.pkgs_dir),
                                                               e.strerror or e))
            self._all = [self.package(n) for n in entries
                         if _is_file(os.path.join(self.pkgs_dir, native_str(n), "type"))]
        return self._all


class Package(object):
    """One package's metadata, read as sage_bootstrap's Package does."""

    def __init__(self, tree, name):
        if name != name.lower():
            raise PackageNameError("package names should be lowercase, got %s" % printable(name))
        if "-" in name:
            raise PackageNameError("package names use underscores, not dashes, got %s"
                                   % printable(name))
        if not name or "/" in name or "\0" in name or name in (".", ".."):
            raise NoSuchPackage(MSG_NO_PACKAGE % (printable(name), printable(tree.root),
                                                  printable(name)))
        self.tree = tree
        self.name = name
        self.path = os.path.join(tree.root, "build", "pkgs", native_str(name))
        self._tarballs = None
        # The same files, in the same order, as Package.__init__ reads them,
        # so that a broken one fails here as it fails there.
        ini = self._file("checksums.ini")
        self._checksums = parse_checksums(_read_optional(ini, _lines) or [],
                                          tree.dialect.sections)
        # The directory holding the real checksums.ini (Sage's tarball_package).
        self._tarball_package_name = from_native(os.path.realpath(ini).split(os.sep)[-2])
        self.version, self.patchlevel = self._init_version()
        self.type = self._init_type()
        self._version_requirements = self._strip(_read_optional(
            self._file("version_requirements.txt"), _whole))
        self._requirements = self._strip(_read_optional(self._file("requirements.txt"), _whole))
        self._dependencies = self._first("dependencies", "")
        self._dependencies_check = self._first("dependencies_check", "")
        self._dependencies_optional = self._first("dependencies_optional", "")
        self._dependencies_order_only = self._first("dependencies_order_only", "")
        self._dependencies_build = self._first("dependencies_build", None)
        self._trees = self._first("trees.txt", None)
        self._purl = self._first("purl.txt", None) if tree.dialect.purl_file else None
        self._pyproject = parse_pyproject(_read_optional(
            self._file("src", "pyproject.toml.m4"), _lines) or []) \
            if tree.dialect.pyproject else {}

    def __repr__(self):
        return "Package(%s)" % printable(self.name)

    def _file(self, *parts):
        return os.path.join(self.path, *[native_str(p) for p in parts])

    @staticmethod
    def _strip(text):
        return None if text is None else text.strip()

    def _first(self, filename, default):
        """The file's first line without its '#' comment, stripped, or default."""
        line = _read_optional(self._file(filename), _first_line)
        return default if line is None else line.partition("#")[0].strip()

    def _init_version(self):
        text = _read_optional(self._file("package-version.txt"), _whole)
        if text is None:
            return None, None
        return split_version(text)

    def _init_type(self):
        path = self._file("type")
        try:
            text = _read(path, _whole).strip()
        except UnicodeEncodeError:   # a name this locale cannot spell cannot be here
            raise NoSuchPackage(MSG_NO_PACKAGE % (printable(self.name), printable(self.tree.root),
                                                  printable(self.name)))
        except (IOError, OSError) as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                raise NoSuchPackage(MSG_NO_PACKAGE % (printable(self.name),
                                                      printable(self.tree.root),
                                                      printable(self.name)))
            raise SagePackageError("cannot read %s: %s" % (printable(path), e.strerror or e))
        if text not in TYPES:
            raise SagePackageError("%s: the type must be one of %s, not %r"
                                   % (printable(path), ", ".join(TYPES), printable(text)))
        return text

    # -- tarballs ------------------------------------------------------------

    def substitute(self, pattern):
        """VERSION, VERSION_MAJOR/MINOR/MICRO and their ${...} forms (see substitute)."""
        return substitute(pattern, self.version, self.name)

    def tarball_filenames(self):
        """The tarball file names, in checksums.ini's order."""
        if self._tarballs is None and not self.tree.dialect.sections:
            # Sage 10.7: Package.tarball_filename, None unless tarball= is set
            record = self._checksums[0][1] if self._checksums else {}
            self._tarballs = [self.substitute(record["tarball"])] if record.get("tarball") else []
        if self._tarballs is None:
            names = []
            for key, record in self._checksums:
                if "tarball" not in record:
                    raise SagePackageError("%s: %s has no tarball=" % (
                        printable(self._file("checksums.ini")),
                        "the record" if key is None else "section [%s]" % key))
                names.append(self.substitute(record["tarball"]))
                if "upstream_url" in record:    # Sage substitutes it too, and may fail there
                    self.substitute(record["upstream_url"])
            self._tarballs = names
        return list(self._tarballs)

    @property
    def tarball_package(self):
        n = self._tarball_package_name
        return self if n == self.name else self.tree.package(n)

    def has_file(self, filename):
        return _exists(self._file(filename))

    # -- properties ----------------------------------------------------------

    @property
    def version_with_patchlevel(self):
        if self.version is None or self.patchlevel < 0:
            return self.version
        return "%s.p%d" % (self.version, self.patchlevel)

    @property
    def source(self):
        if self._requirements is not None:
            return "pip"
        for filename in self.tarball_filenames()[:1]:
            return "wheel" if filename.endswith(".whl") else "normal"
        if self.has_file("spkg-install") or self.has_file("spkg-install.in"):
            return "script"
        return "none"

    @property
    def trees(self):
        if self._trees is not None:
            return self._trees
        if self._version_requirements is not None or self._requirements is not None:
            return "SAGE_VENV"
        return "SAGE_LOCAL"

    @property
    def distribution_name(self):
        for text in (self._requirements, self._version_requirements):
            if text is None:
                continue
            for line in text.split("\n"):
                line = line.strip()
                if line.startswith("#"):
                    continue
                for part in line.split():
                    return part
        return None

    @property
    def purl(self):
        if self._purl is None:
            dist = self.distribution_name
            if dist:
                self._purl = "pkg:pypi/" + dist.lower().replace("_", "-")
            else:
                self._purl = "pkg:generic/" + self.name.replace("_", "-")
        return self._purl

    @property
    def description(self):
        def first_description(f):
            line = f.readline()
            if line.startswith("="):
                line = f.readline()
            match = _NAME_DESCRIPTION.match(line)
            return match.group("description") if match else None
        return _read_optional(self._file("SPKG.rst"), first_description)

    @property
    def uses_python_package_check(self):
        path = self._file("spkg-configure.m4")
        if not _is_file(path):
            return False
        found = _read_optional(path, lambda f: "SAGE_PYTHON_PACKAGE_CHECK" in f.read())
        return bool(found)

    # -- dependencies (for list --include/--exclude-dependencies) -----------

    @property
    def dependencies(self):
        """The runtime dependencies: before '|' in ``dependencies``, plus the
        pyproject.toml.m4 dependencies and host-requires, as package names."""
        deps = self._dependencies.partition("|")[0].strip().split()
        for key in ("dependencies", "host-requires"):
            deps.extend(self.tree.package(p).name for p in self._pyproject.get(key, ()))
        return sorted(set(deps))
