"""A deep queue's status writes a second are bounded: refreshes (a position's number, a reason's
text) are granted at a rate, whatever the cycles' length, half to the jobs whose shown position is
furthest off and half to those refreshed longest ago, while what changes what a job is (its phase,
its first status) is written at once."""

from __future__ import annotations

import math
from collections.abc import Sequence

from modeljob.adapters.job_status import ReasonRewrites, waiting_writes
from modeljob.core.status import WaitingWrite, waiting, waiting_write
from modeljob.core.steps import Unschedulable, Wait
from tests.operator_builders import at, make_job

JOBS = 1_000
PER_SECOND = 5.0
INTERVAL_SECONDS = 10.0
CYCLE_SECONDS = INTERVAL_SECONDS  # a cycle at least every resync (10 s): the interval never binds here
BURST = int(PER_SECOND * CYCLE_SECONDS)  # what the bucket refills in such a cycle (its burst too)


class Clock:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return self.seconds


class Queue:
    """Waiting jobs' written statuses, acted on as the scheduling loop acts on a cycle's waits."""

    def __init__(self, *, by_position: bool = True) -> None:
        """``by_position``: half the refreshes to the positions furthest off, as the loop grants
        them; else all by age."""
        self.clock = Clock()
        self.rewrites = ReasonRewrites(
            every_seconds=INTERVAL_SECONDS, per_second=PER_SECOND, clock=self.clock
        )
        self.statuses: dict[str, dict[str, object]] = {}
        self.by_position = by_position

    def cycle(
        self, waits: Sequence[Wait | Unschedulable], *, seconds: float = CYCLE_SECONDS
    ) -> dict[WaitingWrite, list[str]]:
        """One cycle: the refreshes granted once, then each job's write (or none); who got which."""
        documents = {w.job.key: {"status": self.status(w)} for w in waits}
        writes, off = waiting_writes(waits, documents)
        self.rewrites.grant(writes, off if self.by_position else {}, skip=(), pending=0)
        written: dict[WaitingWrite, list[str]] = {WaitingWrite.CHANGE: [], WaitingWrite.REFRESH: []}
        for step in waits:
            uid = step.job.uid
            kind = waiting_write(step, self.status(step))
            patch = waiting(step, self.status(step), now=at(0), refresh=self.rewrites.allowed(uid))
            if patch is not None:
                written[kind].append(uid)
                self.statuses[uid] = self.status(step) | patch
                self.rewrites.written(uid)
        self.clock.seconds += seconds
        return written

    def status(self, step: Wait | Unschedulable) -> dict[str, object]:
        return self.statuses.get(step.job.uid, {})


JOB_NAMES = [f"job-{index:04d}" for index in range(JOBS)]
QUEUED = [make_job(name) for name in JOB_NAMES]


def _shifted(cycle: int) -> list[Wait | Unschedulable]:
    """Every position moves every cycle, as when a job ahead is placed and another arrives."""
    return [
        Wait(job=job, message=f"waiting for room: {cycle} free blocks", queue_position=(i + cycle) % JOBS + 1)
        for i, job in enumerate(QUEUED)
    ]


def test_a_thousand_shifting_positions_cost_at_most_the_budget_each_cycle_and_each_is_refreshed_in_turn() -> (
    None
):
    queue = Queue()
    first = queue.cycle(_shifted(0))
    assert len(first[WaitingWrite.CHANGE]) == JOBS, "every newly waiting job's first status at once"
    refreshed_at: dict[str, list[int]] = {name: [] for name in JOB_NAMES}
    cycles = 3 * math.ceil(JOBS / BURST)
    for cycle in range(1, cycles + 1):
        written = queue.cycle(_shifted(cycle))
        assert written[WaitingWrite.CHANGE] == []
        assert len(written[WaitingWrite.REFRESH]) <= BURST
        for uid in written[WaitingWrite.REFRESH]:
            refreshed_at[uid.removeprefix("uid-ml-")].append(cycle)
    within = 2 * math.ceil(JOBS / BURST)  # half the refreshes go by age
    for name, at_cycles in refreshed_at.items():
        gaps = [b - a for a, b in zip([0, *at_cycles], at_cycles, strict=False)]
        assert at_cycles, f"{name} never refreshed"
        assert max(gaps) <= within, f"{name} refreshed at cycles {at_cycles}"
        assert min(gaps) * CYCLE_SECONDS >= INTERVAL_SECONDS, f"{name} refreshed too often: {at_cycles}"


