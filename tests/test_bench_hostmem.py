"""bench/hostmem.py: the bench holds the VM's free page reporting off while
it measures and always puts the old setting back.  Run against a fake
parameters dir and buddyinfo in a temp dir, never the real /sys."""

import os
import re
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
    (params / "page_reporting_order").write_text("9\n")
    (params / "reported_kib").write_text("1234\n")
    buddy = tmp_path / "buddyinfo"
    buddy.write_text(BUDDYINFO)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.setattr(hostmem, "PARAMS", str(params))
    monkeypatch.setattr(hostmem, "BUDDYINFO", str(buddy))
    return params / "page_reporting_order", work


def test_held_above_the_largest_order_then_restored(fake, monkeypatch):
    order, work = fake
    written = []
    write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: written.append(write(fd, data)) or written[-1])
    with hostmem.HoldPageReporting(str(work), 3 << 20) as hold:
        assert order.read_text().strip() == "11"
        assert "held off (order 9 -> 11)" in hold.state
        # The warm-up went through the page cache, and its file is gone.
        assert sum(written) == 3 << 20
        assert os.listdir(str(work)) == []
    assert order.read_text().strip() == "9"


def test_restored_after_an_error(fake):
    order, work = fake
    with pytest.raises(KeyboardInterrupt):
        with hostmem.HoldPageReporting(str(work), 1 << 20):
            raise KeyboardInterrupt
    assert order.read_text().strip() == "9"


def test_left_alone_when_asked(fake):
    order, work = fake
    with hostmem.HoldPageReporting(str(work), 1 << 20, enabled=False) as hold:
        assert order.read_text().strip() == "9"
    assert "ACTIVE (order 9)" in hold.state
    assert order.read_text().strip() == "9"


@pytest.mark.parametrize("value, state", [
    ("11", r"page reporting off \(order 11\)$"),      # already above the largest order
    ("nine", r"page reporting: unreadable \("),        # not a number
])
def test_left_alone(fake, value, state):
    order, work = fake
    order.write_text(value + "\n")
    with hostmem.HoldPageReporting(str(work), 1 << 20) as hold:
        pass
    assert re.match(state, hold.state), hold.state
    assert order.read_text().strip() == value


def test_no_page_reporting(fake, monkeypatch, tmp_path):
    order, work = fake
    monkeypatch.setattr(hostmem, "PARAMS", str(tmp_path / "absent"))
    with hostmem.HoldPageReporting(str(work), 1 << 20) as hold:
        pass
    assert hold.state == "no page reporting here"
    assert hostmem.reported_kib() is None


def test_reported_kib(fake):
    assert hostmem.reported_kib() == 1234


def test_restored_when_the_warm_up_fails(fake, monkeypatch):
    """A with statement whose __enter__ raises never calls __exit__: a
    warm-up that fails (a full disk) must put the order back itself."""
    order, work = fake
    monkeypatch.setattr(hostmem, "_warm_page_cache", lambda d, n: os.listdir("/nonexistent/dir"))
    with pytest.raises(OSError):
        with hostmem.HoldPageReporting(str(work), 1 << 20):
            pass
    assert order.read_text().strip() == "9"
