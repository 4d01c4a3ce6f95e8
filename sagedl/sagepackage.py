"""sage-package's read-only subcommands, answered without sage_bootstrap.

Why this exists (issue 10, the seed problem): Sage's build scripts ask
``sage-package`` about packages before they download anything, and
``sage-package`` runs Sage's own Python code under ``sage-bootstrap-python``.
While Sage's half-installed ``python3`` is first on PATH and PYTHONPATH points
at a broken standard library, that fails; the callers do not notice:

* ``sage-spkg`` runs ``eval $(sage-package properties --format=shell PKG)``,
  gets nothing, takes the package for one without a tarball, and
  ``sage-spkg -d PKG`` exits 0 having downloaded nothing;
* ``bootstrap`` uses ``list``, ``properties --format=shell :all:`` and
  ``tarball`` the same way.

The pyz's shell preamble finds a working system Python (and runs it with -E,
ignoring PYTHONPATH), so answering these subcommands here keeps the fetch
path alive.  ``contrib/sage/sage-package`` sends ``properties``, ``list``,
``tarball``, ``name`` (this module) and ``download`` (sagedl's own download
command) to the pyz, and every other subcommand to Sage's original script.

The output must be byte-identical to sage_bootstrap's, because shell scripts
eval it.  So this is a port of the parts of sage_bootstrap's ``package.py``,
``expand_class.py`` and ``app.py`` that these commands use, with their rules
kept on purpose, quirks included (tests/test_sage_package_diff.py compares
both over every package of a real tree).  ``sagedl.sage`` reads the same
files with stricter rules for downloading (it refuses malformed metadata,
strips only a trailing ``.pN``); the two must not be merged.  The quirks:

* the patch level is the *last* ``.pN`` anywhere in package-version.txt
  (``2.3.p1.post2`` is version ``2.3``, patch level 1);
* ``VERSION``, ``VERSION_MAJOR`` ... are substituted one at a time until
  none is left, bare or as ``${...}``;
* ``list NAME`` prints NAME without looking it up, and the file filters
  (``--has-file``, ``--no-file``, ``--tree``) only apply to ``:class:``
  selectors;
* ``properties --format=X`` prints shell assignments for any X but ``plain``;
* ``name`` scans the packages in directory order, the last match wins.

Errors: one ``sagedl: error:`` line and exit 1 wherever sage_bootstrap dies
with a traceback (1), 2 for bad arguments (argparse's 2, as Sage).  Sage's
callers only look at the output, but the codes are kept all the same.
"""

from __future__ import absolute_import

import errno
import io
import os
import re
import sys

from sagedl.compat import PY2, compat_shlex_quote
from sagedl.errors import EXIT_FAILURE, SagedlError, UsageError

PROG = "sagedl"
COMMANDS = ("properties", "list", "tarball", "name")

# What ``properties`` prints, in sage_bootstrap's order.
PROPERTIES = ("path", "version_with_patchlevel", "type", "source", "trees", "purl",
              "description", "uses_python_package_check")
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
    return io.open(path, "rt", encoding="utf-8")


def _read(path, what):
    """The file's text; IOError/OSError pass through (Sage catches those);
    undecodable bytes become a SagePackageError (Sage dies there too)."""
    with _open_text(path) as f:
        try:
            return what(f)
        except UnicodeDecodeError:
            raise SagePackageError("%s: not UTF-8 text" % _native(path))


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


def _native(s):
    """A path or name for an error message (text on every interpreter; on
    3.x, bytes the locale could not decode are shown as UTF-8 if they are)."""
    if isinstance(s, bytes):
        return s.decode("utf-8", "replace")
    if not PY2:
        try:
            return s.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        except UnicodeError:
            return s
    return s


def _text(s):
    """On 2.7, a name read from the file system (bytes) as text, to compare
    with names given on the command line and read from files (text)."""
    if PY2 and isinstance(s, bytes):
        try:
            return s.decode("utf-8")
        except UnicodeDecodeError:
            return s
    return s


