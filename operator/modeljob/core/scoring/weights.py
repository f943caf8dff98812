"""Scorer names, their weights (the operator's settings map to ScoringWeights), and normalisation."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import StrEnum

import numpy as np

from modeljob.core.nodes import FloatArray


class Scorer(StrEnum):
    LEAST_ALLOCATED = "least-allocated"
    MOST_ALLOCATED = "most-allocated"
    BEST_FIT = "best-fit"
    GPU_FRAGMENTATION = "gpu-fragmentation"
    CPU_BALANCE = "cpu-balance"
    COST = "cost"
    ROUND_ROBIN = "round-robin"
    RANDOM = "random"


@dataclass(frozen=True, slots=True)
class ScoringWeights:
    """How much each scorer counts; every scorer yields 0..1 per node and the total is the weighted mean.

    A weight of 0 switches a scorer off (it is not even computed). Weights are relative: (2, 1)
    ranks exactly as (1, 0.5).
    """

    least_allocated: float = 0.0
    most_allocated: float = 0.0
    best_fit: float = 0.0
    gpu_fragmentation: float = 0.0
    cpu_balance: float = 0.0
    cost: float = 0.0
    round_robin: float = 0.0
    random: float = 0.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"scoring weight {item.name} must be a finite number >= 0, got {value!r}")
        if not any(getattr(self, item.name) for item in fields(self)):
            raise ValueError("at least one scoring weight must be above 0")

    def active(self) -> tuple[tuple[Scorer, float], ...]:
        """The scorers with a weight above 0, in declaration order, with their weights."""
        return tuple(
            (Scorer(item.name.replace("_", "-")), float(getattr(self, item.name)))
            for item in fields(self)
            if getattr(self, item.name) > 0
        )


# The product's default. Two measures of GPU lost to what is left on a node: GPU fragmentation
# (FGD: idle GPU the expected task shapes cannot use; whole points 0..100 as kube-scheduler
# scores) and CPU balance (idle GPUs that the node's free CPU and memory can no longer feed).
# CPU balance weighs 3: one GPU stranded by placing a pod then costs about as much as one GPU of
# fragmentation (FGD's score moves 0.25 per GPU at its steepest; CPU balance 1/16 per GPU on a
# cluster whose largest node has 8). What both leave tied goes to the smallest node name; best
# fit is not in the default because it sends one-GPU pods to the small nodes whose GPU model
# other pods ask for by name. docs/placement-quality.md shows why and by how much on the openb
# traces.
DEFAULT_WEIGHTS = ScoringWeights(gpu_fragmentation=1.0, cpu_balance=3.0)


def normalise_min_max(values: FloatArray) -> FloatArray:
    """Rescale to 0..1 over the candidates (all equal -> all 1), for scorers with no natural range."""
    if values.size == 0:
        return values
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.ones_like(values)
    result: FloatArray = (values - low) / (high - low)
    return result


def clip_unit(values: FloatArray) -> FloatArray:
    result: FloatArray = np.clip(values, 0.0, 1.0)
    return result
