"""sagedl: fetch SageMath's source tarballs from the best mirror, resumably and verified.

The core (everything in this package) uses the standard library only and runs
unchanged on CPython 2.7 and 3.6+ and on PyPy3.  certifi's CA bundle ships
inside it (cacert.pem), the last fallback when the system store is empty.
"""

from __future__ import absolute_import

__version__ = "0.1.0"