def _fs(s):
    """On 2.7, a text name as the bytes of a path: paths stay byte strings
    there, so a non-ASCII SAGE_ROOT never meets an implicit ASCII decode."""
    if PY2 and not isinstance(s, bytes):
        return s.encode("utf-8")
    return s


_SECTION = re.compile(r"\[(?P<section>[-a-zA-Z0-9_.]*)\]")
_ASSIGNMENT = re.compile(r"(?P<var>[a-zA-Z0-9_]*)=(?P<value>.*)")
_VERSION_PATCHLEVEL = re.compile(r"(?P<version>.*)\.p(?P<patchlevel>[0-9]+)")
_NAME_DESCRIPTION = re.compile(r"(?P<name>[^:]*): (?P<description>.*)")
_SUBSTITUTE = re.compile(r"\$\((?P<variable>.*)\)\Z")   # Sage: fullmatch (3.4+)
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


def parse_checksums(lines):
    """sage_bootstrap's checksums.ini reading: {section or None: {var: value}},
    as an ordered list of (key, dict) (Python 3's dict order, on every Python)."""
    order = []
    result = {}
    key = None
    for line in lines:
        match = _SECTION.match(line)
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


# ---------------------------------------------------------------------------
# The tree and its packages

class Tree(object):
    """SAGE_ROOT/build/pkgs as sage_bootstrap sees it; packages cached by name.

    ``root`` is used as given (Sage takes $SAGE_ROOT verbatim), so the
    ``path`` property prints the same string.
    """

    def __init__(self, root):
        self.root = root
        self.pkgs_dir = os.path.join(root, "build", "pkgs")
        if not os.path.isdir(self.pkgs_dir):
            raise SagePackageError(MSG_NOT_A_TREE % _native(root or "."),
                                   hint="set SAGE_ROOT to the top of a Sage source tree")
        self._packages = {}
        self._all = None

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
                                   "pkg:generic/NAME" % _native(name))
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
        raise PackageNameError("no package for PURL %s" % _native(purl))

    def all(self):
        """Every package (a directory entry with a ``type`` file), in the
        directory's own order, as Sage's Package.all()."""
        if self._all is None:
            try:
                entries = [_text(n) for n in os.listdir(self.pkgs_dir)]
            except OSError as e:
                raise SagePackageError("cannot list %s: %s" % (_native(self.pkgs_dir),
                                                               e.strerror or e))
            self._all = [self.package(n) for n in entries
                         if _is_file(os.path.join(self.pkgs_dir, _fs(n), "type"))]
        return self._all


