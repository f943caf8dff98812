"""The invariants, each a pure function of one view of the cluster (jobs, pods, nodes): no node
over-committed, no replica member held by two pods (but a rolling update's old and new pod), no
queue over its nominal plus what it may borrow, no gang or group partly bound. The checker
(bench/chaos/checker.py) runs them on every watch event and once more at rest."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.chaos.env import GPU, NAMESPACE, QUEUES, Api

from modeljob.adapters import kube_pods
from modeljob.adapters.cluster import Watched
from modeljob.adapters.node_catalog import LABEL_GPU_PRODUCT
from modeljob.core.resources import Resources, parse_bytes, parse_cpu_milli, parse_quantity

FINISHED = ("Succeeded", "Failed")
# Only serving jobs are rolled (docs/operator.md, "Updates without an outage"); training jobs are
# replaced whole, so two pods of one training replica member are never right.
SERVING = "Inference"
Json = dict[str, Any]


@dataclass
class Snapshot:
    jobs: list[Json]
    pods: list[Json]
    nodes: list[Json]


def take(api: Api) -> Snapshot:
    return Snapshot(api.list(Watched.MODELJOBS), api.list(Watched.PODS), api.list(Watched.NODES))


def holding(pods: list[Json]) -> list[Json]:
    """Pods that hold their node's resources: bound and not finished, terminating or not (a pod
    being deleted runs until it is gone; the operator counts it so: PodFacts.holds_resources)."""
    return [
        p for p in pods if p["spec"].get("nodeName") and (p.get("status") or {}).get("phase") not in FINISHED
    ]


def live_bound(pods: list[Json]) -> list[Json]:
    """Pods that hold their node's resources and are not being deleted: the pods a job runs on."""
    return [p for p in holding(pods) if not p["metadata"].get("deletionTimestamp")]


def requests(pod: Mapping[str, Any]) -> Resources:
    return kube_pods.pod_requests(pod["spec"])[0]


def allocatable(node: Mapping[str, Any]) -> Resources:
    found = (node.get("status") or {}).get("allocatable") or {}
    return Resources(
        cpu_milli=parse_cpu_milli(found.get("cpu", 0)),
        memory_bytes=parse_bytes(found.get("memory", 0)),
        gpus=int(parse_quantity(found.get(GPU, 0))),
    )


def used_by_node(pods: list[Json]) -> dict[str, Resources]:
    cpu: Counter[str] = Counter()
    memory: Counter[str] = Counter()
    gpus: Counter[str] = Counter()
    for pod in holding(pods):
        node, asked = pod["spec"]["nodeName"], requests(pod)
        cpu[node] += asked.cpu_milli
        memory[node] += asked.memory_bytes
        gpus[node] += asked.gpus
    return {n: Resources(cpu_milli=cpu[n], memory_bytes=memory[n], gpus=gpus[n]) for n in gpus | cpu | memory}


def overcommitted(snapshot: Snapshot) -> list[str]:
    """Nodes whose holding pods ask for more GPUs, CPU or memory than the node has."""
    nodes = {n["metadata"]["name"]: allocatable(n) for n in snapshot.nodes}
    found = []
    for node, used in used_by_node(snapshot.pods).items():
        has = nodes.get(node)
        if has is None:
            continue  # deleted: its pods are being collected
        for what, asked, there in (
            ("GPUs", used.gpus, has.gpus),
            ("milli-CPU", used.cpu_milli, has.cpu_milli),
            ("bytes of memory", used.memory_bytes, has.memory_bytes),
        ):
            if asked > there:
                found.append(f"node {node} over-committed: {asked} {what} bound, {there} allocatable")
    return found


def _member_key(pod: Mapping[str, Any]) -> tuple[str, str, str] | None:
    labels = pod["metadata"].get("labels") or {}
    if kube_pods.LABEL_JOB_UID not in labels:
        return None
    return (
        str(labels[kube_pods.LABEL_JOB_UID]),
        str(labels.get(kube_pods.LABEL_REPLICA)),
        str(labels.get(kube_pods.LABEL_GROUP_MEMBER, "0")),
    )


def _spec_hash(pod: Mapping[str, Any]) -> str:
    return str((pod["metadata"].get("annotations") or {}).get(kube_pods.ANNOTATION_SPEC_HASH))


def surge_pair(job: Mapping[str, Any] | None, pods: list[Json]) -> bool:
    """Whether two pods of one replica member are a rolling update's old and new pod: the job
    serves, exactly one of the two is in its placement, and the other (the outgoing pod, kept
    serving until the new one runs, then deleted as a stray) was made from another spec."""
    if job is None or len(pods) != 2:
        return False
    if ((job.get("spec") or {}).get("workload") or {}).get("type", SERVING) != SERVING:
        return False
    placed = {e.get("pod") for e in (job.get("status") or {}).get("placement") or []}
    inside = [p for p in pods if p["metadata"]["name"] in placed]
    return len(inside) == 1 and _spec_hash(pods[0]) != _spec_hash(pods[1])


