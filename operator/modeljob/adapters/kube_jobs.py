"""ModelJob dicts -> the validated spec and JobFacts, with errors that name the field (spec.x.y: ...).

Phase and placement are also read without the spec, for jobs whose spec cannot be read. Pure
translation: no client, no clock.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from modeljob.adapters.kube_affinity import RuleError, template_rules
from modeljob.adapters.kube_pods import LABEL_JOB, LABEL_JOB_UID, pod_requests
from modeljob.adapters.kube_values import parse_time
from modeljob.api.v1alpha1 import ModelJobSpec, TopologyMode, describe_validation_error
from modeljob.core.affinity import TemplateRules
from modeljob.core.cluster_state import TaintEffect, Toleration
from modeljob.core.job_state import ConditionType, JobFacts, JobPhase, Placed
from modeljob.core.jobs import MIN_PARAMETERS, JobShape, ModelShape
from modeljob.core.resources import QuantityError, Resources, parse_bytes, parse_quantity
from modeljob.core.status import restarts as status_restarts


class ObjectError(ValueError):
    """An object the operator cannot use; the message names the field (spec.template.spec...)."""


def parse_spec(job: Mapping[str, Any]) -> ModelJobSpec:
    """The validated spec; ObjectError lists every problem, each naming its field (spec.x.y: ...)."""
    try:
        spec = ModelJobSpec.model_validate(job.get("spec") or {})
    except ValidationError as exc:
        raise ObjectError("; ".join(describe_validation_error(exc, prefix="spec"))) from None
    check_template(spec.template)
    return spec


def check_template(template: Mapping[str, Any]) -> None:
    """What the CRD schema cannot check of spec.template (it keeps unknown fields as they are)."""
    spec = template.get("spec")
    if not isinstance(spec, Mapping):
        raise ObjectError("spec.template.spec: required: a pod spec with at least one container")
    containers = spec.get("containers")
    if not isinstance(containers, list) or not containers:
        raise ObjectError("spec.template.spec.containers: at least one container is required")
    for index, container in enumerate(containers):
        where = f"spec.template.spec.containers[{index}]"
        if not isinstance(container, Mapping):
            raise ObjectError(f"{where}: expected a container object")
        if not container.get("name") or not container.get("image"):
            raise ObjectError(f"{where}: name and image are required")
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            for name, value in (resources.get(kind) or {}).items():
                try:
                    parse_quantity(value)
                except QuantityError as exc:
                    raise ObjectError(f"{where}.resources.{kind}.{name}: {exc}") from None
    if "nodeName" in spec:
        raise ObjectError("spec.template.spec.nodeName: must not be set; the operator chooses the node")
    for name in ("hostname", "subdomain"):
        if name in spec:
            raise ObjectError(
                f"spec.template.spec.{name}: must not be set; the operator names each pod <job>-<index>.<job>"
            )
    selector = spec.get("nodeSelector") or {}
    if not isinstance(selector, Mapping):
        raise ObjectError("spec.template.spec.nodeSelector: expected a map of label -> value")
    _rules(template, namespace="", name="", uid="")  # what the planner cannot honour is refused here


def _rules(template: Mapping[str, Any], *, namespace: str, name: str, uid: str) -> TemplateRules:
    """The template's affinity and spread rules, matched against the labels its pods will carry."""
    from modeljob.adapters.kube_writes import label_value  # noqa: PLC0415 - kube_writes imports this module

    labels = {str(k): str(v) for k, v in ((template.get("metadata") or {}).get("labels") or {}).items()}
    labels |= {LABEL_JOB: label_value(name), LABEL_JOB_UID: uid}
    try:
        return template_rules(template.get("spec") or {}, namespace=namespace, pod_labels=labels)
    except RuleError as exc:
        raise ObjectError(str(exc)) from None


# Spec fields that do not shape the job's pods: changing one must not replace them.
_NOT_SHAPING = frozenset({"scheduling", "failurePolicy", "suspend", "updateStrategy"})