class Package(object):
    """One package's metadata, read as sage_bootstrap's Package does."""

    def __init__(self, tree, name):
        if name != name.lower():
            raise PackageNameError("package names should be lowercase, got %s" % _native(name))
        if "-" in name:
            raise PackageNameError("package names use underscores, not dashes, got %s"
                                   % _native(name))
        if not name or "/" in name or "\0" in name or name in (".", ".."):
            raise NoSuchPackage(MSG_NO_PACKAGE % (_native(name), _native(tree.root),
                                                  _native(name)))
        self.tree = tree
        self.name = name
        self.path = os.path.join(tree.root, "build", "pkgs", _fs(name))
        self._tarballs = None
        # The same files, in the same order, as Package.__init__ reads them,
        # so that a broken one fails here as it fails there.
        ini = self._file("checksums.ini")
        self._checksums = parse_checksums(_read_optional(ini, _lines) or [])
        # The directory holding the real checksums.ini (Sage's tarball_package).
        self._tarball_package_name = _text(os.path.realpath(ini).split(os.sep)[-2])
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
        self._purl = self._first("purl.txt", None)
        self._pyproject = parse_pyproject(_read_optional(
            self._file("src", "pyproject.toml.m4"), _lines) or [])

    def __repr__(self):
        return "Package(%s)" % _native(self.name)

    def _file(self, *parts):
        return os.path.join(self.path, *[_fs(p) for p in parts])

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
        text = text.strip()
        match = _VERSION_PATCHLEVEL.match(text)
        if match is None:
            return text, -1
        return match.group("version"), int(match.group("patchlevel"))

    def _init_type(self):
        path = self._file("type")
        try:
            text = _read(path, _whole).strip()
        except UnicodeEncodeError:   # a name this locale cannot spell cannot be here
            raise NoSuchPackage(MSG_NO_PACKAGE % (_native(self.name), _native(self.tree.root),
                                                  _native(self.name)))
        except (IOError, OSError) as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR):
                raise NoSuchPackage(MSG_NO_PACKAGE % (_native(self.name), _native(self.tree.root),
                                                      _native(self.name)))
            raise SagePackageError("cannot read %s: %s" % (_native(path), e.strerror or e))
        if text not in TYPES:
            raise SagePackageError("%s: the type must be one of %s, not %r"
                                   % (_native(path), ", ".join(TYPES), _native(text)))
        return text

    # -- tarballs ------------------------------------------------------------

    def _component(self, index, var):
        if self.version is None:
            raise SagePackageError("package %s uses %s but has no package-version.txt"
                                   % (_native(self.name), var))
        parts = self.version.split(".")
        if index >= len(parts):
            raise SagePackageError("package %s uses %s but its version %s has no such "
                                   "component" % (_native(self.name), var, self.version))
        return parts[index]

    def _value(self, var):
        if var == "VERSION":
            if self.version is None:
                raise SagePackageError("package %s uses VERSION but has no package-version.txt"
                                       % _native(self.name))
            return self.version
        return self._component(("VERSION_MAJOR", "VERSION_MINOR", "VERSION_MICRO").index(var),
                               var)

    def substitute(self, pattern):
        """VERSION, VERSION_MAJOR/MINOR/MICRO and their ${...} forms, one
        occurrence at a time until none is left (sage_bootstrap's rule)."""
        for _ in range(_MAX_SUBSTITUTIONS):
            for var in _VARIABLES:
                braced = "${" + var + "}"
                if braced in pattern:
                    pattern = pattern.replace(braced, self._value(var), 1)
                    break
                if var in pattern:
                    pattern = pattern.replace(var, self._value(var), 1)
                    break
            else:
                return pattern
        raise SagePackageError("package %s: VERSION substitution does not end (its version "
                               "contains VERSION)" % _native(self.name))

    def tarball_filenames(self):
        """The tarball file names, in checksums.ini's order."""
        if self._tarballs is None:
            names = []
            for key, record in self._checksums:
                if "tarball" not in record:
                    raise SagePackageError("%s: %s has no tarball=" % (
                        _native(self._file("checksums.ini")),
                        "the record" if key is None else "section [%s]" % key))
                names.append(self.substitute(record["tarball"]))
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


# ---------------------------------------------------------------------------
# Selections: sage_bootstrap's PackageClass

def select(tree, selectors, has_files=(), no_files=(), trees=(), exclude=(),
           include_dependencies=False, exclude_dependencies=False):
    """The sorted package names that ``sage-package list`` prints."""
    names = set()

    def included(pkg):
        if not all(any(pkg.has_file(f) for f in alternatives.split("|"))
                   for alternatives in has_files):
            return False
        if any(any(pkg.has_file(f) for f in alternatives.split("|"))
               for alternatives in no_files):
            return False
        return not trees or any(t in pkg.trees.split() for t in trees)

    for selector in selectors:
        if selector in CLASSES:
            wanted = CLASSES[selector]
            names.update(p.name for p in tree.all()
                         if (wanted is None or p.type == wanted) and included(p))
        elif any(selector.startswith(prefix) for prefix in PURL_PREFIXES):
            names.add(tree.package(selector).name)
        elif ":" in selector:
            raise PackageNameError(
                "a colon may only appear in a PURL such as pkg:pypi/DISTRIBUTION-NAME and in "
                "designators of package types, which must be one of :all:, :standard:, "
                ":optional:, or :experimental:; got %s" % _native(selector))
        elif "-" in selector:
            raise PackageNameError("dashes may only appear in a PURL such as "
                                   "pkg:pypi/DISTRIBUTION-NAME; SPKG names use underscores"
                                   "; got %s" % _native(selector))
        else:
            names.add(selector)   # not looked up: Sage prints any such name

    if include_dependencies:
        closure = set()
        for name in names:
            _include_dependencies(tree, closure, name)
        names = closure
    if exclude_dependencies:
        done = set()
        for name in list(names):
            _exclude_dependencies(tree, names, name, done, [])
    for group in exclude:
        names.difference_update(group)
    return sorted(names)


