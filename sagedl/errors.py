"""Errors and the exit codes they map to: the one place that decides both.

Every failure a user can cause or meet is a ``SagedlError``.  The CLI prints
``sagedl: error: <message>`` (plus ``hint: <hint>`` when there is one) and
exits with ``exit_code``; it never shows a traceback unless ``--debug``.

Exit codes are compatible with Sage's ``sage-download-file`` (0 success,
1 failure, 2 usage); the finer codes 3-7 refine "failure" and are all
non-zero, which is all Sage's build scripts test.
"""

EXIT_OK = 0
EXIT_FAILURE = 1        # generic failure (Sage's code for "download failed")
EXIT_USAGE = 2          # bad arguments or input (argparse uses 2 as well)
EXIT_NOT_FOUND = 3      # unknown package or tarball name, or no source had the file (404s)
EXIT_CHECKSUM = 4       # every source served bytes that failed verification
EXIT_NETWORK = 5        # every source failed at the network level, or its redirects did
EXIT_DISK = 6           # could not write the destination (full, read-only) or read what it needs
EXIT_LOCK = 7           # timed out waiting for another process's lock
EXIT_INTERRUPTED = 130  # SIGINT/SIGTERM; the partial file is kept for resume

EXIT_CODES = [
    (EXIT_OK, "success"),
    (EXIT_FAILURE, "failure (other than those below)"),
    (EXIT_USAGE, "usage error: bad arguments, an unsafe file name"),
    (EXIT_NOT_FOUND, "not found: no such package or tarball, or no source has the file"),
    (EXIT_CHECKSUM, "checksum failed on every source"),
    (EXIT_NETWORK, "network failure on every source (or redirects that lead nowhere)"),
    (EXIT_DISK, "cannot write the destination or stdout (full, read-only, closed, ...),\n"
                "       cannot read or search a file or directory it needs (permissions, a\n"
                "       lock another user left), or refused a symlink, device or FIFO at a\n"
                "       name sagedl writes"),
    (EXIT_LOCK, "timed out waiting for another sagedl on the same file"),
    (EXIT_INTERRUPTED, "interrupted (SIGINT/SIGTERM); partial file kept"),
]


# --debug details ("which CA store", ...): cli.main points this at stderr.
_debug_sink = [None]


def set_debug(write):
    """write(text) receives each debug line from now on; None turns them off."""
    _debug_sink[0] = write


def debug(text):
    """One 'sagedl: debug:' line on stderr when --debug is given, else nothing."""
    write = _debug_sink[0]
    if write is not None:
        write("sagedl: debug: %s\n" % text)


class SagedlError(Exception):
    """Base of every error the user sees.  ``str()`` is the one-line message."""

    exit_code = EXIT_FAILURE

    def __init__(self, message, hint=None):
        Exception.__init__(self, message)
        self.message = message
        self.hint = hint

    def __str__(self):
        return self.message


class UsageError(SagedlError):
    exit_code = EXIT_USAGE


class MetadataError(UsageError):
    """A malformed checksums.ini / mirrors.toml / mirror list: names file and line."""

    def __init__(self, path, lineno, message, hint=None):
        where = path if lineno is None else "%s:%d" % (path, lineno)
        UsageError.__init__(self, "%s: %s" % (where, message), hint)
        self.path = path
        self.lineno = lineno


class NotFoundError(SagedlError):
    exit_code = EXIT_NOT_FOUND


class ChecksumError(SagedlError):
    exit_code = EXIT_CHECKSUM


class NetworkError(SagedlError):
    exit_code = EXIT_NETWORK


class DiskError(SagedlError):
    exit_code = EXIT_DISK


class LockTimeout(SagedlError):
    exit_code = EXIT_LOCK


class Interrupted(SagedlError):
    exit_code = EXIT_INTERRUPTED


