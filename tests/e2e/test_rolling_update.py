"""A serving job's rolling update on the real control plane (kwok marks bound pods Running): a
template change replaces 3 replicas one at a time, and a watch on the pods checks, at every event,
that at least 2 of them run; the operator is SIGKILLed midway and the update still finishes."""

from __future__ import annotations

import threading
from typing import Any

from modeljob.adapters import kube_jobs, kube_pods
from modeljob.adapters.cluster import Watched
from modeljob.adapters.cluster_errors import ClusterError
from tests.e2e.kube import Cluster, wait_for
from tests.e2e.operator_fixtures import Pool, apply, get_job, model_job, status, wait_event, wait_phase

REPLICAS = 3


class PodWatch:
    """The job's pods as a watch shows them, event by event, and the fewest Running at any moment."""

    def __init__(self, cluster: Cluster, namespace: str, job: str) -> None:
        self.phases: dict[str, tuple[str, str]] = {}  # live pod -> (phase, spec hash)
        self.fewest_running: int | None = None
        self.events = 0
        pods, resource_version = cluster.gateway.list_collection(Watched.PODS)
        for pod in pods:  # the state the watch starts from
            if self._ours(pod, namespace, job):
                self._record("ADDED", pod)
        self.fewest_running = self.running()  # not the counts on the way, pod by pod
        self._stop = threading.Event()
        self._args = (cluster, namespace, job, resource_version)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def running(self) -> int:
        return sum(1 for phase, _ in self.phases.values() if phase == "Running")

    def _run(self) -> None:
        cluster, namespace, job, version = self._args
        while not self._stop.is_set():
            try:
                for kind, pod in cluster.gateway.watch_collection(
                    Watched.PODS, resource_version=version, timeout_seconds=30
                ):
                    meta = pod.get("metadata") or {}
                    version = str(meta.get("resourceVersion", version))
                    if kind != "BOOKMARK" and self._ours(pod, namespace, job):
                        self._record(kind, pod)
                    if self._stop.is_set():
                        return
            except ClusterError:
                continue

    @staticmethod
    def _ours(pod: dict[str, Any], namespace: str, job: str) -> bool:
        meta = pod.get("metadata") or {}
        return (
            meta.get("namespace") == namespace and (meta.get("labels") or {}).get(kube_pods.LABEL_JOB) == job
        )

    def _record(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            self.phases.pop(meta["name"], None)  # a pod being deleted no longer serves
        else:
            spec_hash = (meta.get("annotations") or {}).get(kube_pods.ANNOTATION_SPEC_HASH, "")
            self.phases[meta["name"]] = (str((pod.get("status") or {}).get("phase")), spec_hash)
        self.events += 1
        running = self.running()
        self.fewest_running = running if self.fewest_running is None else min(self.fewest_running, running)

    def stop(self) -> None:
        self._stop.set()


def test_a_template_change_keeps_two_of_three_replicas_running_until_all_three_are_new(
    cluster: Cluster, namespace: str, pool: Pool, start_operator: Any
) -> None:
    operator = start_operator()
    pool.add("h100", 2)
    job = model_job("serve", pool, replicas=REPLICAS, gpus=4, scheduling={"gang": False})
    apply(cluster, namespace, job)
    wait_phase(cluster, namespace, "serve", "Running", timeout_seconds=60)
    wait_for(
        lambda: (
            sum(
                1
                for p in cluster.gateway.list_pods(namespace)
                if (p.get("status") or {}).get("phase") == "Running"
            )
            == REPLICAS
        ),
        "three serving pods Running",
    )
    watch = PodWatch(cluster, namespace, "serve")
    assert watch.running() == REPLICAS

    # 3 x 4 GPUs on 2 x 8: room for one new pod beside the old ones at a time.
    job["spec"]["template"]["spec"]["containers"][0]["env"] = [{"name": "MODEL_REVISION", "value": "2"}]
    apply(cluster, namespace, job)
    new_hash = kube_jobs.spec_hash(get_job(cluster, namespace, "serve")["spec"])
    wait_event(cluster, namespace, "serve", "Updating", timeout_seconds=60)
    operator.kill()  # midway: the next operator reads the update's progress from the pods
    operator.start()

    def all_new() -> bool:
        phases = list(watch.phases.values())
        return len(phases) == REPLICAS and all(p == ("Running", new_hash) for p in phases)

    try:
        wait_for(all_new, "all three replicas Running the new spec", timeout_seconds=120)
    finally:
        watch.stop()
    assert watch.events > 0
    assert watch.fewest_running is not None
    assert watch.fewest_running >= REPLICAS - 1, f"at some moment only {watch.fewest_running} ran"
    updating = wait_for_updated(cluster, namespace)
    assert updating["message"] == "all 3 replicas run generation 2's spec"
    assert status(cluster, namespace, "serve")["phase"] == "Running"


def wait_for_updated(cluster: Cluster, namespace: str) -> dict[str, Any]:
    """The Updating condition once it says the update is done."""
    found: dict[str, Any] = {}

    def done() -> bool:
        conditions = status(cluster, namespace, "serve").get("conditions") or []
        found.update(next((c for c in conditions if c.get("type") == "Updating"), {}))
        return found.get("status") == "False" and found.get("reason") == "Updated"

    wait_for(done, "the Updating condition to say Updated", timeout_seconds=60)
    return found
