#!/usr/bin/env python3
"""Refresh sagedl/cacert.pem, the CA bundle embedded in the pyz, from certifi.

Usage:  python3 tools/refresh_cacert.py [--from FILE] [--version V] [--check]

sagedl trusts the system CA store; when that store is empty (the python.org
macOS build before "Install Certificates.command", minimal containers: Sage's
own history, sagemath issues #29418 and #30950) it falls back to this copy of
certifi's bundle (Mozilla's CA list).  The copy is committed, so the build
stays offline and byte-identical; this tool is the only way it changes.

Without --from, pip downloads the newest certifi wheel from the package index
into a temporary directory and the bundle is taken from it.  --from takes a
certifi wheel or a cacert.pem (then give --version).  The file written is
certifi's bytes after one header line naming the certifi version (OpenSSL
ignores text outside the PEM blocks).  --check exits 1 when the committed
file's certificates differ from the source's.
"""

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_OUT = os.path.join(ROOT, "sagedl", "cacert.pem")
HEADER = ("# certifi %s: Mozilla's CA bundle, the last-resort trust store of sagedl "
          "(written by tools/refresh_cacert.py)\n")
HEADER_RE = re.compile(r"^# certifi (\S+): ")


def from_wheel(path):
    """(bundle bytes, certifi version) from a certifi wheel."""
    with zipfile.ZipFile(path) as z:
        data = z.read("certifi/cacert.pem")
        init = z.read("certifi/__init__.py").decode("utf-8")
    match = re.search(r"__version__\s*=\s*[\"']([^\"']+)", init)
    if not match:
        raise SystemExit("refresh_cacert: no __version__ in %s" % path)
    return data, match.group(1)


def download_wheel(directory):
    subprocess.check_call([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                           "--disable-pip-version-check", "--only-binary=:all:",
                           "-d", directory, "certifi"])
    wheels = glob.glob(os.path.join(directory, "certifi-*.whl"))
    if len(wheels) != 1:
        raise SystemExit("refresh_cacert: expected one certifi wheel, got %r" % wheels)
    return wheels[0]


def render(data, version):
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise SystemExit("refresh_cacert: the source holds no PEM certificate")
    return HEADER.encode("ascii") % version.encode("ascii") + data


def embedded_version(text):
    """The certifi version named by a rendered bundle's header, or None."""
    match = HEADER_RE.match(text)
    return match.group(1) if match else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="source", metavar="FILE",
                   help="a certifi wheel, or a cacert.pem (with --version)")
    p.add_argument("--version", help="the certifi version of a cacert.pem given with --from")
    p.add_argument("-o", "--output", default=DEFAULT_OUT)
    p.add_argument("--check", action="store_true",
                   help="compare with the committed file instead of writing it")
    args = p.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="refresh-cacert-")
    try:
        source = args.source or download_wheel(tmp)
        if source.endswith(".whl"):
            data, version = from_wheel(source)
        else:
            if not args.version:
                p.error("--from a .pem needs --version")
            with open(source, "rb") as f:
                data, version = f.read(), args.version
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rendered = render(data, args.version or version)
    if args.check:
        with open(args.output, "rb") as f:
            committed = f.read()
        same = committed.split(b"\n", 1)[1:] == rendered.split(b"\n", 1)[1:]
        sys.stdout.write("%s is %s certifi %s\n" % (args.output, "the bundle of" if same
                                                    else "OUT OF DATE against", version))
        return 0 if same else 1
    with open(args.output, "wb") as f:
        f.write(rendered)
    sys.stdout.write("wrote %s from certifi %s (%d bytes)\n" % (args.output, version, len(rendered)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
