"""A job whose writes keep failing sits the cycles out for its back-off, and its quota follows what it
holds, as Kueue's requeue with back-off does: a job that holds a placement stays charged for it (its
pods run on), one that holds none is charged nothing and, its back-off over, is admitted by quota in
its place in the queue."""

from __future__ import annotations

from collections.abc import Callable

from modeljob.adapters.cluster_errors import ClusterError
from modeljob.adapters.cluster_view import ClusterView
from modeljob.adapters.scheduling_loop import SchedulingLoop
from tests.adapters.test_operator_queues import QueueApiServer, job, pods_of, queue
from tests.adapters.test_operator_queues import operator as queue_operator
from tests.operator_builders import at, node_dict


def _team_a() -> QueueApiServer:
    """Two 8-GPU H100 nodes; team-a may use 8 GPUs (a root queue: nothing to borrow)."""
    api = QueueApiServer()
    for index in (0, 1):
        api.put("nodes", node_dict(index))
    api.put("queues", queue("team-a", nominal=8))
    return api


def _refuse(name: str) -> Callable[[str], None]:
    def refuse(what: str) -> None:
        if what.startswith(f"{name} "):
            raise ClusterError(f"patch {name} status: 500 InternalError", status=500)

    return refuse


def _backing_off(api: QueueApiServer, loop: SchedulingLoop, name: str) -> None:
    """``name``'s next write is refused with a 500: the loop leaves it alone for a second."""
    api.before = {"patch": _refuse(name)}
    loop.run_once()
    api.before = {}
    assert loop._backoff.seconds_to_next_retry(at(100)) is not None, f"{name} backs off"


def _add(api: QueueApiServer, view: ClusterView, document: dict[str, object]) -> None:
    view.jobs.observe(api.put("modeljobs", document))


def test_a_running_job_backing_off_stays_charged_for_its_placement() -> None:
    api = _team_a()
    api.put("modeljobs", job("a1", "team-a", replicas=2))  # 2 x 4 GPUs: all of team-a's 8
    loop, view = queue_operator(api)
    loop.run_once()
    assert api.job("ml", "a1")["status"]["phase"] == "Scheduled"
    for pod in api.pods():
        pod["status"]["phase"] = "Running"
        view.pods.observe(api.put("pods", pod))
    _backing_off(api, loop, "a1")  # writing Running fails: a1 sits its back-off out, its pods run on
    _add(api, view, job("a2", "team-a", replicas=1))
    loop.run_once()
    assert pods_of(api, "a2") == [], "team-a's 8 GPUs are a1's while its pods run"
    assert api.job("ml", "a2")["status"]["phase"] == "Queued"
    assert api.objects[("queues", "", "team-a")]["status"]["admittedJobs"] == 1, "a1 holds team-a's quota"


def test_a_waiting_job_backing_off_holds_no_quota_and_is_admitted_in_its_place_after() -> None:
    api = _team_a()
    api.put("modeljobs", job("b1", "team-a", replicas=1))
    loop, view = queue_operator(api)
    _backing_off(api, loop, "b1")  # b1's first write (admitted and planned) fails: it holds nothing
    assert pods_of(api, "b1") == []
    _add(api, view, job("b2", "team-a", replicas=1))
    loop.run_once()
    assert pods_of(api, "b1") == [], "b1 sits the cycles of its back-off out: not planned, not placed"
    assert pods_of(api, "b2") != [], "b1, holding nothing, is charged nothing: b2 fits team-a's 8"
    younger = job("a3", "team-a", replicas=1)  # first by name, last by creation
    younger["metadata"]["creationTimestamp"] = "2026-01-01T00:00:30Z"
    _add(api, view, younger)
    later, _ = queue_operator(api)  # b1's back-off over (a fresh operator has none)
    later.run_once()
    assert pods_of(api, "b1") != [], "b1, queued first, is admitted before a3 in team-a's last 4 GPUs"
    assert pods_of(api, "a3") == []
