"""v1 Pod dicts -> PodFacts, and a pod's request as kube-scheduler counts it.

The labels and annotation the operator puts on its pods (kube_writes.pod_manifest) are defined
here, where they are read back. Pure translation: no client, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeljob.adapters.kube_affinity import required_anti_affinity, scoring_terms
from modeljob.adapters.kube_values import accelerator_of, quantity_int
from modeljob.api.v1alpha1 import KIND
from modeljob.core.cluster_state import PodFacts, PodPhase, Termination
from modeljob.core.resources import Resources, parse_bytes, parse_cpu_milli, parse_quantity

LABEL_JOB = "modeljob.dev/job"
LABEL_JOB_UID = "modeljob.dev/job-uid"
LABEL_REPLICA = "modeljob.dev/replica"
# A replica that spans nodes: each pod's place in its group, and whether it leads it (a replica of
# one pod is its own leader), so the serve Service can select the leaders alone.
LABEL_GROUP_MEMBER = "modeljob.dev/group-member"
LABEL_GROUP_ROLE = "modeljob.dev/group-role"
LABEL_GROUP_SIZE = "modeljob.dev/group-size"  # pods of the replica: over 1, the operator places them together
GROUP_LEADER = "leader"
GROUP_WORKER = "worker"
ANNOTATION_SPEC_HASH = "modeljob.dev/spec-hash"


def _container_requests(container: Mapping[str, Any]) -> dict[str, int]:
    """One container's requests in integer units (milli-CPU, bytes, devices); limits stand in for
    absent requests, as the API server defaults them."""
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    amounts: dict[str, int] = {}
    for name, value in merged.items():
        if name == "cpu":
            amounts[name] = quantity_int(value, parse_cpu_milli)
        elif name in ("memory", "ephemeral-storage"):
            amounts[name] = quantity_int(value, parse_bytes)
        else:
            amounts[str(name)] = quantity_int(value, parse_quantity)
    return amounts


def pod_requests(pod_spec: Mapping[str, Any]) -> tuple[Resources, str | None]:
    """A pod's effective request, as kube-scheduler computes it: the containers summed, at least
    the largest init container, plus the pod overhead. Returns the accelerator the GPUs come from."""
    total: dict[str, int] = {}
    for container in pod_spec.get("containers") or []:
        for name, amount in _container_requests(container).items():
            total[name] = total.get(name, 0) + amount
    for container in pod_spec.get("initContainers") or []:
        for name, amount in _container_requests(container).items():
            total[name] = max(total.get(name, 0), amount)
    for name, value in (pod_spec.get("overhead") or {}).items():
        total[str(name)] = total.get(str(name), 0) + _container_requests(
            {"resources": {"requests": {name: value}}}
        ).get(str(name), 0)
    accelerator, devices = accelerator_of({k: str(v) for k, v in total.items() if "/" in k and v > 0})
    return (
        Resources(
            cpu_milli=total.get("cpu", 0),
            memory_bytes=total.get("memory", 0),
            ephemeral_storage_bytes=total.get("ephemeral-storage", 0),
            gpus=devices,
        ),
        accelerator,
    )


def pod_facts(pod: Mapping[str, Any]) -> PodFacts:
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    labels = meta.get("labels") or {}
    requests, accelerator = pod_requests(spec)
    try:
        phase = PodPhase(str(status.get("phase") or "Pending"))
    except ValueError:
        phase = PodPhase.UNKNOWN
    replica: int | None = None
    if str(labels.get(LABEL_REPLICA, "")).isdigit():
        replica = int(labels[LABEL_REPLICA])
    job_uid = next(
        (
            str(ref.get("uid"))
            for ref in meta.get("ownerReferences") or []
            if ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith("modeljob.dev/")
        ),
        None,
    )
    return PodFacts(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        requests=requests,
        accelerator=accelerator,
        node=spec.get("nodeName") or None,
        phase=phase,
        terminating=bool(meta.get("deletionTimestamp")),
        uid=str(meta.get("uid", "")),
        scheduler_name=str(spec.get("schedulerName", "")),
        job_uid=job_uid,
        replica=replica,
        spec_hash=(meta.get("annotations") or {}).get(ANNOTATION_SPEC_HASH),
        termination=_termination(status) if phase is PodPhase.FAILED else None,
        labels={str(k): str(v) for k, v in labels.items()},
        anti_affinity=required_anti_affinity(spec, str(meta.get("namespace", ""))),
        scoring_terms=scoring_terms(spec, str(meta.get("namespace", ""))),
    )


def _termination(status: Mapping[str, Any]) -> Termination | None:
    """The first container that ended badly (state.terminated, else lastState.terminated), else the
    pod's own reason (Evicted, DeadlineExceeded)."""
    for item in [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]:
        for where in ("state", "lastState"):
            ended = (item.get(where) or {}).get("terminated") or {}
            code = ended.get("exitCode")
            if ended and (code != 0 or ended.get("reason") not in (None, "Completed")):
                return Termination(
                    container=str(item.get("name", "")),
                    reason=str(ended.get("reason") or ""),
                    exit_code=int(code) if isinstance(code, int) else None,
                )
    if status.get("reason"):
        return Termination(reason=str(status["reason"]))
    return None
