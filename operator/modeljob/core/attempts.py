"""Which scheduling cycle placed a job, counted from the first that decided for it: what
kube-scheduler counts as a pod's scheduling attempts (its ``scheduler_pod_scheduling_attempts``
histogram), and what the job was last told while it waited.

A cycle decides for every waiting job it sees, so a job placed at attempt 1 was placed by the
first cycle that saw it, whatever it waited for first (the watch, a cycle in flight); a job placed
at attempt 3 was left waiting by two cycles, for the reason it was last given. The scheduling loop
keeps the tally in memory, from the steps its cycles give: a restarted or new leader counts
afresh, so a job that waited under an earlier leader may read as placed at its first attempt.
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
    """Per waiting job (by uid): the cycle that first decided for it, and its last reason."""

    cycles: int = 0
    _waiting: dict[str, tuple[int, str]] = field(default_factory=dict)

    def count(self, steps: Sequence[Step], *, sitting_out: Collection[str] = ()) -> tuple[Step, ...]:
        """One cycle's ``steps``, each placement given its attempt and its last waiting reason.
        A job this cycle did not leave waiting is forgotten (placed, running, gone), but for those
        ``sitting_out`` this cycle (the loop's back-off), which keep their count."""
        self.cycles += 1
        cycle, before = self.cycles, self._waiting
        waiting = self._waiting = {uid: before[uid] for uid in sitting_out if uid in before}
        placed: dict[int, Step] = {}
        # Asked of every waiting job each cycle: plain reads only (steps are final classes).
        for index, step in enumerate(steps):
            if type(step) in _WAITING:
                if not step.job.placement:  # a partly placed job is counted as it grows
                    first = before.get(step.job.uid)
                    message = step.message  # type: ignore[union-attr]  # every _WAITING step has one
                    waiting[step.job.uid] = (cycle if first is None else first[0], message)
            elif isinstance(step, Place) and (first := before.get(step.job.uid)) is not None:
                placed[index] = replace(step, attempt=cycle - first[0] + 1, waited=first[1][:REASON_KEPT])
        if not placed:
            return tuple(steps)
        return tuple(placed.get(index, step) for index, step in enumerate(steps))


def attempt_said(place: Place) -> str:
    """The Scheduled Event's clause on the attempt that placed the job."""
    if place.attempt <= 1:
        return "placed at scheduling attempt 1"
    said = f"placed at scheduling attempt {place.attempt}"
    return f"{said} (it waited: {place.waited})" if place.waited else said
