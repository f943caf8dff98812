"""Gang placement: every replica of a job gets a node in one plan, or none does, with the reason.

A replica that spans nodes is a group of pods, one per node, placed whole within the gang (all
groups or none) and, where the nodes are labelled, within one topology domain (core/topology.py).
What a plan is asked and what it answers: core/gang_request.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from modeljob.core.gang_capacity import surely_placed
from modeljob.core.gang_reasons import largest_block, needs_per_replica
from modeljob.core.gang_request import Assignment, GangRequest, Placement, ReplicaRequests, Unplaceable
from modeljob.core.node_choice import separation
from modeljob.core.nodes import BoolArray, IntArray, NodeTable, PodRequest
from modeljob.core.scoring.filters import filter_nodes
from modeljob.core.scoring.ranking import (
    NodeScores,
    ScoringContext,
    best_position,
    choose_devices,
    score_rows,
)
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS, ScoringWeights
from modeljob.core.template_rules import RuleTracker


def _classes(table: NodeTable, requests: ReplicaRequests) -> list[tuple[PodRequest, IntArray]]:
    """Nodes grouped by the request a replica would make there (one group per device memory)."""
    groups: dict[PodRequest, list[IntArray]] = {}
    for memory in np.unique(table.gpu_memory_bytes):
        request = requests.for_device_memory(int(memory))
        if request is not None:
            groups.setdefault(request, []).append(np.flatnonzero(table.gpu_memory_bytes == memory))
    # Each part ascends already; numpy joins and sorts them (a plan makes this for every table).
    return [(request, np.sort(np.concatenate(parts)).astype(np.int64)) for request, parts in groups.items()]


@dataclass(slots=True)
class _Chosen:
    """How many nodes a plan chose, its trials (forks) included: none means scores decided nothing."""

    nodes: int = 0


@dataclass(slots=True)
class _PlanState:
    """A plan in the making: its ledger and the template rules' counts, moved together."""

    work: NodeTable
    tracker: RuleTracker | None
    chosen: _Chosen  # shared with every fork of the plan

    def fork(self) -> _PlanState:
        tracker = self.tracker.fork() if self.tracker is not None else None
        return _PlanState(self.work.working_copy(), tracker, self.chosen)


@dataclass(frozen=True, slots=True)
class _Failure:
    """Where a plan stopped: the replica with no node, why, the table's rows grouped by request,
    and whether any node was chosen before (see ``Unplaceable.read_scores``)."""

    replica: int
    why: str
    classes: list[tuple[PodRequest, IntArray]]
    chose_nodes: bool


@dataclass(frozen=True, slots=True)
class _Choice:
    score: float
    name: str
    row: int
    request: PodRequest
    devices: tuple[int, ...]
    ranked: tuple[IntArray, NodeScores, int]  # the rows scored, their scores, the winner's position


def _choose(
    state: _PlanState,
    classes: list[tuple[PodRequest, IntArray]],
    *,
    weights: ScoringWeights,
    context: ScoringContext,
    within: BoolArray | None = None,
) -> _Choice | list[str]:
    """The best node for the next pod (among ``within``, if given), or why no node will do."""
    work, tracker = state.work, state.tracker
    allowed = tracker.allowed() if tracker is not None else None
    if tracker is not None:
        context = dataclasses.replace(context, preferences=tracker.preferences())
    best: _Choice | None = None
    rejected: list[str] = []
    for request, all_rows in classes:
        rows = all_rows if within is None else all_rows[within[all_rows]]
        if len(rows) == 0:
            rejected.append("no node of the group's choice left")
            continue
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
        if best is None or score > best.score or (score == best.score and name < best.name):
            best = _Choice(score, name, row, request, devices, (feasible, scores, position))
    return best if best is not None else rejected


def _take(state: _PlanState, choice: _Choice, *, replica: int, member: int = 0) -> Assignment:
    """Reserve the chosen node for one pod, in the ledger and the rules' counts."""
    why = separation(state.work, *choice.ranked)  # before reserving: the table the scores were made on
    state.chosen.nodes += 1
    devices = state.work.reserve(choice.row, choice.request, choice.devices)
    if state.tracker is not None:
        state.tracker.place(choice.row)
    return Assignment(
        replica=replica, node=choice.name, score=choice.score, devices=devices, why=why, member=member
    )