def _include_dependencies(tree, names, name):
    if name in names:
        return
    match = _SUBSTITUTE.match(name)
    if match:
        name = SUBSTITUTED.get(match.group("variable"), name)
    try:
        pkg = tree.package(name)
    except (PackageNameError, NoSuchPackage):
        return   # $(BLAS)-like substitutions, $(find-string ...), unknown names
    names.add(name)
    for dependency in pkg.dependencies:
        _include_dependencies(tree, names, dependency)


def _exclude_dependencies(tree, names, name, done, stack):
    """Sage's walk (which only forgives unknown packages: a $(PYTHON)
    dependency ends it with an error, here as there).  ``done`` skips a
    package already walked, which changes nothing but the time taken."""
    if name in done:
        return
    if name in stack:
        # Sage recurses until RecursionError.
        raise SagePackageError("dependency cycle: %s" % " -> ".join(stack + [name]))
    try:
        pkg = tree.package(name)
    except NoSuchPackage:
        return
    stack.append(name)
    for dependency in pkg.dependencies:
        names.discard(dependency)
        _exclude_dependencies(tree, names, dependency, done, stack)
    stack.pop()
    done.add(name)


# ---------------------------------------------------------------------------
# The subcommands: each returns the lines to print

def properties_lines(tree, selectors, fmt="plain"):
    names = select(tree, selectors)
    lines = []
    for name in names:
        pkg = tree.package(name)
        if len(names) > 1 and fmt == "plain":
            lines.append([name, ":"])
        for prop in PROPERTIES:
            value = getattr(pkg, prop)
            if value is None:
                value = "none" if prop.startswith("version") else ""
            if fmt == "plain":   # Sage: u"        {0:28} {1}".format(prop + ":", value)
                shown = str(value) if isinstance(value, bool) else value
                lines.append(["        ", (prop + ":").ljust(28), " ", shown])
            else:
                if isinstance(value, bool):
                    value = str(value)
                lines.append([prop, "_", name, "=", quote(value)])
    return lines


def tarball_lines(tree, name):
    return [[f] for f in tree.package(name).tarball_filenames()]


def name_lines(tree, tarball):
    filename = os.path.basename(tarball)
    owner = None
    for pkg in tree.all():
        if filename in pkg.tarball_filenames():
            owner = pkg.tarball_package
    if owner is None:
        raise SagePackageError(MSG_NOT_REFERENCED % _native(filename))
    return [[owner.name]]


# ---------------------------------------------------------------------------
# Command line

def _parser(command):
    import argparse
    prog = "%s %s" % (PROG, command)

    class Parser(argparse.ArgumentParser):
        def error(self, message):
            raise UsageError(message, hint="see '%s --help'" % prog)

    p = Parser(prog=prog, description=_DESCRIPTIONS[command] + _COMMON_DESCRIPTION,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sage-root", metavar="DIR",
                   help="the Sage tree (default: $SAGE_ROOT, or found by walking up from the "
                        "current directory)")
    p.add_argument("--log", metavar="LEVEL", help="accepted for Sage compatibility; ignored")
    p.add_argument("--debug", action="store_true", help="show a traceback on errors")
    return p


_COMMON_DESCRIPTION = """

Same arguments and byte-identical output as Sage's sage-package (without
needing Sage's Python); errors exit 1, bad arguments 2."""

