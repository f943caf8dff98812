"""Gang placement: every replica of a job gets a node in one plan, or none does, with the reason."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from modeljob.core.nodes import IntArray, NodeTable, PodRequest
from modeljob.core.resources import GIB, MIB
from modeljob.core.scoring.filters import filter_nodes, product_allowed
from modeljob.core.scoring.ranking import (
    NodeScores,
    ScoringContext,
    best_position,
    choose_devices,
    score_rows,
)
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS, ScoringWeights
from modeljob.core.template_rules import JobRules


@dataclass(frozen=True, slots=True)
class ReplicaRequests:
    """What one replica asks for, depending on the device memory of the node it lands on.

    Sizing gives, for the same model, e.g. 2 GPUs on 80 GiB devices or 8 on 24 GiB devices, so
    the request is keyed by device memory. A node uses the entry for its exact device memory,
    else the largest entry below it (a replica sized for smaller devices fits on larger ones),
    else ``fallback`` (nodes without a memory label, and jobs that need no GPU).
    """

    by_device_memory: tuple[tuple[int, PodRequest], ...] = ()
    fallback: PodRequest | None = None

    @classmethod
    def uniform(cls, request: PodRequest) -> ReplicaRequests:
        return cls(fallback=request)

    @classmethod
    def sized(cls, requests: Mapping[int, PodRequest], fallback: PodRequest | None = None) -> ReplicaRequests:
        return cls(by_device_memory=tuple(sorted(requests.items())), fallback=fallback)

    def for_device_memory(self, memory_bytes: int) -> PodRequest | None:
        if memory_bytes > 0:
            fitting = [request for size, request in self.by_device_memory if size <= memory_bytes]
            if fitting:
                return fitting[-1]
        return self.fallback


@dataclass(frozen=True, slots=True)
class GangRequest:
    """``rules``: the template's pod rules with the cluster's pods counted (None: no rules, no
    default spread); ``planned``: nodes of the job's replicas planned before this request (a job
    that is not a gang is planned one replica at a time), which its rules count as its own pods."""

    job: str
    replicas: int
    requests: ReplicaRequests
    rules: JobRules | None = None
    planned: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Assignment:
    replica: int
    node: str
    score: float
    devices: tuple[int, ...] = ()
    why: str = ""  # what set this node apart from the runner-up (see ``separation``)


@dataclass(frozen=True, slots=True)
class Placement:
    assignments: tuple[Assignment, ...]
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unplaceable:
    """No plan now. ``never_fits``: not even on this cluster with every node empty (so waiting is futile)."""

    reason: str
    never_fits: bool


def _describe_gpus(count: int, memory_bytes: int) -> str:
    if memory_bytes <= 0:
        return f"{count} GPU{'s' if count != 1 else ''}"
    if memory_bytes % GIB == 0:
        size = f"{memory_bytes // GIB} GiB"
    else:
        size = f"{memory_bytes / GIB:.1f} GiB" if memory_bytes >= GIB else f"{memory_bytes // MIB} MiB"
    return f"{count} × {size} GPU{'s' if count != 1 else ''}"


def _classes(table: NodeTable, requests: ReplicaRequests) -> list[tuple[PodRequest, IntArray]]:
    """Nodes grouped by the request a replica would make there (one group per device memory)."""
    groups: dict[PodRequest, list[int]] = {}
    for memory in np.unique(table.gpu_memory_bytes):
        request = requests.for_device_memory(int(memory))
        if request is not None:
            groups.setdefault(request, []).extend(np.flatnonzero(table.gpu_memory_bytes == memory).tolist())
    return [(request, np.array(sorted(rows), dtype=np.int64)) for request, rows in groups.items()]


def _largest_block(table: NodeTable, classes: list[tuple[PodRequest, IntArray]]) -> str:
    """The node with the most devices free enough for a replica's share, e.g. '2 × 80 GiB on node-7'."""
    best: tuple[int, str, int] | None = None
    for request, rows in classes:
        if not request.uses_accelerator or request.accelerator not in table.accelerators:
            continue
        accelerator = table.accelerators.index(request.accelerator)
        eligible = rows[
            table.ready[rows]
            & (table.accelerator_index[rows] == accelerator)
            & product_allowed(table, request)[rows]
        ]
        for row in eligible:
            block = int((table.gpu_free_milli[row] >= request.resources.gpu_milli).sum())
            name = table.names[int(row)]
            if best is None or block > best[0] or (block == best[0] and name < best[1]):
                best = (block, name, int(table.gpu_memory_bytes[row]))
    if best is None:
        return "no node offers this accelerator"
    block, name, memory = best
    return f"the largest free block is {_describe_gpus(block, memory)} on {name}"