def spec_hash(spec: Mapping[str, Any]) -> str:
    """A short hash of what shapes the job's pods: everything in the spec but `scheduling` (queue
    order), `failurePolicy` (what happens after a failure), `suspend` (whether pods exist) and
    `updateStrategy` (how pods are replaced)."""
    shaping = {key: value for key, value in spec.items() if key not in _NOT_SHAPING}
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()[:16]


def job_facts(job: Mapping[str, Any], spec: ModelJobSpec | None = None) -> JobFacts:
    """A ModelJob as JobFacts; ObjectError if its spec is not valid (admission marks it Invalid,
    and the loop sees it as ``unread_job_facts``)."""
    meta = job.get("metadata") or {}
    spec = spec if spec is not None else parse_spec(job)
    created = parse_time(meta.get("creationTimestamp")) or datetime.fromtimestamp(0, UTC)
    namespace, name, uid = str(meta.get("namespace", "")), str(meta.get("name", "")), str(meta.get("uid", ""))
    return JobFacts(
        namespace=namespace,
        name=name,
        uid=uid,
        generation=int(meta.get("generation") or 1),
        created=created,
        spec_hash=spec_hash(job.get("spec") or {}),
        rules=_rules(spec.template, namespace=namespace, name=name, uid=uid),
        **_spec_facts(spec),
        **_status_facts(job, created),
    )


# What stands in for the spec of a job whose spec cannot be read: JobFacts needs a shape, and no
# node type offers this accelerator, so the job is sized for none (its charge is its pods' requests).
UNREAD_SHAPE = JobShape(model=ModelShape(parameters=MIN_PARAMETERS, name="unread"))
UNREAD_ACCELERATOR = ""


def unread_job_facts(job: Mapping[str, Any]) -> JobFacts:
    """A ModelJob whose spec cannot be read, from its metadata and status alone (and the queue its
    spec names, if that much can be read), so the loop still sees what it holds: an Invalid job's
    placement is rolled back and its pods deleted, and its queue charged for them until then."""
    meta = job.get("metadata") or {}
    created = parse_time(meta.get("creationTimestamp")) or datetime.fromtimestamp(0, UTC)
    spec = job.get("spec")
    scheduling = spec.get("scheduling") if isinstance(spec, Mapping) else None
    queue = scheduling.get("queue") if isinstance(scheduling, Mapping) else None
    return JobFacts(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 1),
        created=created,
        shape=UNREAD_SHAPE,
        spec_hash=spec_hash(spec if isinstance(spec, Mapping) else {}),
        queue=queue if isinstance(queue, str) and queue else "default",
        accelerator=UNREAD_ACCELERATOR,
        **_status_facts(job, created),
    )


def _spec_facts(spec: ModelJobSpec) -> dict[str, Any]:
    """What the spec says, in JobFacts' terms."""
    template_spec: Mapping[str, Any] = spec.template.get("spec") or {}
    scheduling, accelerator = spec.scheduling, spec.accelerator
    expected, checkpoints = scheduling.expected_duration, scheduling.checkpoint_interval
    memory = accelerator.memory_per_device
    return {
        "shape": spec.to_core(),
        "replicas": spec.replicas,
        "gang": scheduling.gang,
        "queue": scheduling.queue,
        "priority": scheduling.priority,
        "expected_duration_seconds": _duration_seconds(expected) if expected else None,
        "checkpoint_interval_seconds": _duration_seconds(checkpoints) if checkpoints else None,
        "accelerator": accelerator.resource_name,
        "products": tuple(accelerator.products),
        "memory_per_device_bytes": parse_bytes(memory) if memory is not None else None,
        "extra_requests": _sidecar_requests(template_spec),
        "node_selector": {str(k): str(v) for k, v in (template_spec.get("nodeSelector") or {}).items()},
        "tolerations": tuple(_tolerations(template_spec.get("tolerations") or [])),
        "max_restarts": spec.failure_policy.max_restarts,
        "restart_scope": spec.failure_policy.restart_scope,
        "suspend": spec.suspend,
        "topology_key": scheduling.topology.key,
        "topology_required": scheduling.topology.mode is TopologyMode.REQUIRED,
        "max_unavailable": spec.update_strategy.max_unavailable,
    }


