"""The queue tree: queues and their quota entries, checked, with each level's capacity per quota key.

Quota is hierarchical and inclusive: a parent's nominal for a key is the whole of its subtree's,
divided among its children and what it keeps unassigned; a parent that declares no entry for a
key pools what its children lend. Lending and borrowing follow Kueue's hierarchical cohorts
(pkg/cache/resource_node.go), restated for inclusive nominal quotas; docs/queues.md has the
rules with a worked example. Every amount is an integer in the key's unit: devices for extended
resources (GPUs), millicores for cpu, bytes for memory and ephemeral-storage.

Problems no single Queue object can show (a parent cycle, a missing parent, children whose
nominal sums above their parent's, mismatched products) are reported per queue as
`QueueProblem`s, never raised: the jobs of a broken queue, and of the queues under it, wait
with that reason while every other queue keeps working.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL_STORAGE = "ephemeral-storage"
# The name a job's queue has when no Queue object exists at all: one unlimited queue, as before
# queues had quotas.
DEFAULT_QUEUE = "default"


@dataclass(frozen=True, slots=True)
class QuotaKey:
    """What one quota entry counts: a resource, and for devices which products (empty = any)."""

    resource: str
    products: frozenset[str] = frozenset()

    def sort_key(self) -> tuple[str, tuple[str, ...]]:
        return self.resource, tuple(sorted(self.products))

    def covers(self, products: frozenset[str]) -> bool:
        """Whether a job allowed on `products` (empty = any) may be charged to this key."""
        return not self.products or not products or bool(self.products & products)


@dataclass(frozen=True, slots=True)
class QuotaEntry:
    """One entry of a queue's quota, in the key's unit; None limits mean "no limit"."""

    key: QuotaKey
    nominal: int
    borrowing_limit: int | None = None
    lending_limit: int | None = None


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A Queue as the core sees it (the adapter converts the API object)."""

    name: str
    parent: str | None = None
    weight: float = 1.0
    namespaces: frozenset[str] = frozenset()
    quota: tuple[QuotaEntry, ...] = ()

    def entry(self, key: QuotaKey) -> QuotaEntry | None:
        return next((entry for entry in self.quota if entry.key == key), None)

    def admits_namespace(self, namespace: str) -> bool:
        return not self.namespaces or namespace in self.namespaces


@dataclass(frozen=True, slots=True)
class QueueProblem:
    """Why a queue cannot admit jobs; becomes a condition on the Queue (reason is CamelCase)."""

    queue: str
    reason: str
    message: str


@dataclass(frozen=True, slots=True)
class KeyLevel:
    """One queue's capacity for one key, fixed by the specs (usage does not change it).

    total: the subtree's nominal (declared, or the children's sum when it declares none);
    pool: what this level holds for its own jobs and its children's overflow (total minus what
    stays locked below); guaranteed: the part of the pool never lent upward (pool minus
    lendingLimit); stored: the part lent upward (pool - guaranteed).
    """

    total: int
    pool: int
    guaranteed: int
    borrowing_limit: int | None
    lending_limit: int | None

    @property
    def stored(self) -> int:
        return self.pool - self.guaranteed

    @property
    def locked(self) -> int:
        """What the parent cannot lend to anyone else: all but what this level stores upward."""
        return self.total - self.stored


