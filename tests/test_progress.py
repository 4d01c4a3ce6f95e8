"""Progress display: deterministic, with a fake clock and in-memory streams."""

import io
import re
import threading

import pytest
from hypothesis import given, strategies as st

from sagedl.ui import aggregate, progress
from sagedl.ui.aggregate import AggregateProgress
from sagedl.ui.progress import make_progress, terminal_width
from sagedl.ui.progresstext import (RateMeter, format_aggregate_line, format_bar_line, human_bytes,
                                    human_bytes_pair, human_duration, human_rate, truncate_middle)

MiB = 1024 * 1024


class FakeClock(object):
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t

    def advance(self, seconds):
        self.t += seconds


class TTY(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock():
    return FakeClock()


def paints(text):
    """The successive states of a '\\r'-redrawn line, without padding."""
    return [p.rstrip(" \n") for p in text.split("\r") if p.strip(" \n")]


def bar(clock, width=100, stream=None):
    stream = stream if stream is not None else io.StringIO()
    return stream, make_progress("bar", stream, clock=clock, width=width)


# -- pure helpers ----------------------------------------------------------

@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (12.3 * MiB, "12.3 MiB"), (MiB - 1, "1.0 MiB"), (5 * 1024 * MiB, "5.0 GiB"),
    (3 * 1024 ** 4, "3.0 TiB"), (-5, "0 B"),
])
def test_human_bytes(n, text):
    assert human_bytes(n) == text


def test_human_bytes_pair_uses_the_unit_of_the_total():
    assert human_bytes_pair(6.2 * MiB, 12.3 * MiB) == "6.2/12.3 MiB"
    assert human_bytes_pair(512 * 1024, 2 * 1024 * MiB) == "0.0/2.0 GiB"
    assert human_bytes_pair(10, 1000) == "10/1000 B"


def test_human_rate():
    assert human_rate(2.5 * MiB) == "2.5 MiB/s"
    assert human_rate(0) == "0 B/s"
    assert human_rate(None) == "-- B/s"


@pytest.mark.parametrize("seconds, text", [
    (0, "0:00"), (5, "0:05"), (65, "1:05"), (3725, "1:02:05"), (59.6, "1:00"),
    (None, "--:--"), (float("inf"), "--:--"), (float("nan"), "--:--"), (-3, "0:00"),
])
def test_human_duration(seconds, text):
    assert human_duration(seconds) == text


def test_truncate_middle_keeps_both_ends():
    assert truncate_middle("pari-2.15.4.tar.gz", 12) == "pari-...r.gz"
    assert truncate_middle("short", 12) == "short"
    assert truncate_middle("abcdef", 3) == "abc"


def test_rate_meter_uses_a_sliding_window():
    meter = RateMeter(window=5.0)
    meter.reset(0.0, 0)
    for t in range(1, 11):  # 10 s at 1 MiB/s, then 10 s at 3 MiB/s
        meter.add(float(t), t * MiB)
    for t in range(11, 21):
        meter.add(float(t), 10 * MiB + (t - 10) * 3 * MiB)
    assert meter.rate() == pytest.approx(3 * MiB)


def test_rate_meter_survives_a_clock_going_back():
    meter = RateMeter()
    meter.reset(100.0, 0)
    meter.add(101.0, MiB)
    meter.add(50.0, 2 * MiB)  # time.time on 2.7 after an NTP step
    assert meter.rate() is None
    meter.add(51.0, 3 * MiB)
    assert meter.rate() == pytest.approx(MiB)


@given(name=st.text(min_size=1, max_size=200), done=st.integers(0, 2 ** 40),
       total=st.one_of(st.none(), st.integers(0, 2 ** 40)),
       rate=st.one_of(st.none(), st.floats(0, 2 ** 35)), width=st.integers(1, 300))
def test_bar_line_always_fits_the_width(name, done, total, rate, width):
    line = format_bar_line(name, done, total, rate, "ETA 1:00", width)
    assert len(line) <= max(1, width - 1)


# -- bar -------------------------------------------------------------------

