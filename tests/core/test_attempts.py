"""The loop's tally of scheduling attempts (core/attempts.py): a new placement says how many of
the leader's cycles left its job waiting first, and what the last of them told it; cycles sat out
are not attempts, a placement not acted on keeps the count, and only a waiting job's placement is
counted."""

from __future__ import annotations

from dataclasses import replace

from modeljob.core.attempts import REASON_KEPT, AttemptTally, attempt_said
from modeljob.core.job_state import Placed
from modeljob.core.steps import Place, Step, Unschedulable, Wait
from tests.core.test_status import _place


def _waits(place: Place, message: str = "waiting for room: no node fits now") -> Wait:
    return Wait(job=place.job, message=message, queue_position=1)


def _placed(tally: AttemptTally, steps: list[Step], *, sitting_out: frozenset[str] = frozenset()) -> Place:
    [place] = [s for s in tally.count(steps, sitting_out=sitting_out) if isinstance(s, Place)]
    return place


def test_a_job_placed_by_the_first_cycle_that_decides_for_it_is_at_its_first_attempt() -> None:
    tally, place = AttemptTally(), _place()
    placed = _placed(tally, [place])
    assert placed.attempt == 1
    assert attempt_said(placed) == "placed at its first scheduling attempt"


def test_each_cycle_that_leaves_a_job_waiting_is_an_attempt_and_the_last_reason_is_said() -> None:
    tally, place = AttemptTally(), _place()
    tally.count([Unschedulable(job=place.job, message="the job can never fit this cluster: no H100")])
    tally.count([_waits(place, "waiting for quota: team-a is at its nominal")])
    placed = _placed(tally, [place])
    assert (placed.attempt, placed.waited) == (3, "waiting for quota: team-a is at its nominal")
    assert attempt_said(placed) == (
        "placed at scheduling attempt 3, after 2 cycles left it waiting "
        "(the last: waiting for quota: team-a is at its nominal)"
    )


def test_cycles_sat_out_are_not_attempts_and_a_job_out_of_the_queue_starts_again() -> None:
    tally, place = AttemptTally(), _place()
    tally.count([_waits(place)])
    tally.count([], sitting_out={place.job.uid})  # its writes failing: the loop's back-off
    tally.count([], sitting_out={place.job.uid})
    assert _placed(tally, [place]).attempt == 2

    tally = AttemptTally()
    tally.count([_waits(place)])
    tally.count([])  # deleted and created again, or placed and running: out of the queue
    tally.count([_waits(place)])
    assert _placed(tally, [place]).attempt == 2


def test_a_placement_not_acted_on_keeps_the_count_for_the_next_cycle_that_places_the_job() -> None:
    tally, place = AttemptTally(), _place()
    tally.count([_waits(place)])
    assert _placed(tally, [place]).attempt == 2  # its own write under way: left to a later cycle
    assert _placed(tally, [place]).attempt == 2
    running = replace(place.job, placement=(Placed(0, "gang-0-x", "gpu-h100-0", 0.5),))
    tally.count([Wait(job=running, message="rolling", queue_position=0)])  # read as placed
    assert _placed(tally, [place]).attempt == 1


def test_only_a_waiting_jobs_placement_is_counted_and_a_long_reason_is_cut() -> None:
    tally, place = AttemptTally(), _place()
    growing = replace(place, job=replace(place.job, placement=(Placed(0, "gang-0-x", "gpu-h100-0", 0.5),)))
    tally.count([Wait(job=growing.job, message="waiting for room", queue_position=1)])
    tally.count([Wait(job=growing.job, message="waiting for room", queue_position=1)])
    assert _placed(tally, [growing]).attempt == 1
    assert attempt_said(growing) == "", "a partly placed job's new replicas say no attempt"

    tally.count([_waits(place, "waiting for room: " + "x" * 1000)])
    waited = _placed(tally, [place]).waited
    assert len(waited) == REASON_KEPT
    assert waited.endswith("…")
