"""sagedl/engine/fsutil.py: each primitive refuses what it must, on 3.x in-process
and on 2.7 and PyPy3 through the same checks run as a script.

Device nodes are made with mknod in the test's temp dir (root), never /dev.
"""

import os
import stat
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO
from pyz import require_interpreter

# The checks, as a script every interpreter runs (2.7 syntax).  Each prints
# nothing and raises on a failed check; the last line says OK.
CHECKS = textwrap.dedent(r'''
    import errno, os, stat, sys
    sys.path.insert(0, REPO)
    from sagedl import text
    from sagedl.engine import fsutil
    from sagedl.errors import DiskError

    d = TMP
    def p(*names):
        return os.path.join(d, *names)

    def raises(cls, fn, *a, **k):
        try:
            fn(*a, **k)
        except cls as e:
            return e
        raise AssertionError("%s did not raise %s" % (fn.__name__, cls.__name__))

    victim = p("victim")
    with open(victim, "wb") as f:
        f.write(b"precious")
    os.symlink(victim, p("link"))
    os.mkfifo(p("fifo"))
    os.mknod(p("null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(p("zero"), stat.S_IFCHR | 0o666, os.makedev(1, 5))
    os.mkdir(p("dir"))

    # kinds
    assert fsutil.kind(p("link")) == "symlink" and fsutil.kind(p("link"), follow=True) == "file"
    assert fsutil.kind(p("fifo")) == "fifo" and fsutil.kind(p("null")) == "char-device"
    assert fsutil.kind(p("absent")) is None and fsutil.kind(p("victim", "x")) is None

    # create_exclusive never writes through a planted name
    e = raises(fsutil.UnsafePath, fsutil.create_exclusive, p("link"))
    assert "symbolic link" in str(e), e
    raises(OSError, fsutil.create_exclusive, p("victim"))
    fd = fsutil.create_exclusive(p("new"), 0o600)
    os.close(fd)
    assert stat.S_IMODE(os.stat(p("new")).st_mode) == 0o600

    # open_regular: no symlink, no blocking FIFO, no device
    for name in ("link", "fifo", "null", "dir"):
        raises(fsutil.UnsafePath, fsutil.open_regular, p(name), os.O_RDONLY)
    raises(fsutil.UnsafePath, fsutil.open_regular, p("link"), os.O_RDWR | os.O_CREAT)
    fd = fsutil.open_regular(p("victim"), os.O_RDONLY)
    assert os.read(fd, 100) == b"precious"
    os.close(fd)

    # read_bounded: bounded, regular only (/dev/zero would never end)
    assert fsutil.read_bounded(p("victim"), 8) == b"precious"
    raises(fsutil.TooLarge, fsutil.read_bounded, p("victim"), 7)
    for name in ("zero", "fifo", "link"):
        raises(fsutil.UnsafePath, fsutil.read_bounded, p(name), 100)

    # write_atomic: refuses special final names, leaves no temp file, mode
    for name in ("link", "fifo", "null", "dir"):
        raises(fsutil.UnsafePath, fsutil.write_atomic, p(name), b"x")
    fsutil.write_atomic(p("meta.json"), b"{}", mode=0o600)
    fsutil.write_atomic(p("meta.json"), b"{1}", mode=0o600)
    with open(p("meta.json"), "rb") as f:
        assert f.read() == b"{1}"
    assert stat.S_IMODE(os.stat(p("meta.json")).st_mode) == 0o600
    assert not [n for n in os.listdir(d) if n.endswith(".tmp")], os.listdir(d)
    with open(victim, "rb") as f:
        assert f.read() == b"precious"
    assert fsutil.kind(p("null")) == "char-device" and fsutil.kind(p("link")) == "symlink"

    # place: a copy or a link, never onto a symlink or device
    fsutil.place(victim, p("copy"), link=False)
    fsutil.place(victim, p("hard"), link=True)
    assert os.stat(p("hard")).st_ino == os.stat(victim).st_ino
    assert os.stat(p("copy")).st_ino != os.stat(victim).st_ino
    for name in ("link", "null", "fifo"):
        raises(fsutil.UnsafePath, fsutil.place, p("copy"), p(name))
    raises(fsutil.UnsafePath, fsutil.place, p("fifo"), p("copy2"), link=False)
    assert fsutil.read_bounded(p("link"), 100, follow=True) == b"precious"
    raises(fsutil.UnsafePath, fsutil.read_bounded, p("fifo"), 100, follow=True)

    # stream destinations: devices and FIFOs (through symlinks) stream;
    # a socket, a block device, a dangling link are refused
    os.symlink(p("null"), p("null-link"))
    assert fsutil.stream_destination(p("null")) == "stream"
    assert fsutil.stream_destination(p("null-link")) == "stream"
    assert fsutil.stream_destination(p("fifo")) == "stream"
    assert fsutil.stream_destination(p("victim")) is None
    assert fsutil.stream_destination(p("absent")) is None
    assert fsutil.stream_destination(p("link")) is None     # the engine refuses to replace it
    os.symlink(p("nowhere"), p("dangling"))
    raises(fsutil.UnsafePath, fsutil.stream_destination, p("dangling"))
    os.mknod(p("blk"), stat.S_IFBLK | 0o600, os.makedev(7, 200))
    raises(fsutil.UnsafePath, fsutil.stream_destination, p("blk"))

    # names: UTF-8 metadata names become paths the OS takes, and back
    name = text.native_name(u"pkg-\u00e9t\u00e9.tar.gz")
    fd = fsutil.create_exclusive(os.path.join(d, name))
    os.close(fd)
    expect = u"pkg-\u00e9t\u00e9.tar.gz"
    assert text.text_name(name) == (expect.encode("utf-8") if sys.version_info[0] == 2 else expect)
    listed = [n for n in os.listdir(d) if n.startswith("pkg-")]
    assert listed == [name], (listed, name)
    print("OK")
''')


