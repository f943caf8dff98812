"""A queue's quota numbers for its status: nominal, used, borrowed and lent per key, and one-line sums.

Pure: the tree and the usage of admitted jobs in, numbers out; the adapter writes them into the
Queue's status (status.resources, and the one-line status.nominal/used/borrowed that `kubectl
get mjq` shows).
"""

from __future__ import annotations

from dataclasses import dataclass

from modeljob.core.quota import Usage, amount_text
from modeljob.core.quota_tree import QueueTree, QuotaKey


@dataclass(frozen=True, slots=True)
class KeyReport:
    """One key of one queue, in the key's unit. used counts the whole subtree; borrowed is used
    above nominal; lent is the part of its unused nominal that other queues' borrowing takes."""

    key: QuotaKey
    nominal: int
    used: int
    borrowed: int
    lent: int


@dataclass(frozen=True, slots=True)
class QueueReport:
    keys: tuple[KeyReport, ...]

    def line(self, field: str) -> str:
        """One column of `kubectl get mjq`: e.g. "8 NVIDIA-H100-80GB-HBM3 GPUs, 512 CPU" or "0"."""
        parts = [amount_text(k.key, getattr(k, field)) for k in self.keys if getattr(k, field)]
        return ", ".join(parts) or "0"


def queue_report(name: str, tree: QueueTree, usage: Usage) -> QueueReport:
    """The queue's numbers for every key its tree limits."""
    return QueueReport(tuple(_key_report(name, key, tree, usage) for key in tree.keys_in_tree(name)))


def _used(tree: QueueTree, usage: Usage, name: str, key: QuotaKey) -> int:
    return sum(usage.of(queue, key) for queue in tree.subtree(name))


def _over(tree: QueueTree, usage: Usage, name: str, key: QuotaKey) -> int:
    return max(0, _used(tree, usage, name, key) - tree.level(name, key).total)


def _own_borrowing(tree: QueueTree, usage: Usage, name: str, key: QuotaKey) -> int:
    """What the queue borrows beyond what its children already count as borrowed."""
    below = sum(_over(tree, usage, kid, key) for kid in tree.children.get(name, ()))
    return max(0, _over(tree, usage, name, key) - below)


def _key_report(name: str, key: QuotaKey, tree: QueueTree, usage: Usage) -> KeyReport:
    level = tree.level(name, key)
    used = _used(tree, usage, name, key)
    mine = {*tree.subtree(name), *tree.ancestors(name)}
    others = sum(
        _own_borrowing(tree, usage, queue, key)
        for queue in tree.subtree(tree.root_of(name))
        if queue not in mine
    )
    lendable = max(0, min(level.stored, level.total - used))
    return KeyReport(
        key=key,
        nominal=level.total,
        used=used,
        borrowed=max(0, used - level.total),
        lent=min(lendable, others),
    )
