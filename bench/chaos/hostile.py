"""Hostile input mixed into the soak: schema-valid but absurd ModelJobs (1e14 parameters, 10,000
replicas, 4,096 GPUs a replica, 64 unknown products) and Queues (a 40-deep chain, a parent cycle,
a missing parent, children above their parent's nominal), most in a namespace and queue tree of
their own, a share (MIXED_SHARE) among the well-formed jobs, in their namespace and queues, where
they could hold those up. Each must end with a clear reason (a phase and a message, a Queue
condition; one among the well-formed jobs Invalid or Unschedulable, never waiting in their queues);
a ModelJob the API server refuses (256 products is over the schema's 64) must be refused with its
message."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from bench.chaos.env import GPU, H100_PRODUCT, HOSTILE_NAMESPACE, NAMESPACE, Api
from bench.chaos.workload import manifest

from modeljob.adapters.cluster_errors import ClusterError

DEPTH = 40
HOSTILE_QUEUES: dict[str, dict[str, Any]] = {
    "hostile-root": {"quota": [{"resource": GPU, "products": [H100_PRODUCT], "nominal": 0}]},
    **{
        f"hostile-deep-{i}": {"parent": "hostile-root" if i == 0 else f"hostile-deep-{i - 1}"}
        for i in range(DEPTH)
    },
    "hostile-cycle-a": {"parent": "hostile-cycle-b"},
    "hostile-cycle-b": {"parent": "hostile-cycle-a"},
    "hostile-orphan": {"parent": "hostile-nowhere"},
    "hostile-small": {"quota": [{"resource": GPU, "products": [H100_PRODUCT], "nominal": 4}]},
    "hostile-big-child": {
        "parent": "hostile-small",
        "quota": [{"resource": GPU, "products": [H100_PRODUCT], "nominal": 400}],
    },
}
BROKEN_QUEUES = {  # queue -> the condition type it must show
    "hostile-cycle-a": "ParentCycle",
    "hostile-cycle-b": "ParentCycle",
    "hostile-orphan": "ParentMissing",
    "hostile-small": "ChildrenAboveNominal",
}
QUEUE_CHOICES = (
    "hostile-root",
    f"hostile-deep-{DEPTH - 1}",
    "hostile-cycle-a",
    "hostile-orphan",
    "hostile-big-child",
)
KINDS = ("parameters", "replicas", "gpus", "products", "refused")
MIXED_SHARE = 0.2  # of the hostile jobs the API server accepts: created among the well-formed ones
MIXED_QUEUES = ("chaos-a", "chaos-b")
NEVER_RUN = ("Unschedulable", "Invalid")


@dataclass(frozen=True)
class HostileJob:
    name: str
    kind: str
    manifest: dict[str, Any]
    namespace: str = HOSTILE_NAMESPACE

    @property
    def mixed(self) -> bool:
        """Among the well-formed jobs, in their namespace and queues."""
        return self.namespace == NAMESPACE


def plan_hostile(count: int, rng: random.Random) -> list[HostileJob]:
    jobs = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)]
        name = f"hostile-{kind}-{index:04d}"
        mixed = kind != "refused" and rng.random() < MIXED_SHARE
        queue = rng.choice(MIXED_QUEUES if mixed else QUEUE_CHOICES)
        body = manifest(name, queue=queue, replicas=1, gpus=1, product=H100_PRODUCT, trains=False)
        spec = body["spec"]
        if kind == "parameters":
            spec["model"]["parameters"] = "100T"  # 1e14
            del spec["resources"]
        elif kind == "replicas":
            spec["replicas"] = 10_000
        elif kind == "gpus":
            spec["resources"]["gpus"] = 4096
        elif kind == "products":
            spec["accelerator"]["products"] = [f"NVIDIA-NO-SUCH-GPU-{i}" for i in range(64)]
        else:
            spec["accelerator"]["products"] = [f"NVIDIA-NO-SUCH-GPU-{i}" for i in range(256)]
        jobs.append(HostileJob(name, kind, body, NAMESPACE if mixed else HOSTILE_NAMESPACE))
    return jobs


def create_queues(api: Api) -> None:
    for name, spec in HOSTILE_QUEUES.items():
        api.apply_queue(name, spec, labels={"chaos": "hostile"})


def create(api: Api, job: HostileJob) -> str | None:
    """Create one hostile job; the API server's message when it refuses it (422), else None."""
    try:
        api.create_job(job.namespace, job.manifest)
    except ClusterError as exc:
        if exc.status == 422:
            return exc.detail
        raise
    return None


def unexplained_jobs(
    jobs: list[HostileJob], found: dict[str, dict[str, Any]], refusals: dict[str, str]
) -> list[str]:
    """Hostile jobs without a clear reason: not refused and without a waiting phase and message
    (among the well-formed jobs: Invalid or Unschedulable, not waiting in their queues), or
    refused when they should have been accepted (or the reverse). ``found``: by name."""
    problems = []
    for job in jobs:
        if job.kind == "refused":
            if "products" not in refusals.get(job.name, ""):
                problems.append(f"{job.name}: the API server did not refuse 256 products with a reason")
            continue
        if job.name in refusals:
            problems.append(f"{job.name}: refused by the API server: {refusals[job.name][:200]}")
            continue
        status = (found.get(job.name) or {}).get("status") or {}
        messages = [status.get("message")] + [c.get("message") for c in status.get("conditions") or []]
        allowed = NEVER_RUN if job.mixed else ("Queued", *NEVER_RUN)
        if status.get("phase") not in allowed or not any(messages):
            where = (
                f"among the well-formed jobs, in {job.manifest['spec']['scheduling']['queue']}"
                if job.mixed
                else ""
            )
            problems.append(
                f"{job.name} ({job.kind}{', ' + where if where else ''}): phase {status.get('phase')}, "
                f"message {status.get('message')!r}"
            )
    return problems


def unexplained_queues(queues: list[dict[str, Any]]) -> list[str]:
    by_name = {q["metadata"]["name"]: q for q in queues}
    problems = []
    for name, expected in BROKEN_QUEUES.items():
        conditions = ((by_name.get(name) or {}).get("status") or {}).get("conditions") or []
        if not any(expected in (str(c.get("reason")), str(c.get("type"))) for c in conditions):
            problems.append(f"queue {name}: no {expected} condition ({conditions})")
    return problems
