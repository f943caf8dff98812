"""Which scheduling attempt placed a job: how many of the leader's cycles left it waiting before
one placed it, as kube-scheduler counts a pod's scheduling attempts (its
``scheduler_pod_scheduling_attempts`` histogram), and what the job was last told while it waited.

A cycle decides for every waiting job it sees, so a job placed at attempt 1 was placed by the first
cycle that decided for it, whatever it waited for first (the watch, a cycle in flight); a job
placed at attempt 3 was left waiting by two cycles, and says the reason it was given last. Cycles a
job sits out (the loop's back-off of failing writes) are not attempts. Only a new placement of a
job with nothing placed is counted: a partly placed job growing, and a rolling update's new pods,
are not attempts of a waiting job. The scheduling loop keeps the tally in memory, from the steps its
cycles give, while it leads: a replica that takes the lead counts afresh, so a job that waited
under an earlier leader may read as placed at its first attempt.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace

from modeljob.core.steps import Place, Preempt, Step, Unschedulable, Wait

# The steps that leave a job waiting in the queue; each has a message.
_WAITING = frozenset({Wait, Unschedulable, Preempt})
# Enough of a waiting reason to say what the job waited for; the reason itself is in its status.
REASON_KEPT = 300


@dataclass
class AttemptTally:
    """Per waiting job (by uid): the cycles that left it waiting, and the reason the last gave."""

    _waiting: dict[str, tuple[int, str]] = field(default_factory=dict)

    def count(self, steps: Sequence[Step], *, sitting_out: Collection[str] = ()) -> tuple[Step, ...]:
        """One cycle's ``steps``, each new placement given its attempt and its last waiting reason.
        A placed job keeps its count until a cycle no longer finds it waiting or placed anew (its
        plan may not be acted on this cycle: a write of its own under way); a job sitting the
        cycle out keeps it too; any other job is forgotten (running, gone)."""
        before = self._waiting
        waiting = self._waiting = {uid: before[uid] for uid in sitting_out if uid in before}
        placed: dict[int, Step] = {}
        # Asked of every waiting job each cycle: plain reads only (steps are final classes).
        for index, step in enumerate(steps):
            if type(step) in _WAITING:
                job = step.job
                if not job.placement:
                    found = before.get(job.uid)
                    message = step.message  # type: ignore[union-attr]  # every _WAITING step has one
                    waiting[job.uid] = (found[0] + 1 if found is not None else 1, message)
            elif isinstance(step, Place) and (found := before.get(step.job.uid)) is not None:
                waiting[step.job.uid] = found
                if counts(step):
                    placed[index] = replace(step, attempt=found[0] + 1, waited=_cut(found[1]))
        if not placed:
            return tuple(steps)
        return tuple(placed.get(index, step) for index, step in enumerate(steps))


def counts(place: Place) -> bool:
    """Whether ``place`` is a waiting job's placement, whose attempt is counted and said."""
    return not place.job.placement and place.replaces is None


def attempt_said(place: Place) -> str:
    """The Scheduled Event's clause on the attempt that placed the job ("" where none is counted)."""
    if not counts(place):
        return ""
    if place.attempt <= 1:
        return "placed at its first scheduling attempt"
    left = place.attempt - 1
    cycles = f"{left} cycle{'s' if left > 1 else ''}"
    said = f"placed at scheduling attempt {place.attempt}, after {cycles} left it waiting"
    return f"{said} (the last: {place.waited})" if place.waited else said


def _cut(reason: str) -> str:
    return reason if len(reason) <= REASON_KEPT else reason[: REASON_KEPT - 1] + "…"
