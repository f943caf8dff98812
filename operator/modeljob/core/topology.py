"""Topology domains for a replica that spans nodes: which domain each node is in, and what each has free.

A multi-node replica's pods talk to each other on every step (tensor or pipeline parallel across
nodes), so its group prefers nodes that share one value of a node label (spec.scheduling.topology,
e.g. one zone, one rack or one NVLink/InfiniBand block); ``required`` makes it wait rather than
span domains. Nodes without the label are in no domain: a Required group never uses them, a
Preferred one only when no domain has room.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from modeljob.core.nodes import MILLI_PER_DEVICE, BoolArray, NodeTable, PodRequest
from modeljob.core.scoring.filters import feasible_nodes

# spec.scheduling.topology.key when neither the job nor the operator's settings name one.
DEFAULT_TOPOLOGY_KEY = "topology.kubernetes.io/zone"


@dataclass(frozen=True, slots=True)
class GroupTopology:
    """``key``: the node label naming a domain; ``domain_of``: each labelled node's value."""

    key: str
    required: bool = False
    domain_of: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, key: str, *, required: bool, node_labels: Mapping[str, Mapping[str, str]]) -> GroupTopology:
        domains = {node: labels[key] for node, labels in node_labels.items() if key in labels}
        return cls(key=key, required=required, domain_of=domains)

    def rows_by_domain(self, names: Sequence[str]) -> dict[str, BoolArray]:
        """Per domain (sorted by value), the table rows in it."""
        values = [self.domain_of.get(name) for name in names]
        return {
            domain: np.array([value == domain for value in values], dtype=np.bool_)
            for domain in sorted({v for v in values if v is not None})
        }

    def explain_no_domain(self, table: NodeTable, request: PodRequest, group_size: int) -> str:
        """Why a Required group has no domain: each domain's nodes with room for one of its pods
        and its idle GPUs, and how many nodes lack the label."""
        room = feasible_nodes(table, request)
        idle = (table.gpu_free_milli >= MILLI_PER_DEVICE).sum(axis=1)
        parts = [
            f"{domain}: {int(np.count_nonzero(rows & room))} node(s) with room, "
            f"{int(idle[rows].sum())} free GPU(s)"
            for domain, rows in self.rows_by_domain(table.names).items()
        ]
        unlabelled = sum(1 for name in table.names if name not in self.domain_of)
        if unlabelled:
            parts.append(f"{unlabelled} node(s) without the label")
        where = "; ".join(parts) if parts else "no node has the label"
        return (
            f"spec.scheduling.topology is Required: no {self.key} domain has {group_size} nodes with "
            f"room for the replica's pods ({where})"
        )
