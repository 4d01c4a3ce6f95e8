"""What the sage-download-file form is asked to fetch: its positionals and ``-i FILE``.

Sage's form is ``URL_OR_TARBALL [DESTINATION]``.  wget and curl users also
type ``sagedl URL1 URL2``, which used to make URL2 a DESTINATION (and fail
on a directory named ``https:``).  The rule now: a second positional that
is a URL is another file to fetch, and so is every positional when there
are more than two or ``-i`` lists more; only a lone second positional that
is no URL is a DESTINATION.  Where the files then go is output.decide's.
"""

from __future__ import absolute_import

import os
import sys

from sagedl.errors import UsageError

MAX_INPUT_FILE = 1 << 20    # a list of URLs; /dev/zero must not fill the memory


def split_targets(positionals, input_file=None, stdin=None):
    """(the files to fetch, the DESTINATION or None) from the positionals
    and the names listed in ``input_file`` (-i; None when not given)."""
    listed = None if input_file is None else read_input_file(input_file, stdin)
    if len(positionals) == 2 and listed is None and "://" not in positionals[1]:
        return positionals[:1], positionals[1]
    for p in positionals[1:]:
        if "://" not in p and (os.sep in p or os.path.isdir(p)):
            raise UsageError("%s looks like a DESTINATION, but several files are to be "
                             "downloaded" % p,
                             hint="save them into a directory with -P DIR")
    targets = list(positionals) + (listed or [])
    if not targets:
        raise UsageError("-i %s lists nothing to download" % input_file,
                         hint="one URL or tarball name per line")
    return targets, None


def read_input_file(name, stdin=None):
    """The entries of ``-i FILE`` (``-``: standard input), as wget reads
    them: one URL or tarball name per line, surrounding blanks stripped,
    blank lines and lines starting with ``#`` skipped.  Each entry is a
    native str, as an argv element is."""
    from sagedl.text import native_name
    try:
        if name == "-":
            stream = sys.stdin if stdin is None else stdin
            if stream is None:
                raise UsageError("-i -: there is no standard input")
            data = getattr(stream, "buffer", stream).read(MAX_INPUT_FILE + 1)
        else:
            with open(name, "rb") as f:
                data = f.read(MAX_INPUT_FILE + 1)
    except (IOError, OSError) as e:
        raise UsageError("cannot read -i %s: %s" % (name, e.strerror or e))
    if not isinstance(data, bytes):      # a text stream (an in-process caller's)
        data = data.encode("utf-8")
    if len(data) > MAX_INPUT_FILE:
        raise UsageError("-i %s is over %d bytes: not a list of URLs" % (name, MAX_INPUT_FILE))
    entries = []
    for line in data.splitlines():
        line = line.strip()
        if line and not line.startswith(b"#"):
            entries.append(native_name(line))
    return entries
