"""Planning: which sources to try for a file, in which order, and where it goes.

``sources`` turns a request (a URL, a tarball name, many packages) into an
ordered list of sources per file, in Sage's order; ``output`` decides
where the bytes go.  Why a package: this is the layer between the commands
and the engine.  It reads the Sage tree (sage/) and the mirrors (mirrors/)
and hands the engine (engine/) finished plans; it never moves a byte.
"""

from __future__ import absolute_import
