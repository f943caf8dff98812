"""Each well-formed job's end, from its plan: a deleted job is gone with its pods, a training job
has Succeeded, a serving job Runs on all of its placed pods or waits Queued with a reason; and
any job may have Failed by its failure policy once node losses used its restarts up."""

from __future__ import annotations

import re
from typing import Any

from bench.chaos.invariants import Snapshot, jobs_in, live_bound
from bench.chaos.workload import JobPlan

from modeljob.adapters import kube_pods


def wrong_ends(plans: list[JobPlan], snapshot: Snapshot, namespace: str) -> list[str]:
    jobs = jobs_in(snapshot, namespace)
    pods_of: dict[str, list[dict[str, Any]]] = {}
    for pod in snapshot.pods:
        if pod["metadata"]["namespace"] == namespace:
            pods_of.setdefault((pod["metadata"].get("labels") or {}).get(kube_pods.LABEL_JOB, ""), []).append(
                pod
            )
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
        if phase == "Failed" and failed_by_lost_nodes(status):
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
    return problems


# docs/operator.md, "Failures and restarts": a lost node of a bound placement is a failure of the
# job's, counted against failurePolicy.maxRestarts (default 3); the soak fails no pod itself, so
# a Failed job is right only when node losses (the flaps) used its restarts up.
LOST_NODE = re.compile(r"^node \S+ of replica \d+ (was deleted|is NotReady); not recreated: failurePolicy")


def failed_by_lost_nodes(status: dict[str, Any]) -> bool:
    return bool(LOST_NODE.match(str(status.get("message") or ""))) and int(status.get("restarts") or 0) >= 3


def phases(plans: list[JobPlan], snapshot: Snapshot, namespace: str) -> dict[str, int]:
    jobs = jobs_in(snapshot, namespace)
    counted: dict[str, int] = {}
    for plan in plans:
        job = jobs.get(plan.name)
        phase = "deleted" if job is None else str((job.get("status") or {}).get("phase"))
        counted[phase] = counted.get(phase, 0) + 1
    return counted
