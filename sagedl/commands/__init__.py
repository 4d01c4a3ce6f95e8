"""The commands: one module per thing a user can ask sagedl to do.

cli.py parses the command line and hands the run's Session to one of
these: ``single`` (``sagedl URL_OR_TARBALL [DEST]``, several URLs),
``bulk`` (``download``, sage-package's), ``sitemirror`` (``make-mirror``,
``verify``), ``showmirrors`` (``--print-fastest-mirror``, ``list-mirrors``),
``sagepackage`` (sage-package's read-only subcommands); ``targets`` reads
the positionals and ``-i FILE``.  Why a package: these are the top layer
below the command line.  They ask the planning layer (plan/, sage/,
mirrors/) what to do and the engine to do it; nothing below imports them.
"""

from __future__ import absolute_import
