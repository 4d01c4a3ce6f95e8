"""Where the bytes go: the one place that decides it.

The command line hands over what the user said about the output (-o,
DESTINATION, -O, -P/--output-dir, how many files); ``decide`` turns that
into one destination for the run.  The planning layer (sources.py) then
asks ``place`` where each file goes, given the file's name and its home in
the distfiles (a Sage tarball has one; a URL does not).  The single-file
command follows the answer and never looks at the options again.

Who owns what here, and why:

* A URL alone, with no destination, goes to stdout, as sage-download-file
  does -- but not to a terminal, as curl refuses (binary bytes garble it).
* Several files (more URLs, or ``-i FILE``) cannot share stdout or one file
  name: each goes under its own name into the current directory (as wget
  saves them) or into -P DIR; a Sage tarball stays in the distfiles.
* A destination that is a device or FIFO (/dev/null, a pipe) is streamed
  into once the bytes verified, never renamed over or replaced.
"""

from __future__ import absolute_import

import os
import re

from sagedl.errors import UsageError
from sagedl.text import native_name

STDOUT = "-"    # the destination that means standard output


def is_url(target):
    """A URL, or something with a scheme (data:, javascript:, ...) that
    check_url must refuse, rather than a file name."""
    return "://" in target or bool(re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", target))


def url_basename(url):
    """The file name a URL names (its last path segment, unquoted), checked."""
    from sagedl.compat import compat_unquote, compat_urlsplit
    from sagedl.net.urls import redact
    from sagedl.sage.names import check_filename
    name = compat_unquote(compat_urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    if not name:
        raise UsageError("cannot tell a file name from %s" % redact(url), hint="give a DESTINATION")
    check_filename(name)
    return name


def destination(dest, name):
    """The absolute path to write: DESTINATION as a file, or ``name`` inside it
    when it is a directory, or ``name`` here when there is none.  An empty
    DESTINATION is a usage error, and one ending in '/' names a directory,
    which must exist (it was once saved as a file named after it)."""
    from sagedl.errors import DiskError
    name = native_name(name)
    if dest is None:
        return os.path.abspath(name)
    if not dest:
        raise UsageError("DESTINATION is empty", hint="give a file or directory name, or none "
                                                      "to write to stdout")
    if os.path.isdir(dest):
        return os.path.abspath(os.path.join(dest, name))
    if dest.endswith(os.sep) or (os.altsep and dest.endswith(os.altsep)):
        raise DiskError("destination directory does not exist: %s" % dest,
                        hint="create it first, or give a file name")
    return os.path.abspath(dest)


def decide(targets, output=None, positional=None, remote_name=False, output_dir=None,
           several=False, stdout_is_a_terminal=False):
    """The run's destination: None (each file's default place), STDOUT, or
    a path (a file, or a directory each file goes into).

    ``output`` is -o, ``positional`` the DESTINATION argument, ``several``
    true when more than one file may come (more URLs, -i).  Every conflict
    is a UsageError, raised before any request."""
    if output and positional:
        raise UsageError("both -o %s and DESTINATION %s given" % (output, positional),
                         hint="give one of them")
    dest = output or positional
    if output_dir is not None:
        if dest is not None:
            raise UsageError("--output-dir names a directory for the files; it takes no -o or "
                             "DESTINATION", hint="drop one of them")
        if not os.path.isdir(output_dir):
            raise UsageError("--output-dir %s: no such directory" % output_dir,
                             hint="create it first")
        return output_dir
    if remote_name:
        if dest is not None:
            raise UsageError("-O saves under the URL's file name; it takes no -o or DESTINATION",
                             hint="drop -O, or the destination")
        return os.curdir
    if several:
        if dest is not None:
            raise UsageError("-o %s names one file, and several are to be downloaded" % dest,
                             hint="use -P DIR (or -O) to save each under its own name")
        return None
    if dest == STDOUT:
        return STDOUT
    if dest is None and targets and is_url(targets[0]):
        if stdout_is_a_terminal:
            raise UsageError("not writing a download to the terminal",
                             hint="give a DESTINATION, -O to save it as its file name here, "
                                  "or -o - to write it to the terminal anyway")
        return STDOUT       # sage-download-file URL | ...
    return dest


class Placement(object):
    """Where one file goes.  The engine writes ``path`` (None: a private
    temporary directory, since nothing is kept); the verified file is then
    written to stdout (``to_stdout``), streamed into the device or FIFO
    ``stream``, or copied to ``copy_to``.  ``saved``: the path a user finds
    the file at afterwards (None when it went to stdout or a stream)."""

    def __init__(self, path, to_stdout=False, stream=None, copy_to=None):
        self.path = path
        self.to_stdout = to_stdout
        self.stream = stream
        self.copy_to = copy_to
        self.saved = None if (to_stdout or stream) else (copy_to or path)


def place(dest, name, home=None):
    """The Placement of the file ``name`` for the run's destination ``dest``
    (see decide); ``home``: its path in the distfiles, where a Sage tarball
    is always fetched first (a DESTINATION then receives a copy, as Sage's
    save_as makes)."""
    from sagedl.engine import fsutil
    if dest == STDOUT:
        return Placement(home, to_stdout=True)
    if dest is None and home is not None:
        return Placement(home)
    target = destination(dest, name)
    if dest is not None and not os.path.isdir(dest) and fsutil.stream_destination(target):
        return Placement(home, stream=target)
    if home is None:
        return Placement(target)
    return Placement(home, copy_to=target)
