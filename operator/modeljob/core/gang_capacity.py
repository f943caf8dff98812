"""How many replicas of one request a table's nodes hold, and when that count alone says that a
gang plan places every replica (so the plan need not be made to learn it).

The gang plan (core/gang_placement.py) places replicas one after another, each on a node with
room. For a replica of one pod, with whole GPUs or none, and no rule of the template that can
refuse a node, placing one takes exactly one replica's room from the chosen node and nothing from
the others: so the plan places every replica exactly when the nodes together hold that many.
Asking "would this gang fit an empty cluster?" is then a few numpy operations instead of a plan
that scores every node once per replica.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from modeljob.core.nodes import MILLI_PER_DEVICE, IntArray, NodeTable, PodRequest
from modeljob.core.scoring.filters import feasible_nodes
from modeljob.core.template_rules import JobRules


def replicas_held(table: NodeTable, request: PodRequest) -> IntArray:
    """Per row, how many pods of ``request`` fit on it at once (0 where the filter refuses it)."""
    wants = request.resources
    most = np.iinfo(np.int64).max
    held = np.full(len(table), most, dtype=np.int64)
    for free, needed in (
        (table.cpu_free_milli, wants.cpu_milli),
        (table.memory_free_bytes, wants.memory_bytes),
        (table.storage_free_bytes, wants.ephemeral_storage_bytes),
    ):
        if needed > 0:
            held = np.minimum(held, np.maximum(free, 0) // needed)
    if request.uses_accelerator:
        idle = (table.gpu_free_milli >= MILLI_PER_DEVICE).sum(axis=1)
        held = np.minimum(held, idle // wants.gpus)
    result: IntArray = np.where(feasible_nodes(table, request), held, 0)
    return result


def surely_placed(
    table: NodeTable,
    classes: Sequence[tuple[PodRequest, IntArray]],
    *,
    replicas: int,
    group_size: int,
    rules: JobRules | None,
) -> bool:
    """True when a gang plan on ``table`` (its rows grouped by request as ``classes``) places all
    ``replicas``; False when it may or may not."""
    if len(classes) != 1:
        return False
    request, rows = classes[0]
    counted = (
        group_size == 1
        and (not request.uses_accelerator or request.resources.gpu_milli == MILLI_PER_DEVICE)
        and (rules is None or not (rules.job.rules.states_pod_rules or rules.guarded_by))
    )
    if not counted:
        return False
    held = replicas_held(table, request)[rows]
    # Capped per row so the sum cannot overflow (a request of nothing fits without bound).
    return int(np.minimum(held, replicas).sum()) >= replicas
