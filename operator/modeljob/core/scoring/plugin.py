"""The scorer plug-in contract (scheduler-plugins' shape: a name, its arguments, score, normalise)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from modeljob.core.nodes import FloatArray, IntArray, NodeTable, PodRequest

if TYPE_CHECKING:  # only annotations: the cpu-balance scorer imports this module
    from modeljob.core.fragmentation import CompiledWorkload
    from modeljob.core.scoring.scorers.cpu_balance import HostDemand


@dataclass(frozen=True, slots=True)
class ScoringContext:
    """The scorers' arguments beyond the node and the pod.

    ``workload``: the target workload for gpu-fragmentation (aligned to the table's products);
    ``host_demand``: CPU and memory expected per GPU, for cpu-balance (without it, it scores 1);
    ``fragmentation_before``: each table row's current fragmentation, if the caller caches it;
    ``fragmentation_after``: each table row's fragmentation once this pod (whole devices) is
    placed there (gpu_fragmentation.fragmentation_after), if the caller caches it; a share of
    one device ignores it;
    ``seed``: for random; ``last_chosen``: the node round-robin continues after;
    ``preferences``: per table row, 0..1, how well the node meets the pod template's preferred
    rules (core/template_rules.py), for template-preferences; None when the template prefers
    nothing (that scorer then abstains).
    """

    workload: CompiledWorkload | None = None
    host_demand: HostDemand | None = None
    fragmentation_before: FloatArray | None = None
    fragmentation_after: FloatArray | None = None
    seed: int = 0
    last_chosen: str | None = None
    preferences: FloatArray | None = None


@dataclass(frozen=True, slots=True)
class PartScores:
    """One scorer's scores for the candidate rows, and the device it would use on each (if it picks one)."""

    values: FloatArray
    devices: IntArray | None = None  # per row, -1 = no preference; None = this scorer never picks
    # Nothing to say about this pod (template-preferences for a template that prefers nothing):
    # left out of the weighted mean, so it neither moves the totals nor dilutes the others.
    abstained: bool = False


class Scorer(Protocol):
    """A node scorer. ``name`` is what users write (settings, ``--weights``, reasons);
    ``position`` orders the scorers in settings, reasons and the weighted sum (floating-point
    sums depend on their order, so it is fixed, not alphabetical); ``row_local`` says a row's
    score depends only on that row and the request, so callers may cache it per row."""

    @property
    def name(self) -> str: ...

    @property
    def position(self) -> int: ...

    @property
    def row_local(self) -> bool: ...

    def score(
        self, table: NodeTable, rows: IntArray, request: PodRequest, context: ScoringContext
    ) -> PartScores: ...

    def normalise(self, values: FloatArray) -> FloatArray:
        """The raw scores as 0..1 over the candidates."""
        ...


ScoreFunction = Callable[[NodeTable, IntArray, PodRequest, ScoringContext], FloatArray]


def already_unit(values: FloatArray) -> FloatArray:
    """The normalisation of a scorer whose raw score is already 0..1."""
    return values


@dataclass(frozen=True, slots=True)
class FunctionScorer:
    """A Scorer made of a function that scores the rows (what the built-in scorers are)."""

    name: str
    position: int
    function: ScoreFunction
    row_local: bool = True
    normalise_values: Callable[[FloatArray], FloatArray] = already_unit

    def score(
        self, table: NodeTable, rows: IntArray, request: PodRequest, context: ScoringContext
    ) -> PartScores:
        return PartScores(values=self.function(table, rows, request, context))

    def normalise(self, values: FloatArray) -> FloatArray:
        return self.normalise_values(values)
