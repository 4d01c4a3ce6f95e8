#!/bin/sh
# Install sagedl into a Sage source tree:  contrib/sage/install.sh SAGE_ROOT [PYZ]
#
#   SAGE_ROOT/build/bin/sagedl.pyz            the downloader
#   SAGE_ROOT/build/bin/sage-download-file    replaced by a wrapper (original kept as .orig)
#   SAGE_ROOT/build/bin/sage-package          wrapper: properties, list, tarball, name and
#                                             download -> sagedl, the rest -> .orig
#
# Idempotent: running it again updates the pyz and keeps the first .orig.
set -eu
root=${1:?usage: install.sh SAGE_ROOT [PATH/TO/sagedl.pyz]}
here=$(cd "$(dirname "$0")" && pwd)
pyz=${2:-$here/../../dist/sagedl.pyz}
bin=$root/build/bin
[ -d "$root/build/pkgs" ] || { echo "install.sh: $root is not a Sage tree (no build/pkgs)" >&2; exit 2; }
[ -f "$pyz" ] || { echo "install.sh: $pyz not found; run python3 zipapp/build.py first" >&2; exit 2; }
mkdir -p "$bin"
cp "$pyz" "$bin/sagedl.pyz.tmp" && chmod 755 "$bin/sagedl.pyz.tmp" && mv "$bin/sagedl.pyz.tmp" "$bin/sagedl.pyz"
for f in sage-download-file sage-package; do
    if [ -f "$bin/$f" ] && ! grep -q "sagedl" "$bin/$f" && [ ! -f "$bin/$f.orig" ]; then
        mv "$bin/$f" "$bin/$f.orig"
    fi
    cp "$here/$f" "$bin/$f"
    chmod 755 "$bin/$f"
done
echo "sagedl installed in $bin"
