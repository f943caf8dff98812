"""The loop's tally of scheduling attempts (core/attempts.py): a placement says which cycle to
decide for its job placed it, counted from the first that left it waiting, and what it last waited
for; a job out of the queue starts again, one sitting a cycle out keeps its count."""

from __future__ import annotations

from dataclasses import replace

from modeljob.core.attempts import REASON_KEPT, AttemptTally, attempt_said
from modeljob.core.job_state import Placed
from modeljob.core.steps import Place, Step, Unschedulable, Wait
from tests.core.test_status import _place


def _waits(place: Place, message: str = "waiting for room: no node fits now") -> Wait:
    return Wait(job=place.job, message=message, queue_position=1)


def _placed(tally: AttemptTally, steps: list[Step]) -> Place:
    [place] = [s for s in tally.count(steps) if isinstance(s, Place)]
    return place


def test_a_job_placed_by_the_first_cycle_that_decides_for_it_is_at_attempt_1() -> None:
    tally, place = AttemptTally(), _place()
    assert _placed(tally, [place]) is place
    assert attempt_said(place) == "placed at scheduling attempt 1"


def test_each_cycle_that_leaves_a_job_waiting_is_an_attempt_and_its_last_reason_is_said() -> None:
    tally, place = AttemptTally(), _place()
    tally.count([Unschedulable(job=place.job, message="the job can never fit this cluster: no H100")])
    tally.count([_waits(place, "waiting for quota: team-a is at its nominal")])
    placed = _placed(tally, [place])
    assert (placed.attempt, placed.waited) == (3, "waiting for quota: team-a is at its nominal")
    assert attempt_said(placed) == (
        "placed at scheduling attempt 3 (it waited: waiting for quota: team-a is at its nominal)"
    )
    assert _placed(AttemptTally(), [place]).attempt == 1, "a new leader counts afresh"


def test_a_job_left_out_of_a_cycle_starts_again_unless_it_sat_the_cycle_out() -> None:
    tally, place = AttemptTally(), _place()
    tally.count([_waits(place)])
    tally.count([])  # deleted and created again, or placed and requeued: out of the queue
    tally.count([_waits(place)])
    assert _placed(tally, [place]).attempt == 2

    tally = AttemptTally()
    tally.count([_waits(place)])
    tally.count([], sitting_out={place.job.uid})  # its writes failing: the loop's back-off
    assert _placed(tally, [place]).attempt == 3


def test_a_partly_placed_job_is_not_counted_and_a_long_reason_is_cut() -> None:
    tally, place = AttemptTally(), _place()
    placed_job = replace(place.job, placement=(Placed(0, "gang-0-x", "gpu-h100-0", 0.5),))
    tally.count([Wait(job=placed_job, message="waiting for room", queue_position=1)])
    assert _placed(tally, [place]).attempt == 1

    tally.count([_waits(place, "waiting for room: " + "x" * 1000)])
    assert len(_placed(tally, [place]).waited) == REASON_KEPT