def _plan(
    table: NodeTable,
    gang: GangRequest,
    *,
    weights: ScoringWeights,
    context: ScoringContext,
    with_pods: bool = True,
) -> Placement | _Failure:
    work = table.working_copy()
    classes = _classes(work, gang.requests)
    tracker = (
        gang.rules.track(work, with_pods=with_pods, planned=gang.planned) if gang.rules is not None else None
    )
    state = _PlanState(work, tracker, _Chosen())
    assignments: list[Assignment] = []
    for replica in range(gang.replicas):
        if gang.group_size > 1:
            group = place_group(state, classes, gang, replica, weights=weights, context=context)
            if isinstance(group, str):
                return _Failure(replica, group, classes, chose_nodes=state.chosen.nodes > 0)
            state, placed = group
            assignments += placed
            continue
        choice = _choose(state, classes, weights=weights, context=context)
        if not isinstance(choice, _Choice):
            why = "; ".join(choice) or "no node offers what a replica needs"
            return _Failure(replica, why, classes, chose_nodes=state.chosen.nodes > 0)
        assignments.append(_take(state, choice, replica=replica))
    grouped = gang.group_size > 1
    reasons = [
        f"replica {a.replica}{' pod ' + str(a.member) if grouped else ''} -> {a.node} "
        f"(score {a.score:.3f}; {a.why})"
        for a in assignments
    ]
    return Placement(assignments=tuple(assignments), reasons=tuple(reasons))


def _place_members(
    state: _PlanState,
    classes: list[tuple[PodRequest, IntArray]],
    *,
    size: int,
    replica: int,
    within: BoolArray | None,
    weights: ScoringWeights,
    context: ScoringContext,
) -> list[Assignment] | str:
    """The ``size`` pods of one replica's group on ``size`` different nodes (of ``within``)."""
    used = np.zeros(len(state.work), dtype=np.bool_)
    placed: list[Assignment] = []
    for member in range(size):
        allowed = ~used if within is None else within & ~used
        choice = _choose(state, classes, weights=weights, context=context, within=allowed)
        if not isinstance(choice, _Choice):
            why = "; ".join(dict.fromkeys(choice)) or "no node with room"
            return f"pod {member + 1} of the replica's {size} has no node ({why})"
        placed.append(_take(state, choice, replica=replica, member=member))
        used[choice.row] = True
    return placed


def place_group(
    state: _PlanState,
    classes: list[tuple[PodRequest, IntArray]],
    gang: GangRequest,
    replica: int,
    *,
    weights: ScoringWeights,
    context: ScoringContext,
) -> tuple[_PlanState, list[Assignment]] | str:
    """One replica that spans nodes: its group tried in each topology domain (on a fork of the
    plan), the domain where it scores best kept (ties: the first by name). With no domain that
    holds it: Required waits, naming the domains; Preferred spans domains."""
    topology = gang.topology
    fits: list[tuple[float, str, _PlanState, list[Assignment]]] = []
    domains = topology.rows_by_domain(state.work.names) if topology is not None else {}
    for domain, rows in domains.items():
        trial = state.fork()
        placed = _place_members(
            trial,
            classes,
            size=gang.group_size,
            replica=replica,
            within=rows,
            weights=weights,
            context=context,
        )
        if not isinstance(placed, str):
            fits.append((sum(a.score for a in placed) / len(placed), domain, trial, placed))
    if fits:
        _, domain, trial, placed = min(fits, key=lambda fit: (-fit[0], fit[1]))
        assert topology is not None
        where = f"the group in {topology.key}={domain}"
        return trial, [dataclasses.replace(a, why=f"{a.why}; {where}") for a in placed]
    if topology is not None and topology.required:
        return topology.explain_no_domain(state.work, classes[0][0], gang.group_size)
    placed = _place_members(
        state, classes, size=gang.group_size, replica=replica, within=None, weights=weights, context=context
    )
    return placed if isinstance(placed, str) else (state, placed)


def _explain_rules(resources: str, rules: str) -> str:
    """Nodes with room that the template's own rules left out, after those resources did."""
    kept = "" if resources == "no node filtered out" else f"{resources}; "
    return f"{kept}of the nodes with room: {rules}"


def _fits_empty(
    empty: NodeTable,
    gang: GangRequest,
    classes: list[tuple[PodRequest, IntArray]],
    *,
    weights: ScoringWeights,
    context: ScoringContext,
) -> tuple[bool, bool]:
    """Whether the gang fits ``empty`` (no pods anywhere): counted where counting decides it
    (core/gang_capacity.py), else planned; and whether the answer may depend on scores (a plan
    that placed it, or chose nodes before it failed)."""
    if surely_placed(empty, classes, replicas=gang.replicas, group_size=gang.group_size, rules=gang.rules):
        return True, False
    planned = _plan(empty, gang, weights=weights, context=context, with_pods=False)
    if isinstance(planned, Placement):
        return True, True
    return False, planned.chose_nodes


