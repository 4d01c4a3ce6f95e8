#!/usr/bin/env bash
# The test suite, from a fresh clone: install what it needs, build the pyz,
# fetch the real Sage data from PyPI (cached), and run pytest.
#
#   bash tools/test.sh                              # the whole suite
#   bash tools/test.sh tests/test_sage.py           # one file
#   bash tools/test.sh tests/test_sage.py::test_package_listing -x   # one test
#
# Arguments go to pytest as they are; with none it runs tests/.  With CI=true
# a missing interpreter, tool or piece of real data is a failure, not a skip.
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
# The real Sage trees (sdists on PyPI) and upstream files, fetched once into
# ~/.cache/sagedl-tests.  Without a network the tests that need them skip
# with the reason (and fail under CI=true), so a failure here is not fatal.
if ! "$python" tests/sagetree.py >/dev/null || ! "$python" tests/realfiles.py >/dev/null; then
    echo "tools/test.sh: the real Sage data could not be fetched from PyPI;" \
         "the tests that need it will say so" >&2
fi
if [ $# -eq 0 ]; then
    set -- tests
fi
exec "$python" -m pytest -q -p no:cacheprovider "$@"