def test_bar_draws_at_most_once_per_quarter_second(clock):
    stream, p = bar(clock)
    started = clock.t
    p.start("pari.tar.gz", 100 * MiB)
    drawn_at_start = stream.getvalue().count("\r")
    for i in range(1, 200):  # 199 blocks within 0.2 s
        clock.advance(0.001)
        p.update(i * 256 * 1024)
    assert stream.getvalue().count("\r") == drawn_at_start
    clock.t = started + 0.25
    p.update(200 * 256 * 1024)
    assert stream.getvalue().count("\r") == drawn_at_start + 1
    assert "50.0/100.0 MiB" in paints(stream.getvalue())[-1]


def test_bar_always_redraws_at_finish(clock):
    stream, p = bar(clock)
    p.start("pari.tar.gz", 10 * MiB)
    clock.advance(0.1)
    p.update(10 * MiB)  # inside the rate-limit window: not drawn
    assert "100%" not in stream.getvalue()
    p.finish(True)
    out = stream.getvalue()
    assert out.endswith("\n")
    last = paints(out)[-1]
    assert "100%" in last and "10.0/10.0 MiB" in last and "in 0:00" in last


def test_bar_fits_width_and_truncates_the_name(clock):
    stream, p = bar(clock, width=60)
    name = "a-really-long-package-name-that-never-fits-1.2.3.tar.gz"
    p.start(name, 10 * MiB)
    for i in range(1, 11):
        clock.advance(1)
        p.update(i * MiB)
    p.finish(True)
    lines = paints(stream.getvalue())
    assert all(len(line) <= 59 for line in lines)
    names = set(line.split()[0] for line in lines)
    assert len(names) == 1
    shown = names.pop()
    assert shown.startswith("a-real") and "..." in shown and shown.endswith("ar.gz")
    assert all("MiB" in line for line in lines)


def test_bar_rate_ignores_the_resumed_offset(clock):
    stream, p = bar(clock)
    p.start("pari.tar.gz", 200 * MiB, offset=100 * MiB)
    for i in range(1, 5):  # 1 MiB/s on top of 100 MiB already on disk
        clock.advance(1)
        p.update(100 * MiB + i * MiB)
    assert "1.0 MiB/s" in paints(stream.getvalue())[-1]
    assert "ETA 1:36" in paints(stream.getvalue())[-1]  # 96 MiB to go
    p.finish(True)
    assert "1.0 MiB/s" in paints(stream.getvalue())[-1]  # the final average too


def test_bar_with_unknown_total_shows_bytes_and_rate_only(clock):
    stream, p = bar(clock)
    p.start("pari.tar.gz", None)
    clock.advance(1)
    p.update(2 * MiB)
    line = paints(stream.getvalue())[-1]
    assert "2.0 MiB" in line and "2.0 MiB/s" in line
    assert "%" not in line and "ETA" not in line and "[" not in line


def test_bar_note_clears_the_line_and_redraws(clock):
    stream, p = bar(clock)
    p.start("pari.tar.gz", 10 * MiB)
    before = stream.getvalue()
    width_on_screen = len(before) - 1  # one '\r' and the line
    p.note("resuming at 12.3 MiB")
    added = stream.getvalue()[len(before):]
    blank = "\r" + " " * width_on_screen + "\r"
    assert added.startswith(blank + "resuming at 12.3 MiB\n\r")
    assert "pari.tar.gz" in added[len(blank):]


def test_bar_shorter_line_overwrites_a_longer_one(clock):
    stream, p = bar(clock)
    p.start("pari.tar.gz", 10 * MiB)
    first = stream.getvalue()
    p.start("x", None)  # failover to a shorter display
    second = stream.getvalue()[len(first):]
    assert len(second) == len(first)  # padded with spaces over the old text


def test_bar_restart_after_failover(clock):
    stream, p = bar(clock)
    p.start("pari.tar.gz", 10 * MiB, source="mirror-a")
    clock.advance(1)
    p.update(4 * MiB)
    p.note("mirror-a failed: timed out; trying mirror-b")
    p.start("pari.tar.gz", 10 * MiB, offset=4 * MiB, source="mirror-b")
    assert "  0.0 MiB/s" not in paints(stream.getvalue())[-1]
    assert "-- B/s" in paints(stream.getvalue())[-1]  # a fresh rate for the new mirror
    clock.advance(1)
    p.update(10 * MiB)
    p.finish(True)
    out = stream.getvalue()
    assert out.count("\n") == 2  # the note and the final newline
    # 4 MiB from mirror-a plus 6 MiB from mirror-b, in 2 s
    assert "5.0 MiB/s" in paints(out)[-1] and "in 0:02" in paints(out)[-1]


