"""Pod after pod on one cluster, the extender answers exactly what the core computes from scratch.

What makes the answers cheap at 5,000 nodes (snapshots shared until a row changes, per-row
fragmentation kept between requests, replies joined from memoised pieces, failing nodes paired
with their reasons in bulk) must change no byte: each reply here is compared with the plain
computation on the same cluster state (every candidate checked in a loop, scores without any
memo, json.dumps), while pods land, finish and nodes turn unready between requests.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace
from typing import Any

import pytest

from modeljob.adapters.extender.cache import ClusterCache, Snapshot
from modeljob.adapters.extender.decisions import UNKNOWN_NODE, decide_priorities, describe
from modeljob.adapters.extender.metrics import ExtenderMetrics
from modeljob.adapters.extender.routes import ExtenderService, answer_filter, answer_prioritize
from modeljob.adapters.extender.settings import ExtenderSettings
from modeljob.adapters.extender.wire import SchedulingArgs, decode_scheduling_args
from modeljob.core.cluster_state import NodeFacts, PodFacts
from modeljob.core.fragmentation import compile_workload
from modeljob.core.scoring.filters import UNRESOLVABLE_BY_PREEMPTION, first_failures
from modeljob.core.scoring.ranking import ScoringContext
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS
from tests.operator_builders import L4, container, make_node, make_pod, pod_dict

NODES = 1100  # past fragmentation's DEDUPLICATE_ABOVE_ROWS: big clusters take that path
ROUNDS = 40


def compact(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def generated_cluster(rng: random.Random) -> tuple[list[NodeFacts], list[PodFacts]]:
    """H100 and L4 nodes, some cordoned or not ready, with random GPU pods running on them."""
    nodes: list[NodeFacts] = []
    for i in range(NODES):
        if i % 3:
            node = make_node(f"node-{i:03d}")
        else:
            node = make_node(f"node-{i:03d}", gpus=4, product=L4, memory_gib=24, cpu_milli=48_000)
        if rng.random() < 0.05:
            node = replace(node, ready=False, view=replace(node.view, ready=False))
        elif rng.random() < 0.05:
            node = replace(node, schedulable=False)
        nodes.append(node)
    pods = []
    for node in nodes:
        free = node.view.allocatable.gpus
        while free and rng.random() < 0.6:
            gpus = rng.choice([g for g in (1, 1, 2, 4, 8) if g <= free])
            free -= gpus
            pods.append(make_pod(f"run-{len(pods)}", node=node.name, gpus=gpus, cpu_milli=4000 * gpus))
    return nodes, pods


def pending_pod(index: int, rng: random.Random) -> dict[str, Any]:
    """A pod as kube-scheduler sends it: GPUs of several sizes (or none, or another accelerator)."""
    gpus = rng.choice([0, 1, 1, 2, 4, 8])
    accelerator = "amd.com/gpu" if rng.random() < 0.1 else "nvidia.com/gpu"
    limits = {accelerator: str(gpus)} if gpus else {}
    requests = {"cpu": rng.choice(["1", "8", "100"]), "memory": rng.choice(["1Gi", "1500Gi"])}
    return pod_dict(f"pod-{index}", phase="Pending", containers=[container(limits=limits, requests=requests)])


def reference_scores(
    snapshot: Snapshot, args: SchedulingArgs, cache: ClusterCache, names: list[str]
) -> dict[str, int]:
    """The core's 0..10 scores of ``names`` with every fragmentation computed now (no memo)."""
    target = cache.workload(args.pod)
    context = ScoringContext(
        workload=compile_workload(target, snapshot.table.products), host_demand=cache.host_demand(args.pod)
    )
    priorities = decide_priorities(
        snapshot.table, args.request, names, row_of=snapshot.row_of, weights=DEFAULT_WEIGHTS, context=context
    )
    return dict(zip(priorities.hosts, priorities.values.tolist(), strict=True))


