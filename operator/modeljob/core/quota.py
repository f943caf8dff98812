"""Admission by quota: whether a job's whole request fits its queue's nominal or what it may borrow.

Pure: the queue tree (core/quota_tree.py), the usage of admitted jobs and a request in, a
decision with its reason out. A job's request is charged to one key per resource: for devices
the first key of its queue's tree, in the queue's own order, whose products the job accepts
and where it fits; a resource (and products) no queue of the tree declares is not limited.
What a queue may use for a key follows Kueue's hierarchical `available` (pkg/cache/
resource_node.go): its own guaranteed part, then what its parent can give within its
borrowingLimit, recursively. A cycle's round over every waiting job (queue order, fair sharing
among borrowers, placement) is core/quota_rounds.py's; docs/queues.md states the rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from modeljob.core.quota_tree import CPU, EPHEMERAL_STORAGE, MEMORY, KeyLevel, QueueTree, QuotaKey
from modeljob.core.resources import format_cpu, format_quantity_bytes

DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"


@dataclass(frozen=True, slots=True)
class QuotaRequest:
    """A whole job's request (all replicas, all pods) as quota counts it."""

    job: str
    queue: str
    namespace: str
    gpus: int = 0
    gpu_resource: str = DEFAULT_GPU_RESOURCE
    gpu_products: frozenset[str] = frozenset()
    cpu_milli: int = 0
    memory_bytes: int = 0
    # How long it expects to hold its quota once admitted: None when unknown, math.inf for a job
    # that runs until deleted (serving). Only backfill reads it (core/backfill.py).
    seconds: float | None = None

    def demands(self) -> tuple[tuple[str, int, frozenset[str]], ...]:
        """(resource, amount, accepted products) for each resource the job asks for."""
        found = (
            (self.gpu_resource, self.gpus, self.gpu_products),
            (CPU, self.cpu_milli, frozenset[str]()),
            (MEMORY, self.memory_bytes, frozenset[str]()),
        )
        return tuple(item for item in found if item[1] > 0)


@dataclass(frozen=True, slots=True)
class Charge:
    """What one admitted job holds of one key; `borrowed` is the part above its queue's nominal
    at admission."""

    key: QuotaKey
    amount: int
    borrowed: int = 0


@dataclass(frozen=True, slots=True)
class Admission:
    """The decision for one job. `products` narrows where it may be placed (the GPU key's
    products; empty = what the job accepts); `blocks_queue` is true when quota, not the job's
    own namespace, keeps it waiting, so the jobs behind it in its queue that compete with it wait
    too. A refusal for quota names the keys it ``competes_for`` (every key its request could be
    charged to); a job held behind such a head names it (``behind``). A job that asks for more
    than its queue could hold with nothing else running (``never``) holds no one: it can never be
    admitted, so waiting behind it would be waiting forever."""

    job: str
    queue: str
    admitted: bool
    reason: str = ""
    charges: tuple[Charge, ...] = ()
    products: frozenset[str] = frozenset()
    blocks_queue: bool = False
    competes_for: frozenset[QuotaKey] = frozenset()
    behind: str = ""
    never: bool = False

    @property
    def borrowed(self) -> int:
        return sum(charge.borrowed for charge in self.charges)


@dataclass(frozen=True)
class Usage:
    """What admitted jobs hold, per queue (the one they were admitted to) and key."""

    by_queue: Mapping[str, Mapping[QuotaKey, int]] = field(default_factory=lambda: MappingProxyType({}))

    def of(self, queue: str, key: QuotaKey) -> int:
        return self.by_queue.get(queue, {}).get(key, 0)

    def plus(self, queue: str, charges: Iterable[Charge], *, sign: int = 1) -> Usage:
        """A new Usage with the charges added (sign=-1: released)."""
        held = {name: dict(keys) for name, keys in self.by_queue.items()}
        own = held.setdefault(queue, {})
        for charge in charges:
            own[charge.key] = own.get(charge.key, 0) + sign * charge.amount
        return Usage(MappingProxyType({name: MappingProxyType(keys) for name, keys in held.items()}))


def usage_of(admitted: Iterable[Admission]) -> Usage:
    """The usage of jobs holding quota (admitted and not finished)."""
    usage = Usage()
    for admission in admitted:
        if admission.admitted:
            usage = usage.plus(admission.queue, admission.charges)
    return usage