def _status_facts(job: Mapping[str, Any], created: datetime) -> dict[str, Any]:
    """What the operator wrote in the status, read back (nothing is remembered between cycles)."""
    status = job.get("status") or {}
    conditions = {str(c.get("type")): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}
    binding = conditions.get(ConditionType.BINDING.value) or {}
    scheduled = conditions.get(ConditionType.SCHEDULED.value) or {}
    placed_generation = binding.get("observedGeneration")
    scheduled_since = parse_time(scheduled.get("lastTransitionTime"))
    is_scheduled = scheduled.get("status") == "True"
    return {
        "phase": job_phase(job),
        "observed_generation": status.get("observedGeneration"),
        "placement": placement_of(job),
        "binding": binding.get("status") == "True",
        "placed_generation": int(placed_generation) if placed_generation is not None else None,
        "queued_since": (scheduled_since if not is_scheduled else None) or created,
        "restarts": status_restarts(status),
        "updating": (conditions.get(ConditionType.UPDATING.value) or {}).get("status") == "True",
        "started": scheduled_since if is_scheduled else None,
        "preemptions": int(status.get("preemptions") or 0),
        "run_before_seconds": float(status.get("checkpointedSeconds") or 0),
        "preempted_by": _names(status.get("preemptedBy")),
        "preempting": _names(status.get("preempting")),
        "nominated_nodes": _names(status.get("nominatedNodes")),
    }


def _names(value: object) -> tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def placement_of(job: Mapping[str, Any]) -> tuple[Placed, ...]:
    """status.placement of a ModelJob (read without its spec)."""
    return tuple(
        Placed(
            replica=int(entry.get("replica", 0)),
            pod=str(entry.get("pod", "")),
            node=str(entry.get("node", "")),
            score=entry.get("score"),
            member=int(entry.get("member") or 0),
        )
        for entry in (job.get("status") or {}).get("placement") or []
    )


def job_phase(job: Mapping[str, Any]) -> JobPhase | None:
    """status.phase of a ModelJob, whether or not its spec can be read; None if unset or unknown."""
    text = (job.get("status") or {}).get("phase")
    try:
        return JobPhase(str(text)) if text else None
    except ValueError:
        return None


def count_by_phase(jobs: Iterable[Mapping[str, Any]]) -> Counter[tuple[str, JobPhase]]:
    """ModelJobs by (namespace, status.phase), whether or not their spec can be read; no phase
    counts as Pending."""
    return Counter(
        (str((job.get("metadata") or {}).get("namespace", "")), job_phase(job) or JobPhase.PENDING)
        for job in jobs
    )


def _duration_seconds(text: str) -> float:
    from modeljob.api.quantities import parse_duration  # noqa: PLC0415 - only SJF needs it

    return parse_duration(text).total_seconds()


def _sidecar_requests(template_spec: Mapping[str, Any]) -> Resources:
    """What the template's pod asks for besides its first container (which gets the estimate)."""
    containers = list(template_spec.get("containers") or [])
    if not containers:
        return Resources()
    others = {**template_spec, "containers": containers[1:]}
    requests, _ = pod_requests(others)
    return requests


def _tolerations(items: Iterable[Mapping[str, Any]]) -> Iterable[Toleration]:
    for item in items:
        effect_text = item.get("effect") or ""
        try:
            effect = TaintEffect(effect_text) if effect_text else None
        except ValueError:
            continue
        yield Toleration(
            key=str(item.get("key") or ""),
            operator_exists=item.get("operator") == "Exists",
            value=str(item.get("value") or ""),
            effect=effect,
        )
