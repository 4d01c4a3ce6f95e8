"""Errors and the exit codes they map to: the one place that decides both.

Every failure a user can cause or meet is a ``SagedlError``.  The CLI prints
``sagedl: error: <message>`` (plus ``hint: <hint>`` when there is one) and
exits with ``exit_code``; it never shows a traceback unless ``--debug``.

What each source did is a ``SourceFailure`` with a kind and, for network
failures, a typed cause (CAUSE_*, set where the failure happens: the
transport, the probe, the engine).  ``failure_error`` alone turns a file's
failures into its message, hint and exit code; nothing matches message text,
and no error is changed after it is made.

Exit codes are compatible with Sage's ``sage-download-file`` (0 success,
1 failure, 2 usage); the finer codes 3-8 refine "failure" and are all
non-zero, which is all Sage's build scripts test.
"""

from __future__ import absolute_import

EXIT_OK = 0
EXIT_FAILURE = 1        # generic failure (Sage's code for "download failed")
EXIT_USAGE = 2          # bad arguments or input (argparse uses 2 as well)
EXIT_NOT_FOUND = 3      # unknown package or tarball name, or no source had the file (404s)
EXIT_CHECKSUM = 4       # every source that had the file served other bytes
EXIT_NETWORK = 5        # every source failed at the network level, or its redirects did
EXIT_DISK = 6           # could not write the destination (full, read-only) or read what it needs
EXIT_LOCK = 7           # timed out waiting for another process's lock
EXIT_METADATA = 8       # a malformed or unreadable metadata file (checksums.ini, mirrors.toml)
EXIT_INTERRUPTED = 130  # SIGINT/SIGTERM; the partial file is kept for resume

EXIT_CODES = [
    (EXIT_OK, "success"),
    (EXIT_FAILURE, "failure (other than those below)"),
    (EXIT_USAGE, "usage error: bad arguments, an unsafe file name"),
    (EXIT_NOT_FOUND, "not found: no such package or tarball, or no source has the file"),
    (EXIT_CHECKSUM, "wrong bytes: every source that had the file (did not answer 404)\n"
                    "       served bytes its checksum or size rejects"),
    (EXIT_NETWORK, "network failure on every source (or redirects that lead nowhere)"),
    (EXIT_DISK, "cannot write the destination or stdout (full, read-only, closed, ...),\n"
                "       cannot read or search a file or directory it needs (permissions, a\n"
                "       lock another user left), or refused a symlink, device or FIFO at a\n"
                "       name sagedl writes"),
    (EXIT_LOCK, "timed out waiting for another sagedl on the same file"),
    (EXIT_METADATA, "malformed or unreadable metadata: a file of the Sage tree (checksums.ini,\n"
                    "       package-version.txt, ...), a mirrors.toml or a mirror list"),
    (EXIT_INTERRUPTED, "interrupted (SIGINT/SIGTERM); partial file kept"),
]

# Why a network failure happened, typed where it happens (see
# reachability.py for how a run uses them).
CAUSE_DNS_TIMEOUT = "dns-timeout"          # the name lookup timed out
CAUSE_DNS_FAILED = "dns-failed"            # the name does not resolve
CAUSE_UNREACHABLE = "unreachable"          # no route to the network or host
CAUSE_REFUSED = "refused"                  # nothing listens there
CAUSE_CONNECT_TIMEOUT = "connect-timeout"  # connect() timed out
CAUSE_SILENT = "silent"                    # connected, then no answer in time
CAUSE_SLOW = "slow"                        # the stall rule, a send that timed out
CAUSE_BUSY = "busy"                        # 503/429/408: the server asks us to come back
CAUSE_REDIRECT = "redirect"                # a redirect loop, or a redirect refused

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
    """Base of every error the user sees.  ``str()`` is the one-line message.

    brief: a shorter message for the same cause said again (a bulk run's
    later files, after the first said it in full).  failed: for a download
    that failed on every source, the Failed record the error was made from
    (``explain`` remakes the error from it, with what the caller knows)."""

    exit_code = EXIT_FAILURE

    def __init__(self, message, hint=None, brief=None, failed=None):
        Exception.__init__(self, message)
        self.message = message
        self.hint = hint
        self.brief = brief
        self.failed = failed

    def __str__(self):
        return self.message


