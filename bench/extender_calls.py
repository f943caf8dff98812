"""In-process micro-benchmark of the extender's filter and prioritize answers at 5,000 nodes.

No cluster, no HTTP: the routes' answer functions are called directly with the bodies
kube-scheduler sends (nodeCacheCapable: true, so the pod and every candidate's name), on a cache
filled with fake 8-GPU nodes (bench/extender.py's) and seeded pods on them. Each round is one pod's
cycle as the real extender sees it: filter, prioritize (which assumes the pod on the chosen node),
then the pod watch showing it bound there; so every round has one changed row, as in the bench.
Prints the median and p90 per call, in wall time and in the calling thread's CPU time (on a
shared machine the CPU time is the steadier of the two); `--profile` adds cProfile's top functions.

    python bench/extender_calls.py [--nodes 5000] [--rounds 200] [--profile]

Not part of `make bench` (its numbers are a development aid, not a result to publish).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import dataclasses
import json
import pstats
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO)]

from modeljob.adapters import kube_nodes, kube_pods  # noqa: E402
from modeljob.adapters.extender.cache import ClusterCache  # noqa: E402
from modeljob.adapters.extender.likeness import node_inputs, pod_counts  # noqa: E402
from modeljob.adapters.extender.metrics import ExtenderMetrics  # noqa: E402
from modeljob.adapters.extender.routes import (  # noqa: E402
    ExtenderService,
    answer_filter,
    answer_prioritize,
)
from modeljob.adapters.extender.settings import ExtenderSettings  # noqa: E402
from modeljob.core.cluster_state import PodFacts  # noqa: E402
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS  # noqa: E402
from tests.cluster import gpu_node_manifests, kwok_pod  # noqa: E402

GPU_SHAPES = (1, 1, 1, 2, 2, 4, 8)  # GPUs per running pod, drawn at random


def cluster(nodes: int, *, seed: int, fill: float) -> tuple[list[str], ClusterCache]:
    """``nodes`` fake 8-GPU nodes holding random GPU pods: another pod lands with chance ``fill``
    while a node has GPUs left (0: an empty cluster, as bench/extender.py starts from)."""
    names = [f"bench-{i:05d}" for i in range(nodes)]
    cache = ClusterCache(assume_seconds=30)
    manifests = gpu_node_manifests(names)
    for manifest in manifests:  # as kwok leaves them: Ready
        manifest["status"]["conditions"] = [
            {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}
        ]
    # What kube-scheduler's per-node plugins read of each node and pod (likeness), read beside
    # their translation as the extender's watches read it (cache_feed.read_beside): without it
    # every node would be a class of its own and the shortlist would keep every node that ties.
    for manifest in manifests:
        cache.node_read(manifest["metadata"]["name"], node_inputs(manifest))
    cache.replace_nodes(kube_nodes.node_facts(manifest) for manifest in manifests)
    rng = random.Random(seed)
    pods: list[PodFacts] = []
    for name in names:
        free = 8
        while free and rng.random() < fill:
            gpus = rng.choice([g for g in GPU_SHAPES if g <= free])
            free -= gpus
            manifest = kwok_pod(
                f"run-{len(pods)}", gpus=gpus, cpu=f"{4 * gpus}", memory=f"{16 * gpus}Gi", node=name
            )
            manifest["metadata"]["namespace"] = "bench"
            manifest["status"] = {"phase": "Running"}
            pods.append(kube_pods.pod_facts(manifest))
            cache.pod_read(pods[-1].key, pod_counts(manifest))
    cache.replace_pods(pods)
    cache.replace_services([])  # none select the bench's pods (the shortlist waits for a list)
    return names, cache


def watched(cache: ClusterCache, kind_of_event: str, pod: dict[str, Any], facts: PodFacts) -> None:
    """A pod event as the extender's watch hands it over: read beside, then translated."""
    cache.pod_read(facts.key, pod_counts(pod))
    cache.pod_event(kind_of_event, facts, facts.key)


