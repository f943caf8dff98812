"""Kubernetes objects (plain dicts, as the API server speaks them) <-> the core's values.

Nodes, pods and ModelJobs become `NodeFacts`, `PodFacts` and `JobFacts`; decisions become Pod,
Binding and Event dicts (status patches are core/status.py's). Pure translation: no client, no
clock (`now` is passed).
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from modeljob.api.v1alpha1 import API_VERSION, KIND, ModelJobSpec, describe_validation_error
from modeljob.core.cluster_state import (
    NodeFacts,
    PodFacts,
    PodPhase,
    Taint,
    TaintEffect,
    Termination,
    Toleration,
)
from modeljob.core.lifecycle import ConditionType, JobFacts, JobPhase, Placed
from modeljob.core.nodes import NodeView
from modeljob.core.resources import (
    MIB,
    QuantityError,
    Resources,
    format_cpu,
    parse_bytes,
    parse_cpu_milli,
    parse_quantity,
)
from modeljob.core.status import format_time

JsonObject = dict[str, Any]

LABEL_JOB = "modeljob.dev/job"
LABEL_JOB_UID = "modeljob.dev/job-uid"
LABEL_REPLICA = "modeljob.dev/replica"
ANNOTATION_SPEC_HASH = "modeljob.dev/spec-hash"
EVENT_COMPONENT = "modeljob-operator"

# Extended resources that are accelerators, checked in this order when a node has several; any
# other domain-qualified resource also counts (resources under kubernetes.io are the kubelet's).
KNOWN_ACCELERATORS = ("nvidia.com/gpu", "amd.com/gpu", "intel.com/gpu", "google.com/tpu", "habana.ai/gaudi")
_NOT_ACCELERATOR = re.compile(r"^(hugepages-|.*kubernetes\.io/|.*k8s\.io/)")
_BASE_RESOURCES = ("cpu", "memory", "ephemeral-storage", "pods")
_LABEL_VALUE_MAX = 63
_POD_NAME_MAX = 253


class ObjectError(ValueError):
    """An object the operator cannot use; the message names the field (spec.template.spec...)."""


@dataclass(frozen=True, slots=True)
class NodeLabelKeys:
    """Which node labels carry GPU facts and price (settings.node_labels)."""

    gpu_product: str = "nvidia.com/gpu.product"
    gpu_memory_mib: str = "nvidia.com/gpu.memory"
    price_per_hour: str = "modeljob.dev/price-per-hour"


# --- time --------------------------------------------------------------------------------------


def parse_time(text: object) -> datetime | None:
    """An RFC 3339 timestamp from the API server (`2026-11-23T05:39:49Z`), or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# --- nodes ------------------------------------------------------------------------------------


# No node has 2^53 of anything (9 PB of memory, 9e12 cores). A quantity read from the API server
# is capped there: the API server accepts "1e400" in a pod it never schedules, and one such pod
# bound by hand must not overflow the int64 columns every node and pod ends up in. A request at
# the cap fits no node; callers that must refuse such a pod outright compare with it.
MAX_QUANTITY = 2**53


def _quantity_int(value: object, parse: Any) -> int:
    try:
        amount = int(parse(value)) if isinstance(value, str | int | float) else 0
    except QuantityError:
        return 0
    return min(amount, MAX_QUANTITY)


