"""Run Sage's own build/test suite in a Sage tree, offline, with a loopback mirror.

    python3 tests/sage_buildtest.py SAGE_ROOT SITE_DIR JUNIT_XML

Meant to run inside a network namespace holding only loopback
(tools/offline): some of Sage's tests fetch from
files.sagemath.org or ask for the fastest mirror, and nothing may leave the
machine.  It starts a real nginx serving SITE_DIR (a mirror in Sage's
layout), names it first in SAGE_ROOT/.upstream.d, then runs ``python3 -m pytest build/test`` from
SAGE_ROOT/build with PYTHONPATH=build and build/bin first on PATH, as Sage
runs them, writing a JUnit XML report.  Exits with pytest's status.

tests/test_sage_buildtest.py runs it twice, against the original tree and
against a copy with sagedl's drop-in installed, and compares.
"""

from __future__ import annotations

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from nginx import Nginx  # noqa: E402

PYTEST_TIMEOUT = 240


def outcomes(junit_xml):
    """{test id: "passed" | "failed" | "skipped"} from a JUnit XML report."""
    import xml.etree.ElementTree as ET
    result = {}
    for case in ET.parse(junit_xml).getroot().iter("testcase"):
        name = "%s::%s" % (case.get("classname"), case.get("name"))
        kinds = [child.tag for child in case]
        if "failure" in kinds or "error" in kinds:
            result[name] = "failed"
        elif "skipped" in kinds:
            result[name] = "skipped"
        else:
            result[name] = "passed"
    return result


def main(argv):
    root, site, junit = (os.path.abspath(a) for a in argv[1:4])
    build = os.path.join(root, "build")
    with Nginx(site) as nginx:
        # The site comes first in .upstream.d (its port is known only now).
        # Not as SAGE_SERVER: with SAGE_SERVER set, --print-fastest-mirror
        # answers it, and Sage's tests of that command expect a ranking.
        with open(os.path.join(root, ".upstream.d", "10-loopback-site"), "w") as f:
            f.write(nginx.url + "/spkg/upstream/${SPKG}/\n")
        env = dict(os.environ)
        env.pop("SAGE_SERVER", None)
        env.update(SAGE_ROOT=root, PYTHONPATH=build,
                   PATH=os.path.join(build, "bin") + os.pathsep + env.get("PATH", ""))
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "--junitxml", junit, "test"], cwd=build, env=env,
                           timeout=PYTEST_TIMEOUT)
    return p.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv))
