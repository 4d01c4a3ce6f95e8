"""The Python 2.7 baseline: the simplest correct download loop in pure 2.7.

    python2.7 bench/baseline_py27.py URL DEST SHA256 [CA_BUNDLE]

urllib2.urlopen, then read(1 MiB) + sha256.update + write until EOF; exit 1
on a checksum mismatch.  No .part file, no fsync, no resume: what sagedl on
2.7 is measured against (target: at least 0.9x this loop's throughput).
Also runs on Python 3 (urllib.request), for checking the script itself.
"""

import hashlib
import sys

try:
    import urllib2 as request
except ImportError:
    import urllib.request as request

BLOCK = 1 << 20


def main(argv):
    url, dest, expected = argv[1:4]
    kwargs = {}
    if len(argv) > 4:
        import ssl
        kwargs["context"] = ssl.create_default_context(cafile=argv[4])
    resp = request.urlopen(url, **kwargs)
    h = hashlib.sha256()
    f = open(dest, "wb")
    try:
        while True:
            block = resp.read(BLOCK)
            if not block:
                break
            h.update(block)
            f.write(block)
    finally:
        f.close()
        resp.close()
    if h.hexdigest() != expected:
        sys.stderr.write("sha256 mismatch: %s\n" % h.hexdigest())
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
