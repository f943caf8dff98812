"""v1 Node dicts -> NodeFacts: allocatable, accelerator facts from labels, readiness, cordon, taints."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modeljob.adapters.kube_values import MAX_QUANTITY, accelerator_of, parse_time, quantity_int
from modeljob.core.cluster_state import NodeFacts, Taint, TaintEffect
from modeljob.core.nodes import NodeView
from modeljob.core.resources import MIB, Resources, parse_bytes, parse_cpu_milli, parse_quantity


@dataclass(frozen=True, slots=True)
class NodeLabelKeys:
    """Which node labels carry GPU facts and price (settings.node_labels)."""

    gpu_product: str = "nvidia.com/gpu.product"
    gpu_memory_mib: str = "nvidia.com/gpu.memory"
    price_per_hour: str = "modeljob.dev/price-per-hour"


def node_facts(node: Mapping[str, Any], *, labels: NodeLabelKeys = NodeLabelKeys()) -> NodeFacts:
    """A v1 Node as NodeFacts: allocatable, accelerator facts from labels, readiness, cordon, taints."""
    meta = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    allocatable: Mapping[str, Any] = status.get("allocatable") or status.get("capacity") or {}
    node_labels: dict[str, str] = {str(k): str(v) for k, v in (meta.get("labels") or {}).items()}
    accelerator, devices = accelerator_of(allocatable)
    memory_mib = quantity_int(node_labels.get(labels.gpu_memory_mib), parse_quantity)
    price: float | None = None
    try:
        price = float(node_labels[labels.price_per_hour]) if labels.price_per_hour in node_labels else None
    except ValueError:
        price = None
    ready, not_ready_since = _readiness(status.get("conditions") or [])
    view = NodeView(
        name=str(meta.get("name", "")),
        allocatable=Resources(
            cpu_milli=quantity_int(allocatable.get("cpu"), parse_cpu_milli),
            memory_bytes=quantity_int(allocatable.get("memory"), parse_bytes),
            ephemeral_storage_bytes=quantity_int(allocatable.get("ephemeral-storage"), parse_bytes),
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
