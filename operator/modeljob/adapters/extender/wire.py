"""kube-scheduler's extender wire format (k8s.io/kube-scheduler/extender/v1) <-> typed values.

The Go structs have no JSON tags, so the keys on the wire are the Go field names (`Pod`,
`NodeNames`, `FailedAndUnresolvableNodes`, `Host`, `Score`, ...). Go decodes keys
case-insensitively; we read exactly the names kube-scheduler writes and write (replies.py) exactly
the names it reads. Requests are validated here, once: anything malformed becomes a WireError whose message
names the field (`Pod.spec.containers.0.resources.requests.cpu: ...`), and the routes answer 400.

A body as kube-scheduler writes it is read in two parts (`_read_as_sent`), keeping the NodeNames
text (~110 KB at 5,000 nodes) for a filter reply that passes every node to send back as is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from modeljob.adapters import kube_pods, kube_values
from modeljob.adapters.extender import shortlist_rules
from modeljob.core.cluster_state import PodFacts, Toleration
from modeljob.core.nodes import DEFAULT_ACCELERATOR, PodRequest
from modeljob.core.resources import QuantityError, Resources, parse_quantity

JsonObject = dict[str, Any]
_MAX_ERRORS_SHOWN = 3


class WireError(ValueError):
    """A request kube-scheduler (or anyone) sent that we cannot read; the message names the field."""


# --- request models (only the fields we read; the rest of a v1.Pod is ignored) -----------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


def _check_quantities(
    values: Mapping[str, str | int | float] | None,
) -> Mapping[str, str | int | float] | None:
    for name, value in (values or {}).items():
        try:
            parse_quantity(value)
        except QuantityError as exc:
            raise ValueError(f"{name}: {exc}") from None
    return values


class ResourceRequirements(_Wire):
    requests: dict[str, str | int | float] | None = None
    limits: dict[str, str | int | float] | None = None

    _quantities = field_validator("requests", "limits")(_check_quantities)


class Container(_Wire):
    name: str = ""
    resources: ResourceRequirements | None = None


class PodSpec(_Wire):
    containers: list[Container] = Field(min_length=1)
    init_containers: list[Container] | None = Field(default=None, alias="initContainers")
    overhead: dict[str, str | int | float] | None = None
    node_name: str | None = Field(default=None, alias="nodeName")
    scheduler_name: str | None = Field(default=None, alias="schedulerName")
    # Read as they come, only to tell whether kube-scheduler's scores for the pod depend on which
    # nodes it scores (shortlist_rules.pod_reason); the API server has validated them.
    affinity: dict[str, Any] | None = None
    topology_spread_constraints: list[Any] | None = Field(default=None, alias="topologySpreadConstraints")
    resource_claims: list[Any] | None = Field(default=None, alias="resourceClaims")
    tolerations: list[Any] | None = None
    volumes: list[Any] | None = None

    _quantities = field_validator("overhead")(_check_quantities)


class OwnerReference(_Wire):
    api_version: str = Field(default="", alias="apiVersion")
    kind: str = ""
    uid: str = ""
    controller: bool | None = None


class ObjectMeta(_Wire):
    name: str = Field(min_length=1, max_length=253)
    namespace: str = Field(default="", max_length=63)
    uid: str = ""
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    owner_references: list[OwnerReference] | None = Field(default=None, alias="ownerReferences")
    deletion_timestamp: str | None = Field(default=None, alias="deletionTimestamp")


class PodStatus(_Wire):
    phase: str | None = None


class Pod(_Wire):
    """The parts of a v1.Pod the extender reads; `clean()` is that subset as a Kubernetes dict."""

    metadata: ObjectMeta
    spec: PodSpec
    status: PodStatus | None = None

    def clean(self) -> JsonObject:
        return self.model_dump(by_alias=True, exclude_none=True)


class NodeItem(_Wire):
    metadata: ObjectMeta


class NodeList(_Wire):
    items: list[NodeItem] | None = None


class ExtenderArgs(_Wire):
    """The body of filter and prioritize: the pod, and the candidate nodes by name or in full."""

    pod: Pod = Field(alias="Pod")
    nodes: NodeList | None = Field(default=None, alias="Nodes")
    node_names: list[str] | None = Field(default=None, alias="NodeNames")


class ExtenderBindingArgs(_Wire):
    """The body of bind: which pod goes to which node (kube-scheduler has chosen)."""

    pod_name: str = Field(alias="PodName", min_length=1, max_length=253)
    pod_namespace: str = Field(alias="PodNamespace", min_length=1, max_length=63)
    pod_uid: str = Field(default="", alias="PodUID")
    node: str = Field(alias="Node", min_length=1, max_length=253)


# --- decoded requests -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Candidates:
    """The nodes kube-scheduler asks about, in its order. ``items`` is set when it sent whole Node
    objects (nodeCacheCapable: false): the reply must then carry those objects back."""

    names: tuple[str, ...]
    items: tuple[JsonObject, ...] | None = None
    # The request's NodeNames array as it came, when that text is exactly json.dumps's compact
    # encoding of ``names`` (kube-scheduler's is): each name is then its own JSON text.
    names_json: bytes | None = None

    def some_as_json(self, some: Sequence[str]) -> bytes | None:
        """``some`` of the names, in the order given, as json.dumps writes them (compact), or None
        if the names came otherwise. Joined, not encoded: each name is its own JSON text."""
        if self.names_json is None:
            return None
        if len(some) == len(self.names):
            return self.names_json
        return ('["' + '","'.join(some) + '"]').encode() if some else b"[]"


@dataclass(frozen=True, slots=True)
class SchedulingArgs:
    """A decoded filter/prioritize request: the pod as the core sees it, and the candidates."""

    pod: PodFacts
    request: PodRequest
    candidates: Candidates
    uid: str = ""
    pod_json: bytes | None = None  # the Pod's text, when the body came as kube-scheduler writes it
    # Why kube-scheduler's scores for this pod depend on which nodes it scores (None: they do not,
    # as far as the pod shows): the filter then passes every node that fits.
    scoring_reason: str | None = None
    # Its tolerations: which PreferNoSchedule taints TaintToleration holds against it.
    tolerations: tuple[Toleration, ...] = ()
    # Why the shortlist may not keep one node of each class of alike ones (None: it may).
    alike_reason: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return self.pod.key


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _load_object(body: bytes) -> JsonObject:
    try:
        document = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise WireError("body: JSON nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise WireError(f"body: not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise WireError(f"body: expected a JSON object, got {type(document).__name__}")
    return document


def _describe(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    parts = []
    for error in errors[:_MAX_ERRORS_SHOWN]:
        where = ".".join(str(part) for part in error["loc"]) or "body"
        parts.append(f"{where}: {error['msg']}")
    more = len(errors) - _MAX_ERRORS_SHOWN
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def pod_request(pod_spec: Mapping[str, Any]) -> PodRequest:
    """What a v1 Pod asks of a node, as the core's PodRequest (whole devices of its accelerator)."""
    resources, accelerator = kube_pods.pod_requests(pod_spec)
    return PodRequest(resources=resources, accelerator=accelerator or DEFAULT_ACCELERATOR)


