"""ModelJob dicts -> the validated spec and JobFacts, with errors that name the field (spec.x.y: ...).

Phase and placement are also read without the spec, for jobs whose spec cannot be read. Pure
translation: no client, no clock.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from modeljob.adapters import kube_values
from modeljob.adapters.job_fields import JobFields, ObjectError
from modeljob.adapters.kube_affinity import RuleError, template_rules
from modeljob.adapters.kube_pods import LABEL_JOB, LABEL_JOB_UID, pod_requests
from modeljob.adapters.kube_values import parse_time
from modeljob.api.v1alpha1 import ModelJobSpec, TopologyMode, describe_validation_error
from modeljob.core.affinity import TemplateRules
from modeljob.core.job_state import ConditionType, JobFacts, JobPhase, Placed
from modeljob.core.jobs import MIN_PARAMETERS, JobShape, ModelShape
from modeljob.core.resources import QuantityError, Resources, parse_bytes, parse_quantity

logger = logging.getLogger(__name__)


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
    _check_containers(containers, "spec.template.spec.containers")
    inits = _listed(spec.get("initContainers"), "spec.template.spec.initContainers")
    _check_containers(inits, "spec.template.spec.initContainers", named=False)
    _check_quantities(spec.get("overhead"), "spec.template.spec.overhead")
    for index, toleration in enumerate(_listed(spec.get("tolerations"), "spec.template.spec.tolerations")):
        if not isinstance(toleration, Mapping):
            raise ObjectError(f"spec.template.spec.tolerations[{index}]: expected an object")
    metadata = template.get("metadata") or {}
    if not isinstance(metadata, Mapping) or not isinstance(metadata.get("labels") or {}, Mapping):
        raise ObjectError("spec.template.metadata.labels: expected a map of label -> value")
    if "nodeName" in spec:
        raise ObjectError("spec.template.spec.nodeName: must not be set; the operator chooses the node")
    if spec.get("schedulingGates"):  # else refused at bind time, saying nothing of the template
        raise ObjectError(
            "spec.template.spec.schedulingGates: must not be set; the operator places the job's pods"
            " itself, creating each on its node, which the API server refuses for a gated pod"
        )
    for name in ("hostname", "subdomain"):
        if name in spec:
            raise ObjectError(
                f"spec.template.spec.{name}: must not be set; the operator names each pod <job>-<index>.<job>"
            )
    selector = spec.get("nodeSelector") or {}
    if not isinstance(selector, Mapping):
        raise ObjectError("spec.template.spec.nodeSelector: expected a map of label -> value")
    _rules(template, namespace="", name="", uid="")  # what the planner cannot honour is refused here


def _listed(value: object, where: str) -> list[Any]:
    if value is None or isinstance(value, list):
        return value or []
    raise ObjectError(f"{where}: expected a list")


def _check_containers(containers: list[Any], where: str, *, named: bool = True) -> None:
    """Each container an object with readable requests and limits (what the planner sums, as
    kube-scheduler does) and, ``named``, a name and an image."""
    for index, container in enumerate(containers):
        at = f"{where}[{index}]"
        if not isinstance(container, Mapping):
            raise ObjectError(f"{at}: expected a container object")
        if named and (not container.get("name") or not container.get("image")):
            raise ObjectError(f"{at}: name and image are required")
        resources = container.get("resources") or {}
        if not isinstance(resources, Mapping):
            raise ObjectError(f"{at}.resources: expected an object with requests and limits")
        for kind in ("requests", "limits"):
            _check_quantities(resources.get(kind), f"{at}.resources.{kind}")


def _check_quantities(value: object, where: str) -> None:
    if value is None:
        return
    if not isinstance(value, Mapping):
        raise ObjectError(f"{where}: expected a map of resource -> quantity")
    for name, quantity in value.items():
        try:
            parse_quantity(quantity)
        except QuantityError as exc:
            raise ObjectError(f"{where}.{name}: {exc}") from None


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
    """A ModelJob as JobFacts; ObjectError if its spec, metadata or status cannot be read, naming
    the field (admission marks it Invalid, and the loop sees it as ``unread_job_facts``). A status
    number that cannot be read (status.restarts: -1) reads as unset, logged as a warning naming it:
    a garbled count of ours must not make a running job Invalid and roll its pods back."""
    fields = JobFields(strict=True)
    meta = fields.mapping(job.get("metadata"), "metadata")
    spec = spec if spec is not None else parse_spec(job)
    created = fields.created(meta)
    namespace, name, uid = str(meta.get("namespace", "")), str(meta.get("name", "")), str(meta.get("uid", ""))
    status_facts = _status_facts(job, created, fields)
    for problem in fields.ignored:
        logger.warning("%s/%s: %s; read as unset until the operator writes it", namespace, name, problem)
    return JobFacts(
        namespace=namespace,
        name=name,
        uid=uid,
        generation=fields.count(meta.get("generation"), "metadata.generation") or 1,
        created=created,
        spec_hash=spec_hash(job.get("spec") or {}),
        rules=_rules(spec.template, namespace=namespace, name=name, uid=uid),
        **_spec_facts(spec),
        **status_facts,
    )


# What stands in for the spec of a job whose spec cannot be read: JobFacts needs a shape, and no
# node type offers this accelerator, so the job is sized for none (its charge is its pods' requests).
UNREAD_SHAPE = JobShape(model=ModelShape(parameters=MIN_PARAMETERS, name="unread"))
UNREAD_ACCELERATOR = ""


def unread_job_facts(job: Mapping[str, Any]) -> JobFacts:
    """A ModelJob whose spec cannot be read, from its metadata and status alone (and the queue its
    spec names, if that much can be read), so the loop still sees what it holds: an Invalid job's
    placement is rolled back and its pods deleted, and its queue charged for them until then.
    Metadata and status fields that cannot be read are read as unset (``job_facts`` said which)."""
    fields = JobFields(strict=False)
    meta = fields.mapping(job.get("metadata"), "metadata")
    created = fields.created(meta)
    spec = job.get("spec")
    scheduling = spec.get("scheduling") if isinstance(spec, Mapping) else None
    queue = scheduling.get("queue") if isinstance(scheduling, Mapping) else None
    return JobFacts(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        generation=fields.count(meta.get("generation"), "metadata.generation") or 1,
        created=created,
        shape=UNREAD_SHAPE,
        spec_hash=spec_hash(spec if isinstance(spec, Mapping) else {}),
        queue=queue if isinstance(queue, str) and queue else "default",
        accelerator=UNREAD_ACCELERATOR,
        **_status_facts(job, created, fields),
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
        "tolerations": tuple(kube_values.tolerations(template_spec.get("tolerations") or [])),
        "max_restarts": spec.failure_policy.max_restarts,
        "restart_scope": spec.failure_policy.restart_scope,
        "suspend": spec.suspend,
        "topology_key": scheduling.topology.key,
        "topology_required": scheduling.topology.mode is TopologyMode.REQUIRED,
        "max_unavailable": spec.update_strategy.max_unavailable,
    }


def _status_facts(job: Mapping[str, Any], created: datetime, fields: JobFields) -> dict[str, Any]:
    """What the operator wrote in the status, read back (nothing is remembered between cycles)."""
    status = fields.mapping(job.get("status"), "status")
    items = fields.items(status.get("conditions"), "status.conditions")
    conditions = {str(c.get("type")): c for c in items if isinstance(c, Mapping)}
    binding = conditions.get(ConditionType.BINDING.value) or {}
    scheduled = conditions.get(ConditionType.SCHEDULED.value) or {}
    scheduled_since = parse_time(scheduled.get("lastTransitionTime"))
    is_scheduled = scheduled.get("status") == "True"
    # The counts the operator keeps read leniently (JobFields): its next write of one (admission's
    # observedGeneration, a restart's or preemption's count) replaces it. The placement, the record
    # of the job's pods, stays strict.
    count = functools.partial(fields.count, lenient=True)
    return {
        "phase": job_phase(job),
        "observed_generation": count(status.get("observedGeneration"), "status.observedGeneration"),
        "placement": _placement(status, fields),
        "binding": binding.get("status") == "True",
        "placed_generation": count(
            binding.get("observedGeneration"), "status.conditions[Binding].observedGeneration"
        ),
        "queued_since": (scheduled_since if not is_scheduled else None) or created,
        "restarts": count(status.get("restarts"), "status.restarts") or 0,
        "updating": (conditions.get(ConditionType.UPDATING.value) or {}).get("status") == "True",
        "started": scheduled_since if is_scheduled else None,
        "preemptions": count(status.get("preemptions"), "status.preemptions") or 0,
        "run_before_seconds": fields.seconds(
            status.get("checkpointedSeconds"), "status.checkpointedSeconds", lenient=True
        ),
        "preempted_by": fields.names(status.get("preemptedBy"), "status.preemptedBy"),
        "preempting": fields.names(status.get("preempting"), "status.preempting"),
        "nominated_nodes": fields.names(status.get("nominatedNodes"), "status.nominatedNodes"),
    }


def _placement(status: Mapping[str, Any], fields: JobFields) -> tuple[Placed, ...]:
    entries = fields.items(status.get("placement"), "status.placement")
    placed = (fields.placed(entry, f"status.placement[{index}]") for index, entry in enumerate(entries))
    return tuple(entry for entry in placed if entry is not None)


def placement_of(job: Mapping[str, Any]) -> tuple[Placed, ...]:
    """status.placement of a ModelJob (read without its spec; entries that cannot be read left out)."""
    fields = JobFields(strict=False)
    return _placement(fields.mapping(job.get("status"), "status"), fields)


# By value: read for every watched job several times a cycle, where JobPhase(text) costs an
# enum lookup and, for an unknown text, an exception.
_PHASES = {phase.value: phase for phase in JobPhase}


def job_phase(job: Mapping[str, Any]) -> JobPhase | None:
    """status.phase of a ModelJob, whether or not its spec can be read; None if unset or unknown."""
    status = job.get("status")
    text = status.get("phase") if isinstance(status, Mapping) else None
    return _PHASES.get(text) if isinstance(text, str) else None


def count_by_phase(jobs: Iterable[Mapping[str, Any]]) -> Counter[tuple[str, JobPhase]]:
    """ModelJobs by (namespace, status.phase), whether or not their spec can be read; no phase
    counts as Pending."""
    return Counter(_namespace_phase(job) for job in jobs)


class PhaseCounts:
    """``count_by_phase`` for a loop that counts the watched jobs every cycle: each document read
    once. The watch replaces a document with a new object at every change, so an object seen
    before (held here, so its id is no other's) has the namespace and phase it had."""

    def __init__(self) -> None:
        self._known: dict[int, tuple[Mapping[str, Any], tuple[str, JobPhase]]] = {}

    def count(self, jobs: Iterable[Mapping[str, Any]]) -> Counter[tuple[str, JobPhase]]:
        before, known = self._known, {}
        for job in jobs:
            found = before.get(id(job))
            if found is None or found[0] is not job:
                found = (job, _namespace_phase(job))
            known[id(job)] = found
        self._known = known
        return Counter(found[1] for found in known.values())


def _namespace_phase(job: Mapping[str, Any]) -> tuple[str, JobPhase]:
    return (str((job.get("metadata") or {}).get("namespace", "")), job_phase(job) or JobPhase.PENDING)


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
