"""Test helper: a broken network on demand, and the dead hosts that live in it.

The cases of a broken network (offline, DNS that never answers, mirrors
whose connect hangs or that never answer) cannot be provoked on the host's own network
without risking real traffic, so each test makes a network namespace of its
own, holding only loopback:

    with netns.offline(dns_hole=True) as net:   # skips when unshare is not permitted
        hole = net.blackhole()                  # connect() to it hangs
        mute = net.mute()                       # connects, never answers
        with FaultServer(files) as good: ...    # a working mirror, started inside
        r = net.run(argv, env)                  # sagedl in a subprocess, in there
        net.syns.count(hole.port)               # connection attempts seen
        net.dns.queries                         # DNS questions that reached the hole

Endless() is a server whose body never ends; it needs no namespace.

How it works.  On Linux a namespace belongs to a thread, not a process: the
calling thread unshares its network namespace (the rest of pytest stays
where it was), brings ``lo`` up, and every thread and process it starts from
then on lives there; on exit it returns with setns().  Name lookups: a
multithreaded process cannot unshare its mount namespace, so ``run`` wraps
the command in ``unshare -m`` with a bind-mounted resolv.conf that names
127.0.0.1, where a UDP socket (DnsHole) counts the questions and answers
none: glibc then waits its full timeouts, as on a broken network.  Without
``dns_hole`` the host's resolv.conf stays, and its server is unreachable from
here: lookups fail at once, as on a laptop with no network at all.

Nothing here can reach beyond loopback: the namespace has no other interface.
CI runs as root; elsewhere the tests skip with the reason unshare gave, and
under CI=true they fail instead, so a CI machine that lost the permission
cannot pass by skipping every broken-network case.

Commands that must run whole in such a namespace (Sage's scripts, an
installed sagedl) go through tools/offline, the same thing as a script:
``require_offline()`` returns its argv prefix.
"""

import ctypes
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OFFLINE_TOOL = os.path.join(REPO, "tools", "offline")
CLONE_NEWNET = 0x40000000
TIMEOUT = 120          # a safety net for a hung child, never a measure of speed

_libc = ctypes.CDLL(None, use_errno=True)
_checked = {}


