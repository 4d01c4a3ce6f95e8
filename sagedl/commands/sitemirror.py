"""A site mirror: one directory, in Sage's mirror layout, that any static web
server can serve to a site's build machines; and a checker for it.

    DIR/spkg/upstream/PKG/TARBALL    what Sage mirrors serve; a file whose
                                     package's checksums.ini other packages
                                     link to (gap <- gap_packages, ...) is
                                     there under each of those names too,
                                     since a stock Sage client asks for it
                                     under the name it was given
    DIR/SHA256SUMS                   "HEX  spkg/upstream/PKG/TARBALL" lines
                                     for every file DIR serves, not only
                                     this run's
    DIR/mirror_list                  Sage's mirror_list format (comments, then
                                     a list literal) naming --base-url; left
                                     as it is without --base-url

Files are hard-linked from the distfiles when both are on one filesystem
(no space used twice), else copied; either way through a fresh temporary
name and a rename, so a half-written file never appears under a served name
(fsutil.place: a symlink or device planted at a served name is refused).
"""

from __future__ import absolute_import

import os

from sagedl.compat import compat_makedirs
from sagedl.engine import fsutil
from sagedl.errors import (EXIT_CHECKSUM, EXIT_NOT_FOUND, DiskError, SagedlError, UsageError)
from sagedl.sage.names import MIRROR_DIR, mirror_path


def mirror_keys(tree, tarball):
    """spkg/upstream/PKG/FILE for each name the file is served under."""
    names = [tarball.package]
    for name in tarball.mirror_names() + tree.linked_to(tarball.package):
        if name not in names:
            names.append(name)
    return [mirror_path(name, tarball.filename) for name in names]


def unique(tarballs):
    """Each file once (a symlinked package lists its owner's files again)."""
    seen = set()
    result = []
    for t in tarballs:
        if (t.package, t.filename) not in seen:
            seen.add((t.package, t.filename))
            result.append(t)
    return result


def place(src, dest, link=True):
    """Put a verified file at dest atomically, creating its directory: a hard
    link when ``link`` and possible, else a copy (fsutil.place: a fresh
    O_EXCL temporary name, and a symlink or device at dest is refused)."""
    try:
        compat_makedirs(os.path.dirname(dest))
    except (IOError, OSError) as e:
        raise DiskError("cannot write %s: %s" % (dest, getattr(e, "strerror", None) or e))
    fsutil.place(src, dest, link=link)


def read_sums(path):
    """{key: sha256} of an existing SHA256SUMS; {} when there is none or it
    is unreadable (it is rebuilt from the files then)."""
    sums = {}
    try:   # bounded, and never a FIFO or a symlink planted there
        text = fsutil.read_bounded(path, MAX_SUMS_BYTES).decode("utf-8")
    except (IOError, OSError, ValueError, DiskError):
        return {}
    for line in text.splitlines():
        parts = line.split("  ", 1)
        if len(parts) == 2 and len(parts[0]) == 64:
            sums[parts[1]] = parts[0].lower()
    return sums


MAX_SUMS_BYTES = 16 << 20      # 700 tarballs take about 100 KB


def served_files(directory):
    """The keys (spkg/upstream/PKG/FILE) of the files DIR serves now."""
    found = scan(directory)[0] if os.path.isdir(os.path.join(directory, *MIRROR_DIR.split("/"))) else {}
    return dict((k, p) for k, p in found.items() if not is_own_file(k)
                and os.path.isfile(p))


def write_index(directory, placed, base_url=None):
    """SHA256SUMS for every file DIR serves -- this run's and earlier runs'
    (a one-package run once turned a 6-file mirror's index into one line,
    and a failed run into an empty one) -- and mirror_list when --base-url
    says where DIR is served.  placed: [(tarball, [key])] of this run.

    Digests come from this run's verified files, else the previous index,
    else hashing the file.  Returns False when no mirror_list exists and
    none could be written (no --base-url), for the caller to say so."""
    from sagedl.engine.verify import Expected, hash_file
    sums_path = os.path.join(directory, "SHA256SUMS")
    previous = read_sums(sums_path)
    now = dict((key, t.sha256) for t, keys in placed for key in keys)
    lines = []
    for key, path in sorted(served_files(directory).items()):
        digest = now.get(key) or previous.get(key)
        if digest is None:
            digest = hash_file(path, Expected()).sha256.hexdigest()
        lines.append("%s  %s\n" % (digest, key))
    _write_atomic(sums_path, "".join(lines))
    list_path = os.path.join(directory, "mirror_list")
    if not base_url:
        return os.path.exists(list_path)   # kept as it is: never a guessed URL
    base = base_url if base_url.endswith("/") else base_url + "/"
    text = ("## Sage mirror list, written by sagedl make-mirror.\n"
            "## Serve this directory at the URL below; point SAGE_SERVER (or\n"
            "## sagedl --mirror) at it.\n"
            "[%r]\n" % str(base))
    _write_atomic(list_path, text)
    return True


def _write_atomic(path, text):
    fsutil.write_atomic(path, text.encode("utf-8"))


