"""Readable builders for the operator's tests: core values (jobs, nodes, pods) and the Kubernetes dicts
they are translated from."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from modeljob.adapters import node_catalog
from modeljob.core.cluster_state import NodeFacts, PodFacts, PodPhase, Taint
from modeljob.core.job_state import JobFacts, JobPhase, Placed
from modeljob.core.jobs import JobShape, ModelShape, Workload
from modeljob.core.nodes import NodeView
from modeljob.core.resources import GIB, TIB, Resources
from modeljob.core.steps import Place

EXAMPLES = Path(__file__).resolve().parents[1] / "crds" / "examples"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
H100 = "NVIDIA-H100-80GB-HBM3"
L4 = "NVIDIA-L4"


def at(seconds: float) -> datetime:
    """T0 plus ``seconds``: every test's clock."""
    return T0 + timedelta(seconds=seconds)


# --- core values -------------------------------------------------------------------------------


def make_node(
    name: str = "gpu-h100-0",
    *,
    gpus: int = 8,
    product: str | None = H100,
    memory_gib: int = 80,
    cpu_milli: int = 192_000,
    memory_bytes: int = 2 * TIB,
    ready: bool = True,
    not_ready_since: datetime | None = None,
    schedulable: bool = True,
    price: float | None = None,
    labels: dict[str, str] | None = None,
    taints: tuple[Taint, ...] = (),
) -> NodeFacts:
    view = NodeView(
        name=name,
        allocatable=Resources(
            cpu_milli=cpu_milli, memory_bytes=memory_bytes, ephemeral_storage_bytes=8 * TIB, gpus=gpus
        ),
        accelerator="nvidia.com/gpu" if gpus else None,
        gpu_product=product if gpus else None,
        gpu_memory_bytes=memory_gib * GIB if gpus and memory_gib else None,
        price_per_hour=price,
        ready=ready,
    )
    return NodeFacts(
        view=view,
        labels=labels or {},
        taints=taints,
        schedulable=schedulable,
        ready=ready,
        not_ready_since=not_ready_since,
    )


def h100_nodes(count: int = 2) -> list[NodeFacts]:
    return [make_node(f"gpu-h100-{i}", price=33.68) for i in range(count)]


def l4_nodes(count: int = 2) -> list[NodeFacts]:
    return [
        make_node(
            f"gpu-l4-{i}",
            gpus=4,
            product=L4,
            memory_gib=24,
            cpu_milli=48_000,
            memory_bytes=192 * GIB,
            price=5.12,
        )
        for i in range(count)
    ]


def make_pod(
    name: str,
    *,
    namespace: str = "ml",
    node: str | None = None,
    gpus: int = 0,
    cpu_milli: int = 1000,
    memory_bytes: int = GIB,
    phase: PodPhase = PodPhase.RUNNING,
    terminating: bool = False,
    job: JobFacts | None = None,
    replica: int | None = None,
    spec_hash: str | None = None,
) -> PodFacts:
    return PodFacts(
        namespace=namespace,
        name=name,
        requests=Resources(cpu_milli=cpu_milli, memory_bytes=memory_bytes, gpus=gpus),
        accelerator="nvidia.com/gpu" if gpus else None,
        node=node,
        phase=phase,
        terminating=terminating,
        job_uid=job.uid if job is not None else None,
        replica=replica,
        spec_hash=spec_hash if spec_hash is not None else (job.spec_hash if job is not None else None),
    )


def make_job(
    name: str = "job",
    *,
    parameters: int = 8 * 10**9,
    replicas: int = 1,
    gang: bool = True,
    products: tuple[str, ...] = (),
    created: float = 0,
    expected_duration_seconds: float | None = None,
    priority: int = 0,
    namespace: str = "ml",
    phase: JobPhase | None = JobPhase.QUEUED,
    placement: tuple[Placed, ...] = (),
    binding: bool = False,
    generation: int = 1,
    placed_generation: int | None = None,
    spec_hash: str = "hash-1",
    queue: str = "default",
) -> JobFacts:
    """An admitted ModelJob (observedGeneration == generation) serving a dense model."""
    return JobFacts(
        namespace=namespace,
        name=name,
        uid=f"uid-{namespace}-{name}",
        generation=generation,
        created=at(created),
        shape=JobShape(model=ModelShape(parameters=parameters), workload=Workload(replicas=replicas)),
        spec_hash=spec_hash,
        replicas=replicas,
        gang=gang,
        queue=queue,
        priority=priority,
        expected_duration_seconds=expected_duration_seconds,
        products=products,
        phase=phase,
        observed_generation=generation,
        placement=placement,
        binding=binding,
        placed_generation=placed_generation
        if placed_generation is not None
        else (generation if placement else None),
        queued_since=at(created),
    )