@dataclass(frozen=True)
class QueueTree:
    """Checked queues: parents, children, problems, and per key each level's capacity."""

    queues: Mapping[str, QueueSpec]
    children: Mapping[str, tuple[str, ...]]
    problems: Mapping[str, tuple[QueueProblem, ...]]
    _levels: dict[tuple[QuotaKey, bool], Mapping[str, KeyLevel]] = field(default_factory=dict, repr=False)

    @property
    def unlimited(self) -> bool:
        """No Queue objects at all: every job is admitted, as before queues had quotas."""
        return not self.queues

    def parent_of(self, name: str) -> str | None:
        parent = self.queues[name].parent
        return parent if parent in self.queues and parent != name else None

    def ancestors(self, name: str) -> tuple[str, ...]:
        """Parent first, root last; stops at a cycle (a queue in one has a problem anyway)."""
        chain: list[str] = []
        parent = self.parent_of(name)
        while parent is not None and parent not in chain and parent != name:
            chain.append(parent)
            parent = self.parent_of(parent)
        return tuple(chain)

    def root_of(self, name: str) -> str:
        chain = self.ancestors(name)
        return chain[-1] if chain else name

    def subtree(self, name: str) -> tuple[str, ...]:
        """The queue and every queue under it."""
        found, todo = [name], list(self.children.get(name, ()))
        while todo:
            child = todo.pop()
            if child not in found:
                found.append(child)
                todo.extend(self.children.get(child, ()))
        return tuple(found)

    def blocking_problem(self, name: str) -> QueueProblem | None:
        """The queue's own first problem, else its nearest broken ancestor's."""
        for queue in (name, *self.ancestors(name)):
            if self.problems.get(queue):
                return self.problems[queue][0]
        return None

    @cached_property
    def keys(self) -> tuple[QuotaKey, ...]:
        """Every key some queue declares, sorted."""
        found = {entry.key for spec in self.queues.values() for entry in spec.quota}
        return tuple(sorted(found, key=QuotaKey.sort_key))

    def keys_in_tree(self, name: str) -> tuple[QuotaKey, ...]:
        """The keys declared anywhere in the queue's tree: only these are limited for its jobs."""
        members = self.subtree(self.root_of(name))
        declared = {e.key for queue in members for e in self.queues[queue].quota}
        own = [e.key for e in self.queues[name].quota]
        rest = sorted(declared - set(own), key=QuotaKey.sort_key)
        return (*own, *rest)

    def level(self, name: str, key: QuotaKey, *, lending: bool = True) -> KeyLevel:
        """The queue's capacity for the key; lending=False as if no queue set a lendingLimit
        (to tell whether a lendingLimit is what keeps a job waiting)."""
        if (key, lending) not in self._levels:  # a cache filled once per key: specs never change
            self._levels[key, lending] = MappingProxyType(_levels_for(self, key, lending=lending))
        return self._levels[key, lending][name]


def build_tree(specs: Iterable[QueueSpec]) -> QueueTree:
    """Check the specs and link them into a tree; problems are collected, never raised."""
    queues = {spec.name: spec for spec in sorted(specs, key=lambda s: s.name)}
    children: dict[str, list[str]] = {name: [] for name in queues}
    problems: dict[str, list[QueueProblem]] = {name: [] for name in queues}
    for name, spec in queues.items():
        if spec.parent is None:
            continue
        if spec.parent not in queues:
            problems[name].append(
                QueueProblem(name, "ParentMissing", f"queue {name}: parent {spec.parent} does not exist")
            )
        else:
            children[spec.parent].append(name)
    for name in _in_cycles(queues):  # each member is named; its chain has no root
        problems[name].append(
            QueueProblem(
                name,
                "ParentCycle",
                f"queue {name}: its parent chain is a cycle ({_cycle_text(queues, name)})",
            )
        )
    tree = QueueTree(
        queues=MappingProxyType(queues),
        children=MappingProxyType({name: tuple(kids) for name, kids in children.items()}),
        problems=MappingProxyType({}),
    )
    cyclic = set(_in_cycles(queues))
    for name in queues:
        problems[name].extend(_quota_problems(tree, name, in_cycle=name in cyclic))
    return QueueTree(
        queues=tree.queues,
        children=tree.children,
        problems=MappingProxyType({name: tuple(found) for name, found in problems.items() if found}),
    )


def _in_cycles(queues: Mapping[str, QueueSpec]) -> list[str]:
    cyclic: set[str] = set()
    for start in queues:
        seen: list[str] = []
        current: str | None = start
        while current is not None and current in queues and current not in seen:
            seen.append(current)
            current = queues[current].parent
        if current is not None and current in seen:
            cyclic.update(seen[seen.index(current) :])
    return sorted(cyclic)


def _cycle_text(queues: Mapping[str, QueueSpec], start: str) -> str:
    chain, current = [start], queues[start].parent
    while current is not None and current != start and current not in chain:
        chain.append(current)
        current = queues[current].parent
    return " -> ".join([*chain, start])


