"""A Sage source tree, read: the planning layer's view of Sage's metadata.

``tree`` reads ``build/pkgs`` (checksums.ini, versions, types) and
``.upstream.d`` strictly, for downloading, with ``checksums`` (the
checksums.ini parser) and ``names`` (safe file names, mirror paths, VERSION
templates); ``bootstrap`` is the port of sage_bootstrap's package model for
sage-package's answers, quirks kept, and ``selection`` its PackageClass and
dependency walks.
The two read the same files with different rules on purpose and must not
be merged.  Why a package: everything that knows Sage's layout is here,
below the commands and above the engine; it reads files, never the network.
"""

from __future__ import absolute_import
