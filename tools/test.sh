#!/usr/bin/env bash
# The whole test suite, from a fresh clone: install what it needs, build the
# pyz, run every test (unit, fault-injection, processes, the pyz under every
# interpreter).  With CI=true a missing interpreter or tool is a failure.
#
# The test libraries (requirements-test.txt) go into a virtual environment,
# never into the system Python: Debian's and Ubuntu's python3 refuse
# "pip install" outside one (PEP 668, externally-managed-environment).  The
# environment lives under .venv/, one per interpreter that python3 names, and
# is reused by later runs.  SAGEDL_TEST_VENV=DIR puts it elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
python=$(bash tools/test-venv.sh)
"$python" zipapp/build.py
"$python" tests/realfiles.py >/dev/null
exec "$python" -m pytest -q -p no:cacheprovider tests "$@"
