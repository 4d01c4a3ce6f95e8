"""Which packages a ``sage-package list`` selection means: sage_bootstrap's
PackageClass (``:standard:``, PURLs, names, the file filters) and its
dependency walks, ported with their quirks.

Why a module of its own: bootstrap.py reads one package as Sage does; this
combines many of them, for sage-package's ``list`` and for the download
command's package arguments, and is the only part that walks dependencies.
"""

from __future__ import absolute_import

from sagedl.sage.bootstrap import (CLASSES, PURL_PREFIXES, SUBSTITUTED, SUBSTITUTE_VARIABLE,
                                   NoSuchPackage, PackageNameError, SagePackageError)
from sagedl.text import printable



def select(tree, selectors, has_files=(), no_files=(), trees=(), exclude=(),
           include_dependencies=False, exclude_dependencies=False):
    """The sorted package names that ``sage-package list`` prints."""
    names = set()
    for selector in selectors:
        if selector in CLASSES:
            wanted = CLASSES[selector]
            names.update(p.name for p in tree.all()
                         if (wanted is None or p.type == wanted)
                         and _included(p, has_files, no_files, trees))
        elif any(selector.startswith(prefix) for prefix in PURL_PREFIXES):
            names.add(tree.package(selector).name)
        elif ":" in selector:
            raise PackageNameError(
                "a colon may only appear in a PURL such as pkg:pypi/DISTRIBUTION-NAME and in "
                "designators of package types, which must be one of :all:, :standard:, "
                ":optional:, or :experimental:; got %s" % printable(selector))
        elif "-" in selector:
            raise PackageNameError("dashes may only appear in a PURL such as "
                                   "pkg:pypi/DISTRIBUTION-NAME; SPKG names use underscores"
                                   "; got %s" % printable(selector))
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


def _included(pkg, has_files, no_files, trees):
    """The file filters of a ``:class:`` selector: every --has-file group
    (``a|b``: either) present, no --no-file group present, and one of the
    --tree names among the package's trees."""
    if not all(any(pkg.has_file(f) for f in alternatives.split("|"))
               for alternatives in has_files):
        return False
    if any(any(pkg.has_file(f) for f in alternatives.split("|"))
           for alternatives in no_files):
        return False
    return not trees or any(t in pkg.trees.split() for t in trees)


def _include_dependencies(tree, names, name):
    if name in names:
        return
    lenient = tree.dialect.lenient_deps
    match = SUBSTITUTE_VARIABLE.match(name) if lenient else None
    if match:
        name = SUBSTITUTED.get(match.group("variable"), name)
    try:
        pkg = tree.package(name)
    except NoSuchPackage:
        return   # unknown names
    except PackageNameError:
        if not lenient:
            raise    # Sage 10.7: "package names should be lowercase, got $(MP_LIBRARY)"
        return   # $(BLAS)-like substitutions, $(find-string ...)
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