def test_bar_failure_and_message(clock):
    stream, p = bar(clock)
    p.start("pari.tar.gz", 10 * MiB)
    p.finish(False, "all mirrors failed")
    out = stream.getvalue()
    assert paints(out)[-1].splitlines()[0].rstrip().endswith("  failed")
    assert out.endswith("\nall mirrors failed\n")


# -- lines -----------------------------------------------------------------

def lines_of(stream):
    return stream.getvalue().splitlines()


def test_lines_start_and_end(clock):
    stream = io.StringIO()
    p = make_progress("lines", stream, clock=clock)
    p.start("pari.tar.gz", int(12.3 * MiB), source="mirrors.mit.edu")
    clock.advance(5)
    p.update(int(12.3 * MiB))
    p.finish(True)
    assert lines_of(stream) == [
        "Downloading pari.tar.gz (12.3 MiB) from mirrors.mit.edu",
        "Downloaded pari.tar.gz: 12.3 MiB in 0:05 (2.5 MiB/s)",
    ]


def test_lines_are_sparse(clock):
    # 100 MiB at 100 KiB/s: 1024 s, one update per 256 KiB block (2.56 s)
    stream = io.StringIO()
    p = make_progress("lines", stream, clock=clock)
    p.start("big.tar.gz", 100 * MiB)
    for block in range(1, 401):
        clock.advance(2.56)
        p.update(block * 256 * 1024)
    p.finish(True)
    out = lines_of(stream)
    assert len(out) == 5  # start, 25 %, 50 %, 75 %, end
    assert [re.search(r": (\d+)%", line).group(1) for line in out[1:4]] == ["25", "50", "75"]
    assert "100.0 KiB/s" in out[2] and "ETA 8:32" in out[2]


def test_lines_small_fast_download_has_no_progress_lines(clock):
    stream = io.StringIO()
    p = make_progress("lines", stream, clock=clock)
    p.start("small.tar.gz", MiB)
    for block in range(1, 5):
        clock.advance(2)
        p.update(block * 256 * 1024)
    p.finish(True)
    assert len(lines_of(stream)) == 2


def test_lines_never_closer_than_the_minimum_gap(clock):
    stream = io.StringIO()
    p = make_progress("lines", stream, clock=clock)
    p.start("pari.tar.gz", 100 * MiB)
    clock.advance(10)
    p.update(90 * MiB)  # 3 marks passed, but only 10 s in
    assert len(lines_of(stream)) == 1
    clock.advance(20)
    p.update(91 * MiB)
    assert len(lines_of(stream)) == 2 and ": 91%" in lines_of(stream)[-1]


def test_lines_heartbeat_for_unknown_size(clock):
    stream = io.StringIO()
    p = make_progress("lines", stream, clock=clock)
    p.start("mystery.tar.gz", None)
    for second in range(1, 601):
        clock.advance(1)
        p.update(second * 1024)
    out = lines_of(stream)
    assert out[0] == "Downloading mystery.tar.gz (size unknown)"
    assert out[1:] == ["mystery.tar.gz: 300.0 KiB, 1.0 KiB/s", "mystery.tar.gz: 600.0 KiB, 1.0 KiB/s"]


def test_lines_failover_and_failure(clock):
    stream = io.StringIO()
    p = make_progress("lines", stream, clock=clock)
    p.start("pari.tar.gz", 10 * MiB, source="a")
    p.note("a failed: 404; trying b")
    p.start("pari.tar.gz", 10 * MiB, source="b")
    clock.advance(3)
    p.update(2 * MiB)
    p.finish(False, "checksum mismatch")
    assert lines_of(stream) == [
        "Downloading pari.tar.gz (10.0 MiB) from a",
        "a failed: 404; trying b",
        "Downloading pari.tar.gz (10.0 MiB) from b",
        "Download of pari.tar.gz failed after 0:03 (2.0 MiB of 10.0 MiB)",
        "checksum mismatch",
    ]


