"""Fake GPU node catalogue: named presets and node lists (openb CSV rows, our YAML) -> Node manifests.

Pure translation: no cluster, no file I/O. The manifests carry what a real GPU node carries once
the NVIDIA device plugin and GPU Feature Discovery have run: `nvidia.com/gpu` in capacity and
allocatable, and the `nvidia.com/gpu.product`, `.memory` (MiB) and `.count` labels. They also
carry `modeljob.dev/price-per-hour` (US dollars per node-hour), the label the cost scorer reads,
and the `kwok.x-k8s.io/node: fake` annotation that hands the node to the kwok controller.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import yaml

from modeljob.core.resources import (
    GIB,
    MIB,
    TIB,
    QuantityError,
    format_cpu,
    format_quantity_bytes,
    parse_bytes,
    parse_cpu_milli,
)
from modeljob.core.sim.traces import TraceNode

GPU_RESOURCE = "nvidia.com/gpu"
LABEL_GPU_PRODUCT = "nvidia.com/gpu.product"
LABEL_GPU_MEMORY_MIB = "nvidia.com/gpu.memory"
LABEL_GPU_COUNT = "nvidia.com/gpu.count"
LABEL_PRICE_PER_HOUR = "modeljob.dev/price-per-hour"
# kwok manages only nodes carrying this annotation (up.sh starts it with this selector); the
# label lets `nodes delete --all-fake` find them with a server-side selector.
FAKE_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
FAKE_NODE_LABEL = ("type", "kwok")

DEFAULT_PODS_PER_NODE = 110  # the kubelet's default --max-pods
# Host price per vCPU-hour added to every node's GPU price, so CPU-only nodes cost something and
# bigger hosts cost more. Round, illustrative figure, not a quote (see docs/local-control-plane.md).
PRICE_PER_VCPU_HOUR = Decimal("0.04")

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_MAX_NAME_LENGTH = 253
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")


class CatalogError(ValueError):
    """A node list that cannot be used; the message is one line naming where and what."""


@dataclass(frozen=True, slots=True)
class GpuModel:
    """One accelerator type, as GPU Feature Discovery would label it."""

    product: str  # nvidia.com/gpu.product value: the device name with spaces as dashes
    memory_mib: int  # nvidia.com/gpu.memory value
    price_per_gpu_hour: Decimal  # US dollars; illustrative (docs/local-control-plane.md)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One fake node: host size, accelerators and price."""

    name: str
    cpu_milli: int
    memory_bytes: int
    ephemeral_storage_bytes: int
    gpus: int = 0
    gpu: GpuModel | None = None
    pods: int = DEFAULT_PODS_PER_NODE
    price_per_hour: Decimal | None = None  # None: priced from the GPUs and vCPUs (price_node)


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """`count` nodes like `node`, named `<node.name>-0` ... `<node.name>-<count-1>`."""

    count: int
    node: NodeSpec

    def nodes(self) -> tuple[NodeSpec, ...]:
        return tuple(replace(self.node, name=f"{self.node.name}-{index}") for index in range(self.count))


# Current data-centre GPUs, for the presets. Memory is the nominal size in MiB; GFD reports what
# the driver reports, which is slightly less (the usable part), so a real H100 node shows a few
# hundred MiB under 81920.
H100_80GB = GpuModel("NVIDIA-H100-80GB-HBM3", 80 * 1024, Decimal("4.00"))
A100_40GB = GpuModel("NVIDIA-A100-SXM4-40GB", 40 * 1024, Decimal("2.50"))
L4_24GB = GpuModel("NVIDIA-L4", 24 * 1024, Decimal("0.80"))

