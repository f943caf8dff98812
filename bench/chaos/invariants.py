"""The invariant checker: a thread lists jobs, pods and nodes every second or so while the soak
runs, and the same checks, plus each job's final state, run once more at rest.

Held at every sample: no pod's nodeName ever changes; no two live pods of one job hold the same
replica and member of one spec; no node's bound, live pods ask for more GPUs than it has; no
queue uses more than its nominal plus what it may borrow; and no gang (or multi-node group) stays
partly bound for longer than HALF_BOUND_LIMIT_SECONDS. At rest: none is partly bound at all."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bench.chaos.env import GPU, NAMESPACE, QUEUES, Api, log

from modeljob.adapters import kube_pods
from modeljob.adapters.cluster import Watched
from modeljob.adapters.node_catalog import LABEL_GPU_PRODUCT

# A leader SIGKILLed mid-bind leaves a gang partly bound until the standby takes the Lease over
# (at most one lease duration) and finishes or undoes it in its next cycle; an API server restart
# in between adds its own downtime. 90 s covers both on this 2-core machine with room to spare.
HALF_BOUND_LIMIT_SECONDS = 90.0
FINISHED = ("Succeeded", "Failed")


@dataclass
class Snapshot:
    jobs: list[dict[str, Any]]
    pods: list[dict[str, Any]]
    nodes: list[dict[str, Any]]


def take(api: Api) -> Snapshot:
    return Snapshot(api.list(Watched.MODELJOBS), api.list(Watched.PODS), api.list(Watched.NODES))


def live_bound(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pods that hold their node's resources: bound, not finished, not being deleted."""
    return [
        p
        for p in pods
        if p["spec"].get("nodeName")
        and (p.get("status") or {}).get("phase") not in FINISHED
        and not p["metadata"].get("deletionTimestamp")
    ]


def _gpus(pod: Mapping[str, Any]) -> int:
    return kube_pods.pod_requests(pod["spec"])[0].gpus


def overcommitted(snapshot: Snapshot) -> list[str]:
    allocatable = {
        n["metadata"]["name"]: int(((n.get("status") or {}).get("allocatable") or {}).get(GPU, 0))
        for n in snapshot.nodes
    }
    used: Counter[str] = Counter()
    for pod in live_bound(snapshot.pods):
        used[pod["spec"]["nodeName"]] += _gpus(pod)
    return [
        f"node {node} over-committed: {gpus} GPUs bound, {allocatable[node]} allocatable"
        for node, gpus in used.items()
        if node in allocatable and gpus > allocatable[node]
    ]


def duplicates(snapshot: Snapshot) -> list[str]:
    seen: Counter[tuple[str, ...]] = Counter()
    for pod in live_bound(snapshot.pods):
        meta = pod["metadata"]
        labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
        if kube_pods.LABEL_JOB_UID not in labels:
            continue
        key = (
            f"{meta.get('namespace')}/{labels.get(kube_pods.LABEL_JOB)}",
            str(labels.get(kube_pods.LABEL_JOB_UID)),
            str(notes.get(kube_pods.ANNOTATION_SPEC_HASH)),
            str(labels.get(kube_pods.LABEL_REPLICA)),
            str(labels.get(kube_pods.LABEL_GROUP_MEMBER)),
        )
        seen[key] += 1
    return [f"{k[0]}: {n} live pods for replica {k[3]} member {k[4]}" for k, n in seen.items() if n > 1]


def quota_limits() -> dict[tuple[str, str], int]:
    """(queue, product) -> the most GPUs its jobs may hold: nominal plus what it may borrow,
    which is its borrowingLimit and at most what the other teams lend (lendingLimit or all)."""
    entries = {
        (name, str(e["products"][0])): e for name, spec in QUEUES.items() for e in spec.get("quota", [])
    }
    limits = {}
    for (name, product), entry in entries.items():
        lent = sum(
            int(other.get("lendingLimit", other["nominal"]))
            for (peer, key), other in entries.items()
            if key == product and peer != name
        )
        borrow = min(int(entry.get("borrowingLimit", lent)), lent)
        limits[(name, product)] = int(entry["nominal"]) + borrow
    return limits


