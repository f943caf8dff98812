"""The layouts one replica may take: tensor parallel inside a node, pipeline stages across whole nodes.

A replica on one node runs on 1, 2, 4 or 8 GPUs (tensor parallel, dividing the attention heads).
A replica larger than a node takes whole nodes, every GPU of each: tensor parallel inside the node
and one pipeline stage per node (more when the heads do not allow tensor parallel over the whole
node), the stages dividing the layers, as vLLM, LeaderWorkerSet and KAITO run Llama 3.1 405B
(TP 8 x PP 2 on two 8-GPU nodes).
"""

from __future__ import annotations

from dataclasses import dataclass

from modeljob.core.sizing.constants import MAX_NODES_PER_REPLICA
from modeljob.core.sizing.inputs import Device, Shape


@dataclass(frozen=True, slots=True)
class Layout:
    tensor_parallel: int
    pipeline: int
    nodes: int = 1  # pods of the replica, one per node

    @property
    def gpus(self) -> int:
        """Devices of the whole replica."""
        return self.tensor_parallel * self.pipeline

    @property
    def gpus_per_node(self) -> int:
        return self.gpus // self.nodes

    def busiest_share(self, layers: int) -> tuple[int, int]:
        """The fraction of the model's layers one GPU holds on the busiest stage, as (num, den):
        1/(t x PP) when the stages divide the layers, ceil(layers/PP)/(layers x t) otherwise."""
        return -(-layers // self.pipeline), layers * self.tensor_parallel

    def describe(self) -> str:
        text = f"TP {self.tensor_parallel} x PP {self.pipeline}"
        if self.nodes > 1:
            text += f" over {self.nodes} nodes x {self.gpus_per_node} GPUs"
        return text


def tensor_parallel_sizes(shape: Shape, gpus_per_node: int) -> list[int]:
    """Powers of two within one node that the attention heads (and KV heads) allow."""
    sizes = []
    t = 1
    while t <= gpus_per_node:
        heads_ok = shape.derived or shape.attention_heads % t == 0
        kv_ok = shape.derived or shape.kv_heads % t == 0 or t % shape.kv_heads == 0
        if heads_ok and kv_ok:
            sizes.append(t)
        t *= 2
    return sizes


def pipeline_divides(shape: Shape, stages: int) -> bool:
    return shape.derived or shape.layers % stages == 0


def single_node_layouts(shape: Shape, device: Device) -> list[Layout]:
    return [Layout(t, 1) for t in tensor_parallel_sizes(shape, device.gpus_per_node)]


def multi_node_layout(shape: Shape, device: Device, nodes: int) -> Layout:
    """``nodes`` whole nodes: the largest tensor parallel dividing a node, the rest pipeline stages,
    preferring stages that divide the layers (else the engines' uneven split, the last stage
    shorter)."""
    per_node = device.gpus_per_node
    sizes = sorted((t for t in tensor_parallel_sizes(shape, per_node) if per_node % t == 0), reverse=True)
    for t in sizes:
        stages = nodes * per_node // t
        if pipeline_divides(shape, stages):
            return Layout(t, stages, nodes)
    return Layout(sizes[0], nodes * per_node // sizes[0], nodes)


def candidates(shape: Shape, device: Device) -> list[Layout]:
    """Every layout to try, fewest GPUs first: one node's TP sizes, then 2..16 whole nodes."""
    layouts = single_node_layouts(shape, device)
    largest = max(layout.gpus for layout in layouts)
    for nodes in range(1, MAX_NODES_PER_REPLICA + 1):
        if nodes * device.gpus_per_node <= largest:
            continue
        layouts.append(multi_node_layout(shape, device, nodes))
    return layouts


def layout_for_gpus(shape: Shape, device: Device, gpus: int) -> Layout | str:
    """The layout of an explicit ``spec.resources.gpus``, or why it cannot be one."""
    per_node = device.gpus_per_node
    if gpus <= per_node:
        sizes = [t for t in tensor_parallel_sizes(shape, per_node) if gpus % t == 0]
        t = max(sizes)
        return Layout(t, gpus // t)
    if gpus % per_node:
        return (
            f"spec.resources.gpus {gpus} is more than a node's {per_node} GPUs and not a whole "
            f"number of nodes (a replica that spans nodes takes every GPU of each)"
        )
    return multi_node_layout(shape, device, gpus // per_node)
