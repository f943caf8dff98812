"""Admission of a job's spec, one generation at a time: Invalid naming the field, or sized per node type.

The scheduling loop judges every job whose status does not record its current generation
(``status.observedGeneration``) before it plans: the cycle plans the job as admitted, and what
admission found (observedGeneration, the Valid condition, the estimate, phase Queued) is written
with the job's first step, so a job that fits at once goes from created to planned in one write
(docs/operator.md, "The lifecycle"). Nothing is remembered in between: a write that fails leaves
the generation unrecorded, and the next cycle judges it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from modeljob.core.conditions import Json
from modeljob.core.job_state import JobFacts, JobPhase
from modeljob.core.jobs import JobShape
from modeljob.core.lifecycle import admission_phase, spec_problem
from modeljob.core.node_types import Candidate, Sizing
from modeljob.core.status import admitted


def recorded(*, observed_generation: object, generation: object, phase: JobPhase | None) -> bool:
    """Whether the status records the judgement of the current generation already."""
    return observed_generation == generation and phase not in (None, JobPhase.PENDING)


@dataclass(frozen=True, slots=True)
class Judgement:
    """One generation of one job's spec judged: the phase it enters, why it is Invalid or how it
    was sized, and the job as the cycle is to see it once admitted."""

    generation: int | None
    previous: JobPhase | None  # status.phase before this judgement
    phase: JobPhase
    problem: str | None  # what makes the spec invalid, naming the field; None: valid
    sizing: Sizing | None  # None: invalid
    job: JobFacts | None  # as admitted (observedGeneration, phase); None: the spec cannot be read

    @property
    def best(self) -> Candidate | None:
        return self.sizing.candidates[0] if self.sizing is not None and self.sizing.candidates else None

    def patch(self, status: Mapping[str, object], *, now: datetime) -> Json:
        """The admission's status patch (core/status.py ``admitted``) on ``status``."""
        best = self.best
        valid = self.problem is None and self.job is not None
        return admitted(
            status,
            generation=self.generation,
            problem=self.problem,
            phase=self.phase,
            queue=self.job.queue if valid and self.job is not None else "",
            estimate=best.estimate if best is not None else None,
            replicas=self.job.replicas if valid and self.job is not None else 1,
            now=now,
        )

    @property
    def event(self) -> tuple[str, str, bool]:
        """The one Event of this admission: (reason, message, warning)."""
        if self.problem is not None or self.sizing is None or self.job is None:
            return "InvalidSpec", self.problem or "", True
        if self.phase is JobPhase.QUEUED and self.previous is not JobPhase.QUEUED:
            return "Queued", f"queued in {self.job.queue}; sized: {self.sizing.describe()}", False
        return "Sized", f"generation {self.generation} sized: {self.sizing.describe()}", False


def judge(
    job: JobFacts | None,
    *,
    problem: str | None,
    previous: JobPhase | None,
    generation: int | None,
    size: Callable[[JobFacts], Sizing],
    check: Callable[[JobShape], str | None] = spec_problem,
) -> Judgement:
    """Judge one generation: ``job`` is None when its spec cannot be read (``problem`` says why);
    ``size`` sizes a valid job per node type it may use, ``check`` says what makes a shape
    impossible to size (``spec_problem``, which a caller may cache per shape)."""
    if job is not None and problem is None:
        problem = check(job.shape)
    phase = admission_phase(previous, valid=problem is None and job is not None)
    sizing = size(job) if job is not None and problem is None else None
    return Judgement(
        generation=generation,
        previous=previous,
        phase=phase,
        problem=problem,
        sizing=sizing,
        job=replace(job, observed_generation=job.generation, phase=phase) if job is not None else None,
    )
