"""The bulk display on a real terminal: the pyz runs on a pty (the standard
library's), stdout and stderr both on it, as a user's `sagedl download`.

What the user sees is rebuilt from the bytes (a tiny terminal: '\\r' goes
to column 0, '\\n' to the next line, text overwrites) and asserted as text
screenshots.  Durations and rates vary between runs: the screenshots show
them as M:SS and R/s.
"""
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios

import pytest

from faultserver import FaultServer
from helpers import Tree, clean_env, interruptible, make_data
from pyz import interpreter_params, pyz_path, require_interpreter

TIMEOUT = 120


class Terminal(object):
    """A pty of ``columns`` columns running one command; ``read_until``
    collects what it shows."""

    def __init__(self, argv, env, columns):
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        env = dict(env)
        env.pop("COLUMNS", None)          # the width comes from the terminal itself
        try:
            self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                         preexec_fn=interruptible)
        finally:
            os.close(slave)
        self.raw = b""

    def read_until(self, predicate=None):
        """Read until predicate(raw text) holds, or the command closed the terminal."""
        while predicate is None or not predicate(self.raw.decode("utf-8", "replace")):
            ready, _, _ = select.select([self.master], [], [], TIMEOUT)
            if not ready:
                self.proc.kill()
                raise AssertionError("terminal silent for %ss; so far: %r" % (TIMEOUT, self.raw))
            try:
                chunk = os.read(self.master, 65536)
            except OSError:   # EIO: every writer has closed the terminal
                chunk = b""
            if not chunk:
                if predicate is not None:
                    raise AssertionError("ended before the expected output: %r" % self.raw)
                break
            self.raw += chunk
        return self.raw.decode("utf-8", "replace")

    def finish(self):
        self.read_until()
        code = self.proc.wait(TIMEOUT)
        os.close(self.master)
        return code


def screen(raw):
    """The lines a terminal shows after ``raw``, right-stripped."""
    lines, row, col = [[]], 0, 0
    for ch in raw:
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
            col = 0
            if row == len(lines):
                lines.append([])
        else:
            line = lines[row]
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
    return ["".join(l).rstrip() for l in lines if "".join(l).strip()]


def paints(raw):
    """Every state of the redrawn aggregate line ('3/4 files, ...'): the
    text between two '\\r' or '\\n'."""
    return [p for p in re.split(r"[\r\n]+", raw) if re.match(r"\d+/\d+ files", p)]


def normalise(lines, root):
    out = []
    for line in lines:
        line = line.replace(str(root), "ROOT")
        line = re.sub(r"\d+:\d\d(:\d\d)?", "M:SS", line)
        line = re.sub(r"[\d.]+ (B|KiB|MiB|GiB)/s|-- B/s", "R/s", line)
        out.append(line)
    return out


@pytest.fixture
def tree(tmp_path):
    t = Tree(tmp_path / "sage")
    t.names = [t.add("p%d" % i, "1.%d" % i, "p%d-VERSION.tar.gz" % i, make_data(200000, 70 + i))
               for i in range(4)]
    return t


def start(python, tree, mirror, columns, *extra):
    env = clean_env(tree.root.parent, SAGE_ROOT=str(tree.root), SAGEDL_MIRRORS=mirror)
    return Terminal([python, pyz_path(), "download", ":all:", "--jobs", "2"] + list(extra),
                    env, columns)


def test_bulk_display_at_40_columns(tree, tmp_path):
    with FaultServer(tree.files) as s:
        term = start(sys.executable, tree, s.url + "/ok/", 40)
        assert term.finish() == 0
    raw = term.raw.decode("utf-8")
    root = tree.root / "upstream"
    # Paths (stdout) each on a line of their own, never glued onto the
    # aggregate line; the last line says total, percentage and time.
    assert normalise(screen(raw), root) == [
        "ROOT/p0-1.0.tar.gz",
        "ROOT/p1-1.1.tar.gz",
        "ROOT/p2-1.2.tar.gz",
        "ROOT/p3-1.3.tar.gz",
        "4/4 files, 100%, in M:SS",
        "4 fetched (781.2 KiB), 0 already present, 0 failed in M:SS",
        "sagedl: saved to ROOT/",
    ]
    # No state of the line was wider than 39 columns, and none had a
    # figure cut short: each comma-separated field is whole.
    for p in paints(raw):
        assert len(p.rstrip()) <= 39, p
    field = re.compile(r"^(\d+/\d+ files|\d+/\d+|[\d.]+(/~?[\d.]+)? (B|KiB|MiB)( \d+%)?|\d+%|"
                       r"[\d.]+ (B|KiB|MiB)/s|-- B/s|ETA \S+|in \S+|\d+ failed|interrupted)$")
    for p in paints(raw):
        if p.startswith(("0/", "1/", "2/", "3/", "4/")):
            for part in p.strip().split(", "):
                assert field.match(part), (part, p)


