"""Mirrors: which exist, which answer fastest, which failed lately.

``mirrorlist`` (the shipped mirrors.toml, Sage's live list; ``tomlreader``
parses the TOML), ``probe`` (the ranking, all mirrors at once under one
deadline), ``health`` (what earlier runs learned, cached).  Why a package:
these feed the planning layer's choice of sources; they use the transport
layer (net/) directly for the probe and never the download engine's loop.
"""

from __future__ import absolute_import
