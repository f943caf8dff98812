"""The replica's layout: the fewest GPUs (tensor parallel x pipeline) whose per-GPU need fits."""

from __future__ import annotations

from modeljob.core.jobs import JobShape
from modeljob.core.resources import format_bytes
from modeljob.core.sizing.constants import MAX_NODES_PER_REPLICA, UTILISATION_DEN, UTILISATION_NUM
from modeljob.core.sizing.gpu_memory import _Layout, _Memory, _memory, _ModelStates
from modeljob.core.sizing.inputs import Device, _Shape

# --- choosing the layout ------------------------------------------------------------------------


def _tensor_parallel_sizes(shape: _Shape, gpus_per_node: int) -> list[int]:
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


def _node_layout(sizes: list[int], gpus: int) -> _Layout:
    """Tensor parallel inside the node (largest allowed size dividing it), pipeline beyond."""
    tensor = max(t for t in sizes if gpus % t == 0)
    return _Layout(tensor_parallel=tensor, gpus=gpus)


def _candidates(shape: _Shape, device: Device) -> list[_Layout]:
    sizes = _tensor_parallel_sizes(shape, device.gpus_per_node)
    layouts = [_Layout(t, t) for t in sizes]
    largest = max(sizes)
    for nodes in range(1, MAX_NODES_PER_REPLICA + 1):
        gpus = device.gpus_per_node * nodes
        if gpus > largest:
            layouts.append(_node_layout(sizes, gpus))
    return layouts


def _budget(device: Device) -> int:
    return device.memory_bytes * UTILISATION_NUM // UTILISATION_DEN


def _choose_layout(
    job: JobShape, shape: _Shape, states: _ModelStates, device: Device
) -> tuple[_Layout, _Memory, bool, str]:
    budget = _budget(device)
    budget_text = (
        f"{format_bytes(budget)} budget ({UTILISATION_NUM}/{UTILISATION_DEN} of "
        f"{format_bytes(device.memory_bytes)})"
    )
    sizes = _tensor_parallel_sizes(shape, device.gpus_per_node)
    if job.overrides.gpus is not None:
        layout = _node_layout(sizes, job.overrides.gpus)
        memory = _memory(job, shape, states, layout)
        fits = memory.per_gpu <= budget
        verdict = "fits" if fits else "does NOT fit"
        return (
            layout,
            memory,
            fits,
            (
                f"spec.resources.gpus override: {layout.gpus} GPUs (TP {layout.tensor_parallel} x PP "
                f"{layout.pipeline}); {format_bytes(memory.per_gpu)} per GPU {verdict} the {budget_text}"
            ),
        )
    tried: list[str] = []
    layout = _Layout(1, 1)
    memory = _memory(job, shape, states, layout)
    for layout in _candidates(shape, device):
        memory = _memory(job, shape, states, layout)
        if memory.per_gpu <= budget:
            why = "" if shape.derived else f", TP divides {shape.attention_heads} heads"
            tried_text = f" ({'; '.join(tried)} did not fit)" if tried else ""
            return (
                layout,
                memory,
                True,
                (
                    f"smallest layout whose per-GPU need {format_bytes(memory.per_gpu)} "
                    f"fits the {budget_text}: "
                    f"TP {layout.tensor_parallel} x PP {layout.pipeline}{why}{tried_text}"
                ),
            )
        tried.append(f"{layout.gpus} GPUs need {format_bytes(memory.per_gpu)}")
    return (
        layout,
        memory,
        False,
        (
            f"does NOT fit: even {layout.gpus} GPUs ({MAX_NODES_PER_REPLICA} nodes x {device.gpus_per_node}, "
            f"the largest layout allowed) need {format_bytes(memory.per_gpu)} per GPU > {budget_text}"
        ),
    )