def run_checks(python, tmp_path):
    script = "REPO = %r\nTMP = %r\n" % (REPO, str(tmp_path)) + CHECKS
    p = subprocess.run([python, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60, env={"PATH": os.environ["PATH"], "LANG": "C"})
    assert p.returncode == 0 and p.stdout.strip() == b"OK", p.stderr.decode("utf-8", "replace")


@pytest.mark.parametrize("label", ["3.x", "2.7", "3.6", "pypy3"])
def test_fsutil_checks(label, tmp_path):
    python = sys.executable if label == "3.x" else require_interpreter(label)
    run_checks(python, tmp_path)


def test_safe_stream_survives_an_ascii_locale():
    """3.6 in a C locale has an ASCII stdout: text it cannot encode goes out
    as UTF-8, a path keeps its bytes; nothing raises."""
    import io
    from sagedl.engine.fsutil import SafeStream
    raw = io.BytesIO()
    text = io.TextIOWrapper(raw, encoding="ascii", errors="strict")
    s = SafeStream(text)
    s.write(u"Universit\u00e9\n")
    s.write(os.fsdecode(b"/tmp/caf\xc3\xa9\n"))
    s.write(u"plain\n")
    s.flush()
    assert raw.getvalue() == b"Universit\xc3\xa9\n/tmp/caf\xc3\xa9\nplain\n"


def test_an_interrupted_atomic_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    """Ctrl-C between creating the temporary file and renaming it (a bulk
    run's worker threads stop wherever they are)."""
    from sagedl.engine import fsutil

    def interrupted(src, dst):
        raise KeyboardInterrupt()
    monkeypatch.setattr(fsutil, "compat_replace", interrupted)
    src = tmp_path / "src"
    src.write_bytes(b"data")
    for call in (lambda: fsutil.write_atomic(str(tmp_path / "meta.json"), b"{}"),
                 lambda: fsutil.place(str(src), str(tmp_path / "copy"), link=False)):
        with pytest.raises(KeyboardInterrupt):
            call()
        assert sorted(os.listdir(str(tmp_path))) == ["src"]


def test_short_writes_are_continued(tmp_path, monkeypatch):
    """write(2) may write less than asked (a disk filling up, a signal):
    the metadata writer and the copy of a cached file go on until every
    byte is written (fsutil.write_all, which the pipeline uses too)."""
    from sagedl.engine import fsutil
    write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: write(fd, memoryview(data)[:7]))
    data = bytes(bytearray(range(256))) * 40
    fsutil.write_atomic(str(tmp_path / "meta.json"), data)
    assert (tmp_path / "meta.json").read_bytes() == data
    fsutil.place(str(tmp_path / "meta.json"), str(tmp_path / "copy"), link=False)
    assert (tmp_path / "copy").read_bytes() == data
