"""The loop hands the job pool only the steps that write or delete something: a deep queue's
thousands of waiting jobs whose status already says why they wait cost the cycle nothing."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from modeljob.adapters.scheduling_loop import SchedulingLoop
from modeljob.core.steps import Step
from tests.adapters.test_operator_scheduling_loop import FakeApiServer, start_operator
from tests.operator_builders import at, modeljob_dict, node_dict


def _gang(name: str) -> dict[str, object]:
    """The admitted 4-replica H100 training gang at 4 GPUs a replica (it fills both nodes)."""
    job = modeljob_dict("llama-2-13b-training-zero3", status={"phase": "Queued", "observedGeneration": 1})
    job["spec"]["accelerator"] = {"products": ["NVIDIA-H100-80GB-HBM3"]}
    job["spec"]["resources"] = {"gpus": 4}
    job["metadata"] = copy.deepcopy(job["metadata"]) | {"name": name, "uid": f"uid-{name}"}
    return job


@pytest.fixture
def api() -> FakeApiServer:
    """Two H100 nodes and two gangs that each need both: the second waits."""
    server = FakeApiServer()
    for index in (0, 1):
        server.put("nodes", node_dict(index))
    for name in ("first", "second"):
        server.put("modeljobs", _gang(name))
    return server


def _acted_on(loop: SchedulingLoop, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The steps the loop hands its pool, as "job: Step" (recorded, then acted on as usual)."""
    acted: list[str] = []
    monkeypatch.setattr(loop, "_act", _recording(loop._act, acted))  # every step but placements
    monkeypatch.setattr(loop._handed, "plan", _recording(loop._handed.plan, acted))  # handed over
    return acted


def _recording(act: Callable[..., None], acted: list[str]) -> Callable[..., None]:
    def recording(step: Step, *args: object) -> None:
        acted.append(f"{step.job.name}: {type(step).__name__}")
        act(step, *args)

    return recording


def test_a_wait_the_status_already_says_is_not_acted_on(
    api: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop, _ = start_operator(api)
    acted = _acted_on(loop, monkeypatch)
    loop.run_once()
    assert sorted(acted) == ["first: Place", "second: Wait"]
    assert api.job("ml", "second")["status"]["phase"] == "Queued"
    acted.clear()
    calls = len(api.calls)
    loop.run_once()
    assert acted == [], "the first runs as planned, the second waits as its status says"
    assert api.calls[calls:] == []


def test_a_wait_that_moves_in_the_queue_is_acted_on(
    api: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop, _ = start_operator(api)
    loop.run_once()
    waiting = api.job("ml", "second")
    waiting["status"]["queuePosition"] = 7  # as if it had stood further back
    api.put("modeljobs", waiting)
    loop, _ = start_operator(api)  # a view that sees it so
    acted = _acted_on(loop, monkeypatch)
    loop.run_once()
    assert acted == ["second: Wait"]
    assert api.job("ml", "second")["status"]["queuePosition"] == 1


def test_positions_that_shift_are_refreshed_at_the_loops_rate(
    api: FakeApiServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("third", "fourth", "fifth"):
        api.put("modeljobs", _gang(name))
    loop, _ = start_operator(api)
    loop.run_once()  # one placed; the other four written Queued with positions 1-4, at once
    names = ["fifth", "first", "fourth", "second", "third"]
    positions = {name: api.job("ml", name)["status"].get("queuePosition") for name in names}
    waiting = sorted(name for name in names if positions[name] is not None)
    assert sorted(positions[name] for name in waiting) == [1, 2, 3, 4]
    for name in waiting:
        stale = api.job("ml", name)
        stale["status"]["queuePosition"] += 10  # as if each had stood further back
        api.put("modeljobs", stale)
    seconds = [100.0]
    # A view that sees them so; refreshes at 0.2 a second: two at most (its burst, 10 s of it).
    loop, _ = start_operator(api, lambda: at(seconds[0]), refreshes_per_second=0.2)
    acted = _acted_on(loop, monkeypatch)
    loop.run_once()
    # None refreshed yet by this operator: equally stale, so by uid (named after the job here).
    assert sorted(acted) == [f"{name}: Wait" for name in waiting[:2]], "two at most at once"
    acted.clear()
    seconds[0] += 2.0
    loop.run_once()
    assert acted == [], "2 s at 0.2 a second: not yet one refresh's worth"
    seconds[0] += 10.0
    loop.run_once()
    assert sorted(acted) == [f"{name}: Wait" for name in waiting[2:]], "then the two left"
    acted.clear()
    loop.run_once()
    assert acted == []
    assert {name: api.job("ml", name)["status"]["queuePosition"] for name in waiting} == {
        name: positions[name] for name in waiting
    }
