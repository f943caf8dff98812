"""A queue's quota numbers for its status: nominal, used, borrowed and lent per key, and one-line sums.

Pure: the tree and the usage of admitted jobs in, numbers out; the adapter writes them into the
Queue's status (status.resources, and the one-line status.nominal/used/borrowed that `kubectl
get mjq` shows).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from modeljob.core.conditions import set_condition
from modeljob.core.job_state import ConditionType
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


def queue_status(
    name: str,
    tree: QueueTree,
    usage: Usage,
    *,
    pending: int,
    admitted: int,
    conditions: Sequence[Mapping[str, object]],
    now: datetime,
) -> dict[str, object]:
    """A Queue's whole status: its numbers per key and in one line each, its job counts, and the
    Valid condition (False naming its first problem, or its broken ancestor's)."""
    report = queue_report(name, tree, usage)
    problem = tree.blocking_problem(name)
    valid = set_condition(
        conditions,
        type_=ConditionType.VALID,
        status=problem is None,
        reason="Valid" if problem is None else problem.reason,
        message="the queue and its quota are sound"
        if problem is None
        else (problem.message if problem.queue == name else f"queue {name}: waits for {problem.message}"),
        now=now,
    )
    return {
        "nominal": report.line("nominal"),
        "used": report.line("used"),
        "borrowed": report.line("borrowed"),
        "lent": report.line("lent"),
        "resources": [_resource_status(k) for k in report.keys],
        "pendingJobs": pending,
        "admittedJobs": admitted,
        "conditions": valid,
    }


def _resource_status(report: KeyReport) -> dict[str, object]:
    return {
        "resource": report.key.resource,
        "products": sorted(report.key.products),
        "nominal": quantity_text(report.key, report.nominal),
        "used": quantity_text(report.key, report.used),
        "borrowed": quantity_text(report.key, report.borrowed),
        "lent": quantity_text(report.key, report.lent),
    }


def quantity_text(key: QuotaKey, amount: int) -> str:
    """An amount as a Kubernetes quantity: devices as a count, CPU in cores or millicores, bytes."""
    return amount_text(key, amount, unit=False)
