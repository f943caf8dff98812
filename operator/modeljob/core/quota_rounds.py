"""A round of admission over everything waiting: each queue in its own order, heads waiting for
quota holding the jobs that compete with them, borrowers by weighted dominant-resource fairness,
and each admitted job tried for placement before the next is admitted, so that quota is charged
only to the jobs that run or are being placed. docs/queues.md states the rules."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from modeljob.core.backfill import Holder, earliest_start, goes_first
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
    holders: Sequence[Holder] | None = None,
    evictable: Callable[[str], Collection[str]] | None = None,
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

    ``holders`` (the jobs holding ``usage``, with how long each is expected to hold it) bound
    the hold: a job behind a waiting head goes first when it cannot delay the head's earliest
    start (core/backfill.py: EASY backfill), and a job that can never be admitted is refused as
    such rather than held. Without ``holders``, ends are unknown and the hold is strict.
    ``evictable`` names, for a head (by its job), the holders it may preempt: they may end now.
    """
    round_ = _Round(pending, tree, usage, first=first, holders=holders, evictable=evictable)
    while round_.lines:
        ready = round_.admitted_heads()
        if ready:
            round_.take(min(ready, key=lambda item: item[0])[1], place)
    return AdmissionRound(tuple(round_.admitted), tuple(round_.waiting), round_.usage, tuple(round_.unplaced))


# Named first, within nominal or borrowing, turns or share after, queue, job: the smallest goes first.
Rank = tuple[int, int, float, str, str]


class _Round:
    """Where one ``admit_pending`` round stands: each queue's line of jobs not yet decided, its
    heads waiting for quota, its turns so far, and who is admitted, unplaced or waiting."""

    def __init__(
        self,
        pending: Sequence[QuotaRequest],
        tree: QueueTree,
        usage: Usage,
        *,
        first: Collection[str],
        holders: Sequence[Holder] | None,
        evictable: Callable[[str], Collection[str]] | None,
    ) -> None:
        self.lines: dict[str, deque[QuotaRequest]] = {}
        self.requests: dict[str, QuotaRequest] = {}
        for request in pending:
            self.lines.setdefault(request.queue, deque()).append(request)
            self.requests[request.job] = request
        # Who holds quota and for how long (None: unknown, hold strictly); each waiting head's
        # earliest start, worked out once a round: what is admitted later in the round only
        # moves it later, so a job behind judged against it cannot delay the head.
        self.holders = list(holders) if holders is not None else None
        self.starts: dict[str, float] = {}
        self.evictable = evictable
        self.never: dict[tuple[str, tuple[tuple[str, int, frozenset[str]], ...]], bool] = {}
        self.tree = tree
        self.usage = usage  # what the jobs holding quota hold, those admitted this round included
        self.first = first
        self.heads: dict[str, list[Admission]] = {}  # per queue, its heads waiting for quota
        self.turns = dict.fromkeys(self.lines, 0)
        # Each queue's admitted head with its rank, valid while usage is unchanged: a job not
        # placed changes nothing, so the other heads' decisions stand.
        self.decided: dict[str, tuple[Rank, Admission]] = {}
        self.admitted: list[Admission] = []
        self.unplaced: list[Admission] = []
        self.waiting: list[Admission] = []

    def admitted_heads(self) -> list[tuple[Rank, Admission]]:
        """Each queue's head that quota admits now, with its rank (queues by name); a head it
        refuses waits, and the jobs behind one waiting for quota that compete with it wait too."""
        ready: list[tuple[Rank, Admission]] = []
        for queue in sorted(self.lines):
            found = self._admitted_head(queue)
            if found is not None:
                ready.append(found)
        return ready

    def take(self, decision: Admission, place: Placing | None) -> None:
        """The head chosen: placed, it keeps its charge (and every head is judged again against
        the usage it changed); not placed, it gives the charge back and decides nothing else."""
        queue = decision.queue
        self._pop(queue)
        self.turns[queue] += 1
        del self.decided[queue]
        if place is None or place(decision):
            self.admitted.append(decision)
            self.usage = self.usage.plus(queue, decision.charges)
            self.decided.clear()
            if self.holders is not None:
                self.holders.append(Holder(decision, self.requests[decision.job].seconds))
        else:
            self.unplaced.append(decision)

    def _admitted_head(self, queue: str) -> tuple[Rank, Admission] | None:
        line = self.lines[queue]
        self._hold_behind_heads(queue)
        if not line:
            del self.lines[queue]
            return None
        found = self.decided.get(queue)
        if found is None or found[1].job != line[0].job:
            decision = admit(line[0], self.tree, self.usage)
            if not decision.admitted:
                self._pop(queue)
                self.waiting.append(decision)
                if decision.blocks_queue:
                    self.heads.setdefault(queue, []).append(decision)
                return None
            found = self.decided[queue] = (
                _rank(decision, self.tree, self.usage, self.turns, self.first),
                decision,
            )
        return found

    def _hold_behind_heads(self, queue: str) -> None:
        """The jobs at the front of a queue's line that compete with a head waiting for quota
        wait behind it, unless they go first without delaying it (backfill) or can never be
        admitted (then ``admit`` refuses them as such: they hold no one)."""
        line, heads = self.lines[queue], self.heads.get(queue, ())
        while line and heads:
            request = line[0]
            keys: frozenset[QuotaKey] = competing_keys(request, self.tree)
            competing = [head for head in heads if head.competes_for & keys]
            if not competing or self._never(request):
                return
            if self.holders is not None and all(
                goes_first(request.seconds, self._start(head)) for head in competing
            ):
                return
            line.popleft()
            head = competing[0]
            self.waiting.append(
                Admission(
                    request.job,
                    request.queue,
                    admitted=False,
                    reason=f"queue {request.queue}: behind {head.job}, which waits for quota",
                    blocks_queue=True,
                    behind=head.job,
                )
            )

    def _start(self, head: Admission) -> float:
        """The head's earliest start, in seconds from now (core/backfill.py)."""
        if head.job not in self.starts:
            holders = self.holders or ()
            evictable = self.evictable(head.job) if self.evictable is not None else ()
            request = self.requests[head.job]
            self.starts[head.job] = earliest_start(
                request, self.tree, self.usage, holders, evictable=evictable
            )
        return self.starts[head.job]

    def _never(self, request: QuotaRequest) -> bool:
        """Whether no quota would ever admit the request (asked once per queue and shape)."""
        shape = (request.queue, request.demands())
        if shape not in self.never:
            self.never[shape] = admit(request, self.tree, Usage()).never
        return self.never[shape]

    def _pop(self, queue: str) -> None:
        """The queue's head is decided: off its line, and the line gone once empty."""
        line = self.lines[queue]
        line.popleft()
        if not line:
            del self.lines[queue]


def _rank(
    decision: Admission, tree: QueueTree, usage: Usage, turns: dict[str, int], first: Collection[str]
) -> Rank:
    """Named first, then within nominal (queues by turns), then borrowers by share after."""
    queue = decision.queue
    if decision.borrowed:
        after = dominant_share(queue, tree, usage.plus(queue, decision.charges))
        return (int(decision.job not in first), 1, after, queue, decision.job)
    return (int(decision.job not in first), 0, float(turns[queue]), queue, decision.job)
