"""The engine: one file's bytes from a source to its final name, verified.

``download`` (is the file there already; which source next, failover),
``transfer`` (one attempt on one source: the resume rules, NAME.part),
``sourcequeue`` (the order of sources), ``pipeline`` (hash and write each
block), ``verify`` (sizes and digests),
``lock`` (one transfer per file across processes), ``fsutil`` (only regular
files sagedl made), ``retry`` and ``ratelimit`` (when to ask again, how
fast).  Why a package: this layer is given a plan and carries it out; it
calls the transport (net/) and never decides which sources to try.
"""

from __future__ import absolute_import