def _quota_problems(tree: QueueTree, name: str, *, in_cycle: bool) -> list[QueueProblem]:
    """What one queue's entries, read beside its children's, get wrong."""
    spec, found = tree.queues[name], []
    seen: set[QuotaKey] = set()
    for entry in spec.quota:
        if entry.key in seen:
            found.append(QueueProblem(name, "DuplicateQuota", f"queue {name}: {_key_text(entry.key)} twice"))
        seen.add(entry.key)
        if entry.nominal < 0 or min(entry.borrowing_limit or 0, entry.lending_limit or 0) < 0:
            found.append(QueueProblem(name, "NegativeQuota", f"queue {name}: {_key_text(entry.key)} below 0"))
        if entry.lending_limit is not None and entry.lending_limit > entry.nominal:
            found.append(
                QueueProblem(
                    name,
                    "LendingAboveNominal",
                    f"queue {name}: lendingLimit {entry.lending_limit} of {_key_text(entry.key)} "
                    f"above its nominal {entry.nominal}",
                )
            )
    if not in_cycle:  # a cycle has no sound subtree to add up
        found.extend(_children_problems(tree, name))
    return found


def _children_problems(tree: QueueTree, name: str) -> list[QueueProblem]:
    spec, found = tree.queues[name], []
    kids = [kid for kid in tree.children.get(name, ()) if kid not in tree.ancestors(name) and kid != name]
    declared = {entry.key for entry in spec.quota}
    for entry in spec.quota:
        total = sum(_declared_total(tree, kid, entry.key, set()) for kid in kids)
        if total > entry.nominal:
            found.append(
                QueueProblem(
                    name,
                    "ChildrenAboveNominal",
                    f"queue {name}: its children's nominal {total} of {_key_text(entry.key)} "
                    f"is above its own {entry.nominal}",
                )
            )
    own_resources = {key.resource for key in declared}
    for kid in kids:
        for entry in tree.queues[kid].quota:
            if entry.key.resource in own_resources and entry.key not in declared:
                found.append(
                    QueueProblem(
                        name,
                        "ProductsMismatch",
                        f"queue {name}: child {kid} declares {_key_text(entry.key)}, which {name} "
                        f"does not; a parent that declares {entry.key.resource} must declare every "
                        "products list its children use",
                    )
                )
    return found


def _declared_total(tree: QueueTree, name: str, key: QuotaKey, visiting: set[str]) -> int:
    """The subtree's nominal for a key: declared, else the children's sum (0 for a leaf)."""
    entry = tree.queues[name].entry(key)
    if entry is not None:
        return entry.nominal
    visiting = visiting | {name}
    kids = [kid for kid in tree.children.get(name, ()) if kid not in visiting]
    return sum(_declared_total(tree, kid, key, visiting) for kid in kids)


def _levels_for(tree: QueueTree, key: QuotaKey, *, lending: bool) -> dict[str, KeyLevel]:
    """Every queue's KeyLevel for one key, children before parents."""
    levels: dict[str, KeyLevel] = {}

    def visit(name: str, visiting: frozenset[str]) -> KeyLevel:
        if name in levels:
            return levels[name]
        kids = [kid for kid in tree.children.get(name, ()) if kid not in visiting]
        below = [visit(kid, visiting | {kid}) for kid in kids]
        entry = tree.queues[name].entry(key)
        total = entry.nominal if entry is not None else sum(level.total for level in below)
        pool = max(0, total - sum(level.locked for level in below))
        limit = entry.lending_limit if entry is not None and lending else None
        levels[name] = KeyLevel(
            total=total,
            pool=pool,
            guaranteed=0 if limit is None else max(0, pool - limit),
            borrowing_limit=entry.borrowing_limit if entry is not None else None,
            lending_limit=limit,
        )
        return levels[name]

    for name in tree.queues:
        visit(name, frozenset({name}))
    return levels


def _key_text(key: QuotaKey) -> str:
    return f"{key.resource} [{', '.join(sorted(key.products))}]" if key.products else key.resource
