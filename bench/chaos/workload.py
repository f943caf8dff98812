"""The well-formed jobs: a seeded stream of ModelJobs of mixed shapes (single pods, gangs,
multi-node groups, serving and training), and what happens to them after they are created
(suspend and resume, spec changes, deletes). Each job's plan says what its final state must be."""

from __future__ import annotations

import copy
import heapq
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from bench.chaos.env import FINISH_LABEL, H100_PRODUCT, L4_PRODUCT, NAMESPACE, Api, log

from modeljob.adapters.cluster_errors import ClusterError
from tests.cluster import KWOK_IMAGE
from tests.e2e.test_multinode import EXAMPLE as GROUP_EXAMPLE

SHAPES = (  # (shape, weight)
    ("single", 30),
    ("single-l4", 10),
    ("gang", 25),
    ("train", 25),
    ("train-gang", 5),
    ("group", 5),
)


@dataclass
class JobPlan:
    """One job: its manifest, when it is created, what is done to it later, and so its end."""

    name: str
    shape: str
    manifest: dict[str, Any]
    submit_at: float
    actions: list[tuple[float, str]] = field(default_factory=list)  # (seconds after submit, action)

    @property
    def trains(self) -> bool:
        return self.shape.startswith("train")

    @property
    def deleted(self) -> bool:
        return any(action == "delete" for _, action in self.actions)

    @property
    def gang(self) -> bool:
        return bool(self.manifest["spec"].get("scheduling", {}).get("gang", True))


def manifest(
    name: str, *, queue: str, replicas: int, gpus: int, product: str, trains: bool
) -> dict[str, Any]:
    template: dict[str, Any] = {
        "spec": {
            "containers": [{"name": "main", "image": KWOK_IMAGE}],
            "terminationGracePeriodSeconds": 0,
        }
    }
    if trains:
        template["metadata"] = {"labels": {FINISH_LABEL: "true"}}
    return {
        "apiVersion": "modeljob.dev/v1alpha1",
        "kind": "ModelJob",
        "metadata": {"name": name},
        "spec": {
            "model": {"parameters": "1B", "precision": "bf16"},
            "workload": {
                "type": "Training" if trains else "Inference",
                "sequenceLength": 2048,
                "batchSize": 1,
            },
            "replicas": replicas,
            "resources": {"gpus": gpus},
            "accelerator": {"products": [product]},
            "scheduling": {"queue": queue, "gang": True},
            "template": template,
        },
    }


def group_manifest(name: str, *, queue: str) -> dict[str, Any]:
    """Llama-3.1-405B in bf16, as tests/e2e/test_multinode.py runs it: two pods on two whole
    H100 nodes, Preferred in one zone."""
    document: dict[str, Any] = yaml.safe_load(GROUP_EXAMPLE.read_text())
    document["metadata"] = {"name": name}
    spec = document["spec"]
    spec["accelerator"]["products"] = [H100_PRODUCT]
    spec["scheduling"] = {"queue": queue, "topology": {"mode": "Preferred"}}
    spec["template"] = {
        "spec": {
            "containers": [
                {"name": "main", "image": KWOK_IMAGE, "ports": [{"name": "http", "containerPort": 8000}]}
            ],
            "terminationGracePeriodSeconds": 0,
        }
    }
    return document


def _shape_manifest(name: str, shape: str, queue: str, rng: random.Random) -> dict[str, Any]:
    if shape == "group":
        return group_manifest(name, queue=queue)
    if shape == "single-l4":
        return manifest(
            name, queue=queue, replicas=1, gpus=rng.choice((1, 2, 4)), product=L4_PRODUCT, trains=False
        )
    replicas = 1 if shape in ("single", "train") else rng.randint(2, 4)
    gpus = rng.choice((1, 2, 4) if replicas == 1 else (1, 2))
    return manifest(
        name,
        queue=queue,
        replicas=replicas,
        gpus=gpus,
        product=H100_PRODUCT,
        trains=shape.startswith("train"),
    )


