"""``python -m sagedl``: the same entry point as the pyz."""

from __future__ import absolute_import

import sys

from sagedl.cli import main

if __name__ == "__main__":
    sys.exit(main())