class SourceFailure(Exception):
    """One source failed for one attempt; the engine records it and moves on.

    ``kind`` is one of the KIND_* values; it decides retry/failover and the
    final exit code.  Never shown to the user except inside the summary of a
    DownloadFailed.
    """

    KIND_NETWORK = "network"      # connect/read error, timeout, reset, stall
    KIND_NOT_FOUND = "not-found"  # 404/410
    KIND_HTTP = "http"            # other 4xx/5xx
    KIND_REDIRECT = "redirect"    # a redirect loop, or one refused: no way to the file
    KIND_TRANSIENT = "transient"  # 503/429/408: worth retrying the same source
    KIND_PROTOCOL = "protocol"    # short body, bad Content-Range, HTML page, too long
    KIND_CHECKSUM = "checksum"    # size or digest mismatch after a full transfer

    def __init__(self, kind, message, retry_after=None, detail=None, resumed=False, hint=None):
        """retry_after: seconds a 429/503 asked us to wait.  detail: more than
        the one-line message, for the final error's hint (a checksum
        failure's full digests).  resumed: the failed transfer had continued
        a partial (a checksum failure then earns a try from scratch).  hint:
        the fix this failure knows of (a TLS problem names the CA option)."""
        Exception.__init__(self, message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        self.detail = detail
        self.resumed = resumed
        self.hint = hint

    def __str__(self):
        return self.message


def unexpected(e):
    """The SagedlError standing for an exception nothing translated, so that
    it can be one file's failure in a bulk run (a worker thread that died of
    it once left its files "not started" and the run exited 0): an OSError
    is a DiskError with its reason, anything else a failure that names
    itself as internal."""
    if isinstance(e, SagedlError):
        return e
    if isinstance(e, EnvironmentError):
        name = getattr(e, "filename", None)
        reason = getattr(e, "strerror", None) or str(e)
        return DiskError("%s%s" % ("%s: " % name if name else "", reason))
    return SagedlError("internal error: %s: %s" % (e.__class__.__name__, e),
                       hint="run again with --debug for a traceback, and please report it")


def failure_error(attempts, target_name, announced=0):
    """Build the final SagedlError from a list of (source_label, SourceFailure).

    The exit code follows what the sources did: all 404 -> not found; any
    checksum failure and no success -> checksum; all network (or redirects
    that lead nowhere) -> network.
    ``announced``: how many of the attempts were already shown, reason and
    all, as "X failed: ...; trying Y" notes; the message lists the others
    and refers to those, so each failure is said once.
    """
    kinds = set(f.kind for _, f in attempts)
    if not attempts:
        return NotFoundError("%s: no source to download from" % target_name,
                             hint="give a URL, --mirror URL, or run inside a Sage tree")
    listed = "; ".join("%s: %s" % (label, f) for label, f in attempts[announced:])
    summary = "could not download %s: %s" % (target_name, listed)
    if announced:
        summary += " (and %s above)" % ("the failure" if announced == 1
                                        else "the %d failures" % announced)
    if kinds == set([SourceFailure.KIND_NOT_FOUND]):
        return NotFoundError(summary)
    if SourceFailure.KIND_CHECKSUM in kinds:
        detail = [f.detail for _, f in attempts if f.kind == SourceFailure.KIND_CHECKSUM]
        detail = next((d for d in detail if d), None)
        e = ChecksumError(summary, hint=(detail + "; " if detail else "") + SAGE_CHECKSUM_ADVICE)
        e.detail = detail
        return e
    if kinds <= set([SourceFailure.KIND_NETWORK, SourceFailure.KIND_TRANSIENT,
                     SourceFailure.KIND_REDIRECT]):
        # A failure may know its own fix (a TLS problem says which CA option
        # to use); when every source agrees on one, that is the hint.
        hints = set(f.hint for _, f in attempts)
        if len(hints) == 1 and None not in hints:
            return NetworkError(summary, hint=hints.pop())
        return NetworkError(summary, hint=network_hint([f for _, f in attempts]))
    return SagedlError(summary)


# The advice for a checksum failure: Sage mirrors (most downloads), or a
# user's own URL with --sha256/--sha1/--size, where the Sage tree is no cause.
SAGE_CHECKSUM_ADVICE = ("the mirrors serve a different file than the checksums expect; "
                        "is your Sage tree up to date?")
URL_CHECKSUM_ADVICE = ("the server sent a different file than --sha256/--sha1/--size "
                       "expect; check those values and the URL")

# Network failures by cause, each with the advice that fits it: a DNS
# failure is not cured by a longer --timeout, nor a 503 by a proxy setting.
_CAUSES = (
    # First: "redirect refused" is no refused connection.
    ("redirect", ("redirect",),
     "the server redirects in a loop, or somewhere sagedl does not follow (another scheme, "
     "https to http without a checksum): check the URL, or use another mirror"),
    ("dns", ("cannot resolve", "resolving", "name or service not known",
             "temporary failure in name resolution", "nodename nor servname",
             "no address associated"),
     "a host name did not resolve: check the URL or mirror, and this machine's "
     "DNS and network (is it offline?)"),
    ("busy", ("http 503", "http 429", "http 408"),
     "the server is busy or in maintenance (it answered 503/429): try again later, "
     "or another mirror with --mirror URL"),
    ("refused", ("refused",),
     "nothing accepts connections there: check the host and port of the URL or mirror"),
    ("timeout", ("timed out", "stalled", "too slow"),
     "the server did not answer in time; --timeout S waits longer, "
     "--low-speed-limit/--low-speed-time tolerate a slow one"),
)
GENERIC_NETWORK_HINT = "check your network and proxy settings (http_proxy, https_proxy)"


def network_hint(failures):
    """The hint for a NetworkError: the advice for the cause every failure
    shares, else the generic one."""
    causes = set()
    for f in failures:
        text = str(f).lower()
        cause = next((name for name, needles, _ in _CAUSES
                      if any(n in text for n in needles)), None)
        causes.add(cause)
    if len(causes) == 1 and None not in causes:
        cause = causes.pop()
        return next(advice for name, _, advice in _CAUSES if name == cause)
    return GENERIC_NETWORK_HINT


def report(stderr, e, debug, prog="sagedl"):
    """Print a SagedlError the one way: ``sagedl: error: ...`` and an optional
    ``sagedl: hint: ...``; the traceback only with --debug."""
    if debug:
        import traceback
        traceback.print_exc(file=stderr)
    stderr.write("%s: error: %s\n" % (prog, e))
    if e.hint:
        stderr.write("%s: hint: %s\n" % (prog, e.hint))
    stderr.flush()