def test_phase_changes_and_new_jobs_are_written_at_once_however_spent_the_budget() -> None:
    queue = Queue()
    queue.cycle(_shifted(0))
    shifted = _shifted(1)
    # A tenth of the queue is found Unschedulable and one job arrives, in a cycle where every
    # other position moved: the refresh budget does not hold them back.
    turned = {step.job.uid for step in shifted[::10]}
    newcomer = Wait(job=make_job("newcomer"), message="waiting for room", queue_position=JOBS + 1)
    waits = [
        Unschedulable(job=step.job, message="never fits") if step.job.uid in turned else step
        for step in shifted
    ]
    written = queue.cycle([*waits, newcomer])
    assert set(written[WaitingWrite.CHANGE]) == turned | {newcomer.job.uid}
    assert len(written[WaitingWrite.REFRESH]) == BURST
    assert queue.statuses[newcomer.job.uid]["queuePosition"] == JOBS + 1
    assert {queue.statuses[uid]["phase"] for uid in turned} == {"Unschedulable"}


def test_a_refresh_waits_for_the_interval_even_with_budget_to_spare() -> None:
    queue = Queue()
    few = QUEUED[:3]
    moved = [Wait(job=job, message="m", queue_position=i + 1) for i, job in enumerate(few)]
    queue.cycle(moved, seconds=1.0)
    back = [Wait(job=job, message="m", queue_position=i + 2) for i, job in enumerate(few)]
    for _ in range(int(INTERVAL_SECONDS) - 1):
        assert queue.cycle(back, seconds=1.0)[WaitingWrite.REFRESH] == [], "written under 10 s ago"
    assert len(queue.cycle(back, seconds=1.0)[WaitingWrite.REFRESH]) == 3


def test_a_job_that_stops_waiting_is_forgotten() -> None:
    rewrites = ReasonRewrites(per_second=PER_SECOND, clock=Clock())
    rewrites.written("gone")
    rewrites.begin_cycle(waiting=["stays"], stale=[])
    assert rewrites.begin_cycle(waiting=["gone"], stale=["gone"]) == {"gone"}, "never refreshed since"


def test_writes_still_pending_take_their_share_of_the_budget() -> None:
    """The loop passes ``limit``: the budget less the waiting writes the API server has not yet
    taken (adapters/waiting_writes.py), so a backlog is never fed more refreshes than it drains."""
    clock = Clock()
    rewrites = ReasonRewrites(every_seconds=INTERVAL_SECONDS, per_second=PER_SECOND, clock=clock)
    assert rewrites.begin_cycle(waiting=JOB_NAMES, stale=JOB_NAMES, limit=0) == frozenset()
    assert len(rewrites.begin_cycle(waiting=JOB_NAMES, stale=JOB_NAMES, limit=7)) == 7
    clock.seconds += CYCLE_SECONDS  # the bucket full again
    assert len(rewrites.begin_cycle(waiting=JOB_NAMES, stale=JOB_NAMES, limit=10 * BURST)) == BURST


def test_short_cycles_refresh_no_more_a_second_than_long_ones() -> None:
    """Ten cycles a second for a minute refresh what six 10 s cycles would: the rate, not the cycles,
    bounds the writes the API server takes."""
    clock = Clock()
    rewrites = ReasonRewrites(every_seconds=INTERVAL_SECONDS, per_second=PER_SECOND, clock=clock)
    granted = []
    for _ in range(600):
        chosen = rewrites.begin_cycle(waiting=JOB_NAMES, stale=JOB_NAMES)
        granted.append(len(chosen))
        for uid in chosen:  # written, as the loop writes them
            rewrites.written(uid)
        clock.seconds += 0.1
    assert sum(granted) <= BURST + 60 * PER_SECOND, "the first burst, then the rate"
    assert sum(granted) >= 60 * PER_SECOND
    assert max(granted[100:]) <= 1, "a tenth of a second refills half a refresh"


def test_a_fractional_rate_refreshes_now_and_then_and_an_idle_spell_refills_only_the_burst() -> None:
    clock = Clock()
    rewrites = ReasonRewrites(every_seconds=INTERVAL_SECONDS, per_second=0.5, clock=clock)
    assert rewrites.burst == 5
    assert len(rewrites.begin_cycle(waiting=JOB_NAMES, stale=JOB_NAMES)) == 5, "starts full"
    per_cycle = []
    for _ in range(8):
        clock.seconds += 1.0
        per_cycle.append(len(rewrites.begin_cycle(waiting=JOB_NAMES, stale=JOB_NAMES)))
    assert per_cycle == [0, 1] * 4
    clock.seconds += 3600.0
    assert len(rewrites.begin_cycle(waiting=JOB_NAMES, stale=JOB_NAMES)) == 5, "an hour idle: the burst"
    clock.seconds -= 60.0  # a clock set back refills nothing
    assert rewrites.begin_cycle(waiting=JOB_NAMES, stale=JOB_NAMES) == frozenset()