def _needs(classes: list[tuple[PodRequest, IntArray]], table: NodeTable) -> str:
    gpu_classes = [(r, rows) for r, rows in classes if r.uses_accelerator]
    if not gpu_classes:
        request = classes[0][0]
        wants = request.resources
        return f"needs {wants.cpu_milli}m CPU and {wants.memory_bytes // MIB} MiB per replica"
    options = sorted(
        {
            (r.resources.gpus, int(table.gpu_memory_bytes[rows[0]]) if len(rows) else 0)
            for r, rows in gpu_classes
        },
        key=lambda item: (-item[1], item[0]),
    )
    return "needs " + " or ".join(_describe_gpus(count, memory) for count, memory in options) + " per replica"


def figures(values: Iterable[float]) -> int:
    """The fewest decimals (2 to 4) that show every distinct value among ``values`` distinct, so
    two different scores never read the same in one message; 4 where even that cannot."""
    distinct = set(values)
    for digits in (2, 3):
        if len({f"{value:.{digits}f}" for value in distinct}) == len(distinct):
            return digits
    return 4


def apart(first: float, second: float) -> tuple[str, str]:
    """Both scores with the fewest decimals (2 to 4) that show them different (see ``figures``),
    for a message that says one beat the other."""
    digits = figures((first, second))
    return f"{first:.{digits}f}", f"{second:.{digits}f}"


def separation(table: NodeTable, rows: IntArray, scores: NodeScores, winner: int) -> str:
    """What set the chosen node (``rows[winner]``) apart from the best of the others.

    The scorers whose parts differed between the two, with both values, when the totals differ;
    otherwise how many nodes tied and that the name decided. Both scorers of the default policy
    centre on 0.5 ("placing here changes nothing"), so on an idle cluster a tie is the usual case
    and saying so is the explanation.
    """
    if len(rows) == 1:
        return "the only node with room"
    total = scores.total
    others = np.delete(np.arange(len(rows)), winner)
    runner = int(others[np.argmax(total[others])])
    runner_name = table.names[int(rows[runner])]
    if total[winner] == total[runner]:
        tied = int(np.count_nonzero(total == total[winner]))
        return f"{tied} nodes tied at {float(total[winner]):.2f}, the first by name won"
    differed = [
        "{} {} vs {}".format(scorer.name, *apart(float(values[winner]), float(values[runner])))
        for scorer, _, values in scores.parts
        if values[winner] != values[runner]
    ]
    lead = apart(float(total[winner] - total[runner]), 0.0)[0]
    return f"ahead of {runner_name} by {lead} ({', '.join(differed)})"


