"""Each node row's FGD fragmentation, before and after placing a pod, kept between extender requests.

The gpu-fragmentation scorer compares a row's fragmentation now with what it would be with the
pod placed there. Both depend only on that row, the target workload and (after) the pod's shape:
the core computes each row's value on its own (`fragmentation_milli`'s docstring), so a value
stays exact until its row changes, which the cache's per-row stamps tell. kube-scheduler asks
about the same thousands of nodes for pod after pod, while one row changes between them (the
last pod's node): recomputing only changed rows makes the scorer's cost per request that of a
few rows, not of the cluster. Exact, not an approximation.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from modeljob.adapters.extender.cache import Snapshot
from modeljob.core.fragmentation import CompiledWorkload, TargetWorkload, fragmentation_milli
from modeljob.core.nodes import FloatArray, IntArray, PodRequest
from modeljob.core.scoring.scorers.gpu_fragmentation import fragmentation_after, takes_a_share

# Pod shapes whose "after" values are kept at once (most recently used): a batch of replicas
# repeats one shape, a mixed queue interleaves a few. Each costs two numbers per node.
SHAPES_KEPT = 8

_Key = tuple[TargetWorkload, tuple[str, ...]]


@dataclass(slots=True)
class _Rows:
    """Values per table row, and the stamp of the row each was computed from (-1: not yet)."""

    stamps: IntArray
    values: FloatArray

    @classmethod
    def empty(cls, size: int) -> _Rows:
        return cls(stamps=np.full(size, -1, dtype=np.int64), values=np.zeros(size, dtype=np.float64))

    def stale(self, snapshot: Snapshot) -> IntArray:
        """Rows whose value is missing or from an older version of the row."""
        if len(self.stamps) != len(snapshot.stamps):
            fresh = _Rows.empty(len(snapshot.stamps))
            self.stamps, self.values = fresh.stamps, fresh.values
        return np.flatnonzero(self.stamps != snapshot.stamps)


class FragmentationMemo:
    """``before``: each row's current fragmentation (ScoringContext.fragmentation_before);
    ``after``: each row's fragmentation with one pod of whole devices placed there, per pod shape
    (ScoringContext.fragmentation_after). Rows changed since the last call are recomputed, all of
    them for another target workload or product list."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._before_key: _Key | None = None
        self._before = _Rows.empty(0)
        self._after_key: _Key | None = None
        self._after: dict[tuple[int, int, int], _Rows] = {}

    def before(self, snapshot: Snapshot, target: TargetWorkload, workload: CompiledWorkload) -> FloatArray:
        """Per row of ``snapshot.table``, for ``workload`` (``target`` compiled to its products)."""
        table = snapshot.table
        key = (target, table.products)
        with self._lock:
            if key != self._before_key:
                self._before_key, self._before = key, _Rows.empty(len(table))
            memo = self._before
            rows = memo.stale(snapshot)
            if len(rows):
                memo.values[rows] = fragmentation_milli(
                    table.cpu_free_milli[rows],
                    table.gpu_free_milli[rows],
                    table.product_index[rows],
                    workload,
                )
                memo.stamps[rows] = snapshot.stamps[rows]
            return memo.values.copy()

    def after(
        self, snapshot: Snapshot, target: TargetWorkload, workload: CompiledWorkload, request: PodRequest
    ) -> FloatArray | None:
        """Per row of ``snapshot.table``: `fragmentation_after` for ``request``; None for a share
        of one device, which the scorer scores per device instead."""
        if takes_a_share(request):
            return None
        table = snapshot.table
        key = (target, table.products)
        wants = request.resources
        shape = (wants.cpu_milli, wants.gpu_milli, wants.gpus)
        with self._lock:
            if key != self._after_key:
                self._after_key, self._after = key, {}
            memo = self._after.pop(shape, None) or _Rows.empty(len(table))
            self._after[shape] = memo  # most recently used last
            while len(self._after) > SHAPES_KEPT:
                del self._after[next(iter(self._after))]
            rows = memo.stale(snapshot)
            if len(rows):
                memo.values[rows] = fragmentation_after(table, rows, request, workload)
                memo.stamps[rows] = snapshot.stamps[rows]
            return memo.values.copy()