# -- dots (Sage's format) --------------------------------------------------

def dots(clock):
    stream = io.StringIO()
    return stream, make_progress("dots", stream, clock=clock)


def test_dots_match_sages_progress_bar(clock):
    stream, p = dots(clock)
    p.start("pari-2.15.4.tar.gz", 700, source="https://mirror/spkg/upstream/pari/pari-2.15.4.tar.gz")
    header = ("Attempting to download package pari-2.15.4.tar.gz from mirrors\n"
              "https://mirror/spkg/upstream/pari/pari-2.15.4.tar.gz\n")
    assert stream.getvalue() == header + "["
    p.update(0)
    p.update(9)  # 9 * 70 // 700 == 0
    assert stream.getvalue() == header + "["
    p.update(100)
    assert stream.getvalue() == header + "[" + "." * 10
    p.update(355)
    assert stream.getvalue() == header + "[" + "." * 35
    p.update(700)
    p.finish(True)
    assert stream.getvalue() == header + "[" + "." * 70 + "]\n"


def test_dots_fill_the_rest_on_finish(clock):
    stream, p = dots(clock)
    p.start("f", 1000)
    p.update(500)
    p.finish(True)  # Sage's stop(): the missing dots, then ']'
    assert stream.getvalue().splitlines()[-1] == "[" + "." * 70 + "]"


def test_dots_failure_fills_with_x(clock):
    stream, p = dots(clock)
    p.start("f", 1000)
    p.update(300)
    p.finish(False)
    assert stream.getvalue().splitlines()[-1] == "[" + "." * 21 + "x" * 49 + "]"


def test_dots_unknown_size_is_half_then_the_rest(clock):
    stream, p = dots(clock)
    p.start("f", None)
    p.update(0)
    assert stream.getvalue().endswith("[")
    p.update(8192)
    p.update(10 * MiB)
    assert stream.getvalue().endswith("[" + "." * 35)
    p.finish(True)
    assert stream.getvalue().endswith("[" + "." * 70 + "]\n")


def test_dots_failover_closes_with_x_and_holds_notes(clock):
    stream, p = dots(clock)
    p.start("f", 700, source="mirror-a")
    p.update(100)
    p.note("mirror-a failed: reset; trying mirror-b")
    p.start("f", 700, offset=100, source="mirror-b")
    p.update(700)
    p.finish(True)
    assert stream.getvalue() == (
        "Attempting to download package f from mirrors\n"
        "mirror-a\n"
        "[" + "." * 10 + "x" * 60 + "]\n"
        "mirror-a failed: reset; trying mirror-b\n"
        "mirror-b\n"
        "[" + "." * 70 + "]\n")


def test_dots_header_once_even_after_finish_false(clock):
    stream, p = dots(clock)
    p.start("f", 10, source="a")
    p.finish(False)
    p.start("f", 10, source="b")
    p.finish(True)
    assert stream.getvalue().count("Attempting") == 1


# -- none / quiet / selection ----------------------------------------------

def drive(p, clock):
    p.start("pari.tar.gz", 10 * MiB, offset=MiB, source="m")
    p.note("resuming at 1.0 MiB")
    for i in range(2, 11):
        clock.advance(1)
        p.update(i * MiB)
    p.finish(False, "boom")


@pytest.mark.parametrize("mode", ["auto", "bar", "lines", "dots", "none"])
def test_quiet_prints_nothing(mode, clock):
    stream = TTY()
    p = make_progress(mode, stream, quiet=True, clock=clock, width=80)
    drive(p, clock)
    assert stream.getvalue() == ""


def test_none_prints_nothing(clock):
    stream = TTY()
    drive(make_progress("none", stream, clock=clock), clock)
    assert stream.getvalue() == ""


def test_auto_is_a_bar_on_a_terminal_and_lines_elsewhere():
    assert make_progress("auto", TTY(), width=80).mode == "bar"
    assert make_progress("auto", io.StringIO()).mode == "lines"


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError):
        make_progress("fancy", io.StringIO())


