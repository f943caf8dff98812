"""What the pods bound to each node request, kept from one scheduling cycle to the next.

A cycle accounts every unfinished pod onto its node (core/cluster_state.py, ``account``): on a
cluster of 15,000 pods that is 15,000 additions a cycle, when a few pods came, went or changed
since the last one. The ledger keeps the sums, and the pods they were made from by object (a pod
the watch changed is another object; it holds them, so an object's id stays its own), and works
in only the pods that differ: those gone are taken off, those new added. The sums are exactly
the ones ``account`` adds up from scratch: the same pods counted the same way. It counts the
pods' distinct requests too, for the cycle's target workload (core/planning.py, count_work).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from modeljob.core.cluster_state import NodeFacts, PodFacts, Use
from modeljob.core.resources import Resources

# What a node's pods request: CPU (milli), memory, ephemeral storage; GPUs by device model.
_CPU, _MEMORY, _STORAGE = 0, 1, 2


@dataclass(eq=False)
class PodLedger:
    """Per node, the requests of the pods bound to it and not finished (see the module docstring)."""

    _pods: dict[int, PodFacts] = field(default_factory=dict)  # id -> the pod, every pod counted
    _sums: dict[str, list[int]] = field(default_factory=dict)  # node -> [cpu, memory, storage]
    _gpus: dict[tuple[str, str], int] = field(default_factory=dict)  # (node, device model) -> GPUs
    _requests: Counter[Resources] = field(default_factory=Counter)  # how many pods request each
    # Nodes whose sums changed since ``touched()`` was last asked; None: any may have (start over).
    _touched: set[str] | None = None

    def update(self, pods: Sequence[PodFacts]) -> None:
        """The ledger of ``pods``: the pods that were not in the last one added, those no longer
        in it taken off."""
        current = {id(pod): pod for pod in pods}
        if len(current) != len(pods):  # one object given twice counts twice: start over
            self._pods, self._sums, self._gpus, self._requests = {}, {}, {}, Counter()
            self._touched = None
            for pod in pods:
                self._add(pod, 1)
            return
        before = self._pods
        for gone in before.keys() - current.keys():
            self._add(before[gone], -1)
        for new in current.keys() - before.keys():
            self._add(current[new], 1)
        self._pods = current

    def use(self, node: NodeFacts) -> Use:
        """CPU, memory and storage requested on ``node``, and the devices of its own model taken
        (at most as many as it has)."""
        sums = self._sums.get(node.name)
        accelerator = node.view.accelerator
        gpus = self._gpus.get((node.name, accelerator), 0) if accelerator is not None else 0
        used = min(node.view.allocatable.gpus, gpus)
        if sums is None:
            return (0, 0, 0, used)
        return (sums[_CPU], sums[_MEMORY], sums[_STORAGE], used)

    def touched(self) -> set[str] | None:
        """The nodes whose ``use`` may differ from when this was last asked (None: any node may),
        and from now on none: a caller keeping each node's use asks ``use`` of these alone."""
        found, self._touched = self._touched, set()
        return found

    def running(self) -> tuple[tuple[Resources, int], ...]:
        """Each distinct request of the pods counted, with how many pods make it (in no set
        order): what ``count_work`` counts of the pods (core/planning.py)."""
        return tuple(self._requests.items())

    def _add(self, pod: PodFacts, sign: int) -> None:
        if not pod.holds_resources:
            return
        node = pod.node or ""
        if self._touched is not None:
            self._touched.add(node)
        requests = pod.requests
        left = self._requests[requests] + sign
        if left:
            self._requests[requests] = left
        else:
            del self._requests[requests]
        sums = self._sums.get(node)
        if sums is None:
            sums = self._sums[node] = [0, 0, 0]
        sums[_CPU] += sign * requests.cpu_milli
        sums[_MEMORY] += sign * requests.memory_bytes
        sums[_STORAGE] += sign * requests.ephemeral_storage_bytes
        if requests.gpus > 0 and pod.accelerator is not None:
            key = (node, pod.accelerator)
            self._gpus[key] = self._gpus.get(key, 0) + sign * requests.gpus