# The openb trace's GPU models (data/openb README: P100, T4, V100M16, V100M32, A10 disclosed;
# G1/G2/G3 undisclosed). Memory sizes are the brief's; form factors (PCIe/SXM2) are our guess.
# G1-G3 get product names that match no real device, so a job asking for a real product never
# lands on them by accident, and 32 GiB: the largest memory disclosed in the trace, so they are
# sized like its biggest known device rather than invented as a newer one.
OPENB_GPU_MODELS: Mapping[str, GpuModel] = {
    "P100": GpuModel("Tesla-P100-PCIE-16GB", 16 * 1024, Decimal("1.20")),
    "T4": GpuModel("Tesla-T4", 16 * 1024, Decimal("0.35")),
    "V100M16": GpuModel("Tesla-V100-SXM2-16GB", 16 * 1024, Decimal("2.00")),
    "V100M32": GpuModel("Tesla-V100-SXM2-32GB", 32 * 1024, Decimal("2.50")),
    "A10": GpuModel("NVIDIA-A10", 24 * 1024, Decimal("1.00")),
    "G1": GpuModel("openb-G1", 32 * 1024, Decimal("2.50")),
    "G2": GpuModel("openb-G2", 32 * 1024, Decimal("2.50")),
    "G3": GpuModel("openb-G3", 32 * 1024, Decimal("2.50")),
}
# The trace gives no disk size; 1 TiB lets every trace pod that asks for scratch space fit.
OPENB_EPHEMERAL_STORAGE_BYTES = TIB

# Named presets: `modeljob nodes apply --preset NAME`. Host sizes follow common 8-GPU and 4-GPU
# cloud machine shapes (vCPUs, RAM, local NVMe), rounded.
PRESETS: Mapping[str, tuple[NodeGroup, ...]] = {
    "mixed": (
        NodeGroup(2, NodeSpec("gpu-h100", 192_000, 2 * TIB, 8 * TIB, gpus=8, gpu=H100_80GB)),
        NodeGroup(2, NodeSpec("gpu-a100", 96_000, 1152 * GIB, 8 * TIB, gpus=8, gpu=A100_40GB)),
        NodeGroup(2, NodeSpec("gpu-l4", 48_000, 192 * GIB, 4 * TIB, gpus=4, gpu=L4_24GB)),
        NodeGroup(2, NodeSpec("cpu", 32_000, 128 * GIB, 512 * GIB)),
    ),
    # One GPU node and one CPU node: the smallest cluster that still has a choice to make.
    "tiny": (
        NodeGroup(1, NodeSpec("gpu-l4", 48_000, 192 * GIB, 4 * TIB, gpus=4, gpu=L4_24GB)),
        NodeGroup(1, NodeSpec("cpu", 32_000, 128 * GIB, 512 * GIB)),
    ),
}


def preset_nodes(name: str) -> tuple[NodeSpec, ...]:
    """The nodes of a named preset; CatalogError names the presets that exist."""
    groups = PRESETS.get(name)
    if groups is None:
        raise CatalogError(f"unknown preset {name!r}; choose one of: {', '.join(sorted(PRESETS))}")
    return tuple(node for group in groups for node in group.nodes())


def openb_nodes(rows: Iterable[TraceNode], *, source: str) -> tuple[NodeSpec, ...]:
    """openb trace nodes: GPU model codes become products and memory (OPENB_GPU_MODELS)."""
    nodes = []
    for index, row in enumerate(rows, start=2):  # line 1 is the CSV header
        gpu: GpuModel | None = None
        if row.gpus > 0:
            gpu = OPENB_GPU_MODELS.get(row.model)
            if gpu is None:
                known = ", ".join(OPENB_GPU_MODELS)
                raise CatalogError(
                    f"{source}:{index}: model: unknown GPU model {row.model!r} (known: {known})"
                )
        nodes.append(
            NodeSpec(
                name=row.name,
                cpu_milli=row.cpu_milli,
                memory_bytes=row.memory_mib * MIB,
                ephemeral_storage_bytes=OPENB_EPHEMERAL_STORAGE_BYTES,
                gpus=row.gpus,
                gpu=gpu,
            )
        )
    _check_unique(nodes, source=source)
    return tuple(nodes)