def over_quota(snapshot: Snapshot) -> list[str]:
    queue_of = {
        (j["metadata"]["namespace"], j["metadata"]["name"]): str(
            ((j.get("spec") or {}).get("scheduling") or {}).get("queue", "default")
        )
        for j in snapshot.jobs
    }
    product_of = {
        n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(LABEL_GPU_PRODUCT)
        for n in snapshot.nodes
    }
    used: Counter[tuple[str, str]] = Counter()
    for pod in live_bound(snapshot.pods):
        job = (pod["metadata"]["namespace"], (pod["metadata"].get("labels") or {}).get(kube_pods.LABEL_JOB))
        used[(queue_of.get(job, "?"), str(product_of.get(pod["spec"]["nodeName"])))] += _gpus(pod)
    return [
        f"queue {queue} holds {used[(queue, product)]} {product} GPUs, limit {limit}"
        for (queue, product), limit in quota_limits().items()
        if used[(queue, product)] > limit
    ]


def partly_bound(snapshot: Snapshot) -> dict[tuple[str, str], str]:
    """(job uid, placement) -> description, for each gang (or, without gang, each replica's
    group) of which some but not all placed pods are bound where the placement says."""
    pods = {(p["metadata"]["namespace"], p["metadata"]["name"]): p for p in live_bound(snapshot.pods)}
    found = {}
    for job in snapshot.jobs:
        status, meta = job.get("status") or {}, job["metadata"]
        placement = status.get("placement") or []
        if not placement or status.get("phase") in FINISHED:
            continue
        gang = ((job.get("spec") or {}).get("scheduling") or {}).get("gang", True)
        units: dict[Any, list[bool]] = {}
        for entry in placement:
            pod = pods.get((meta["namespace"], entry.get("pod")))
            ok = pod is not None and pod["spec"].get("nodeName") == entry.get("node")
            units.setdefault("all" if gang else entry.get("replica"), []).append(ok)
        for unit, bound in units.items():
            if any(bound) and not all(bound):
                signature = ",".join(sorted(f"{e.get('pod')}@{e.get('node')}" for e in placement))
                key = (str(meta.get("uid")), f"{unit}:{signature}")
                found[key] = (
                    f"{meta['namespace']}/{meta['name']} ({unit}): {sum(bound)} of {len(bound)} bound"
                )
    return found


@dataclass
class Checker:
    """Samples the cluster until stopped; violations are kept, each once."""

    violations: list[str] = field(default_factory=list)
    samples: int = 0
    longest_half_bound_seconds: float = 0.0
    half_bound_seen: int = 0
    _nodes_of: dict[str, str] = field(default_factory=dict)
    _half_since: dict[tuple[str, str], float] = field(default_factory=dict)
    _seen: set[str] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def violate(self, text: str) -> None:
        if text not in self._seen:
            self._seen.add(text)
            self.violations.append(text)
            log(f"VIOLATION: {text}")

    def check(self, snapshot: Snapshot, *, at_rest: bool = False) -> None:
        now = time.monotonic()
        for pod in snapshot.pods:
            uid, node = pod["metadata"]["uid"], pod["spec"].get("nodeName")
            if node and self._nodes_of.setdefault(uid, node) != node:
                self.violate(f"pod {pod['metadata']['name']} bound twice: {self._nodes_of[uid]}, then {node}")
        for text in overcommitted(snapshot) + duplicates(snapshot) + over_quota(snapshot):
            self.violate(text)
        half = partly_bound(snapshot)
        self.half_bound_seen += len(set(half) - set(self._half_since))
        for key, text in half.items():
            since = self._half_since.setdefault(key, now)
            self.longest_half_bound_seconds = max(self.longest_half_bound_seconds, now - since)
            if now - since > HALF_BOUND_LIMIT_SECONDS:
                self.violate(f"partly bound for over {HALF_BOUND_LIMIT_SECONDS:.0f} s: {text}")
            if at_rest:
                self.violate(f"partly bound at rest: {text}")
        self._half_since = {k: v for k, v in self._half_since.items() if k in half}
        self.samples += 1

    def watch(self) -> None:
        api = Api()
        while not self._stop.wait(1.0):
            try:
                self.check(take(api))
            except Exception as exc:  # a sample lost to a restart is skipped, never fatal
                log(f"checker: sample skipped ({type(exc).__name__}: {str(exc)[:160]})")

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.watch, name="checker", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def jobs_in(snapshot: Snapshot, namespace: str = NAMESPACE) -> dict[str, dict[str, Any]]:
    return {j["metadata"]["name"]: j for j in snapshot.jobs if j["metadata"]["namespace"] == namespace}
