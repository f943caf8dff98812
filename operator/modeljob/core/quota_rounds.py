"""A round of admission over everything waiting: each queue in its own order, heads waiting for
quota holding the jobs that compete with them, borrowers by weighted dominant-resource fairness,
and each admitted job tried for placement before the next is admitted, so that quota is charged
only to the jobs that run or are being placed. docs/queues.md states the rules."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from modeljob.core.quota import Admission, KeyView, QuotaRequest, Usage, admit, competing_keys
from modeljob.core.quota_tree import QueueTree, QuotaKey

# Tries an admitted job's placement: True when it keeps its charge (placed, or a preemption
# for it started), False when it gives the charge back (nothing was placed).
Placing = Callable[[Admission], bool]


def dominant_share(queue: str, tree: QueueTree, usage: Usage) -> float:
    """Weighted dominant share of what the tree lends: max over keys of the queue's use above its
    nominal divided by its root's pool, divided by its weight (0 while it borrows nothing)."""
    share = 0.0
    root = tree.root_of(queue)
    for key in tree.keys_in_tree(queue):
        view = KeyView(tree, usage, key)
        lendable = view.level(root).pool
        if lendable > 0:
            share = max(share, max(0, view.used(queue) - view.level(queue).total) / lendable)
    return share / tree.queues[queue].weight


@dataclass(frozen=True, slots=True)
class AdmissionRound:
    """One round over everything pending: who is admitted and keeps its charge (in order), who
    was admitted but not placed (holding nothing), who waits and why; ``usage`` is what is held."""

    admitted: tuple[Admission, ...]
    waiting: tuple[Admission, ...]
    usage: Usage
    unplaced: tuple[Admission, ...] = ()


def admit_pending(
    pending: Sequence[QuotaRequest],
    tree: QueueTree,
    usage: Usage,
    *,
    place: Placing | None = None,
    first: Collection[str] = (),
) -> AdmissionRound:
    """Admit what fits, each queue in its own order (`pending` lists each queue's jobs in it).

    A queue's head that waits for quota holds the jobs behind it that compete with it, those
    asking for a key it could be charged to: no small job overtakes a large one for the quota
    it waits for, so large jobs do not starve (kueue#534); a job that asks for none of those
    keys (another product) goes on. Among the queues' heads: the jobs named ``first`` (a
    preemptor whose victims are gone), then those that fit without borrowing, the queues taking
    turns; then borrowers by the smallest weighted dominant share after admission (ties: queue
    name, then job); so borrowers share what is lent by weight.

    ``usage`` is what the jobs holding quota hold. Each admitted job is ``place``d before the
    next is admitted; one that is not placed gives its charge back at once (``unplaced``), so
    no job waits for quota that an admitted job holds without running (Kueue's BestEffortFIFO).
    Without ``place`` every admitted job keeps its charge.
    """
    lines: dict[str, deque[QuotaRequest]] = {}
    for request in pending:
        lines.setdefault(request.queue, deque()).append(request)
    heads: dict[str, list[Admission]] = {}  # per queue, its heads waiting for quota
    turns = dict.fromkeys(lines, 0)
    # Each queue's admitted head with its rank, valid while usage is unchanged: a job not placed
    # changes nothing, so the other heads' decisions stand.
    decided: dict[str, tuple[tuple[int, int, float, str, str], Admission]] = {}
    admitted: list[Admission] = []
    unplaced: list[Admission] = []
    waiting: list[Admission] = []
    while lines:
        ready: list[tuple[tuple[int, int, float, str, str], Admission]] = []
        for queue in sorted(lines):
            line = lines[queue]
            waiting.extend(_held_behind(line, heads.get(queue, ()), tree))
            if not line:
                del lines[queue]
                continue
            found = decided.get(queue)
            if found is None or found[1].job != line[0].job:
                decision = admit(line[0], tree, usage)
                if not decision.admitted:
                    line.popleft()
                    waiting.append(decision)
                    if decision.blocks_queue:
                        heads.setdefault(queue, []).append(decision)
                    if not line:
                        del lines[queue]
                    continue
                found = decided[queue] = (_rank(decision, tree, usage, turns, first), decision)
            ready.append(found)
        if not ready:
            continue
        decision = min(ready, key=lambda item: item[0])[1]
        queue = decision.queue
        lines[queue].popleft()
        if not lines[queue]:
            del lines[queue]
        turns[queue] += 1
        del decided[queue]
        if place is None or place(decision):
            admitted.append(decision)
            usage = usage.plus(queue, decision.charges)
            decided.clear()
        else:
            unplaced.append(decision)
    return AdmissionRound(tuple(admitted), tuple(waiting), usage, tuple(unplaced))


def _rank(
    decision: Admission, tree: QueueTree, usage: Usage, turns: dict[str, int], first: Collection[str]
) -> tuple[int, int, float, str, str]:
    """Named first, then within nominal (queues by turns), then borrowers by share after."""
    queue = decision.queue
    if decision.borrowed:
        after = dominant_share(queue, tree, usage.plus(queue, decision.charges))
        return (int(decision.job not in first), 1, after, queue, decision.job)
    return (int(decision.job not in first), 0, float(turns[queue]), queue, decision.job)


def _held_behind(line: deque[QuotaRequest], heads: Sequence[Admission], tree: QueueTree) -> list[Admission]:
    """The jobs at the front of a queue's line that compete with a head waiting for quota."""
    held: list[Admission] = []
    while line and heads:
        keys: frozenset[QuotaKey] = competing_keys(line[0], tree)
        head = next((h for h in heads if h.competes_for & keys), None)
        if head is None:
            break
        request = line.popleft()
        reason = f"queue {request.queue}: behind {head.job}, which waits for quota"
        held.append(
            Admission(
                request.job, request.queue, admitted=False, reason=reason, blocks_queue=True, behind=head.job
            )
        )
    return held