def _actions(shape: str, rng: random.Random) -> list[tuple[float, str]]:
    """What happens to a job after its creation, in seconds after it."""
    actions: list[tuple[float, str]] = []
    if rng.random() < 0.12:
        suspend = rng.uniform(15, 120)
        actions += [(suspend, "suspend"), (suspend + rng.uniform(10, 60), "resume")]
    serving = not shape.startswith("train")
    if serving and shape != "group" and rng.random() < 0.15:
        actions.append((rng.uniform(20, 150), "change"))
    if rng.random() < (0.75 if serving else 0.08):
        last = max((at for at, _ in actions), default=0.0)
        actions.append((max(last + 5, rng.uniform(40, 400)), "delete"))
    return sorted(actions)


def plan_jobs(count: int, duration_seconds: float, rng: random.Random) -> list[JobPlan]:
    shapes, weights = zip(*SHAPES, strict=True)
    plans = []
    for index, submit_at in enumerate(sorted(rng.uniform(0, duration_seconds) for _ in range(count))):
        shape = rng.choices(shapes, weights)[0]
        name = f"{shape}-{index:04d}"
        queue = rng.choice(("chaos-a", "chaos-b"))
        plans.append(
            JobPlan(name, shape, _shape_manifest(name, shape, queue, rng), submit_at, _actions(shape, rng))
        )
    return plans


def _changed(plan: JobPlan, rng: random.Random) -> dict[str, Any]:
    """A spec change: another GPU count per replica (re-planned), or another priority (kept)."""
    if rng.random() < 0.5:
        return {"spec": {"scheduling": {"priority": rng.randint(-10, 10)}}}
    gpus = int(plan.manifest["spec"]["resources"]["gpus"])
    new = {1: 2, 2: rng.choice((1, 4)), 4: 2}[gpus]
    plan.manifest = copy.deepcopy(plan.manifest)
    plan.manifest["spec"]["resources"]["gpus"] = new
    return {"spec": {"resources": {"gpus": new}}}


def run(
    plans: list[JobPlan],
    rng: random.Random,
    stop: threading.Event,
    creating: Callable[[str], None] | None = None,
) -> Counter[str]:
    """Create each job at its moment and carry out its actions; counts of what was done.
    ``creating`` is told each job's name just before its create call (bench/chaos/delays.py)."""
    api = Api()
    done: Counter[str] = Counter()
    began = time.monotonic()
    queue: list[tuple[float, int, str, JobPlan]] = [
        (p.submit_at, i, "create", p) for i, p in enumerate(plans)
    ]
    for index, plan in enumerate(plans):
        queue += [(plan.submit_at + at, index, action, plan) for at, action in plan.actions]
    heapq.heapify(queue)
    while queue and not stop.is_set():
        at, _, action, plan = heapq.heappop(queue)
        if stop.wait(max(0.0, began + at - time.monotonic())):
            break
        if action == "create" and creating is not None:
            creating(plan.name)
        try:
            _do(api, action, plan, rng)
        except (ClusterError, TimeoutError) as exc:
            log(f"PROBLEM: {action} {plan.name} failed: {exc}")
            done[f"{action} failed"] += 1
            continue
        done[action] += 1
        if done["create"] % 25 == 0 and action == "create":
            log(f"{done['create']} of {len(plans)} jobs created ({dict(done)})")
    return done


def _do(api: Api, action: str, plan: JobPlan, rng: random.Random) -> None:
    if action == "create":
        api.create_job(NAMESPACE, plan.manifest)
    elif action in ("suspend", "resume"):
        api.patch_job(NAMESPACE, plan.name, {"spec": {"suspend": action == "suspend"}})
    elif action == "change":
        api.patch_job(NAMESPACE, plan.name, _changed(plan, rng))
    elif action == "delete":
        api.delete_job(NAMESPACE, plan.name)
