"""Each well-formed job's end, from its plan: a deleted job is gone with its pods, a training job
has Succeeded, a serving job Runs on all of its placed pods or waits Queued for a reason that holds
at rest (no room for its shape on Ready nodes of its products, or no quota for it, or behind a job
that so waits); and a training job may have Failed by its failure policy once node losses used
its restarts up (a serving job outlives lost nodes)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bench.chaos.env import QUEUES
from bench.chaos.invariants import (
    Snapshot,
    allocatable,
    holding,
    jobs_in,
    live_bound,
    nominal,
    queue_usage,
    used_by_node,
)
from bench.chaos.workload import JobPlan

from modeljob.adapters import kube_pods
from modeljob.adapters.node_catalog import LABEL_GPU_PRODUCT
from modeljob.core.resources import Resources

Json = dict[str, Any]
QUOTA_REASON = re.compile(r"waits for quota|nominal \d+, used \d+")
BEHIND = re.compile(r"behind (\S+?)[,\s]")


def wrong_ends(plans: list[JobPlan], snapshot: Snapshot, namespace: str) -> list[str]:
    jobs = jobs_in(snapshot, namespace)
    pods_of: dict[str, list[Json]] = {}
    for pod in snapshot.pods:
        if pod["metadata"]["namespace"] == namespace:
            name = (pod["metadata"].get("labels") or {}).get(kube_pods.LABEL_JOB, "")
            pods_of.setdefault(name, []).append(pod)
    waiting = Waiting(snapshot)
    problems = []
    for plan in plans:
        job, pods = jobs.get(plan.name), pods_of.get(plan.name, [])
        if plan.deleted:
            if job is not None or pods:
                problems.append(
                    f"{plan.name}: deleted, yet {'the job' if job else ''} {len(pods)} pods remain"
                )
            continue
        if job is None:
            problems.append(f"{plan.name}: lost (never deleted, not found)")
            continue
        status = job.get("status") or {}
        phase, message = status.get("phase"), status.get("message")
        if phase == "Failed" and plan.trains and failed_by_lost_nodes(status):
            continue  # the failure policy's end: more nodes lost under it than maxRestarts allows
        if plan.trains:
            if phase != "Succeeded":
                problems.append(f"{plan.name}: training job {phase} ({message}), not Succeeded")
        elif phase == "Running":
            placed, bound = len(status.get("placement") or []), len(live_bound(pods))
            if placed != bound:
                problems.append(f"{plan.name}: Running with {bound} live bound pods of {placed} placed")
        elif phase != "Queued" or not message:
            problems.append(
                f"{plan.name}: serving job {phase} ({message}), neither Running nor Queued with a reason"
            )
        elif (why := waiting.wrongly(job)) is not None:
            problems.append(f"{plan.name}: serving job Queued ({message}) at rest, yet {why}")
    return problems


# docs/operator.md, "Failures and restarts": a lost node of a bound placement is a failure of a
# training job's, counted against failurePolicy.maxRestarts (default 3); the soak fails no pod
# itself, so a Failed training job is right only when node losses (the flaps) used its restarts
# up. A serving job is recreated after a lost node without counting it: it never ends Failed here.
LOST_NODE = re.compile(r"^node \S+ of replica \d+ (was deleted|is NotReady); not recreated: failurePolicy")


def failed_by_lost_nodes(status: Mapping[str, Any]) -> bool:
    return bool(LOST_NODE.match(str(status.get("message") or ""))) and int(status.get("restarts") or 0) >= 3


def _ready(node: Mapping[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
    return ready and not (node.get("spec") or {}).get("unschedulable")


def demand(job: Mapping[str, Any]) -> tuple[int, Resources]:
    """(pods, one pod's request) of a job as its status sizes it (a replica that spans nodes is
    ``nodesPerReplica`` pods), else as its spec asks (GPUs only)."""
    spec, status = job.get("spec") or {}, job.get("status") or {}
    estimate = status.get("estimate") or {}
    replicas = int(spec.get("replicas") or 1)
    if estimate.get("gpus"):
        pod = Resources(
            cpu_milli=int(estimate.get("cpuMilli") or 0),
            memory_bytes=int(estimate.get("memoryBytes") or 0),
            gpus=int(estimate["gpus"]),
        )
        return replicas * int(estimate.get("nodesPerReplica") or 1), pod
    return replicas, Resources(gpus=int((spec.get("resources") or {}).get("gpus") or 0))


class Waiting:
    """Whether a Queued job's wait holds at rest, against one view of the cluster."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.jobs = {f"{j['metadata']['namespace']}/{j['metadata']['name']}": j for j in snapshot.jobs}
        self.used = queue_usage(snapshot)
        used = used_by_node(holding(snapshot.pods))
        self.free: dict[str, list[Resources]] = {}
        for node in snapshot.nodes:
            if not _ready(node):
                continue
            has, taken = allocatable(node), used.get(node["metadata"]["name"], Resources())
            product = str((node["metadata"].get("labels") or {}).get(LABEL_GPU_PRODUCT))
            self.free.setdefault(product, []).append(
                Resources(
                    cpu_milli=has.cpu_milli - taken.cpu_milli,
                    memory_bytes=has.memory_bytes - taken.memory_bytes,
                    gpus=has.gpus - taken.gpus,
                )
            )

    def wrongly(self, job: Mapping[str, Any], seen: frozenset[str] = frozenset()) -> str | None:
        """Why the job should not be waiting, or None when its wait holds."""
        message = str((job.get("status") or {}).get("message") or "")
        behind = BEHIND.search(message + " ")
        if behind is not None and behind.group(1) in self.jobs and behind.group(1) not in seen:
            head = self.jobs[behind.group(1)]
            if (head.get("status") or {}).get("phase") == "Queued":
                why = self.wrongly(head, seen | {behind.group(1)})
                return None if why is None else f"it waits behind {behind.group(1)}, and that one {why}"
        pods, pod = demand(job)
        queue = str(((job.get("spec") or {}).get("scheduling") or {}).get("queue", "default"))
        for product in (job.get("spec") or {}).get("accelerator", {}).get("products") or []:
            need = pods * pod.gpus
            quota, used = nominal(queue, product), self.used[(queue, product)]
            if QUOTA_REASON.search(message) and quota is not None and used + need <= quota:
                return f"waits for quota while {queue} holds {used} of its nominal {quota} {product} GPUs"
            if _fits(pods, pod, self.free.get(product, [])) and need <= self.quota_room(queue, product):
                fit = f"{pods} pod(s) of {pod.gpus} {product} GPUs fit the idle Ready nodes"
                return f"{fit}, within {queue}'s quota"
        return None

    def quota_room(self, queue: str, product: str) -> int:
        """GPUs of ``product`` the queue may still take: its unused nominal and what it may still
        borrow (its borrowingLimit, what the other queues lend: unused, within lendingLimit)."""
        entries = {
            n: e for n, spec in QUEUES.items() for e in spec.get("quota", []) if product in e["products"]
        }
        mine = entries.get(queue)
        if mine is None:
            return 1 << 30  # no quota for it: only room counts
        free = int(mine["nominal"]) - self.used[(queue, product)]
        borrowed = max(0, -free)
        lendable = sum(
            max(
                0,
                min(
                    int(e["nominal"]) - self.used[(peer, product)],
                    int(e.get("lendingLimit", e["nominal"])) - borrowed,
                ),
            )
            for peer, e in entries.items()
            if peer != queue
        )
        may_borrow = max(0, min(int(mine.get("borrowingLimit", 1 << 30)) - borrowed, lendable))
        return max(0, free) + may_borrow


def _fits(pods: int, pod: Resources, free: list[Resources]) -> bool:
    """Whether ``pods`` pods of ``pod`` fit the nodes' free room, one pod a node at a time
    (first fit: a fit found is a fit; the operator's planner finds at least this one)."""
    if pods == 0 or pod.gpus == 0:
        return False
    left = [[f.gpus, f.cpu_milli, f.memory_bytes] for f in free]
    for _ in range(pods):
        node = next(
            (n for n in left if n[0] >= pod.gpus and n[1] >= pod.cpu_milli and n[2] >= pod.memory_bytes), None
        )
        if node is None:
            return False
        node[0], node[1], node[2] = node[0] - pod.gpus, node[1] - pod.cpu_milli, node[2] - pod.memory_bytes
    return True


def phases(plans: list[JobPlan], snapshot: Snapshot, namespace: str) -> dict[str, int]:
    jobs = jobs_in(snapshot, namespace)
    counted: dict[str, int] = {}
    for plan in plans:
        job = jobs.get(plan.name)
        phase = "deleted" if job is None else str((job.get("status") or {}).get("phase"))
        counted[phase] = counted.get(phase, 0) + 1
    return counted
