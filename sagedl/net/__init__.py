"""The transport: HTTP over sockets, URLs, TLS, and why a network failed.

``transport`` (connections, proxies, redirects), ``http1`` (a response read
with deadlines and bounds), ``urls`` (one
URL layer for the transport and the probe), ``tls`` (CA bundle, certificate
errors in words), ``reachability`` (typed causes of a failed lookup or
connect, the run's memory of dead servers).  Why a package: this is the
bottom layer; it imports only the foundation (errors, compat, text).
"""

from __future__ import absolute_import