def updating(job: Mapping[str, Any] | None) -> bool:
    """The job's Updating condition is True: its rolling update is under way."""
    conditions = (job or {}).get("status", {}).get("conditions") or []
    return any(c.get("type") == "Updating" and c.get("status") == "True" for c in conditions)


def duplicates(snapshot: Snapshot) -> tuple[list[str], dict[tuple[str, str], str]]:
    """(violations, lingering): two or more live bound pods of one job's replica member, whatever
    spec they were made from. A rolling update's old and new pod are no violation while the
    update is under way; once the job says it is done they are *lingering* (the stray is deleted
    just after that status write, or by the next leader after a kill: bounded in flight, like a
    partly bound gang), keyed like partly_bound's."""
    groups: dict[tuple[str, str, str], list[Json]] = defaultdict(list)
    for pod in live_bound(snapshot.pods):
        key = _member_key(pod)
        if key is not None:
            groups[key].append(pod)
    jobs = {str(j["metadata"].get("uid")): j for j in snapshot.jobs}
    violations, lingering = [], {}
    for (uid, replica, member), pods in sorted(groups.items()):
        if len(pods) < 2:
            continue
        job, meta = jobs.get(uid), pods[0]["metadata"]
        names = ", ".join(sorted(f"{p['metadata']['name']}@{p['spec']['nodeName']}" for p in pods))
        job_name = f"{meta['namespace']}/{(meta.get('labels') or {}).get(kube_pods.LABEL_JOB)}"
        text = f"{job_name}: {len(pods)} live pods for replica {replica} member {member} ({names})"
        if surge_pair(job, pods):
            if not updating(job):
                lingering[(uid, f"{replica}/{member}")] = f"rolling update done, old pod still bound: {text}"
            continue
        violations.append(text)
    return violations, lingering


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


def nominal(queue: str, product: str) -> int | None:
    for entry in QUEUES.get(queue, {}).get("quota", []):
        if product in entry["products"]:
            return int(entry["nominal"])
    return None


def queue_usage(snapshot: Snapshot, queue_of: Mapping[str, str] | None = None) -> Counter[tuple[str, str]]:
    """GPUs held per (queue, product) by the holding pods, charged to their job's queue (by job
    uid; ``queue_of`` remembers the queues of jobs deleted since, whose pods may still run)."""
    queues = dict(queue_of or {})
    for j in snapshot.jobs:
        queues[str(j["metadata"].get("uid"))] = str(
            ((j.get("spec") or {}).get("scheduling") or {}).get("queue", "default")
        )
    product_of = {
        n["metadata"]["name"]: (n["metadata"].get("labels") or {}).get(LABEL_GPU_PRODUCT)
        for n in snapshot.nodes
    }
    used: Counter[tuple[str, str]] = Counter()
    for pod in holding(snapshot.pods):
        uid = (pod["metadata"].get("labels") or {}).get(kube_pods.LABEL_JOB_UID)
        used[(queues.get(str(uid), "?"), str(product_of.get(pod["spec"]["nodeName"])))] += requests(pod).gpus
    return used


def over_quota(snapshot: Snapshot, queue_of: Mapping[str, str] | None = None) -> list[str]:
    used = queue_usage(snapshot, queue_of)
    return [
        f"queue {queue} holds {used[(queue, product)]} {product} GPUs, limit {limit}"
        for (queue, product), limit in quota_limits().items()
        if used[(queue, product)] > limit
    ]


def vacuous_quota_checks(snapshot: Snapshot) -> list[str]:
    """The (queue, product) limits no queue could pass on this cluster: at least every GPU of the
    product on the nodes (over-commit, checked apart, is then the only way to exceed them)."""
    capacity: Counter[str] = Counter()
    for n in snapshot.nodes:
        capacity[str((n["metadata"].get("labels") or {}).get(LABEL_GPU_PRODUCT))] += allocatable(n).gpus
    return [
        f"{queue} {product} (limit {limit}, the cluster has {capacity[product]})"
        for (queue, product), limit in sorted(quota_limits().items())
        if limit >= capacity[product]
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


def jobs_in(snapshot: Snapshot, namespace: str = NAMESPACE) -> dict[str, Json]:
    return {j["metadata"]["name"]: j for j in snapshot.jobs if j["metadata"]["namespace"] == namespace}
