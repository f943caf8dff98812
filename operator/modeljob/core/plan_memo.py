"""Plans remembered within one cycle: a job that asks what an earlier job asked, of the same nodes
of an unchanged ledger, gets the earlier job's result without planning it again.

A deep queue holds thousands of jobs of a few shapes, and once the first of a shape finds no room
every other one would be planned, node by node, to the same "no room": this is what keeps a cycle
of 10,000 queued jobs short. Planning is deterministic, so the result depends only on what the key
holds: the node type and the request sized for it, the pods per replica and their topology, how
many replicas, the nodes the job may use, and its pod rules where they can matter (a job whose
rules look at other pods, or with pods of its own placed, is never remembered). The job's name,
the one part of a result that differs, is put in each time.

Only a plan on the cycle's own ledger is remembered, and a placement on a node of one type forgets
every result for that type (the rows other types plan on did not change).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field, replace

from modeljob.core.gang_placement import Placement, Unplaceable
from modeljob.core.node_types import Candidate, NodeType
from modeljob.core.nodes import BoolArray, NodeTable

Result = Placement | Unplaceable


@dataclass(frozen=True, slots=True)
class _Remembered:
    job: str  # "namespace/name" of the job the result was planned for
    result: Result


@dataclass(eq=False)
class PlanMemo:
    """Results planned on ``table`` (the cycle's ledger), by node type, then by demand."""

    table: NodeTable
    node_type_of: dict[str, NodeType | None]  # node name -> its type: what a placement touched
    _by_type: dict[NodeType, dict[Hashable, _Remembered]] = field(default_factory=dict)

    def key(
        self,
        candidate: Candidate,
        *,
        replicas: int,
        eligible: BoolArray,
        rules: Hashable,
        topology: Hashable,
    ) -> Hashable:
        return (
            candidate.request,
            candidate.pods_per_replica,
            replicas,
            eligible.tobytes(),
            rules,
            topology,
        )

    def recall(self, node_type: NodeType, key: Hashable, job: str) -> Result | None:
        found = self._by_type.get(node_type, {}).get(key)
        if found is None:
            return None
        result = found.result
        if isinstance(result, Unplaceable):
            return replace(result, reason=job + result.reason[len(found.job) :])
        return result

    def remember(self, node_type: NodeType, key: Hashable, job: str, result: Result) -> None:
        # Only a reason that names the job once, at its start, can be given another job's name.
        if isinstance(result, Unplaceable) and (
            not result.reason.startswith(f"{job}:") or result.reason.count(job) != 1
        ):
            return
        self._by_type.setdefault(node_type, {})[key] = _Remembered(job, result)

    def placed_on(self, nodes: Iterable[str]) -> None:
        """A placement was reserved on ``nodes``: what was planned on their types no longer holds."""
        for node in nodes:
            node_type = self.node_type_of.get(node)
            if node_type is not None:
                self._by_type.pop(node_type, None)