_DESCRIPTIONS = {
    "properties": "Print properties of the given packages (sage-package properties).",
    "list": "Print a list of packages known to Sage, sorted (sage-package list).",
    "tarball": "Print the tarball file names of a package (sage-package tarball).",
    "name": "Print the package a tarball belongs to (sage-package name).",
}

_PACKAGE_CLASS = "[PACKAGE_NAME|pkg:pypi/DISTRIBUTION-NAME|:PACKAGE_TYPE:]"


def make_parser(command):
    """sage_bootstrap's parser for ``command`` (cmdline.py), plus sagedl's
    --sage-root, --log and --debug."""
    p = _parser(command)
    if command == "list":
        p.add_argument("package_class", metavar=_PACKAGE_CLASS,
                       default=[":all-or-nothing:"], nargs="*",
                       help="package name, pkg:pypi/ followed by a distribution name, or one "
                            "of :all:, :standard:, :optional:, :experimental: (default :all:, "
                            "or nothing with --include/--exclude-dependencies)")
        p.add_argument("--has-file", action="append", default=[], metavar="FILENAME",
                       dest="has_files", help="only packages with this file (A|B: either)")
        p.add_argument("--no-file", action="append", default=[], metavar="FILENAME",
                       dest="no_files", help="only packages without this file (A|B: neither)")
        p.add_argument("--tree", action="append", default=[], metavar="TREEVAR", dest="trees",
                       help="only packages installed to this tree (SAGE_LOCAL, SAGE_VENV)")
        p.add_argument("--exclude", nargs="*", action="append", default=[],
                       metavar="PACKAGE_NAME", help="exclude packages from the list")
        p.add_argument("--include-dependencies", action="store_true",
                       help="include the (ordinary) dependencies recursively")
        p.add_argument("--exclude-dependencies", action="store_true",
                       help="exclude the (ordinary) dependencies recursively")
    elif command == "properties":
        p.add_argument("package_class", metavar=_PACKAGE_CLASS, nargs="+",
                       help="package name, pkg:pypi/ followed by a distribution name, or one "
                            "of :all:, :standard:, :optional:, :experimental:")
        p.add_argument("--format", default="plain",
                       help="output format: plain (default) or shell (any other value "
                            "means shell too, as in Sage)")
    elif command == "name":
        p.add_argument("tarball_filename", help="tarball filename")
    elif command == "tarball":
        p.add_argument("package_name", help="package name")
    return p


def find_root(explicit, env, cwd=None):
    """--sage-root, else $SAGE_ROOT exactly as set (Sage prints paths under
    it verbatim; the wrapper sets it as Sage's own location would), else
    the first directory up from cwd that holds build/pkgs."""
    if explicit is not None:
        return explicit
    if "SAGE_ROOT" in env:
        return env["SAGE_ROOT"]
    from sagedl.sage import SageTree
    tree = SageTree.discover(None, env={}, cwd=cwd)
    if tree is None:
        raise SagePackageError("no Sage tree found",
                               hint="run inside a Sage source tree, or set SAGE_ROOT "
                                    "(or pass --sage-root DIR)")
    return tree.root


def run(command, args, env):
    """The lines (lists of str parts) that ``sage-package COMMAND`` prints."""
    tree = Tree(find_root(args.sage_root, env))
    if command == "list":
        selectors = args.package_class
        if selectors == [":all-or-nothing:"]:
            selectors = ([] if args.include_dependencies or args.exclude_dependencies
                         else [":all:"])
        return [[n] for n in select(tree, selectors, has_files=args.has_files,
                                    no_files=args.no_files, trees=args.trees,
                                    exclude=args.exclude,
                                    include_dependencies=args.include_dependencies,
                                    exclude_dependencies=args.exclude_dependencies)]
    if command == "properties":
        return properties_lines(tree, args.package_class, args.format)
    if command == "tarball":
        return tarball_lines(tree, args.package_name)
    if command == "name":
        return name_lines(tree, args.tarball_filename)
    raise UsageError("unknown sage-package subcommand %s" % command)