def placed(job: JobFacts, *nodes: str, binding: bool = False) -> JobFacts:
    """``job`` with replica i placed on nodes[i] (pods named <job>-<i>-abcde)."""
    entries = tuple(Placed(replica=i, pod=f"{job.name}-{i}-abcde", node=n) for i, n in enumerate(nodes))
    return replace(
        job,
        placement=entries,
        binding=binding,
        placed_generation=job.generation,
        phase=JobPhase.QUEUED if binding else JobPhase.RUNNING,
    )


def pods_of(job: JobFacts, *, phase: PodPhase = PodPhase.RUNNING, gpus: int = 1) -> list[PodFacts]:
    """One bound pod per placement entry, where the placement says."""
    return [
        make_pod(
            e.pod, namespace=job.namespace, node=e.node, gpus=gpus, phase=phase, job=job, replica=e.replica
        )
        for e in job.placement
    ]


def bound(job: JobFacts, step: Place, *, now: datetime) -> tuple[JobFacts, list[PodFacts]]:
    """What the loop's binding leaves of a Place step: the job Running on its placement (added to
    any it held) and its pods bound and running where the step says, with the step's requests."""
    entries = tuple(
        Placed(replica=a.replica, pod=f"{job.name}-{a.replica}-{a.member}", node=a.node, member=a.member)
        for a in step.placement
    )
    running = replace(
        job,
        placement=(*job.placement, *entries),
        placed_generation=job.generation,
        phase=JobPhase.RUNNING,
        started=now,
    )
    pods = [
        PodFacts(
            namespace=job.namespace,
            name=entry.pod,
            requests=step.candidate.request.resources,
            accelerator=step.candidate.request.accelerator,
            node=entry.node,
            phase=PodPhase.RUNNING,
            job_uid=job.uid,
            replica=entry.replica,
            spec_hash=job.spec_hash,
        )
        for entry in entries
    ]
    return running, pods


# --- Kubernetes dicts ---------------------------------------------------------------------------


def node_dict(
    preset_index: int = 0, *, ready: bool = True, since: str = "2026-01-01T00:00:00Z", **changes: Any
) -> dict[str, Any]:
    """A `mixed` preset node as the API server returns it once kwok made it Ready."""
    spec = node_catalog.preset_nodes("mixed")[preset_index]
    manifest = node_catalog.node_manifest(spec)
    manifest["status"]["conditions"] = [
        {"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": since}
    ]
    manifest["spec"].update(changes)
    return manifest


def container(name: str = "main", **resources: dict[str, str]) -> dict[str, Any]:
    """A container; keyword arguments are its resources (requests=..., limits=...)."""
    return {"name": name, "image": "registry.invalid/x:1", "resources": dict(resources)}


def pod_dict(
    name: str = "pod",
    *,
    namespace: str = "ml",
    node: str | None = None,
    containers: list[dict[str, Any]] | None = None,
    phase: str = "Running",
    owner_uid: str | None = None,
    labels: dict[str, str] | None = None,
    deleting: bool = False,
    **spec: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "uid": f"pod-uid-{name}",
        "labels": labels or {},
    }
    if owner_uid is not None:
        meta["ownerReferences"] = [
            {
                "apiVersion": "modeljob.dev/v1alpha1",
                "kind": "ModelJob",
                "name": "job",
                "uid": owner_uid,
                "controller": True,
            }
        ]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    body: dict[str, Any] = {"containers": containers or [container()], **spec}
    if node is not None:
        body["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": body, "status": {"phase": phase}}


def example(name: str) -> dict[str, Any]:
    """One of crds/examples/, by file name without .yaml."""
    document: dict[str, Any] = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    return document


def modeljob_dict(
    name: str = "llama-3.1-8b-inference",
    *,
    namespace: str = "ml",
    generation: int = 1,
    status: dict[str, Any] | None = None,
    **spec_changes: Any,
) -> dict[str, Any]:
    """An example ModelJob as the API server returns it (uid, generation, creation time, status)."""
    document = copy.deepcopy(example(name))
    document["metadata"].update(
        {
            "namespace": namespace,
            "uid": f"uid-{name}",
            "generation": generation,
            "resourceVersion": "100",
            "creationTimestamp": "2026-01-01T00:00:00Z",
        }
    )
    document["spec"].update(spec_changes)
    if status is not None:
        document["status"] = status
    return document
