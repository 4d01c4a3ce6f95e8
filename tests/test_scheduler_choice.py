"""The scheduler's choice of work, step by step, without a network.

Some rules are about what a connection takes while another one's answer
is still on its way; on loopback that window is a race.  Here a Scheduler
is set up in that state (real RangeFile, FileWork, Mirror and Slot objects)
and asked what each connection takes next (Scheduler.work_for, one step of
take()), so the outcome does not depend on timing.
"""

import pytest

from sagedl.compat import compat_monotonic
from sagedl.engine.download import Options
from sagedl.engine.rangefile import RangeFile
from sagedl.engine.verify import Expected
from sagedl.engine.worker import Slot
from sagedl.plan import scheduler

MIB = 1 << 20
pytestmark = pytest.mark.timeout(30)


class NoProgress(object):
    def set_mirrors(self, count):
        pass


def one_file_half_way(tmp_path):
    """A 3 MiB file whose one range the slow mirror fetches, and a second
    mirror whose Range support is not known yet."""
    slow = scheduler.Mirror("http://slow/", "slow", rate=100000.0)
    other = scheduler.Mirror("http://other/", "other")
    rf = RangeFile(str(tmp_path / "f.tar.gz"), Expected(None, "0" * 64, None), Options(),
                   lambda text: None)
    assert rf.open() is None
    rf.set_total(3 * MIB)
    f = scheduler.FileWork(0, "f.tar.gz", rf.dest, rf.expected,
                           {slow.key: slow.key + "f.tar.gz", other.key: other.key + "f.tar.gz"})
    f.rf, f.state = rf, "open"
    sched = scheduler.Scheduler([f], [slow, other], scheduler.Settings(Options()), None,
                                NoProgress(), lambda text: None, lambda *a: None)
    sched.queue = []
    sched.open_files.append(f)
    owner = Slot(sched, slow, 0)
    now = compat_monotonic()
    piece = rf.pieces[0]
    piece.owner, piece.asked, piece.last_byte, piece.rate = owner, now, now, 100000.0
    piece.done = 100000
    sched.active = slow.active = 1
    return sched, other, rf


def test_one_range_at_a_time_while_range_support_is_unknown(tmp_path):
    sched, other, rf = one_file_half_way(tmp_path)
    first, second = Slot(sched, other, 0), Slot(sched, other, 1)
    with sched.cond:
        work = sched.work_for(first, compat_monotonic())
        assert work is not None and work[1].start > 0, work
        # Its answer has not come: a second connection to the same mirror
        # does not ask for another tail (a mirror ignoring Range would send
        # each the whole file).
        assert sched.work_for(second, compat_monotonic()) is None
        # The answer said it honours Range: the others may split too.
        other.ranges = True
        work = sched.work_for(second, compat_monotonic())
        assert work is not None and work[1].start > 0, work
    rf.release()


def test_a_failed_trial_lets_another_connection_try(tmp_path):
    sched, other, rf = one_file_half_way(tmp_path)
    first, second = Slot(sched, other, 0), Slot(sched, other, 1)
    with sched.cond:
        work = sched.work_for(first, compat_monotonic())
        assert work is not None
        assert sched.work_for(second, compat_monotonic()) is None
        # The request failed before any answer: Range support is still
        # unknown, and the range goes back for another connection.
        sched.release(first, work[1])
        work = sched.work_for(second, compat_monotonic())
        assert work is not None and work[1].start > 0, work
    rf.release()


def test_a_404_to_the_size_probe_drops_that_mirror_for_the_file(tmp_path):
    from faultserver import FaultServer
    from sagedl.net.transport import Transport
    sched, other, rf = one_file_half_way(tmp_path)
    f = sched.files[0]
    # The size is not known yet: an idle mirror asks for the first byte.
    rf.total = None
    rf.pieces[0].end, rf.pieces[0].done = None, 0
    with FaultServer({}) as server:
        f.urls[other.key] = server.url + "/404/f.tar.gz"
        sched.new_transport = lambda: Transport(timeout=10.0, env={})
        prober = Slot(sched, other, 0)
        with sched.cond:
            work = sched.work_for(prober, compat_monotonic())
        assert work is not None and work[1] is scheduler.PROBE, work
        prober._probe(f)
        prober.transport.close()
        assert len(server.requests) == 1
    # A 404 is an answer: that mirror has no such file, and once the size
    # is known it takes no range of it either.
    assert other.key in f.excluded
    rf.total, rf.pieces[0].end, rf.pieces[0].done = 3 * MIB, 3 * MIB, 100000
    with sched.cond:
        assert sched.work_for(Slot(sched, other, 1), compat_monotonic()) is None
    rf.release()