def unavailable():
    """Why namespaces cannot be used here, or None when they can."""
    if "why" not in _checked:
        why = None
        if not sys.platform.startswith("linux"):
            why = "network namespaces are Linux-only"
        else:
            try:
                p = subprocess.run(["unshare", "-n", "-m", "--", "sh", "-c",
                                    "ip link set lo up && mount --bind /dev/null /dev/null"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
                if p.returncode != 0:
                    why = "unshare -n -m is not permitted here: %s" % (
                        p.stderr.decode("utf-8", "replace").strip() or "exit %d" % p.returncode)
            except (OSError, subprocess.TimeoutExpired) as e:
                why = "cannot run unshare/ip: %s" % e
        _checked["why"] = why
    return _checked["why"]


def cannot(why):
    """Skip with ``why``; under CI=true fail instead (CI runs as root)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("no network namespace: %s -- required when CI=true" % why, pytrace=False)
    pytest.skip(why)


def require_offline(dns_hole=False):
    """The argv prefix that runs a command offline (tools/offline), or skip/fail."""
    why = unavailable()
    if why:
        cannot(why)
    return [OFFLINE_TOOL] + (["--dns-hole"] if dns_hole else [])


class Result(object):
    def __init__(self, code, out, err, seconds):
        self.code = code
        self.out = out
        self.err = err
        self.seconds = seconds

    @property
    def err_lines(self):
        return [l for l in self.err.splitlines() if l.strip()]

    def __repr__(self):
        return "Result(code=%r, %.2fs, out=%r, err=%r)" % (self.code, self.seconds,
                                                           self.out[:300], self.err[-3000:])


class Namespace(object):
    """The calling thread inside a fresh network namespace (see the module docstring)."""

    def __init__(self, dns_hole=False):
        self.dns_hole = dns_hole
        self.dns = None
        self.syns = None
        self._saved = None
        self._conf = None
        self._closers = []
        self._base = {}

    def __enter__(self):
        why = unavailable()
        if why:
            cannot(why)
        self._saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        if _libc.unshare(CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            os.close(self._saved)
            cannot("unshare(CLONE_NEWNET): %s" % os.strerror(e))
        try:
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True, timeout=30)
            self.syns = SynCounter()
            self._closers.append(self.syns.close)
            if self.dns_hole:
                self.dns = DnsHole()
                self._closers.append(self.dns.close)
                fd, self._conf = tempfile.mkstemp(prefix="sagedl-resolv-")
                os.write(fd, b"nameserver 127.0.0.1\n")
                os.close(fd)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for close in reversed(self._closers):
            close()
        self._closers = []
        if self._conf:
            os.unlink(self._conf)
            self._conf = None
        if self._saved is not None:
            if _libc.setns(self._saved, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back to the original network namespace")
            os.close(self._saved)
            self._saved = None

    # -- the dead hosts -----------------------------------------------------
    def blackhole(self):
        return self._made(Blackhole())

    def mute(self):
        return self._made(Mute())

    def _made(self, host):
        self._closers.append(host.close)
        self.syns.settle()
        self._base[host.port] = self.syns.count(host.port)   # the self-check's own SYNs
        return host

    def attempts(self, port=None):
        """Connection attempts sagedl made (to ``port``, or anywhere) so far."""
        self.syns.settle()
        if port is None:
            return self.syns.count() - sum(self._base.values())
        return self.syns.count(port) - self._base.get(port, 0)

    # -- running commands inside --------------------------------------------
    def command(self, argv):
        """argv as run inside: with the DNS hole, under its own mount namespace."""
        if not self.dns_hole:
            return list(argv)
        return (["unshare", "-m", "--", "sh", "-c",
                 'mount --bind "$0" /etc/resolv.conf || exit 99; exec "$@"', self._conf]
                + list(argv))

    def run(self, argv, env, cwd=None, timeout=TIMEOUT):
        start = time.monotonic()
        p = subprocess.run(self.command([str(a) for a in argv]), env=env, cwd=cwd,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        return Result(p.returncode, p.stdout.decode("utf-8", "replace"),
                      p.stderr.decode("utf-8", "replace"), time.monotonic() - start)


def offline(dns_hole=False):
    return Namespace(dns_hole)


class _Receiver(object):
    """A socket read by a daemon thread until close(); each datagram or
    frame goes to ``_handle``.  The short socket timeout only lets the
    thread see close() promptly."""

    def __init__(self, sock):
        self._sock = sock
        sock.settimeout(0.1)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self._sock.recv(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self._handle(data)

    def _handle(self, data):
        raise NotImplementedError

    def close(self):
        self._stop.set()
        self._thread.join(5)
        self._sock.close()


class DnsHole(_Receiver):
    """A resolver on 127.0.0.1:53 that counts the questions and answers none."""

    def __init__(self):
        self.queries = 0
        self.names = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 53))
        _Receiver.__init__(self, sock)

    def _handle(self, data):
        self.queries += 1
        self.names.append(_qname(data))


def _qname(packet):
    labels, i = [], 12
    try:
        while packet[i]:
            n = packet[i]
            labels.append(packet[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
    except IndexError:
        pass
    return ".".join(labels)


SETTLE_MARK = b"netns-settle:"
SETTLE_TIMEOUT = 10.0


class SynCounter(_Receiver):
    """Counts TCP connection attempts inside the namespace: distinct
    (source, destination) pairs of SYN packets seen on lo, so a SYN the
    kernel retransmits to a blackhole still counts as one attempt."""

    def __init__(self):
        self._attempts = set()
        self._marks = set()
        self._cond = threading.Condition()
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        sock.bind(("lo", 0))
        _Receiver.__init__(self, sock)

    def _handle(self, frame):
        ip = frame[14:]              # lo frames carry an all-zero Ethernet header
        if len(ip) < 28 or ip[0] >> 4 != 4:
            return
        ihl = (ip[0] & 15) * 4
        if ip[9] == 17:                                # UDP: settle()'s marker?
            payload = ip[ihl + 8:]
            if payload.startswith(SETTLE_MARK):
                with self._cond:
                    self._marks.add(payload[len(SETTLE_MARK):])
                    self._cond.notify_all()
            return
        if len(ip) < 40 or ip[9] != 6:
            return
        tcp = ip[ihl:]
        sport, dport = struct.unpack("!HH", tcp[:4])
        flags = tcp[13]
        if flags & 0x02 and not flags & 0x10:      # SYN without ACK: a new attempt
            with self._cond:
                self._attempts.add((ip[12:16], sport, ip[16:20], dport))

    def settle(self):
        """Return once the sniffer has seen everything already sent on lo:
        lo delivers in order, so a marker datagram sent now and seen by the
        sniffer comes after every packet before it."""
        token = os.urandom(8).hex().encode("ascii")
        marker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            marker.sendto(SETTLE_MARK + token, ("127.0.0.1", 9))
        finally:
            marker.close()
        with self._cond:
            if not self._cond.wait_for(lambda: token in self._marks, SETTLE_TIMEOUT):
                raise AssertionError("the SYN counter did not see its marker within %ss"
                                     % SETTLE_TIMEOUT)
            self._marks.discard(token)

    def count(self, port=None):
        with self._cond:
            return len([a for a in self._attempts if port is None or a[3] == port])


class Blackhole(object):
    """A loopback port whose connect() hangs: a listener with backlog 0 whose
    one queue slot is taken, so the kernel drops every further SYN (a
    firewall's DROP, seen from the client).  Checked when made."""

    def __init__(self):
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)
        self.port = self._listener.getsockname()[1]
        self.url = "http://127.0.0.1:%d/" % self.port
        self._fillers = []
        for _ in range(2):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            self._fillers.append(s)
        check = socket.socket()
        check.settimeout(0.5)
        try:
            check.connect(("127.0.0.1", self.port))
            raise AssertionError("the blackhole at port %d accepted a connection" % self.port)
        except socket.timeout:
            pass
        finally:
            check.close()

    def close(self):
        for s in self._fillers:
            s.close()
        self._listener.close()


class Mute(object):
    """A loopback port that completes the TCP handshake (the kernel does, from
    the backlog) and never reads or answers: a hung server."""

    def __init__(self):
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self.url = "http://127.0.0.1:%d/" % self.port

    def close(self):
        self._listener.close()


class Endless(object):
    """Answers every request with 200, no Content-Length, and zero bytes
    until the client hangs up: a body with no end and no stated size."""

    def __init__(self):
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self.port = self._listener.getsockname()[1]
        self.url = "http://127.0.0.1:%d/" % self.port
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            try:
                conn.settimeout(10)
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Connection: close\r\n\r\n")
                block = b"\0" * 65536
                while not self._stop.is_set():
                    conn.sendall(block)
            except OSError:
                pass
            finally:
                conn.close()

    def close(self):
        self._stop.set()
        self._listener.close()
        self._thread.join(10)
