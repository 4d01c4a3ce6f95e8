"""bench/hostmem.py: the bench reads the VM's free page reporting and
changes nothing; its only action is an unprivileged page-cache warm-up.
Run against a fake parameters dir and buddyinfo in a temp dir."""

import os
import sys

import pytest

from helpers import REPO

sys.path.insert(0, os.path.join(REPO, "bench"))
import hostmem  # noqa: E402

pytestmark = pytest.mark.timeout(30)

# Orders 0..10, as on this project's machine: the largest order is 10.
BUDDYINFO = ("Node 0, zone      DMA      0      0      0      0      0      0      0      0      1      0      0\n"
             "Node 0, zone   Normal   1215    683    301     95     39     12      6      3      2      1   5120\n")


@pytest.fixture
def fake(tmp_path, monkeypatch):
    params = tmp_path / "parameters"
    params.mkdir()
    order = params / "page_reporting_order"
    order.write_text("9\n")
    (params / "reported_kib").write_text("1234\n")
    buddy = tmp_path / "buddyinfo"
    buddy.write_text(BUDDYINFO)
    monkeypatch.setattr(hostmem, "PARAMS", str(params))
    monkeypatch.setattr(hostmem, "BUDDYINFO", str(buddy))
    return order


@pytest.mark.parametrize("value, said", [
    ("9", "page reporting ACTIVE (order 9)"),
    ("10", "page reporting ACTIVE (order 10)"),     # the largest order still reports
    ("11", "page reporting off (order 11)"),
    ("nine", "page reporting: unreadable ("),
])
def test_state_is_read_and_nothing_is_written(fake, value, said):
    fake.write_text(value + "\n")
    # Root ignores file modes: the bytes and the time stamp tell a write.
    before = (fake.read_bytes(), os.stat(str(fake)).st_mtime_ns)
    assert hostmem.state().startswith(said)
    assert (fake.read_bytes(), os.stat(str(fake)).st_mtime_ns) == before


def test_no_page_reporting(tmp_path, monkeypatch):
    monkeypatch.setattr(hostmem, "PARAMS", str(tmp_path / "absent"))
    assert hostmem.state() == "no page reporting here"
    assert hostmem.reported_kib() is None


def test_reported_kib(fake):
    assert hostmem.reported_kib() == 1234


def test_warm_up_goes_through_the_page_cache_and_leaves_nothing(tmp_path, monkeypatch):
    written = []
    write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: written.append(write(fd, data)) or written[-1])
    hostmem.warm_page_cache(str(tmp_path), 3 << 20)
    assert sum(written) == 3 << 20
    assert os.listdir(str(tmp_path)) == []


def test_the_bench_has_no_way_to_change_a_setting():
    """No writer into /sys or /proc/sys in any bench script."""
    for name in sorted(os.listdir(os.path.join(REPO, "bench"))):
        if name.endswith(".py"):
            with open(os.path.join(REPO, "bench", name)) as f:
                text = f.read()
            assert "_write(" not in text and "/proc/sys" not in text, name
            for line in text.splitlines():
                if "/sys/" in line:
                    assert '"w"' not in line and "'w'" not in line, (name, line)