def reference_filter(
    snapshot: Snapshot, args: SchedulingArgs, cache: ClusterCache
) -> tuple[bytes, dict[str, int], int]:
    """Every candidate on its own: unknown, or its first failing check, or passed; of those that
    pass, only the ones within kube-scheduler's reach of the top score (default settings: 1500
    plugin points at weight 50 make up 3 of our points). Also their scores, taken over all that fit,
    and how many fit."""
    first, reasons = first_failures(snapshot.table, args.request)
    fits: list[str] = []
    failed: dict[str, str] = {}
    unresolvable: dict[str, str] = {}
    unknown: dict[str, str] = {}
    for name in args.candidates.names:
        row = snapshot.row_of.get(name)
        if row is None:
            unknown[name] = UNKNOWN_NODE
        elif first[row] < 0:
            fits.append(name)
        else:
            reason = reasons[int(first[row])]
            hard = reason in UNRESOLVABLE_BY_PREEMPTION
            (unresolvable if hard else failed)[name] = describe(reason, args.request)
    scores = reference_scores(snapshot, args, cache, fits) if len(fits) > 1 else dict.fromkeys(fits, 0)
    top = max(scores.values(), default=0)
    passed = [name for name in fits if scores[name] >= top - 3]
    reply = compact(
        {
            "Nodes": None,
            "NodeNames": passed,
            "FailedNodes": {**failed, **unknown},
            "FailedAndUnresolvableNodes": unresolvable,
            "Error": "",
        }
    )
    return reply, {name: scores[name] for name in passed}, len(fits)


def reference_priorities(scores: dict[str, int]) -> bytes:
    """The filter's scores of the nodes it passed, from the lowest of them, listed above 0."""
    low = min(scores.values())
    return compact([{"Host": host, "Score": score - low} for host, score in scores.items() if score > low])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_answers_equal_the_cores_from_scratch_pod_after_pod(seed: int) -> None:
    rng = random.Random(seed)
    nodes, pods = generated_cluster(rng)
    cache = ClusterCache(assume_seconds=30)
    cache.replace_nodes(nodes)
    cache.replace_pods(pods)
    cache.replace_services([])
    service = ExtenderService(
        cache=cache,
        weights=DEFAULT_WEIGHTS,
        metrics=ExtenderMetrics(),
        settings=ExtenderSettings(shortlist=True),
        bind=lambda *_: None,
        read_pod=lambda *_: {},
    )
    names = [node.name for node in nodes]
    loop = asyncio.new_event_loop()
    scored = shortlisted = 0
    try:
        for index in range(ROUNDS):
            pod = pending_pod(index, rng)
            start = rng.randrange(NODES)  # kube-scheduler starts each pod's search at another node
            candidates = names[start:] + names[:start] + ["not-a-node"]
            body = compact({"Pod": pod, "Nodes": None, "NodeNames": candidates})
            expected, scores, fit = reference_filter(cache.snapshot(), decode_scheduling_args(body), cache)
            assert loop.run_until_complete(answer_filter(service, body)) == expected, f"filter, pod {index}"
            passed = json.loads(expected)["NodeNames"]
            if not passed:
                continue
            shortlisted += len(passed) < fit
            body = compact({"Pod": pod, "Nodes": None, "NodeNames": passed})
            args = decode_scheduling_args(body)
            best = passed[0]
            if len(passed) > 1:  # kube-scheduler scores nothing when one node is left
                expected = reference_priorities(scores)
                assert loop.run_until_complete(answer_prioritize(service, body)) == expected, f"pod {index}"
                best = max(json.loads(expected), key=lambda entry: int(entry["Score"]))["Host"]
                scored += 1
            # Between pods: this one bound where it was scored best, now and then one finishes, a
            # node turns unready: rows change, and what the extender kept must follow.
            bound = replace(args.pod, node=best)
            cache.pod_event("MODIFIED", bound, bound.key)
            if rng.random() < 0.3:
                gone = rng.choice(pods)
                cache.pod_event("DELETED", None, gone.key)
            if rng.random() < 0.1:
                node = nodes[rng.randrange(NODES)]
                flipped = replace(node, ready=not node.ready, view=replace(node.view, ready=not node.ready))
                cache.node_event("MODIFIED", flipped, ("", node.name))
    finally:
        loop.close()
    assert scored >= ROUNDS // 4, "many pods fit on several close nodes: prioritize was compared, not skipped"
    assert shortlisted >= ROUNDS // 4, (
        "many pods fit far more nodes than could win: the filter left those out"
    )
