#!/usr/bin/env bash
# The whole test suite, from a fresh clone: install what it needs, build the
# pyz, run every test (unit, fault-injection, processes, the pyz under every
# interpreter).  With CI=true a missing interpreter or tool is a failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
python3 zipapp/build.py
python3 tests/realfiles.py >/dev/null
exec python3 -m pytest -q -p no:cacheprovider tests "$@"