class KeyView:
    """One key's usage read against the tree: subtree usage and what each level can give."""

    def __init__(self, tree: QueueTree, usage: Usage, key: QuotaKey, *, lending: bool = True) -> None:
        self.tree, self.usage, self.key, self.lending = tree, usage, key, lending
        self._pool_used: dict[str, int] = {}
        self._used: dict[str, int] = {}

    def used(self, name: str) -> int:
        """All the subtree holds: the queue's own jobs and every queue's under it."""
        if name not in self._used:
            kids = (kid for kid in self.tree.subtree(name) if kid != name)
            self._used[name] = self.usage.of(name, self.key) + sum(self.usage.of(k, self.key) for k in kids)
        return self._used[name]

    def pool_used(self, name: str) -> int:
        """What this level's pool carries: own jobs plus each child's use beyond its guarantee."""
        if name not in self._pool_used:
            total = self.usage.of(name, self.key)
            for kid in self.tree.children.get(name, ()):
                if kid not in self.tree.ancestors(name) and kid != name:
                    total += max(0, self.pool_used(kid) - self.level(kid).guaranteed)
            self._pool_used[name] = total
        return self._pool_used[name]

    def level(self, name: str) -> KeyLevel:
        return self.tree.level(name, self.key, lending=self.lending)

    def available(self, name: str, *, borrowing: bool = True) -> int:
        """What the queue can still take: its unused guarantee plus what its parent can give."""
        level = self.level(name)
        used = self.pool_used(name)
        parent = self.tree.parent_of(name)
        if parent is None:
            return level.pool - used
        from_parent = self.available(parent, borrowing=borrowing)
        if borrowing and level.borrowing_limit is not None:
            in_parent = max(0, used - level.guaranteed)
            from_parent = min(from_parent, level.stored - in_parent + level.borrowing_limit)
        return max(0, level.guaranteed - used) + from_parent


# --- admission -------------------------------------------------------------------------------


def admit(request: QuotaRequest, tree: QueueTree, usage: Usage) -> Admission:
    """Admit the job when its whole request fits its queue's quota, borrowing included."""
    if tree.unlimited:
        return Admission(request.job, request.queue, admitted=True, products=request.gpu_products)
    refusal = _queue_refusal(request, tree)
    if refusal is not None:
        return refusal
    charges: list[Charge] = []
    products = request.gpu_products
    for resource, amount, accepted in request.demands():
        candidates = [
            key
            for key in tree.keys_in_tree(request.queue)
            if key.resource == resource and key.covers(accepted)
        ]
        if not candidates:
            continue  # nothing in this tree limits the resource (or these products)
        chosen = next(
            (key for key in candidates if amount <= KeyView(tree, usage, key).available(request.queue)),
            None,
        )
        if chosen is None:
            reason = _quota_reason(request.queue, candidates[0], amount, tree, usage)
            ever = max(KeyView(tree, Usage(), key).available(request.queue) for key in candidates)
            if amount > ever:
                most = amount_text(candidates[0], ever, unit=False)
                queue = request.queue
                reason = f"{reason}; more than queue {queue} may ever hold ({most}, borrowing included)"
                return Admission(request.job, request.queue, admitted=False, reason=reason, never=True)
            competes = competing_keys(request, tree)
            return Admission(
                request.job,
                request.queue,
                admitted=False,
                reason=reason,
                blocks_queue=True,
                competes_for=competes,
            )
        view = KeyView(tree, usage, chosen)
        nominal, used = view.level(request.queue).total, view.used(request.queue)
        borrowed = max(0, used + amount - nominal) - max(0, used - nominal)
        charges.append(Charge(chosen, amount, borrowed))
        if chosen.products:
            products = chosen.products & accepted if accepted else chosen.products
    return Admission(request.job, request.queue, admitted=True, charges=tuple(charges), products=products)


def competing_keys(request: QuotaRequest, tree: QueueTree) -> frozenset[QuotaKey]:
    """Every key of its queue's tree the request could be charged to: what it competes for."""
    demands = request.demands()
    return frozenset(
        key
        for key in tree.keys_in_tree(request.queue)
        if any(key.resource == resource and key.covers(accepted) for resource, _, accepted in demands)
    )


# Whether a waiting job's quota admits it once the running jobs named are evicted.
QuotaTest = Callable[[frozenset[str]], bool]


def admits_once_released(
    request: QuotaRequest, tree: QueueTree, usage: Usage, running: Mapping[str, Admission]
) -> QuotaTest:
    """A preemptor's quota test: ``request`` admitted against ``usage`` with its victims'
    charges (``running``, by job) released, since the same whole-job evictions that make room
    give their quota back. The operator (core/preempting.py) and the queue simulator both ask it."""

    def admits(victims: frozenset[str]) -> bool:
        freed = usage
        for name in victims:
            charge = running.get(name)
            if charge is not None and charge.admitted:
                freed = freed.plus(charge.queue, charge.charges, sign=-1)
        return admit(request, tree, freed).admitted

    return admits


def _queue_refusal(request: QuotaRequest, tree: QueueTree) -> Admission | None:
    """Waiting that no amount of quota would end: a missing queue, a namespace, a broken tree."""
    name = request.queue
    if name not in tree.queues:
        reason = (
            f"queue {name} does not exist: create a Queue named {name} "
            "or name another in spec.scheduling.queue"
        )
    elif not tree.queues[name].admits_namespace(request.namespace):
        admitted = ", ".join(sorted(tree.queues[name].namespaces))
        reason = f"queue {name} does not admit namespace {request.namespace} (it admits {admitted})"
    elif (problem := tree.blocking_problem(name)) is not None:
        reason = problem.message if problem.queue == name else f"queue {name}: waits for {problem.message}"
    else:
        return None
    return Admission(request.job, name, admitted=False, reason=reason)