def cmd_make_mirror(ctx, request):
    """``make-mirror`` (an options.MakeMirrorRequest)."""
    from sagedl.commands import bulk
    tree = ctx.tree(required=True)
    directory = os.path.abspath(request.directory)
    # A site mirror serves every platform: all wheels of wheel-only packages.
    tarballs = unique(bulk.select_tarballs(tree, request.packages, request.exclude,
                                           request.has_file, request.no_file))
    placed = []

    def emit(job, display):
        keys = mirror_keys(tree, job.tarball)
        for key in keys:
            place(job.path, os.path.join(directory, *key.split("/")))
        placed.append((job.tarball, keys))

    code = bulk.fetch_tarballs(ctx, request, tree, tarballs, emit)
    try:
        compat_makedirs(directory)
    except OSError as e:
        raise DiskError("cannot create %s: %s" % (directory, e.strerror or e))
    if not write_index(directory, placed, request.base_url):
        ctx.warn("no %s written: give --base-url URL, the URL this directory is served at"
                 % os.path.join(directory, "mirror_list"))
    ctx.say("mirror %s: %d of %d tarballs" % (directory, len(placed), len(tarballs)))
    return code


def scan(directory):
    """{relative path: absolute path} of the files a verify looks at: a mirror
    tree's spkg/upstream/PKG/FILE, or a flat distfiles directory's files."""
    layout = os.path.join(directory, *MIRROR_DIR.split("/"))
    found = {}
    if os.path.isdir(layout):
        for pkg in _listdir(layout):
            pdir = os.path.join(layout, pkg)
            if os.path.isdir(pdir):
                for name in _listdir(pdir):
                    found[mirror_path(pkg, name)] = os.path.join(pdir, name)
        return found, True
    for name in _listdir(directory):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            found[name] = path
    return found, False


def _listdir(path):
    """Sorted names in a directory; one that cannot be read is a one-line
    error (exit 6), not a traceback."""
    try:
        return sorted(os.listdir(path))
    except OSError as e:
        raise fsutil.access_error("list", path, e)


# Files sagedl itself leaves beside tarballs: not "extra".
OWN_SUFFIXES = (".part", ".part.json", ".lock", ".bad")


def is_own_file(name):
    """NAME.part, NAME.lock, NAME.bad, NAME.bad.1, ...: sagedl's own."""
    import re
    return name.endswith(OWN_SUFFIXES) or re.search(r"\.bad\.[0-9]+$", name) is not None


def cmd_verify(ctx, request):
    """``verify`` (an options.VerifyRequest)."""
    from sagedl.commands import bulk
    from sagedl.engine.verify import Expected, verify_file
    tree = ctx.tree(required=True)
    directory = os.path.abspath(request.directory)
    if not os.path.isdir(directory):
        raise UsageError("not a directory: %s" % directory)
    found, is_mirror = scan(directory)
    tarballs = unique(bulk.select_tarballs(tree, request.packages, request.exclude,
                                           request.has_file, request.no_file))
    # A build machine's distfiles hold the wheel of its own platform only:
    # there a wheel-only package is missing when none of its wheels is.
    counts = {}
    for t in tarballs:
        counts[t.package] = counts.get(t.package, 0) + 1
    present_pkgs = set(t.package for t in tarballs if t.filename in found)
    reported = set()
    missing, bad, unreadable, good = [], [], [], 0
    expected_keys = set()
    for t in tarballs:
        for key in mirror_keys(tree, t) if is_mirror else [t.filename]:
            expected_keys.add(key)
            path = found.get(key)
            if path is None:
                if is_mirror or counts[t.package] == 1:
                    missing.append(key)
                elif t.package not in present_pkgs and t.package not in reported:
                    reported.add(t.package)
                    missing.append("%s (none of its %d per-platform wheels)"
                                   % (t.package, counts[t.package]))
                continue
            try:
                ok, reason = verify_file(path, Expected(None, t.sha256, t.sha1))
            except SagedlError as e:
                # One unreadable file (another user's, mode 0600) is that
                # file's line; the others are still checked.
                unreadable.append((key, e))
                continue
            if ok:
                good += 1
            else:
                bad.append((key, reason))
    index_files = ("SHA256SUMS", "mirror_list")
    extra = [k for k in found if k not in expected_keys and k not in index_files
             and not is_own_file(k)]
    if request.packages != (":all:",):
        # A partial selection cannot call the other files extra; only those
        # no package of the tree knows.
        known = set(t.filename for t in tree.all_tarballs())
        extra = [k for k in extra if k.rsplit("/", 1)[-1] not in known]
    out = ctx.stdout
    for k in missing:
        out.write("missing  %s\n" % k)
    for k, reason in bad:
        out.write("bad      %s (%s)\n" % (k, reason))
    for k, e in unreadable:
        out.write("unreadable %s (%s)\n" % (k, e))
    for k in sorted(extra):
        out.write("extra    %s\n" % k)
    if not ctx.quiet or missing or bad or unreadable:
        # -q as wget's and curl's: nothing on success; a failure still says
        # how many files it concerns (the lines above are on stdout).
        ctx.stderr.write("%s: %d verified, %d missing, %d bad, %d extra%s\n"
                         % ("sagedl", good, len(missing), len(bad), len(extra),
                            ", %d unreadable" % len(unreadable) if unreadable else ""))
    if bad:
        return EXIT_CHECKSUM
    if unreadable:
        return max(e.exit_code for _, e in unreadable)
    if missing:
        return EXIT_NOT_FOUND
    return 0