def plan_gang(
    table: NodeTable,
    gang: GangRequest,
    *,
    weights: ScoringWeights = DEFAULT_WEIGHTS,
    context: ScoringContext | None = None,
    check_never_fits: bool = True,
    fits_empty: bool | None = None,
) -> Placement | Unplaceable:
    """Place all ``gang.replicas`` at once on ``table`` (left untouched), or say why not.

    Replicas are placed one after another on a working copy, each on the best node left for it,
    so the plan accounts for its own earlier replicas. All or nothing: a replica with no node
    makes the whole gang Unplaceable, and nothing of the partial plan is returned.
    ``check_never_fits=False`` skips the second plan on an empty cluster (callers that already
    know the gang fits there); ``never_fits`` is then False. ``fits_empty``: that plan's answer,
    where the caller knows it from a verdict on the same nodes that read no scores (the answer
    reads only the nodes' allocatable and the gang, so it holds as long as they do).
    """
    return plan_gang_with(
        table,
        gang,
        weights=weights,
        context=context,
        check_never_fits=check_never_fits,
        fits_empty=fits_empty,
    )[0]


def plan_gang_with(
    table: NodeTable,
    gang: GangRequest,
    *,
    weights: ScoringWeights = DEFAULT_WEIGHTS,
    context: ScoringContext | None = None,
    check_never_fits: bool = True,
    fits_empty: bool | None = None,
    first: FirstReplicaFailure | None = None,
) -> tuple[Placement | Unplaceable, FirstReplicaFailure | None]:
    """``plan_gang``, and where its plan stopped if no node took its first replica before any was
    chosen: a gang of one pod per replica that asks the same of ``table`` (the same request per
    replica and template rules, whatever its replica count) finds no node for its first replica
    either, so a caller that knows one such failure on this very table passes it as ``first`` and
    is spared the plan (core/planning.py: one request at other replica counts)."""
    if gang.replicas <= 0:
        never = Unplaceable(
            reason=f"{gang.job}: a gang needs at least one replica", never_fits=True, read_scores=False
        )
        return never, None
    # Cached per-row fragmentation goes stale as the plan places replicas: let the scorer recompute.
    context = dataclasses.replace(
        context or ScoringContext(), fragmentation_before=None, fragmentation_after=None
    )
    outcome = first.failure if first is not None else _plan(table, gang, weights=weights, context=context)
    if isinstance(outcome, Placement):
        return outcome, None
    if first is None and outcome.replica == 0 and not outcome.chose_nodes and gang.group_size == 1:
        first = FirstReplicaFailure(outcome)
    if not outcome.classes or fits_empty is not None or not check_never_fits:
        fits, empty_read_scores = fits_empty is not False, False
    else:
        fits, empty_read_scores = _fits_empty(
            table.emptied(), gang, outcome.classes, weights=weights, context=context
        )
    said = _unplaceable(table, gang, outcome, first, fits=fits, empty_read_scores=empty_read_scores)
    return said, first


@dataclass(eq=False, slots=True)
class FirstReplicaFailure:
    """A plan that found no node for a gang's first replica, before it chose any (``failure``), and
    what its reason says of the table alone, worked out once: what a replica needs and the largest
    free block (``said``)."""

    failure: _Failure
    said: str | None = None


def _unplaceable(
    table: NodeTable,
    gang: GangRequest,
    outcome: _Failure,
    first: FirstReplicaFailure | None,
    *,
    fits: bool,
    empty_read_scores: bool,
) -> Unplaceable:
    """Why the gang has no place, from where its plan stopped (``outcome``); ``fits``: whether it
    fits an empty cluster (and whether that answer read scores)."""
    replica, why, classes = outcome.replica, outcome.why, outcome.classes
    if not classes:
        return Unplaceable(
            reason=f"{gang.job}: no node has a device size this job was sized for",
            never_fits=True,
            read_scores=outcome.chose_nodes,
        )
    read_scores = outcome.chose_nodes or empty_read_scores
    said = first.said if first is not None else None
    if said is None:
        needs = needs_per_replica(classes, table, group_size=gang.group_size)
        said = f"{needs}; {largest_block(table, classes)}"
        if first is not None:
            first.said = said
    prefix = f"{gang.job}: {said}"
    if not fits:
        return Unplaceable(
            reason=f"{prefix}; {gang.replicas} replicas do not fit even on an empty cluster ({why})",
            never_fits=True,
            read_scores=read_scores,
        )
    return Unplaceable(
        reason=f"{prefix}; replica {replica + 1} of {gang.replicas} has no node now ({why})",
        never_fits=False,
        read_scores=read_scores,
    )