def _encode(part):
    """One piece of output as bytes: UTF-8 (sage-bootstrap-python sets
    PYTHONIOENCODING=utf-8); on 3.x a name's undecodable bytes go back out
    unchanged (surrogateescape), on 2.7 byte strings are written as they are."""
    if isinstance(part, bytes):
        return part
    if PY2:
        return part.encode("utf-8")
    return part.encode("utf-8", "surrogateescape")


def render(lines):
    return b"".join(b"".join(_encode(p) for p in line) + b"\n" for line in lines)


def _write(stream, data):
    out = getattr(stream, "buffer", None)
    if out is None:
        if PY2 or isinstance(stream, io.RawIOBase) or isinstance(stream, io.BufferedIOBase):
            out = stream
        else:   # a text stream without a buffer (an in-process test's StringIO)
            stream.write(data.decode("utf-8", "surrogateescape"))
            stream.flush()
            return
    out.write(data)
    out.flush()


def _argv_text(argv):
    """On 2.7 argv holds bytes: as text (UTF-8), like 3.x's (names are
    compared with text read from files).  Not UTF-8 there: one error line."""
    if not PY2:
        return list(argv)
    text = []
    for arg in argv:
        try:
            text.append(arg.decode("utf-8") if isinstance(arg, bytes) else arg)
        except UnicodeDecodeError:
            raise SagePackageError("argument %r is not UTF-8" % (arg,))
    return text


# Options that may come before the subcommand: sage-package's own --log
# ("sage --package --log=DEBUG list"), and sagedl's --sage-root and --debug.
LEADING_WITH_VALUE = ("--log", "--sage-root")


def command_first(argv):
    """argv with the subcommand moved first, if argv is [leading options]
    COMMAND ARGS... (the subcommand's parser takes the options anywhere);
    else None."""
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in COMMANDS:
            return [a] + argv[:i] + argv[i + 1:]
        if a in LEADING_WITH_VALUE:
            i += 2
        elif a == "--debug" or any(a.startswith(o + "=") for o in LEADING_WITH_VALUE):
            i += 1
        else:
            return None
    return None


def main(argv, env=None, stdout=None, stderr=None):
    """``sagedl COMMAND ARGS...`` for COMMAND in COMMANDS; returns the exit code."""
    env = os.environ if env is None else env
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    command = argv[0]
    debug = "--debug" in argv
    try:
        rest = _argv_text(argv[1:])
        args = make_parser(command).parse_args(rest)
        data = render(run(command, args, env))
    except SagedlError as e:
        _report(stderr, e, debug)
        return e.exit_code
    except SystemExit as e:   # --help
        return e.code if isinstance(e.code, int) else 0
    except RuntimeError as e:   # RecursionError (3.5+) is one
        _report(stderr, SagePackageError("%s: %s" % (e.__class__.__name__, e)), debug)
        return EXIT_FAILURE
    except UnicodeError as e:   # a name or path this locale cannot encode or decode
        _report(stderr, SagePackageError("%s (try LC_ALL=C.UTF-8)" % e), debug)
        return EXIT_FAILURE
    try:
        _write(stdout, data)
    except (IOError, OSError) as e:
        if e.errno == errno.EPIPE:   # `sage-package list | head`: the reader is gone
            return EXIT_FAILURE
        _report(stderr, SagePackageError("cannot write the output: %s" % (e.strerror or e)),
                debug)
        return EXIT_FAILURE
    return 0


def _report(stderr, e, debug):
    if debug:
        import traceback
        traceback.print_exc(file=stderr)
    _say(stderr, u"%s: error: %s\n" % (PROG, _native(e.message)))
    if e.hint:
        _say(stderr, u"%s: hint: %s\n" % (PROG, _native(e.hint)))
    stderr.flush()


def _say(stderr, text):
    """A message on stderr: 2.7's takes bytes (any text as UTF-8); 3.x's
    replaces what its encoding cannot show (backslashreplace)."""
    if PY2 and not isinstance(text, bytes) and not isinstance(stderr, io.TextIOBase):
        text = text.encode("utf-8", "replace")
    stderr.write(text)