def price_node(node: NodeSpec) -> Decimal:
    """US dollars per node-hour: the declared price, else GPUs plus vCPUs at the table prices."""
    if node.price_per_hour is not None:
        return node.price_per_hour
    gpu_price = node.gpu.price_per_gpu_hour * node.gpus if node.gpu is not None else Decimal(0)
    vcpus = Decimal(node.cpu_milli) / 1000
    return (gpu_price + vcpus * PRICE_PER_VCPU_HOUR).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def node_manifest(node: NodeSpec) -> dict[str, Any]:
    """A v1 Node for a create (POST): status is only accepted there, never on update."""
    # The beta twins of os and arch too, as kube-controller-manager's node lifecycle controller
    # keeps them on every node (labelReconcileInfo): left to it, it added them about 4 nodes a
    # second, so 5,000 new fake nodes were relabelled for many minutes, each a node update every
    # watcher of nodes handles, where a real node has them from the start.
    labels = {
        "kubernetes.io/hostname": node.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "beta.kubernetes.io/arch": "amd64",
        FAKE_NODE_LABEL[0]: FAKE_NODE_LABEL[1],
        LABEL_PRICE_PER_HOUR: str(price_node(node)),
    }
    capacity = {
        "cpu": format_cpu(node.cpu_milli),
        "memory": format_quantity_bytes(node.memory_bytes),
        "ephemeral-storage": format_quantity_bytes(node.ephemeral_storage_bytes),
        "pods": str(node.pods),
    }
    if node.gpus > 0 and node.gpu is not None:
        labels[LABEL_GPU_PRODUCT] = node.gpu.product
        labels[LABEL_GPU_MEMORY_MIB] = str(node.gpu.memory_mib)
        labels[LABEL_GPU_COUNT] = str(node.gpus)
        capacity[GPU_RESOURCE] = str(node.gpus)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": node.name,
            "labels": labels,
            "annotations": {FAKE_NODE_ANNOTATION[0]: FAKE_NODE_ANNOTATION[1]},
        },
        "spec": {},
        # No reservations on fake nodes: everything the host has is schedulable.
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


# --- our YAML node list ---------------------------------------------------------------------------
#
#   nodes:
#   - name: gpu-h100          # one node, or the prefix of `count` nodes (name-0, name-1, ...)
#     count: 2                # default 1
#     cpu: "192"              # Kubernetes quantities
#     memory: 2Ti
#     ephemeralStorage: 8Ti   # default 1Ti
#     gpus: 8                 # default 0
#     product: NVIDIA-H100-80GB-HBM3   # required when gpus > 0
#     gpuMemory: 80Gi         # required when gpus > 0
#     pricePerGpuHour: "4.00" # optional; else pricePerHour, else 0 per GPU
#     pricePerHour: "33.68"   # optional: the whole node, overrides the computed price
#     pods: 110               # default 110

_YAML_FIELDS = frozenset(
    {
        "name",
        "count",
        "cpu",
        "memory",
        "ephemeralStorage",
        "gpus",
        "product",
        "gpuMemory",
        "pricePerGpuHour",
        "pricePerHour",
        "pods",
    }
)


_Fail = Callable[[str, str], CatalogError]


