"""Choosing the replica's layout: the fewest GPUs (then whole nodes) whose per-GPU need fits the device."""

from __future__ import annotations

from dataclasses import dataclass

from modeljob.core.jobs import JobShape
from modeljob.core.resources import format_bytes
from modeljob.core.sizing.constants import (
    MAX_NODES_PER_REPLICA,
    TRAINING_UTILISATION_DEN,
    TRAINING_UTILISATION_NUM,
    UTILISATION_DEN,
    UTILISATION_NUM,
)
from modeljob.core.sizing.gpu_memory import Memory, memory
from modeljob.core.sizing.inputs import Device, Shape
from modeljob.core.sizing.layout import Layout, candidates, layout_for_gpus


@dataclass(frozen=True, slots=True)
class Choice:
    layout: Layout
    memory: Memory
    fits: bool
    why: str  # the rule behind `gpus`: which layout, and what did not fit before it


def _share(job: JobShape) -> tuple[int, int]:
    if job.workload.type.trains:
        return TRAINING_UTILISATION_NUM, TRAINING_UTILISATION_DEN
    return UTILISATION_NUM, UTILISATION_DEN


def budget(job: JobShape, device: Device) -> int:
    """What one device may hold: 9/10 for serving (the engines' cap), 19/20 for training."""
    num, den = _share(job)
    return device.memory_bytes * num // den


def _budget_text(job: JobShape, device: Device) -> str:
    num, den = _share(job)
    return f"{format_bytes(budget(job, device))} budget ({num}/{den} of {format_bytes(device.memory_bytes)})"


def _layout_reason(shape: Shape, layout: Layout) -> str:
    if shape.derived:
        return ""
    reasons = []
    if layout.tensor_parallel > 1:
        reasons.append(f"TP divides {shape.attention_heads} heads")
    if layout.pipeline > 1 and shape.layers % layout.pipeline == 0:
        reasons.append(f"PP divides {shape.layers} layers")
    elif layout.pipeline > 1:
        reasons.append(
            f"uneven stages of up to {-(-shape.layers // layout.pipeline)} of {shape.layers} layers"
        )
    return f" ({', '.join(reasons)})" if reasons else ""


def _overridden(job: JobShape, shape: Shape, device: Device, gpus: int) -> Choice:
    layout = layout_for_gpus(shape, device, gpus)
    if isinstance(layout, str):
        fallback = Layout(1, 1)
        return Choice(fallback, memory(job, shape, fallback), False, layout)
    sized = memory(job, shape, layout)
    fits = sized.per_gpu <= budget(job, device)
    verdict = "fits" if fits else "does NOT fit"
    return Choice(
        layout,
        sized,
        fits,
        f"spec.resources.gpus override: {gpus} GPUs ({layout.describe()}); "
        f"{format_bytes(sized.per_gpu)} per GPU {verdict} the {_budget_text(job, device)}",
    )


def choose_layout(job: JobShape, shape: Shape, device: Device) -> Choice:
    """The smallest layout that fits: one node's TP sizes first, then 2..16 whole nodes."""
    if job.overrides.gpus is not None:
        return _overridden(job, shape, device, job.overrides.gpus)
    tried: list[str] = []
    layouts = candidates(shape, device)
    sized = memory(job, shape, layouts[0])
    layout = layouts[0]
    for layout in layouts:
        sized = memory(job, shape, layout)
        if sized.per_gpu <= budget(job, device):
            tried_text = f"; the next smaller layout did not: {tried[-1]}" if tried else ""
            return Choice(
                layout,
                sized,
                True,
                f"smallest layout whose per-GPU need {format_bytes(sized.per_gpu)} fits the "
                f"{_budget_text(job, device)}: {layout.describe()}{_layout_reason(shape, layout)}"
                f"{tried_text}",
            )
        tried.append(f"{layout.describe()} needs {format_bytes(sized.per_gpu)} per GPU")
    return Choice(
        layout,
        sized,
        False,
        f"does NOT fit: even {layout.describe()} ({MAX_NODES_PER_REPLICA} nodes at most per replica) "
        f"needs {format_bytes(sized.per_gpu)} per GPU > {_budget_text(job, device)}",
    )