def test_terminal_width_from_env_then_default():
    assert terminal_width(io.StringIO(), env={"COLUMNS": "132"}) == 132
    width = terminal_width(io.StringIO(), env={"COLUMNS": "nonsense"})
    assert isinstance(width, int) and width > 0


def test_bar_width_comes_from_env_columns(clock):
    stream = TTY()
    p = make_progress("auto", stream, clock=clock, env={"COLUMNS": "40"})
    p.start("pari-2.15.4.tar.gz", 10 * MiB)
    assert all(len(line) <= 39 for line in paints(stream.getvalue()))


# -- aggregate -------------------------------------------------------------

def test_aggregate_line_format():
    assert format_aggregate_line(12, 300, 45.6 * MiB, 120 * MiB, 23.4 * MiB, 2) == \
        "12/300 files, 45.6/120.0 MiB 38%, 23.4 MiB/s, 2 failed"
    assert format_aggregate_line(12, 300, 45.6 * MiB, 120 * MiB, 23.4 * MiB, 2, eta=65,
                                 estimated=True) == \
        "12/300 files, 45.6/~120.0 MiB 38%, 23.4 MiB/s, ETA 1:05, 2 failed"


def test_aggregate_line_fits_by_leaving_figures_out_not_cutting_them():
    line = lambda width: format_aggregate_line(12, 300, 45.6 * MiB, 120 * MiB, 23.4 * MiB, 2,
                                               eta=65, estimated=True, width=width)
    assert line(100) == "12/300 files, 45.6/~120.0 MiB 38%, 23.4 MiB/s, ETA 1:05, 2 failed"
    assert line(60) == "12/300 files, 45.6/~120.0 MiB 38%, ETA 1:05, 2 failed"
    assert line(40) == "12/300 files, 38%, ETA 1:05, 2 failed"
    assert line(32) == "12/300, 38%, ETA 1:05, 2 failed"


def test_bar_line_at_40_columns_keeps_whole_figures():
    line = format_bar_line("pari-2.15.4.tar.gz", 12.3 * MiB, 27 * MiB, 3.4 * MiB, "ETA 0:05", 40)
    assert line.split() == ["pari-2.15.4.tar.gz", "45%", "ETA", "0:05"]
    line = format_bar_line("pari-2.15.4.tar.gz", 12.3 * MiB, 27 * MiB, 3.4 * MiB, "ETA 0:05", 60)
    assert line.split() == ["pari-2...ar.gz", "45%", "12.3/27.0", "MiB", "3.4", "MiB/s", "ETA",
                            "0:05"]
    assert format_aggregate_line(3, None, 5 * MiB, None, None, 0) == "3 files, 5.0 MiB, -- B/s"


def test_aggregate_bar_counts_files_bytes_and_failures(clock):
    stream = TTY()
    agg = AggregateProgress(stream, clock=clock, width=100)
    agg.set_totals(3, 30 * MiB)
    agg.file_started("a", 10 * MiB)
    agg.file_started("b", 10 * MiB, offset=5 * MiB)  # resumed: present, not transferred
    clock.advance(1)
    agg.file_progress("a", 4 * MiB)
    clock.advance(1)
    agg.file_progress("a", 10 * MiB)
    agg.file_done("a", True, 10 * MiB)
    agg.file_done("c", False)
    clock.advance(1)
    agg.file_progress("b", 7 * MiB)
    assert paints(stream.getvalue())[-1] == \
        "2/3 files, 17.0/30.0 MiB 56%, 4.0 MiB/s, ETA 0:03, 1 failed"
    agg.finish()
    assert stream.getvalue().endswith("\n")
    assert paints(stream.getvalue())[-1] == \
        "2/3 files, 17.0/30.0 MiB 56%, 4.0 MiB/s, 1 failed, in 0:03"


def test_aggregate_bar_is_rate_limited(clock):
    stream = TTY()
    agg = AggregateProgress(stream, clock=clock, width=100)
    agg.set_totals(1, 100 * MiB)
    agg.file_started("a", 100 * MiB)
    before = stream.getvalue().count("\r")
    for i in range(1, 100):
        clock.advance(0.001)
        agg.file_progress("a", i * MiB)
    assert stream.getvalue().count("\r") == before