def _moving_up(cycle: int) -> list[Wait | Unschedulable]:
    """A queue whose head is placed every cycle, and a job arrives at its end: every job moves up
    one place (the first ``cycle`` jobs have left)."""
    return [
        Wait(job=job, message="waiting for room", queue_position=i - cycle + 1)
        for i, job in enumerate(QUEUED)
        if i >= cycle
    ]


def _heads_shown(by_position: bool, *, heads: int, cycles: int) -> tuple[float, dict[str, list[int]]]:
    """The queue of ``_moving_up`` for ``cycles`` cycles: the largest relative error of the
    positions the first ``heads`` jobs were shown after each cycle, and when each job was refreshed."""
    queue = Queue(by_position=by_position)
    queue.cycle(_moving_up(0))
    worst = 0.0
    refreshed_at: dict[str, list[int]] = {}
    for cycle in range(1, cycles + 1):
        waits = _moving_up(cycle)
        for uid in queue.cycle(waits)[WaitingWrite.REFRESH]:
            refreshed_at.setdefault(uid, []).append(cycle)
        for step in waits[:heads]:
            shown = queue.status(step)["queuePosition"]
            assert isinstance(shown, int)
            assert isinstance(step, Wait)
            worst = max(worst, abs(shown - step.queue_position) / step.queue_position)
    return worst, refreshed_at


def test_the_heads_of_a_moving_queue_are_shown_near_their_place_and_the_tail_still_gets_its_turn() -> None:
    """Ten-second cycles, 50 refreshes each, 1,000 jobs moving up one place a cycle: by age alone a
    job waits 20 cycles for its turn, so a head may be shown 19 places back; with half the
    refreshes to the positions furthest off, each of the first 20 is shown within a quarter of its
    place, and every job is still refreshed in turn."""
    cycles, heads = 100, 20
    by_age, _ = _heads_shown(False, heads=heads, cycles=cycles)
    by_position, refreshed_at = _heads_shown(True, heads=heads, cycles=cycles)
    assert by_age >= 1.0, "by age alone, a head is shown at least twice as far back as it is"
    assert by_position <= 0.25, f"the heads are shown near their place (worst {by_position:.2f})"
    within = 2 * math.ceil(JOBS / BURST)
    for position in range(cycles + within, JOBS):  # still queued, and waited long enough
        at_cycles = refreshed_at.get(QUEUED[position].uid, [])
        gaps = [b - a for a, b in zip([0, *at_cycles], [*at_cycles, cycles], strict=True)]
        assert max(gaps) <= within, f"{QUEUED[position].name} refreshed at cycles {at_cycles}"


def test_a_position_furthest_off_goes_first_however_recently_written() -> None:
    clock = Clock()
    rewrites = ReasonRewrites(every_seconds=INTERVAL_SECONDS, per_second=0.4, clock=clock)  # 4 at once
    assert rewrites.burst == 4
    for uid in ("second", "third"):
        rewrites.written(uid)
    clock.seconds += INTERVAL_SECONDS  # written 10 s ago: due again, but later than the others
    names = ["second", "third", *JOB_NAMES[:8]]
    off = {"second": 0.5, "third": 0.01, **dict.fromkeys(JOB_NAMES[:8], 0.001)}
    granted = rewrites.begin_cycle(waiting=names, stale=names, off=off)
    # Two by how far off (second, third), two by age: never written first, then by uid.
    assert granted == {"second", "third", JOB_NAMES[0], JOB_NAMES[1]}


def test_one_refresh_a_cycle_goes_by_position_and_by_age_in_turn() -> None:
    """At one refresh a cycle (0.1 a second, 10 s cycles), a job whose reason alone changed (its
    position did not move: nothing off) still gets its turn among jobs whose positions moved."""
    clock = Clock()
    rewrites = ReasonRewrites(every_seconds=INTERVAL_SECONDS, per_second=0.1, clock=clock)
    assert rewrites.burst == 1
    names = ["reason-only", *JOB_NAMES[:5]]
    off = dict.fromkeys(JOB_NAMES[:5], 0.5)
    for uid in off:  # refreshed before; the job whose reason changed never was
        rewrites.written(uid)
    clock.seconds += INTERVAL_SECONDS
    granted = []
    for _ in range(4):
        [uid] = rewrites.begin_cycle(waiting=names, stale=names, off=off)
        granted.append(uid)
        rewrites.written(uid)
        clock.seconds += INTERVAL_SECONDS
    assert "reason-only" in granted, granted
    assert set(granted) & set(off), granted