class _LineMap(dict[str, Any]):
    """A YAML mapping that remembers the line it started on, for error messages."""

    line = 0


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _LineMap:
    mapping = _LineMap({str(key): value for key, value in loader.construct_mapping(node, deep=True).items()})
    mapping.line = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def yaml_nodes(text: str, *, source: str) -> tuple[NodeSpec, ...]:
    """Nodes from our YAML node list (format above); errors name `source:line: field`."""
    try:
        document = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise CatalogError(f"{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if not isinstance(document, _LineMap) or not isinstance(document.get("nodes"), list):
        raise CatalogError(f"{source}:1: nodes: expected a mapping with a `nodes:` list")
    nodes: list[NodeSpec] = []
    for entry in document["nodes"]:
        if not isinstance(entry, _LineMap):
            raise CatalogError(f"{source}:{document.line}: nodes: each entry must be a mapping")
        nodes.extend(_entry_nodes(entry, source=source))
    if not nodes:
        raise CatalogError(f"{source}:{document.line}: nodes: the list is empty")
    _check_unique(nodes, source=source)
    return tuple(nodes)


def _entry_nodes(entry: _LineMap, *, source: str) -> list[NodeSpec]:
    def fail(field: str, problem: str) -> CatalogError:
        return CatalogError(f"{source}:{entry.line}: {field}: {problem}")

    unknown = sorted(set(entry) - _YAML_FIELDS)
    if unknown:
        raise fail(unknown[0], f"unknown field (known: {', '.join(sorted(_YAML_FIELDS))})")
    name = entry.get("name")
    if not isinstance(name, str) or not _DNS_SUBDOMAIN.match(name) or len(name) > _MAX_NAME_LENGTH - 8:
        raise fail("name", f"expected a lowercase DNS name such as gpu-h100, got {name!r}")
    count = _integer(entry, "count", default=1, fail=fail)
    gpus = _integer(entry, "gpus", default=0, fail=fail)
    pods = _integer(entry, "pods", default=DEFAULT_PODS_PER_NODE, fail=fail)
    if count < 1 or pods < 1:
        raise fail("count" if count < 1 else "pods", "must be at least 1")
    node = NodeSpec(
        name=name,
        cpu_milli=_quantity(entry, "cpu", parse_cpu_milli, fail=fail),
        memory_bytes=_quantity(entry, "memory", parse_bytes, fail=fail),
        ephemeral_storage_bytes=_quantity(entry, "ephemeralStorage", parse_bytes, default="1Ti", fail=fail),
        gpus=gpus,
        gpu=_gpu_model(entry, fail) if gpus > 0 else None,
        pods=pods,
        price_per_hour=_price(entry, "pricePerHour", fail),
    )
    return [node] if count == 1 else list(NodeGroup(count, node).nodes())


def _gpu_model(entry: _LineMap, fail: _Fail) -> GpuModel:
    product = _required(entry, "product", fail)
    if not isinstance(product, str) or not _LABEL_VALUE.match(product):
        raise fail("product", f"expected a label value such as NVIDIA-H100-80GB-HBM3, got {product!r}")
    gpu_memory_mib = _quantity(entry, "gpuMemory", parse_bytes, fail=fail) // MIB
    return GpuModel(product, gpu_memory_mib, _price(entry, "pricePerGpuHour", fail) or Decimal(0))


def _required(entry: _LineMap, field: str, fail: _Fail) -> Any:
    if entry.get(field) is None:
        raise fail(field, "required")
    return entry[field]


def _quantity(
    entry: _LineMap, field: str, parse: Callable[[str], int], *, default: str | None = None, fail: _Fail
) -> int:
    value = entry.get(field, default)
    if value is None:
        raise fail(field, "required")
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise fail(field, f"expected a quantity such as 80Gi or 96, got {value!r}")
    try:
        return parse(str(value))
    except QuantityError as exc:
        raise fail(field, str(exc)) from None


def _integer(entry: _LineMap, field: str, *, default: int, fail: _Fail) -> int:
    value = entry.get(field, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise fail(field, f"expected a whole number, got {value!r}")
    return value


def _price(entry: _LineMap, field: str, fail: _Fail) -> Decimal | None:
    value = entry.get(field)
    if value is None:
        return None
    try:
        price = Decimal(str(value))
    except ArithmeticError:
        price = Decimal(-1)
    if isinstance(value, bool) or not price.is_finite() or price < 0:
        raise fail(field, f"expected a non-negative price in dollars such as 4.00, got {value!r}")
    return price.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def _check_unique(nodes: Sequence[NodeSpec], *, source: str) -> None:
    seen: set[str] = set()
    for node in nodes:
        if node.name in seen:
            raise CatalogError(f"{source}: name: node {node.name!r} appears twice")
        seen.add(node.name)
