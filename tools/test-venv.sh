#!/usr/bin/env bash
# Prints the path of a Python with the test libraries installed: a virtual
# environment made from the first python3 on PATH (pyenv's or Debian's
# /usr/bin/python3 alike), created on first use under .venv/ and reused.
# One environment per interpreter (its real path and version name it), so
# switching python3 never runs the suite on a stale environment.
set -euo pipefail
cd "$(dirname "$0")/.."
real=$(python3 -c 'import os, sys; sys.stdout.write(os.path.realpath(sys.executable))')
tag=$(python3 -c 'import sys; sys.stdout.write(sys.implementation.cache_tag)')
key=$(printf '%s' "$real" | cksum | cut -d' ' -f1)
venv="${SAGEDL_TEST_VENV:-.venv/test-$tag-$key}"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import pip' >/dev/null 2>&1; then
    rm -rf "$venv"
    if ! python3 -m venv "$venv" >&2; then
        echo "tools/test-venv.sh: python3 ($real) cannot create a virtual environment;" \
             "on Debian/Ubuntu: apt-get install python3-venv" >&2
        exit 1
    fi
fi
# pip does not touch the network when what requirements-test.txt asks for
# is already installed, so a reused environment costs about a second.
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r requirements-test.txt >&2
printf '%s\n' "$venv/bin/python"
