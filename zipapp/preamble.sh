#!/bin/sh
# sagedl.pyz is this POSIX sh script followed by a zip archive; Python finds
# the zip from its end, so "python sagedl.pyz" runs the archive as usual.
# Run directly, this picks the first interpreter that really works: the first
# python3 on PATH may be a half-installed Sage python that dies on import
# ("No module named _functools"), so every match along PATH is tried.
# A candidate must also say a token: any program that exits 0 is not a Python
# (a stand-in python3 that only answers Sage's sys_tags question would pass).
sagedl_works() {
    sagedl_said=$("$1" -E -s -c 'import sys, functools, contextlib, hashlib, zipimport; sys.stdout.write("sagedl-python-ok"); sys.exit(sys.version_info[:2] < (2, 7) or (3, 0) <= sys.version_info[:2] < (3, 6))' </dev/null 2>/dev/null) && [ "$sagedl_said" = sagedl-python-ok ]
}
# PyPy sizes its young generation from the "cache size" in /proc/cpuinfo,
# half of it: a VM reporting 480 MB made a 200 KiB download peak at 144 MB
# and a 1 GiB one at 250-320 MB.  4MB is PyPy's own size when it finds none
# (81-96 MB, and no slower).  Other interpreters ignore the variable; a
# value already set wins.
PYPY_GC_NURSERY=${PYPY_GC_NURSERY:-4MB}
export PYPY_GC_NURSERY
if [ -n "${SAGEDL_PYTHON:-}" ]; then
    if sagedl_works "$SAGEDL_PYTHON"; then
        exec "$SAGEDL_PYTHON" -E -s "$0" "$@"
    fi
    # printf, not echo: dash's echo would expand backslashes in the path.
    printf 'sagedl: SAGEDL_PYTHON=%s does not work; looking for another Python\n' "$SAGEDL_PYTHON" >&2
fi
for sagedl_name in python3 python python2.7 python2 pypy3; do
    sagedl_rest=$PATH:  # the added ":" ends every entry, a trailing empty one too
    while [ -n "$sagedl_rest" ]; do
        sagedl_dir=${sagedl_rest%%:*}
        sagedl_rest=${sagedl_rest#*:}
        sagedl_py=${sagedl_dir:-.}/$sagedl_name  # an empty PATH entry means "."
        if [ -f "$sagedl_py" ] && [ -x "$sagedl_py" ] && sagedl_works "$sagedl_py"; then
            exec "$sagedl_py" -E -s "$0" "$@"
        fi
    done
done
for sagedl_py in /usr/bin/python3 /usr/local/bin/python3; do
    if sagedl_works "$sagedl_py"; then
        exec "$sagedl_py" -E -s "$0" "$@"
    fi
done
printf '%s\n' "sagedl: no working Python 2.7 or 3.6+ found (tried \$SAGEDL_PYTHON, then python3, python, python2.7, python2, pypy3 along PATH, /usr/bin/python3, /usr/local/bin/python3); set SAGEDL_PYTHON to one" >&2
exit 2