def _quota_reason(queue: str, key: QuotaKey, amount: int, tree: QueueTree, usage: Usage) -> str:
    """ "queue team-a: needs 8 H100 GPUs, nominal 16, used 12; can borrow 2 from research (lendingLimit)"."""
    view = KeyView(tree, usage, key)
    level, used, available = view.level(queue), view.used(queue), view.available(queue)
    nominal, held = amount_text(key, level.total, unit=False), amount_text(key, used, unit=False)
    head = f"queue {queue}: needs {amount_text(key, amount)}, nominal {nominal}, used {held}"
    room = max(0, level.total - used)
    parent = tree.parent_of(queue)
    if available < room:
        lent = amount_text(key, room - max(0, available), unit=False)
        if tree.children.get(queue):  # a parent's nominal also covers its children's guarantees
            return f"{head}; {lent} of its nominal is guaranteed to the queues under it or borrowed by others"
        return f"{head}; {lent} of its nominal is in use by other queues that borrowed it"
    if parent is None:
        return f"{head}; no parent to borrow from"
    can = amount_text(key, available - room, unit=False)
    if KeyView(tree, usage, key, lending=False).available(queue) > available:
        why = "lendingLimit"
    elif view.available(queue, borrowing=False) > available:
        why = "borrowingLimit"
    else:
        why = "the rest is in use"
    return f"{head}; can borrow {can} from {parent} ({why})"


def amount_text(key: QuotaKey, amount: int, *, unit: bool = True) -> str:
    """An amount as a person writes it: 8 NVIDIA-H100-80GB-HBM3 GPUs, 16 CPU, 64Gi memory."""
    if key.resource == CPU:
        return f"{format_cpu(amount)} CPU" if unit else format_cpu(amount)
    if key.resource in (MEMORY, EPHEMERAL_STORAGE):
        text = format_quantity_bytes(amount)
        return f"{text} {key.resource}" if unit else text
    if not unit:
        return str(amount)
    if key.products:
        return f"{amount} {'/'.join(sorted(key.products))} GPUs"
    return f"{amount} {key.resource}"


# --- borrowed quota, for preemption ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BorrowedUse:
    """The part of a running job's charge above its queue's nominal, and who lends it: the
    queues of the same tree, outside the borrower's subtree and chain, below their nominal."""

    job: str
    queue: str
    key: QuotaKey
    amount: int
    lenders: tuple[str, ...]


def borrowed_uses(tree: QueueTree, running: Sequence[Admission]) -> tuple[BorrowedUse, ...]:
    """Which running jobs use borrowed quota, and of whom. `running` is oldest first: a queue's
    jobs fill its nominal in the order they started, so the youngest hold what is borrowed."""
    usage = usage_of(running)
    held: dict[tuple[str, QuotaKey], int] = {}
    found: list[BorrowedUse] = []
    for job in running:
        if not job.admitted or job.queue not in tree.queues:
            continue
        for charge in job.charges:
            view = KeyView(tree, usage, charge.key)
            below = view.used(job.queue) - usage.of(job.queue, charge.key)  # its subtree's, first
            before = held.get((job.queue, charge.key), below)
            held[job.queue, charge.key] = before + charge.amount
            nominal = view.level(job.queue).total
            amount = max(0, before + charge.amount - nominal) - max(0, before - nominal)
            if amount > 0:
                found.append(BorrowedUse(job.job, job.queue, charge.key, amount, _lenders(view, job.queue)))
    return tuple(found)


def _lenders(view: KeyView, borrower: str) -> tuple[str, ...]:
    tree = view.tree
    mine = {*tree.subtree(borrower), *tree.ancestors(borrower)}
    members = tree.subtree(tree.root_of(borrower))
    return tuple(sorted(q for q in members if q not in mine and view.used(q) < view.level(q).total))


def reclaimable_by(claimant: str, tree: QueueTree, running: Sequence[Admission]) -> tuple[BorrowedUse, ...]:
    """The borrowed uses a queue with `reclaimBorrowed` may take back: of keys it is below its
    nominal for, held by other queues of its tree (never its own ancestors' jobs)."""
    if claimant not in tree.queues:
        return ()
    usage = usage_of(running)
    ancestors = set(tree.ancestors(claimant))
    result = []
    for use in borrowed_uses(tree, running):
        view = KeyView(tree, usage, use.key)
        below_nominal = view.used(claimant) < view.level(claimant).total
        same_tree = tree.root_of(use.queue) == tree.root_of(claimant)
        if below_nominal and same_tree and use.queue != claimant and use.queue not in ancestors:
            result.append(use)
    return tuple(result)
