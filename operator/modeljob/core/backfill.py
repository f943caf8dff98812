"""Backfill behind a head waiting for quota: whether a job behind it may go first without delaying it.

A queue's head that quota refuses holds the jobs behind it that compete for its quota, so that
small jobs do not keep taking what a large one waits for (kueue#534). Held without bound, that
starves them whenever the head waits for jobs that never end: serving jobs run until deleted, so
a head waiting for their quota held every training job behind it forever (docs/reliability.md,
Findings 1 of the second soak). The rule here is EASY backfill (Lifka, "The ANL/IBM SP
scheduling system", 1995; Slurm's sched/backfill), read for quota instead of nodes: the head's
earliest start is when quota would admit it as the jobs holding quota end, in the order their
expected ends come; a job behind it goes first only if it cannot delay that start:

- the head waits for no job that will end (only for jobs that run until deleted, or for a change
  of quota): a job behind it that ends by itself goes, since the head's start comes only with a
  deletion, whenever that is, and then waits at most for what went first to end;
- else a job behind it goes only if it is expected to end by the head's earliest start.

A serving job never goes first: what it takes it keeps until deleted. A job whose end is unknown
(no ``expectedDuration``) may end at any moment as far as the head knows, and so may a job the
head's queue may preempt: both count as ending now, so behind a head that could start now by
preemption nothing goes first, and preemption takes what the head needs. Pure: requests, usage
and holders in, seconds out.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from modeljob.core.quota import Admission, QuotaRequest, Usage, admit, competing_keys
from modeljob.core.quota_tree import QueueTree, QuotaKey

# A job that runs until it is deleted (serving) holds its quota this long.
UNTIL_DELETED = math.inf


@dataclass(frozen=True, slots=True)
class Holder:
    """A job holding quota (its charges) and how much longer it is expected to hold it: seconds,
    ``UNTIL_DELETED``, or None when nobody knows (it may end at any moment)."""

    admission: Admission
    seconds: float | None


def earliest_start(
    request: QuotaRequest,
    tree: QueueTree,
    usage: Usage,
    holders: Sequence[Holder],
    *,
    evictable: Collection[str] = (),
) -> float:
    """Seconds until quota would admit ``request`` as the ``holders`` that will end do, in the
    order they are expected to (those of unknown end first: they may end now, and so may those
    the head's queue may preempt, ``evictable``); ``UNTIL_DELETED`` when even all of them ending
    would not (it waits for a serving job to be deleted or a quota change).

    ``usage`` is everything held; ``holders`` those of it whose ends are known, or known unknown.
    Only holders charged on a key the request competes for matter; admission is monotone in what
    is released, so the start is found by bisection over the release order."""
    keys = competing_keys(request, tree)
    ending = sorted(
        (
            Holder(h.admission, None) if h.admission.job in evictable else h
            for h in holders
            if (h.seconds != UNTIL_DELETED or h.admission.job in evictable) and _charged_on(h, keys)
        ),
        key=_end_order,
    )
    if not admit(request, tree, _released(usage, ending)).admitted:
        return UNTIL_DELETED
    low, high = 0, len(ending)  # admitted once the first `high` have ended; not with `low - 1`
    while low < high:
        middle = (low + high) // 2
        if admit(request, tree, _released(usage, ending[:middle])).admitted:
            high = middle
        else:
            low = middle + 1
    if low == 0:
        return 0.0
    seconds = ending[low - 1].seconds
    return 0.0 if seconds is None else seconds


def goes_first(seconds: float | None, head_start: float) -> bool:
    """Whether a job behind a head may go first, expected to hold its quota ``seconds``: a job
    that ends by itself when the head waits for no end (the head's start comes with a serving
    job's deletion, whenever that is, and then waits at most for what went first to end); any job
    that ends by the head's earliest start. A serving job never goes first: what it takes it keeps."""
    if seconds == UNTIL_DELETED:
        return False
    if head_start == UNTIL_DELETED:
        return True
    return seconds is not None and seconds <= head_start


def _charged_on(holder: Holder, keys: frozenset[QuotaKey]) -> bool:
    return any(charge.key in keys for charge in holder.admission.charges)


def _end_order(holder: Holder) -> tuple[float, str]:
    """Unknown ends first (they may come now), then by expected end."""
    return (-1.0 if holder.seconds is None else holder.seconds, holder.admission.job)


def _released(usage: Usage, ended: Sequence[Holder]) -> Usage:
    """``usage`` less the charges of the holders that ended, built in one pass."""
    if not ended:
        return usage
    held = {name: dict(keys) for name, keys in usage.by_queue.items()}
    for holder in ended:
        own = held.setdefault(holder.admission.queue, {})
        for charge in holder.admission.charges:
            own[charge.key] = own.get(charge.key, 0) - charge.amount
    return Usage(held)
