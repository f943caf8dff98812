"""How much each registered scorer counts (the operator's settings map to ScoringWeights), and the default."""

from __future__ import annotations

import math
from dataclasses import dataclass

from modeljob.core.scoring.plugin import Scorer
from modeljob.core.scoring.registry import registered_scorers, setting_name


@dataclass(frozen=True, slots=True, init=False)
class ScoringWeights:
    """How much each scorer counts; every scorer yields 0..1 per node and the total is the weighted mean.

    Built with keywords, one per scorer's setting name (``ScoringWeights(gpu_fragmentation=1.0)``);
    unnamed scorers weigh 0. A weight of 0 switches a scorer off (it is not even computed).
    Weights are relative: (2, 1) ranks exactly as (1, 0.5).
    """

    by_position: tuple[float, ...]  # one weight per registered scorer, in the registry's order

    def __init__(self, **weights: float) -> None:
        known = [setting_name(scorer) for scorer in registered_scorers()]
        unknown = sorted(set(weights) - set(known))
        if unknown:
            raise ValueError(f"unknown scorer {unknown[0]!r}; known: {', '.join(known)}")
        for name, value in weights.items():
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"scoring weight {name} must be a finite number >= 0, got {value!r}")
        if not any(weights.values()):
            raise ValueError("at least one scoring weight must be above 0")
        object.__setattr__(self, "by_position", tuple(float(weights.get(name, 0.0)) for name in known))

    def __getattr__(self, name: str) -> float:
        """``weights.cpu_balance``: a scorer's weight by its setting name."""
        if name == "by_position" or name.startswith("__"):
            raise AttributeError(name)  # not set yet (copy, unpickling): never recurse
        for scorer, weight in self.named():
            if setting_name(scorer) == name:
                return weight
        raise AttributeError(name)

    def named(self) -> tuple[tuple[Scorer, float], ...]:
        """Every registered scorer with its weight (0 included), in the registry's order."""
        return tuple(zip(registered_scorers(), self.by_position, strict=True))

    def active(self) -> tuple[tuple[Scorer, float], ...]:
        """The scorers with a weight above 0, in the registry's order, with their weights."""
        return tuple((scorer, weight) for scorer, weight in self.named() if weight > 0)

    def replaced(self, **weights: float) -> ScoringWeights:
        """These weights with the named scorers' weights replaced."""
        current = {setting_name(scorer): weight for scorer, weight in self.named()}
        return ScoringWeights(**(current | weights))


# The product's default. Two measures of GPU lost to what is left on a node: GPU fragmentation
# (FGD: idle GPU the expected task shapes cannot use; whole points 0..100 as kube-scheduler
# scores) and CPU balance (idle GPUs that the node's free CPU and memory can no longer feed).
# CPU balance weighs 3: one GPU stranded by placing a pod then costs about as much as one GPU of
# fragmentation (FGD's score moves 0.25 per GPU at its steepest; CPU balance 1/16 per GPU on a
# cluster whose largest node has 8). What both leave tied goes to the smallest node name; best
# fit is not in the default because it sends one-GPU pods to the small nodes whose GPU model
# other pods ask for by name. docs/placement-quality.md shows why and by how much on the openb
# traces. Template preferences (the pod author's preferred affinity and soft spread) weigh as
# much as both together, so a stated preference beats a packing difference; for a template
# that states none the scorer abstains and the totals are the two packing scorers' alone.
DEFAULT_WEIGHTS = ScoringWeights(gpu_fragmentation=1.0, cpu_balance=3.0, template_preferences=4.0)