def decode_scheduling_args(body: bytes) -> SchedulingArgs:
    """An ExtenderArgs body (filter, prioritize) -> the pod and the candidate nodes."""
    as_sent = _read_as_sent(body)
    if as_sent is not None:
        return _scheduling_args(*as_sent)
    document = _load_object(body)
    try:
        args = ExtenderArgs.model_validate(document)
    except ValidationError as exc:
        raise WireError(_describe(exc)) from None
    if args.node_names is not None:
        candidates = Candidates(names=tuple(args.node_names))
    elif args.nodes is not None:
        raw_items = (document.get("Nodes") or {}).get("items") or []
        candidates = Candidates(
            names=tuple(item.metadata.name for item in args.nodes.items or ()), items=tuple(raw_items)
        )
    else:
        raise WireError(
            "NodeNames: required (nodeCacheCapable: true), or Nodes (nodeCacheCapable: false); both are null"
        )
    return _scheduling_args(args.pod, candidates)


def _scheduling_args(pod_model: Pod, candidates: Candidates, pod_json: bytes | None = None) -> SchedulingArgs:
    pod = pod_model.clean()
    facts = kube_pods.pod_facts(pod)
    request = pod_request(pod["spec"])
    for wants in (facts.requests, request.resources):
        _within_reason(wants)
    return SchedulingArgs(
        pod=facts,
        request=request,
        candidates=candidates,
        uid=pod_model.metadata.uid,
        pod_json=pod_json,
        scoring_reason=shortlist_rules.pod_reason(pod),
        tolerations=shortlist_rules.pod_tolerations(pod["spec"].get("tolerations")),
        alike_reason=shortlist_rules.alike_reason(pod["spec"]),
    )


