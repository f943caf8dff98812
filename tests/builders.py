"""Readable fixtures: nodes, pods, tables and trace rows with sensible defaults, overridden by keyword."""

from __future__ import annotations

from collections.abc import Sequence

from modeljob.core.nodes import DEFAULT_ACCELERATOR, NodeTable, NodeView, PodRequest, build_node_table
from modeljob.core.resources import GIB, Resources
from modeljob.core.sim.traces import TraceNode, TracePod


def make_node(
    name: str = "node-0",
    *,
    gpus: int = 8,
    cpu: int = 96,
    memory_gib: int = 512,
    storage_gib: int = 1000,
    gpu_free_milli: Sequence[int] = (),
    requested_cpu: int = 0,
    requested_memory_gib: int = 0,
    accelerator: str | None = DEFAULT_ACCELERATOR,
    product: str | None = "NVIDIA-H100-80GB-HBM3",
    gpu_memory_gib: int | None = 80,
    price_per_hour: float | None = None,
    ready: bool = True,
) -> NodeView:
    """A GPU node (8 × H100 80 GiB, 96 cores, 512 GiB) unless told otherwise; ``gpus=0`` is a CPU node."""
    return NodeView(
        name=name,
        allocatable=Resources(
            cpu_milli=cpu * 1000,
            memory_bytes=memory_gib * GIB,
            ephemeral_storage_bytes=storage_gib * GIB,
            gpus=gpus,
        ),
        requested=Resources(cpu_milli=requested_cpu * 1000, memory_bytes=requested_memory_gib * GIB, gpus=0),
        gpu_free_milli=tuple(gpu_free_milli),
        accelerator=accelerator if gpus else None,
        gpu_product=product if gpus else None,
        gpu_memory_bytes=gpu_memory_gib * GIB if gpus and gpu_memory_gib else None,
        price_per_hour=price_per_hour,
        ready=ready,
    )


def make_pod(
    *,
    gpus: int = 1,
    gpu_milli: int = 1000,
    cpu: float = 8,
    memory_gib: int = 64,
    storage_gib: int = 0,
    accelerator: str = DEFAULT_ACCELERATOR,
    products: Sequence[str] = (),
    min_gpu_memory_gib: int = 0,
) -> PodRequest:
    """One replica's request: one whole GPU, 8 cores, 64 GiB unless told otherwise."""
    return PodRequest(
        resources=Resources(
            cpu_milli=int(cpu * 1000),
            memory_bytes=memory_gib * GIB,
            ephemeral_storage_bytes=storage_gib * GIB,
            gpus=gpus,
            gpu_milli=gpu_milli,
        ),
        accelerator=accelerator,
        products=tuple(products),
        min_gpu_memory_bytes=min_gpu_memory_gib * GIB,
    )


def make_table(*nodes: NodeView) -> NodeTable:
    return build_node_table(sorted(nodes, key=lambda n: n.name))


def make_trace_node(
    name: str = "openb-node-0000",
    *,
    cpu_milli: int = 96_000,
    memory_mib: int = 393_216,
    gpus: int = 8,
    model: str = "G2",
) -> TraceNode:
    return TraceNode(
        name=name, cpu_milli=cpu_milli, memory_mib=memory_mib, gpus=gpus, model=model if gpus else ""
    )


def make_trace_pod(
    name: str = "openb-pod-0000",
    *,
    cpu_milli: int = 8000,
    memory_mib: int = 16_384,
    gpus: int = 1,
    gpu_milli: int = 1000,
    gpu_spec: Sequence[str] = (),
) -> TracePod:
    return TracePod(
        name=name,
        cpu_milli=cpu_milli,
        memory_mib=memory_mib,
        gpus=gpus,
        gpu_milli=gpu_milli if gpus else 0,
        gpu_spec=tuple(gpu_spec),
    )
