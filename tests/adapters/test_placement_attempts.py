"""Each placement says which scheduling attempt made it (core/attempts.py), in its Scheduled Event
and on /metrics (``modeljob_placement_attempts``): a job the loop left waiting says so and why,
even where its waiting status was never written (a later decision dropped the write)."""

from __future__ import annotations

from modeljob.adapters.scheduling_loop import SchedulingLoop
from tests.adapters.test_operator_scheduling_loop import FakeApiServer, start_operator
from tests.adapters.test_waiting_writes import (
    GANG,
    Blocker,
    _api,
    _gang_waiting_with_its_write_under_way,
    _patches,
    _uncordon,
)


def _scheduled_events(api: FakeApiServer, loop: SchedulingLoop) -> list[str]:
    loop.events.drain()
    return [e["message"] for e in api.events if e["reason"] == "Scheduled"]


def _attempts(loop: SchedulingLoop) -> tuple[float | None, float | None]:
    """``modeljob_placement_attempts``' count and sum, as a scrape would read them."""
    registry = loop._metrics.registry
    return (
        registry.get_sample_value("modeljob_placement_attempts_count"),
        registry.get_sample_value("modeljob_placement_attempts_sum"),
    )


def _settle(loop: SchedulingLoop) -> None:
    loop._waiting.settle()
    loop._handed.placing.settle()
    loop._handed.binding.settle()


def test_a_job_placed_by_the_first_cycle_that_saw_it_says_attempt_1() -> None:
    api = _api(cordoned=False)
    loop, _ = start_operator(api)
    loop.run_once()
    _settle(loop)

    assert api.job("ml", GANG)["status"]["phase"] == "Scheduled"
    [scheduled] = _scheduled_events(api, loop)
    assert "placed at its first scheduling attempt" in scheduled
    assert "left it waiting" not in scheduled
    assert _attempts(loop) == (1.0, 1.0)


def test_a_job_left_waiting_says_which_attempt_placed_it_and_why_even_if_never_written_waiting() -> None:
    api = _api(cordoned=True)
    loop, view = start_operator(api)
    blocker = Blocker(loop._waiting)  # the API server behind: the waiting write is queued, not sent

    loop.run_once(settle=False)  # both nodes cordoned: the gang is left waiting
    loop.run_once(settle=False)  # and again
    _uncordon(api, view)
    loop.run_once(settle=False)  # placed: its waiting write, never started, is dropped
    blocker.release.set()
    _settle(loop)

    assert api.job("ml", GANG)["status"]["phase"] == "Scheduled"
    waiting = [call for call in _patches(api, GANG) if "phase=Queued" in call or "=Unschedulable" in call]
    assert waiting == [], "never written as waiting"
    [scheduled] = _scheduled_events(api, loop)
    assert "placed at scheduling attempt 3, after 2 cycles left it waiting (the last: " in scheduled
    assert scheduled.split("(the last: ", 1)[1].startswith("the job can never fit"), "its last reason"
    assert _attempts(loop) == (1.0, 3.0)


def test_a_placement_left_to_a_later_cycle_keeps_its_count() -> None:
    """The job's waiting write is landing when a cycle would place it: that cycle leaves it to the
    next (tests/adapters/test_waiting_writes.py), which places it at the same attempt."""
    api = _api(cordoned=True)
    loop, view = start_operator(api)
    release = _gang_waiting_with_its_write_under_way(api, loop)
    _uncordon(api, view)
    loop.run_once(settle=False)  # would place it, but its own write is still landing
    release.set()
    loop._waiting.settle()
    assert not api.job("ml", GANG)["status"].get("placement")
    loop.run_once()
    _settle(loop)

    assert api.job("ml", GANG)["status"]["phase"] == "Scheduled"
    [scheduled] = _scheduled_events(api, loop)
    assert "placed at scheduling attempt 2, after 1 cycle left it waiting" in scheduled
    assert _attempts(loop) == (1.0, 2.0)