def scheduler_pod(index: int) -> dict[str, Any]:
    """A pending pod as kube-scheduler sends it in ExtenderArgs.Pod (1 GPU, 1 CPU, 1 GiB)."""
    pod = kwok_pod(
        f"pod-{index}",
        gpus=1,
        cpu="1",
        memory="1Gi",
        tolerations=[{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}],
        scheduler_name="bench-extender",
    )
    pod["metadata"].update(namespace="bench", uid=f"uid-{index:08d}", resourceVersion=str(1000 + index))
    pod["status"] = {"phase": "Pending"}
    return pod


def service_over(cache: ClusterCache) -> ExtenderService:
    return ExtenderService(
        cache=cache,
        weights=DEFAULT_WEIGHTS,
        metrics=ExtenderMetrics(),
        settings=ExtenderSettings(),
        bind=lambda *_: None,
        read_pod=lambda *_: {},
    )


def run(
    nodes: int,
    rounds: int,
    *,
    seed: int,
    fill: float,
    arriving: bool,
    profile: cProfile.Profile | None,
) -> dict[str, list[float]]:
    """Per-call seconds of each verb over ``rounds`` pods' cycles. The pods are all pending in the
    cache from the start (bench/extender.py creates its batch at once), or ``arriving`` one by one
    just before their filter (a new GPU pod per round: the target workload changes every round)."""
    names, cache = cluster(nodes, seed=seed, fill=fill)
    pods = [scheduler_pod(index) for index in range(rounds)]
    if not arriving:
        for pod in pods:
            watched(cache, "ADDED", pod, kube_pods.pod_facts(pod))
    service = service_over(cache)
    loop = asyncio.new_event_loop()
    times: dict[str, list[float]] = {"filter": [], "prioritize": [], "filter cpu": [], "prioritize cpu": []}

    def timed(verb: str, call: Callable[[], Any]) -> Any:
        if profile is not None:
            profile.enable()
        started, cpu_started = time.perf_counter(), time.thread_time()
        result = loop.run_until_complete(call())
        times[verb].append(time.perf_counter() - started)
        times[f"{verb} cpu"].append(time.thread_time() - cpu_started)
        if profile is not None:
            profile.disable()
        return result

    for pod in pods:
        if arriving:
            watched(cache, "ADDED", pod, kube_pods.pod_facts(pod))
        body = json.dumps({"Pod": pod, "Nodes": None, "NodeNames": names}).encode()
        passed = json.loads(timed("filter", lambda body=body: answer_filter(service, body)))["NodeNames"]
        body = json.dumps({"Pod": pod, "Nodes": None, "NodeNames": passed}).encode()
        scores = json.loads(timed("prioritize", lambda body=body: answer_prioritize(service, body)))
        chosen = max(scores, key=lambda entry: entry["Score"])["Host"]
        bound = dataclasses.replace(kube_pods.pod_facts(pod), node=chosen, phase=kube_pods.PodPhase.RUNNING)
        watched(cache, "MODIFIED", pod, bound)
    loop.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--fill", type=float, default=0.7, help="chance of one more pod on a node")
    parser.add_argument("--arriving", action="store_true", help="each pod appears just before its filter")
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions")
    args = parser.parse_args()
    profile = cProfile.Profile() if args.profile else None
    times = run(
        args.nodes, args.rounds, seed=args.seed, fill=args.fill, arriving=args.arriving, profile=profile
    )
    for verb, seconds in times.items():
        ordered = sorted(seconds[1:])  # the first call builds the table and the fragmentation memo
        p90 = ordered[int(0.9 * (len(ordered) - 1))]
        print(
            f"{verb:>14}: median {1000 * statistics.median(ordered):.2f} ms, "
            f"mean {1000 * statistics.fmean(ordered):.2f} ms, p90 {1000 * p90:.2f} ms, "
            f"first {1000 * seconds[0]:.1f} ms ({args.nodes} nodes, {len(seconds)} calls)"
        )
    if profile is not None:
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