def _plan(
    table: NodeTable,
    gang: GangRequest,
    *,
    weights: ScoringWeights,
    context: ScoringContext,
    with_pods: bool = True,
) -> Placement | tuple[int, str, list[tuple[PodRequest, IntArray]]]:
    work = table.working_copy()
    classes = _classes(work, gang.requests)
    tracker = (
        gang.rules.track(work, with_pods=with_pods, planned=gang.planned) if gang.rules is not None else None
    )
    assignments: list[Assignment] = []
    reasons: list[str] = []
    for replica in range(gang.replicas):
        allowed = tracker.allowed() if tracker is not None else None
        if tracker is not None:
            context = dataclasses.replace(context, preferences=tracker.preferences())
        best: tuple[float, str, int, PodRequest, tuple[int, ...], tuple[IntArray, NodeScores, int]] | None = (
            None
        )
        rejected: list[str] = []
        for request, rows in classes:
            filtered = filter_nodes(work, request)
            feasible = rows[filtered.feasible[rows]]
            if tracker is not None and allowed is not None:
                with_room, feasible = feasible, tracker.narrow(feasible[allowed[feasible]])
                if len(feasible) == 0 and len(with_room):
                    rejected.append(_explain_rules(filtered.explain(), tracker.explain(with_room)))
                    continue
            if len(feasible) == 0:
                rejected.append(filtered.explain())
                continue
            scores = score_rows(work, feasible, request, weights=weights, context=context)
            position = best_position(work, feasible, scores.total)
            row = int(feasible[position])
            score = float(scores.total[position])
            wants = request.resources
            if scores.devices[position] >= 0:
                devices: tuple[int, ...] = (int(scores.devices[position]),)
            elif request.uses_accelerator:
                devices = choose_devices(work.gpu_free_milli[row], wants.gpu_milli, wants.gpus)
            else:
                devices = ()
            name = work.names[row]
            if best is None or score > best[0] or (score == best[0] and name < best[1]):
                best = (score, name, row, request, devices, (feasible, scores, position))
        if best is None:
            return replica, "; ".join(rejected) or "no node offers what a replica needs", classes
        score, name, row, request, devices, ranked = best
        why = separation(work, *ranked)  # before reserving: the table the scores were made on
        devices = work.reserve(row, request, devices)
        if tracker is not None:
            tracker.place(row)
        assignments.append(Assignment(replica=replica, node=name, score=score, devices=devices, why=why))
        reasons.append(f"replica {replica} -> {name} (score {score:.3f}; {why})")
    return Placement(assignments=tuple(assignments), reasons=tuple(reasons))


def _explain_rules(resources: str, rules: str) -> str:
    """Nodes with room that the template's own rules left out, after those resources did."""
    kept = "" if resources == "no node filtered out" else f"{resources}; "
    return f"{kept}of the nodes with room: {rules}"


def plan_gang(
    table: NodeTable,
    gang: GangRequest,
    *,
    weights: ScoringWeights = DEFAULT_WEIGHTS,
    context: ScoringContext | None = None,
    check_never_fits: bool = True,
) -> Placement | Unplaceable:
    """Place all ``gang.replicas`` at once on ``table`` (left untouched), or say why not.

    Replicas are placed one after another on a working copy, each on the best node left for it,
    so the plan accounts for its own earlier replicas. All or nothing: a replica with no node
    makes the whole gang Unplaceable, and nothing of the partial plan is returned.
    ``check_never_fits=False`` skips the second plan on an empty cluster (callers that already
    know the gang fits there); ``never_fits`` is then False.
    """
    if gang.replicas <= 0:
        return Unplaceable(reason=f"{gang.job}: a gang needs at least one replica", never_fits=True)
    # Cached per-row fragmentation goes stale as the plan places replicas: let the scorer recompute.
    context = dataclasses.replace(context or ScoringContext(), fragmentation_before=None)
    outcome = _plan(table, gang, weights=weights, context=context)
    if isinstance(outcome, Placement):
        return outcome
    replica, why, classes = outcome
    if not classes:
        return Unplaceable(
            reason=f"{gang.job}: no node has a device size this job was sized for", never_fits=True
        )
    never = check_never_fits and not isinstance(
        _plan(table.emptied(), gang, weights=weights, context=context, with_pods=False), Placement
    )
    needs = _needs(classes, table)
    where = _largest_block(table, classes)
    prefix = f"{gang.job}: {needs}; {where}"
    if never:
        return Unplaceable(
            reason=f"{prefix}; {gang.replicas} replicas do not fit even on an empty cluster ({why})",
            never_fits=True,
        )
    return Unplaceable(
        reason=f"{prefix}; replica {replica + 1} of {gang.replicas} has no node now ({why})", never_fits=False
    )