def test_bulk_display_at_80_columns_shows_bytes_rate_and_eta(tree, tmp_path):
    with FaultServer(tree.files) as s:
        term = start(sys.executable, tree, s.url + "/trickle-400000/", 80)
        term.read_until(lambda text: "ETA" in text)
        s.release()
        assert term.finish() == 0
    raw = term.raw.decode("utf-8")
    with_eta = [p for p in paints(raw) if "ETA" in p]
    # Before every size is known the total is an estimate, marked '~'.
    assert re.match(r"^\d/4 files, [\d.]+/~?[\d.]+ KiB \d+%, [\d.]+ (KiB|MiB)/s, ETA \d+:\d\d$",
                    with_eta[0].strip()), with_eta
    assert normalise(screen(raw), tree.root / "upstream")[-3:] == [
        "4/4 files, 781.2/781.2 KiB 100%, R/s, in M:SS",
        "4 fetched (781.2 KiB), 0 already present, 0 failed in M:SS",
        "sagedl: saved to ROOT/",
    ]


@pytest.mark.parametrize("label", interpreter_params(("2.7", "3.13", "pypy3")))
def test_ctrl_c_says_interrupted_and_leaves_no_lock(label, tree, tmp_path):
    python = require_interpreter(label)
    with FaultServer(tree.files) as s:
        term = start(python, tree, s.url + "/trickle-50000/", 40)
        term.read_until(lambda text: "%" in text)
        term.proc.send_signal(signal.SIGINT)
        code = term.finish()
    assert code == 130
    shown = normalise(screen(term.raw.decode("utf-8")), tree.root / "upstream")
    assert re.match(r"^0/4 files, \d+%, interrupted$", shown[-2]), shown
    assert shown[-1] == ("sagedl: error: interrupted; the partial download is kept and "
                         "the next run resumes it")
    assert not any("failed" in line for line in shown), shown
    left = os.listdir(str(tree.root / "upstream"))
    assert left and not [n for n in left if n.endswith(".lock")], left
    # ... and the next run resumes and finishes.
    with FaultServer(tree.files) as s:
        term = start(python, tree, s.url + "/ok/", 80)
        assert term.finish() == 0
    assert sorted(os.listdir(str(tree.root / "upstream"))) == sorted(tree.names)


def test_2_7_reads_the_real_terminal_width(tree):
    python = require_interpreter("2.7")
    with FaultServer(tree.files) as s:
        term = start(python, tree, s.url + "/ok/", 40)
        assert term.finish() == 0
    raw = term.raw.decode("utf-8")
    assert all(len(p.rstrip()) <= 39 for p in paints(raw)), paints(raw)
    assert "4/4 files, 100%, in " in raw      # 80 columns would have shown bytes and rate


def test_two_packages_sharing_a_tarball_do_not_wait_for_each_other(tmp_path):
    tree = Tree(tmp_path / "sage")
    data = make_data(100000, 80)
    shared = tree.add("twin_a", "2.0", "twin-VERSION.tar.gz", data)
    assert tree.add("twin_b", "2.0", "twin-VERSION.tar.gz", data) == shared
    with FaultServer(tree.files) as s:
        term = start(sys.executable, tree, s.url + "/ok/", 80, "--lock-timeout", "30")
        assert term.finish() == 0
        assert s.full_gets(shared) == 1
    shown = normalise(screen(term.raw.decode("utf-8")), tree.root / "upstream")
    assert not any("waiting for another sagedl" in line for line in shown), shown
    assert shown[:2] == ["ROOT/twin-2.0.tar.gz", "ROOT/twin-2.0.tar.gz"]
    assert shown[-2:] == ["1 fetched (97.7 KiB), 0 already present, 0 failed in M:SS",
                          "sagedl: saved to ROOT/"]


def test_temporary_files_an_interrupted_run_left_are_removed_by_the_next(tree, tmp_path):
    """Ctrl-C ends the worker threads wherever they are, possibly between
    creating NAME.part.json's temporary file and renaming it (seen on PyPy3).
    The next run, holding NAME's lock, removes those -- and nothing else."""
    up = tree.root / "upstream"
    up.mkdir()
    name = tree.names[0]
    stale = [".%s.part.json.0123456789ab.tmp" % name, ".%s.part.0123456789ab.tmp" % name,
             ".%s.ba9876543210.tmp" % name]
    for n in stale:
        (up / n).write_bytes(b"half")
    keep = [".other-1.0.tar.gz.part.json.0123456789ab.tmp", ".%s.part.json.notours.tmp" % name]
    for n in keep:
        (up / n).write_bytes(b"not ours")
    (tmp_path / "target").write_bytes(b"elsewhere")
    link = ".%s.part.json.aaaaaaaaaaaa.tmp" % name
    os.symlink(str(tmp_path / "target"), str(up / link))
    with FaultServer(tree.files) as s:
        term = start(sys.executable, tree, s.url + "/ok/", 80)
        assert term.finish() == 0
    assert sorted(os.listdir(str(up))) == sorted(tree.names + keep + [link])
    assert (tmp_path / "target").read_bytes() == b"elsewhere"