def test_aggregate_cached_file_counts_as_present_not_transferred(clock):
    stream = TTY()
    agg = AggregateProgress(stream, clock=clock, width=100)
    agg.set_totals(1, 50 * MiB)
    clock.advance(1)
    agg.file_done("cached.tar.gz", True, 50 * MiB)
    agg.finish()
    assert paints(stream.getvalue())[-1] == "1/1 files, 50.0/50.0 MiB 100%, 0 B/s, in 0:01"


def test_aggregate_lines_are_sparse(clock):
    stream = io.StringIO()
    agg = AggregateProgress(stream, mode="auto", clock=clock)
    assert agg.mode == "lines"
    agg.set_totals(100, 100 * MiB)
    for i in range(100):  # one 1 MiB file per second
        agg.file_started("f%d" % i, MiB)
        clock.advance(1)
        agg.file_progress("f%d" % i, MiB)
        agg.file_done("f%d" % i, True, MiB)
    agg.finish()
    out = lines_of(stream)
    assert out[0] == "Downloading 100 files (100.0 MiB)"
    # Written when the 30th file's bytes are in, just before it is done.
    assert out[1:4] == [
        "29/100 files, 30.0/100.0 MiB 30%, 1.0 MiB/s, ETA 1:10",
        "59/100 files, 60.0/100.0 MiB 60%, 1.0 MiB/s, ETA 0:40",
        "89/100 files, 90.0/100.0 MiB 90%, 1.0 MiB/s, ETA 0:10",
    ]
    assert out[4:] == ["100/100 files, 100.0/100.0 MiB 100%, 1.0 MiB/s, in 1:40"]


def test_aggregate_none_prints_nothing(clock):
    stream = TTY()
    agg = AggregateProgress(stream, mode="none", clock=clock)
    agg.set_totals(1, 1)
    agg.file_started("a", 1)
    agg.file_done("a", True, 1)
    agg.note("x")
    agg.finish()
    assert stream.getvalue() == ""


def test_aggregate_note_clears_the_line(clock):
    stream = TTY()
    agg = AggregateProgress(stream, clock=clock, width=100)
    agg.set_totals(2, None)
    before = stream.getvalue()
    agg.note("mirror x failed; trying y")
    added = stream.getvalue()[len(before):]
    assert added.startswith("\r" + " " * (len(before) - 1) + "\rmirror x failed; trying y\n\r0/2 files")


def test_aggregate_is_thread_safe(clock):
    stream = TTY()
    lock = threading.Lock()

    def tick():  # a clock that moves, shared by all threads
        with lock:
            clock.advance(0.01)
            return clock.t

    agg = AggregateProgress(stream, clock=tick, width=200)
    threads_n, files_per_thread, blocks = 8, 25, 20
    agg.set_totals(threads_n * files_per_thread, threads_n * files_per_thread * blocks * 1024)

    def worker(k):
        for j in range(files_per_thread):
            name = "t%d-f%d" % (k, j)
            agg.file_started(name, blocks * 1024)
            for b in range(1, blocks + 1):
                agg.file_progress(name, b * 1024)
            agg.file_done(name, j % 5 != 0, blocks * 1024)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    agg.finish()
    final = paints(stream.getvalue())[-1]
    assert final.startswith("200/200 files, 3.1/3.9 MiB 80%, ")  # 160 good files * 20 KiB
    assert final.split(", ")[3] == "40 failed"
    # No torn writes: every painted state is a whole line.
    pattern = re.compile(r"^\d+/200 files, [\d.]+/3\.9 MiB \d+%, [\d.]+ (B|KiB|MiB)/s"
                         r"(, ETA [\d:]+)?(, \d+ failed)?(, in [\d:]+)?$")
    assert all(pattern.match(state) for state in paints(stream.getvalue()))


def test_module_names_are_the_documented_api():
    for name in ("make_progress", "human_bytes", "human_rate", "human_duration", "Progress"):
        assert hasattr(progress, name)
    assert hasattr(aggregate, "AggregateProgress")
