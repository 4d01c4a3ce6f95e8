#!/usr/bin/env bash
# Installs what the test suite and the benchmarks need on a fresh machine:
# Debian packages (PyPy3 for the interpreter matrix, nginx and squid as real
# servers, curl/wget/aria2 as benchmark peers, openssl, and Debian's python3
# with its venv module).  The Python test libraries go into a virtual
# environment (tools/test-venv.sh), not here.  Idempotent: already-installed
# pieces are skipped.
set -euo pipefail

need=()
command -v pypy3 >/dev/null || need+=(pypy3)
[ -x /usr/sbin/nginx ] || need+=(nginx-light)
[ -x /usr/sbin/squid ] || need+=(squid)
command -v aria2c >/dev/null || need+=(aria2)
command -v curl >/dev/null || need+=(curl)
command -v wget >/dev/null || need+=(wget)
command -v openssl >/dev/null || need+=(openssl)
# tools/test-venv.sh needs a python3 that can make a virtual environment;
# Debian splits venv's pip bootstrap out of python3 into python3-venv.
for pkg in python3 python3-venv; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    # Debian starts the services it installs; the tests run their own instances.
    for svc in nginx squid; do $SUDO service "$svc" stop >/dev/null 2>&1 || true; done
fi