def node_facts(node: Mapping[str, Any], *, labels: NodeLabelKeys = NodeLabelKeys()) -> NodeFacts:
    """A v1 Node as NodeFacts: allocatable, accelerator facts from labels, readiness, cordon, taints."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    allocatable: Mapping[str, Any] = status.get("allocatable") or status.get("capacity") or {}
    node_labels: dict[str, str] = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    accelerator, devices = _accelerator(allocatable)
    memory_mib = _quantity_int(node_labels.get(labels.gpu_memory_mib), parse_quantity)
    price: float | None = None
    try:
        price = float(node_labels[labels.price_per_hour]) if labels.price_per_hour in node_labels else None
    except ValueError:
        price = None
    ready, not_ready_since = _readiness(status.get("conditions") or [])
    view = NodeView(
        name=str(meta.get("name", "")),
        allocatable=Resources(
            cpu_milli=_quantity_int(allocatable.get("cpu"), parse_cpu_milli),
            memory_bytes=_quantity_int(allocatable.get("memory"), parse_bytes),
            ephemeral_storage_bytes=_quantity_int(allocatable.get("ephemeral-storage"), parse_bytes),
            gpus=devices,
        ),
        accelerator=accelerator,
        gpu_product=node_labels.get(labels.gpu_product) if devices else None,
        gpu_memory_bytes=min(memory_mib * MIB, MAX_QUANTITY) if devices and memory_mib > 0 else None,
        price_per_hour=price,
        ready=ready,
    )
    return NodeFacts(
        view=view,
        labels=node_labels,
        taints=tuple(_taints(spec.get("taints") or [])),
        schedulable=not spec.get("unschedulable", False),
        ready=ready,
        not_ready_since=not_ready_since,
    )


def _accelerator(allocatable: Mapping[str, Any]) -> tuple[str | None, int]:
    counts = {
        str(name): _quantity_int(value, parse_quantity)
        for name, value in allocatable.items()
        if "/" in str(name) and str(name) not in _BASE_RESOURCES and not _NOT_ACCELERATOR.match(str(name))
    }
    present = [name for name, count in counts.items() if count > 0]
    for name in KNOWN_ACCELERATORS:
        if name in present:
            return name, counts[name]
    if present:
        name = sorted(present)[0]
        return name, counts[name]
    return None, 0


def _readiness(conditions: Iterable[Mapping[str, Any]]) -> tuple[bool, datetime | None]:
    for condition in conditions:
        if condition.get("type") == "Ready":
            ready = condition.get("status") == "True"
            return ready, None if ready else parse_time(condition.get("lastTransitionTime"))
    return False, None


def _taints(items: Iterable[Mapping[str, Any]]) -> Iterable[Taint]:
    for item in items:
        try:
            effect = TaintEffect(str(item.get("effect", "")))
        except ValueError:
            continue
        yield Taint(key=str(item.get("key", "")), effect=effect, value=str(item.get("value", "") or ""))


# --- pods -------------------------------------------------------------------------------------


def _container_requests(container: Mapping[str, Any]) -> dict[str, int]:
    """One container's requests in integer units (milli-CPU, bytes, devices); limits stand in for
    absent requests, as the API server defaults them."""
    resources = container.get("resources") or {}
    merged = {**(resources.get("limits") or {}), **(resources.get("requests") or {})}
    amounts: dict[str, int] = {}
    for name, value in merged.items():
        if name == "cpu":
            amounts[name] = _quantity_int(value, parse_cpu_milli)
        elif name in ("memory", "ephemeral-storage"):
            amounts[name] = _quantity_int(value, parse_bytes)
        else:
            amounts[str(name)] = _quantity_int(value, parse_quantity)
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
    accelerator, devices = _accelerator({k: str(v) for k, v in total.items() if "/" in k and v > 0})
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


def count_by_phase(jobs: Iterable[Mapping[str, Any]]) -> Counter[tuple[str, JobPhase]]:
    """ModelJobs by (namespace, status.phase), whether or not their spec can be read; no phase
    counts as Pending."""
    return Counter(
        (str((job.get("metadata") or {}).get("namespace", "")), job_phase(job) or JobPhase.PENDING)
        for job in jobs
    )


def job_phase(job: Mapping[str, Any]) -> JobPhase | None:
    """status.phase of a ModelJob, whether or not its spec can be read; None if unset or unknown."""
    text = (job.get("status") or {}).get("phase")
    try:
        return JobPhase(str(text)) if text else None
    except ValueError:
        return None


# --- ModelJobs --------------------------------------------------------------------------------


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
    selector = spec.get("nodeSelector") or {}
    if not isinstance(selector, Mapping):
        raise ObjectError("spec.template.spec.nodeSelector: expected a map of label -> value")


def spec_hash(spec: Mapping[str, Any]) -> str:
    """A short hash of what shapes the job's pods: everything in the spec but `scheduling`."""
    shaping = {key: value for key, value in spec.items() if key != "scheduling"}
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True, separators=(",", ":")).encode())
    return digest.hexdigest()[:16]