# Go's json.Marshal of ExtenderArgs (nodeCacheCapable: true): fields in order, no spaces, Nodes null.
_AS_SENT_START = '{"Pod":'
_AS_SENT_NAMES = ',"Nodes":null,"NodeNames":['


def as_sent(pod_json: bytes, names_json: bytes) -> bytes:
    """The body kube-scheduler writes for this Pod text and this NodeNames text."""
    return b"".join((_AS_SENT_START.encode(), pod_json, _AS_SENT_NAMES[:-1].encode(), names_json, b"}"))


def _read_as_sent(body: bytes) -> tuple[Pod, Candidates, bytes] | None:
    """A body written as kube-scheduler writes it, read as its two values: the Pod and the NodeNames
    array. Exactly when both parts are complete JSON values is the whole body the object
    {"Pod": pod, "Nodes": null, "NodeNames": names}, so this reads what `_load_object` and
    ExtenderArgs would, and keeps the names' text. None for anything else, valid or not (other
    spacing or order, Nodes in full, a bad value): the general path then reads it, and words any
    refusal the same way whichever path met the body first."""
    if not (body.startswith(_AS_SENT_START.encode()) and body.endswith(b"]}")):
        return None
    try:
        # Decoded once as a whole, as json.loads does for a body opening with '{': a part alone
        # could pass for UTF-16 or open with a byte-order mark that json.loads would skip.
        text = body.decode()
    except UnicodeDecodeError:
        return None
    at = text.rfind(_AS_SENT_NAMES)
    if at < 0:
        return None
    names_text = text[at + len(_AS_SENT_NAMES) - 1 : -1]
    try:
        pod = Pod.model_validate(json.loads(text[len(_AS_SENT_START) : at], parse_constant=_reject_constant))
        names = json.loads(names_text, parse_constant=_reject_constant)
    except (RecursionError, ValueError):  # ValidationError and JSONDecodeError are ValueErrors
        return None
    if type(names) is not list:
        return None
    try:
        joined = '["' + '","'.join(names) + '"]' if names else "[]"
    except TypeError:  # a name that is not a string
        return None
    # Without escapes (no backslash) and in printable ASCII (json.dumps escapes DEL, 0x7f, as it
    # does everything past it; json.loads refuses raw control characters), each name's text is the
    # name itself and json.dumps(names, compact) writes exactly ``joined``: the request's text is
    # that when equal.
    compact = (
        "\\" not in names_text and names_text.isascii() and "\x7f" not in names_text and joined == names_text
    )
    candidates = Candidates(names=tuple(names), names_json=names_text.encode() if compact else None)
    return pod, candidates, text[len(_AS_SENT_START) : at].encode()


def _within_reason(wants: Resources) -> None:
    """Refuse a pod asking for the capped amount or more of anything (kube_values.MAX_QUANTITY):
    no node has it, and scoring it would only do arithmetic at the edge of int64."""
    for name, value in (
        ("cpu", wants.cpu_milli),
        ("memory", wants.memory_bytes),
        ("ephemeral-storage", wants.ephemeral_storage_bytes),
        ("GPUs", wants.gpus),
    ):
        if value >= kube_values.MAX_QUANTITY:
            raise WireError(
                f"Pod.spec.containers[].resources: {name} request of 2^53 or more is beyond any node"
            )


def decode_binding_args(body: bytes) -> ExtenderBindingArgs:
    document = _load_object(body)
    try:
        return ExtenderBindingArgs.model_validate(document)
    except ValidationError as exc:
        raise WireError(_describe(exc)) from None
