"""A placement's plan is written, then its pods created and bound, beside the next cycles (as
kube-scheduler binds off its scheduling cycle; tests/adapters/test_assumed_plans.py has the plan's
write). Those cycles read the plan back: they neither plan the job again nor bind its pods twice,
even while its binding waits for a worker; and stopping, the loop lets a binding under way finish
before the binder stops."""

from __future__ import annotations

import threading
from collections import Counter

from modeljob.adapters.scheduling_loop import SchedulingLoop
from tests.adapters.test_operator_scheduling_loop import FakeApiServer, start_operator
from tests.adapters.test_waiting_writes import GANG, Blocker, _api, _patches


def _creates_and_binds(api: FakeApiServer) -> tuple[Counter[str], Counter[str]]:
    creates = Counter(call.split()[1] for call in api.calls if call.startswith("create "))
    binds = Counter(call.split()[1].split("->")[0] for call in api.calls if call.startswith("bind "))
    return creates, binds


def _handoffs(loop: SchedulingLoop, pool: str) -> float | None:
    """``modeljob_handoffs_pending{pool}`` as a scrape would read it now."""
    return loop._metrics.registry.get_sample_value("modeljob_handoffs_pending", {"pool": pool})


def _assert_bound_once(api: FakeApiServer) -> None:
    pods = api.pods()
    creates, binds = _creates_and_binds(api)
    assert pods, "the plan's pods exist"
    assert all(pod["spec"].get("nodeName") for pod in pods), "every pod of the plan is bound"
    names = {pod["metadata"]["name"] for pod in pods}
    assert creates == Counter(dict.fromkeys(names, 1)), "each pod created once"
    assert set(binds.values()) <= {1}, "no pod bound twice (a pod may be created on its node)"


def test_the_plan_is_written_in_its_cycle_and_the_pods_bound_beside_the_next_ones() -> None:
    api = _api(cordoned=False)
    loop, _ = start_operator(api)
    creating, release = threading.Event(), threading.Event()

    def slow_create(_: str) -> None:  # the API server slow to create the first pod
        creating.set()
        release.wait(10)

    api.before["create"] = slow_create
    loop.run_once(settle=False)
    loop._handed.placing.settle()
    status = api.job("ml", GANG)["status"]
    assert status.get("placement"), "the plan is written first"
    assert status["phase"] != "Scheduled"
    assert creating.wait(5), "its pods are being created off the cycle"
    assert _handoffs(loop, "binding") == 1, "the binding under way is shown on /metrics"

    planned = list(_patches(api, GANG))
    loop.run_once(settle=False)  # the binding still under way: the job is left to it
    assert _patches(api, GANG) == planned, "not planned again, nor its plan rolled back"
    assert sum(_creates_and_binds(api)[0].values()) == 1, "no second pod created beside the binding"

    release.set()
    loop._handed.binding.settle()
    assert api.job("ml", GANG)["status"]["phase"] == "Scheduled"
    assert _handoffs(loop, "binding") == 0
    _assert_bound_once(api)
    loop.run_once()
    _assert_bound_once(api)


def test_a_binding_waiting_for_a_worker_is_left_to_it_and_binds_as_its_placement_decided() -> None:
    api = _api(cordoned=False)
    loop, _ = start_operator(api)  # one worker binds
    blocker = Blocker(loop._handed.binding)  # ... and is busy

    loop.run_once(settle=False)
    loop._handed.placing.settle()
    assert api.job("ml", GANG)["status"].get("placement"), "planned"
    assert api.pods() == [], "its binding waits for the busy worker"
    planned = list(_patches(api, GANG))

    loop.run_once(settle=False)  # finds the plan with no pods: the binding's, not the cycle's
    assert api.pods() == []
    assert _patches(api, GANG) == planned, "neither completed nor planned again by the cycle"

    blocker.release.set()
    loop._handed.binding.settle()
    assert api.job("ml", GANG)["status"]["phase"] == "Scheduled"
    _assert_bound_once(api)
    loop.events.drain()
    scheduled = [e["message"] for e in api.events if e["reason"] == "Scheduled"]
    assert len(scheduled) == 1
    assert "planned on each node type the job was sized for" in scheduled[0], "the placement's own account"


def test_stopping_lets_a_binding_under_way_finish_before_the_binder_stops() -> None:
    api = _api(cordoned=False)
    loop, _ = start_operator(api)
    creating, release = threading.Event(), threading.Event()

    def slow_create(_: str) -> None:
        creating.set()
        release.wait(10)

    api.before["create"] = slow_create
    loop.run_once(settle=False)
    assert creating.wait(5), "the binding is under way, its other pods queued in the binder"
    phase_when_binder_stopped: list[str] = []
    stop_binder = loop._binder.stop

    def binder_stops() -> None:
        phase_when_binder_stopped.append(api.job("ml", GANG)["status"]["phase"])
        stop_binder()

    loop._binder.stop = binder_stops  # type: ignore[method-assign]
    stopping = threading.Thread(target=loop.stop)
    stopping.start()
    assert loop._stop.wait(5)
    release.set()
    stopping.join(30)
    assert phase_when_binder_stopped == ["Scheduled"], "the placement was finished first"
    _assert_bound_once(api)