def job_facts(job: Mapping[str, Any], spec: ModelJobSpec | None = None) -> JobFacts:
    """A ModelJob as JobFacts; ObjectError if its spec is not valid (the handlers mark it Invalid)."""
    meta = job.get("metadata") or {}
    status = job.get("status") or {}
    spec = spec if spec is not None else parse_spec(job)
    template_spec: Mapping[str, Any] = spec.template.get("spec") or {}
    conditions = {str(c.get("type")): c for c in status.get("conditions") or [] if isinstance(c, Mapping)}
    binding = conditions.get(ConditionType.BINDING.value) or {}
    scheduled = conditions.get(ConditionType.SCHEDULED.value) or {}
    placed_generation = binding.get("observedGeneration")
    phase = job_phase(job)
    created = parse_time(meta.get("creationTimestamp")) or datetime.fromtimestamp(0, UTC)
    queued_since = (
        parse_time(scheduled.get("lastTransitionTime")) if scheduled.get("status") != "True" else None
    )
    expected = spec.scheduling.expected_duration
    return JobFacts(
        namespace=str(meta.get("namespace", "")),
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 1),
        created=created,
        shape=spec.to_core(),
        spec_hash=spec_hash(job.get("spec") or {}),
        replicas=spec.replicas,
        gang=spec.scheduling.gang,
        queue=spec.scheduling.queue,
        priority=spec.scheduling.priority,
        expected_duration_seconds=_duration_seconds(expected) if expected else None,
        accelerator=spec.accelerator.resource_name,
        products=tuple(spec.accelerator.products),
        memory_per_device_bytes=(
            parse_bytes(spec.accelerator.memory_per_device)
            if spec.accelerator.memory_per_device is not None
            else None
        ),
        extra_requests=_sidecar_requests(template_spec),
        node_selector={str(k): str(v) for k, v in (template_spec.get("nodeSelector") or {}).items()},
        tolerations=tuple(_tolerations(template_spec.get("tolerations") or [])),
        phase=phase,
        observed_generation=status.get("observedGeneration"),
        placement=placement_of(job),
        binding=binding.get("status") == "True",
        placed_generation=int(placed_generation) if placed_generation is not None else None,
        queued_since=queued_since or created,
    )


def placement_of(job: Mapping[str, Any]) -> tuple[Placed, ...]:
    """status.placement of a ModelJob (read without its spec)."""
    return tuple(
        Placed(
            replica=int(entry.get("replica", 0)),
            pod=str(entry.get("pod", "")),
            node=str(entry.get("node", "")),
            score=entry.get("score"),
        )
        for entry in (job.get("status") or {}).get("placement") or []
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


# --- what the operator writes -----------------------------------------------------------------


def pod_name(job_name: str, replica: int, nonce: str) -> str:
    """`<job>-<replica>-<nonce>`: unique per placement attempt, so a re-placed replica never waits
    for its old pod's name to be free; the job name is cut to keep within the 253-character limit."""
    suffix = f"-{replica}-{nonce}"
    return f"{job_name[: _POD_NAME_MAX - len(suffix)]}{suffix}"


def placement_nonce(job_uid: str, resource_version: str) -> str:
    """Five hex digits naming one placement attempt (the job's resourceVersion changes every write)."""
    return hashlib.sha256(f"{job_uid}/{resource_version}".encode()).hexdigest()[:5]


def _label_value(text: str) -> str:
    cut = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:_LABEL_VALUE_MAX]
    return cut.strip("-_.") or "x"