class UsageError(SagedlError):
    exit_code = EXIT_USAGE


class MetadataError(SagedlError):
    """A malformed checksums.ini / mirrors.toml / mirror list: names file and
    line.  Not a UsageError: the command line was fine, a file is not."""

    exit_code = EXIT_METADATA

    def __init__(self, path, lineno, reason, hint=None):
        where = path if lineno is None else "%s:%d" % (path, lineno)
        SagedlError.__init__(self, "%s: %s" % (where, reason), hint)
        self.path = path
        self.lineno = lineno
        self.reason = reason

    def with_hint(self, hint):
        """The same error with ``hint`` when it has none."""
        if self.hint is not None:
            return self
        return MetadataError(self.path, self.lineno, self.reason, hint)


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

    def __init__(self, kind, message, retry_after=None, detail=None, resumed=False, hint=None,
                 cause=None):
        """retry_after: seconds a 429/503 asked us to wait.  detail: more than
        the one-line message, for the final error's hint (a checksum
        failure's full digests).  resumed: the failed transfer had continued
        a partial (a checksum failure then earns a try from scratch).  hint:
        the fix this failure knows of (a TLS problem names the CA option).
        cause: why, one of the CAUSE_* values, when it is known."""
        Exception.__init__(self, message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        self.detail = detail
        self.resumed = resumed
        self.hint = hint
        self.cause = cause

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


class Failed(object):
    """What every source did for one file: (label, SourceFailure) pairs,
    and how many of them were already shown as notes."""

    __slots__ = ("name", "attempts", "announced")

    def __init__(self, name, attempts, announced=0):
        self.name = name
        self.attempts = list(attempts)
        self.announced = announced


# The advice for a checksum failure: Sage mirrors (most downloads), or a
# user's own URL with --sha256/--sha1/--size, where the Sage tree is no cause.
SAGE_CHECKSUM_ADVICE = ("the mirrors serve a different file than the checksums expect; "
                        "is your Sage tree up to date?")
URL_CHECKSUM_ADVICE = ("the server sent a different file than --sha256/--sha1/--size "
                       "expect; check those values and the URL")
# After a ranking probe in which no mirror answered (the verdict comes first).
UNREACHABLE_HINT = ("check the network, DNS or proxy (http_proxy/https_proxy); a probe in which "
                    "no mirror answered is believed for 2 minutes; SAGE_SERVER or --mirror URL "
                    "are tried regardless")


def failure_error(attempts, target_name, announced=0, checksum_advice=SAGE_CHECKSUM_ADVICE,
                  verdict=None):
    """The final SagedlError of a download, from its (source_label,
    SourceFailure) attempts: the one place that decides its message, hint
    and exit code.

    * no source at all, or every source answered 404/410 -> not found (3);
    * every source that had the file served bytes its checksum or size
      rejects, the others answered 404/410 -> checksum (4): the file exists,
      its bytes are wrong, so the checksums (or the mirrors) are to check;
    * every source failed at the network level, or its redirects led
      nowhere (a loop, a foreign scheme) -> network (5);
    * anything else, a checksum failure beside a network failure among
      them -> failure (1): the source that did not answer may have had it.

    ``announced``: how many attempts were already shown, reason and all, as
    "X failed: ...; trying Y" notes; the message lists the others and refers
    to those, so each failure is said once.  ``checksum_advice``: what to
    check after wrong bytes (the Sage tree, or a user's --sha256).
    ``verdict``: the ranking probe's sentence when no mirror answered, the
    hint of a network failure.
    """
    failed = Failed(target_name, attempts, announced)
    if not attempts:
        return NotFoundError("%s: no source to download from" % target_name,
                             hint="give a URL, --mirror URL, or run inside a Sage tree",
                             failed=failed)
    kinds = set(f.kind for _, f in attempts)
    listed = "; ".join("%s: %s" % (label, f) for label, f in attempts[announced:])
    summary = "could not download %s: %s" % (target_name, listed)
    if announced:
        summary += " (and %s above)" % ("the failure" if announced == 1
                                        else "the %d failures" % announced)
    if kinds == set([SourceFailure.KIND_NOT_FOUND]):
        return NotFoundError(summary, failed=failed)
    if SourceFailure.KIND_CHECKSUM in kinds:
        detail = next((f.detail for _, f in attempts
                       if f.kind == SourceFailure.KIND_CHECKSUM and f.detail), None)
        hint = (detail + "; " if detail else "") + checksum_advice
        if kinds <= set([SourceFailure.KIND_CHECKSUM, SourceFailure.KIND_NOT_FOUND]):
            return ChecksumError(summary, hint=hint, failed=failed)
        return SagedlError(summary, hint=hint, failed=failed)
    if kinds <= set([SourceFailure.KIND_NETWORK, SourceFailure.KIND_TRANSIENT,
                     SourceFailure.KIND_REDIRECT]):
        if verdict is not None:
            return NetworkError(summary, hint="%s; %s" % (verdict, UNREACHABLE_HINT),
                                failed=failed)
        return NetworkError(summary, hint=network_hint([f for _, f in attempts]), failed=failed)
    return SagedlError(summary, failed=failed)


def explain(error, checksum_advice=SAGE_CHECKSUM_ADVICE, verdict=None):
    """A download's error made again with what its caller knows (whose
    checksum failed, the probe's verdict); any other error unchanged."""
    if error.failed is None:
        return error
    f = error.failed
    return failure_error(f.attempts, f.name, f.announced, checksum_advice, verdict)


# Network failures by cause, each with the advice that fits it: a DNS
# failure is not cured by a longer --timeout, nor a 503 by a proxy setting.
_DNS_ADVICE = ("a host name did not resolve: check the URL or mirror, and this machine's "
               "DNS and network (is it offline?)")
_TIMEOUT_ADVICE = ("the server did not answer in time; --timeout S waits longer, "
                   "--low-speed-limit/--low-speed-time tolerate a slow one")
CAUSE_ADVICE = {
    CAUSE_DNS_TIMEOUT: _DNS_ADVICE,
    CAUSE_DNS_FAILED: _DNS_ADVICE,
    CAUSE_BUSY: "the server is busy or in maintenance (it answered 503/429/408): try again "
                "later, or another mirror with --mirror URL",
    CAUSE_REFUSED: "nothing accepts connections there: check the host and port of the URL "
                   "or mirror",
    CAUSE_CONNECT_TIMEOUT: _TIMEOUT_ADVICE,
    CAUSE_SILENT: _TIMEOUT_ADVICE,
    CAUSE_SLOW: _TIMEOUT_ADVICE,
    CAUSE_REDIRECT: "the server redirects in a loop, or somewhere sagedl does not follow "
                    "(another scheme, https to http without a checksum): check the URL, or "
                    "use another mirror",
}
GENERIC_NETWORK_HINT = "check your network and proxy settings (http_proxy, https_proxy)"


def network_hint(failures):
    """The hint for a NetworkError: a failure's own hint when every failure
    gives the same one (a TLS problem names the CA option), else the advice
    for the cause every failure shares, else the generic one."""
    hints = set(f.hint for f in failures)
    if len(hints) == 1 and None not in hints:
        return hints.pop()
    advice = set(CAUSE_ADVICE.get(f.cause) for f in failures)
    if len(advice) == 1 and None not in advice:
        return advice.pop()
    return GENERIC_NETWORK_HINT


def report(stderr, e, debug, prog="sagedl"):
    """Print a SagedlError the one way: ``sagedl: error: ...`` and an optional
    ``sagedl: hint: ...``; the traceback only with --debug.  The message is
    joined to the ASCII prefix, never formatted with %s: on 2.7 str() of an
    error with a unicode message raises for a non-ASCII name."""
    if debug:
        import traceback
        traceback.print_exc(file=stderr)
    stderr.write(prog + ": error: " + e.message + "\n")
    if e.hint:
        stderr.write(prog + ": hint: " + e.hint + "\n")
    stderr.flush()