def pod_manifest(
    job: Mapping[str, Any],
    *,
    replica: int,
    name: str,
    requests: Resources,
    accelerator: str,
    product: str | None,
    scheduler_name: str,
    product_label: str,
) -> JsonObject:
    """The Pod for one replica: the job's template with the estimate as the first container's
    requests (GPU and memory also as limits), owned by the job, pinned to the chosen GPU product."""
    meta = job.get("metadata") or {}
    spec_dict = job.get("spec") or {}
    template: Mapping[str, Any] = spec_dict.get("template") or {}
    template_meta = template.get("metadata") or {}
    pod_spec: JsonObject = copy.deepcopy(dict(template.get("spec") or {}))
    labels = {
        **{str(k): str(v) for k, v in (template_meta.get("labels") or {}).items()},
        LABEL_JOB: _label_value(str(meta.get("name", ""))),
        LABEL_JOB_UID: str(meta.get("uid", "")),
        LABEL_REPLICA: str(replica),
    }
    annotations = {
        **{str(k): str(v) for k, v in (template_meta.get("annotations") or {}).items()},
        ANNOTATION_SPEC_HASH: spec_hash(spec_dict),
    }
    containers = pod_spec.get("containers") or [{}]
    main = containers[0]
    resources = main.setdefault("resources", {})
    quantities = {
        "cpu": format_cpu(requests.cpu_milli),
        "memory": bytes_quantity(requests.memory_bytes),
    }
    if requests.ephemeral_storage_bytes:
        quantities["ephemeral-storage"] = bytes_quantity(requests.ephemeral_storage_bytes)
    limits = {"memory": quantities["memory"]}
    if requests.gpus:
        quantities[accelerator] = str(requests.gpus)
        limits[accelerator] = str(requests.gpus)
    resources["requests"] = {**(resources.get("requests") or {}), **quantities}
    resources["limits"] = {**(resources.get("limits") or {}), **limits}
    pod_spec["containers"] = containers
    pod_spec["schedulerName"] = scheduler_name
    pod_spec.pop("nodeName", None)
    if product:
        _require_product(pod_spec, product_label, product)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": str(meta.get("namespace", "")),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": str(meta.get("name", "")),
                    "uid": str(meta.get("uid", "")),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": pod_spec,
    }


_BINARY_SUFFIXES = (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))
_QUANTITY_DECIMALS = 3


def bytes_quantity(value: int) -> str:
    """A byte count as a quantity people read, and exactly: the largest binary unit that holds it
    with at most three decimals (169114337280 -> "157.5Gi", 165153601 KiB -> "165153601Ki"), else bytes."""
    scale = 10**_QUANTITY_DECIMALS
    for suffix, size in _BINARY_SUFFIXES:
        if value >= size and (value * scale) % size == 0:
            whole, part = divmod(value * scale // size, scale)
            decimals = f".{part:0{_QUANTITY_DECIMALS}d}".rstrip("0") if part else ""
            return f"{whole}{decimals}{suffix}"
    return str(value)


_POD_FIELD = re.compile(r"(?<![\w.])(spec|metadata)\.")


def refused_pod_message(detail: str) -> str:
    """The API server's reason for refusing a pod (422), with each field named as the ModelJob's:
    `spec.containers[0].name` is the template's `spec.template.spec.containers[0].name`."""
    _, _, fields = detail.partition(" is invalid: ")
    return _POD_FIELD.sub(lambda m: f"spec.template.{m.group(1)}.", fields or detail)


def _require_product(pod_spec: JsonObject, label: str, product: str) -> None:
    """AND `label In [product]` into every required node-affinity term (or add the one term)."""
    expression = {"key": label, "operator": "In", "values": [product]}
    affinity = pod_spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or [{}]
    for term in terms:
        term["matchExpressions"] = [*(term.get("matchExpressions") or []), expression]
    required["nodeSelectorTerms"] = terms


def binding_manifest(namespace: str, pod: str, node: str) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod, "namespace": namespace},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


def event_manifest(
    job: Mapping[str, Any], *, warning: bool, reason: str, message: str, now: datetime, instance: str
) -> JsonObject:
    """A core/v1 Event about a ModelJob, as `kubectl describe mj` lists them."""
    meta = job.get("metadata") or {}
    stamp = format_time(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name', 'modeljob')}.", "namespace": meta.get("namespace")},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": "Warning" if warning else "Normal",
        "reason": reason,
        "message": message[:1024],
        "source": {"component": EVENT_COMPONENT},
        "reportingComponent": EVENT_COMPONENT,
        "reportingInstance": instance[:128],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
