"""`modeljob simulate`: replay an openb trace against a cluster under one placement policy."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

from pydantic import ValidationError

from modeljob.adapters.trace_files import (
    PublishedCurve,
    TraceFileError,
    read_published_curves,
    read_trace_nodes,
    read_trace_pods,
)
from modeljob.commands import UsageError
from modeljob.core.scoring.registry import registered_scorers
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS, ScoringWeights
from modeljob.core.sim.simulation import (
    DEFAULT_SEED,
    DEFAULT_TUNE_RATIO,
    PUBLISHED_NAMES,
    ReplayPolicy,
    ReplayResult,
    replay_trace,
)
from modeljob.settings import ScoringSettings

OUTPUT_FORMATS = ("table", "json")
REFERENCE_FILE = "analysis_allo_discrete.csv"
MAX_TUNE_RATIO = 10.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "simulate",
        help="replay an openb trace (nodes + tasks CSV) and report GPU allocation and fragmentation",
        description=(
            "Replay the tasks of an openb trace on its nodes one at a time, as the FGD artifact does "
            "(sorted by name, shuffled with the seed, topped up to --tune x GPU capacity), and report "
            "the GPU allocation and fragmentation curves against arrived GPU demand."
        ),
    )
    parser.add_argument("--nodes", required=True, type=Path, metavar="NODES.csv", help="openb node list CSV")
    parser.add_argument("--pods", required=True, type=Path, metavar="PODS.csv", help="openb pod list CSV")
    parser.add_argument(
        "--policy",
        default=ReplayPolicy.DEFAULT.value,
        metavar="NAME",
        help=f"one of {', '.join(p.value for p in ReplayPolicy)} (default: default)",
    )
    parser.add_argument(
        "--seed", type=int, default=DEFAULT_SEED, help=f"arrival order seed (default {DEFAULT_SEED})"
    )
    parser.add_argument(
        "--tune",
        type=float,
        default=DEFAULT_TUNE_RATIO,
        metavar="RATIO",
        help=(
            "top the tasks up to RATIO x cluster GPU capacity; 0 replays them as they are "
            f"(default {DEFAULT_TUNE_RATIO})"
        ),
    )
    parser.add_argument(
        "--weights",
        metavar="SCORER=W,...",
        help=(
            "scorer weights of the default policy, as the operator's MODELJOB_SCORING__* settings: "
            "named scorers replace the defaults, the others keep theirs "
            f"(scorers: {', '.join(scorer.name for scorer in registered_scorers())}; "
            "e.g. cpu-balance=0,best-fit=0.001)"
        ),
    )
    parser.add_argument("-o", "--output", default="table", metavar="FORMAT", help="table (default) or json")
    parser.add_argument(
        "--plot",
        type=Path,
        metavar="FILE.png",
        help="draw the allocation curve against the published baselines",
    )
    parser.add_argument(
        "--reference-dir",
        type=Path,
        metavar="DIR",
        help=f"folder with the published {REFERENCE_FILE} (default: reference_results/ beside the pods dir)",
    )
    parser.set_defaults(handler=run)


def _policy(name: str) -> ReplayPolicy:
    try:
        return ReplayPolicy(name)
    except ValueError:
        choices = ", ".join(p.value for p in ReplayPolicy)
        raise UsageError(f"--policy: unknown policy {name!r}; choose one of {choices}") from None


def _weights(text: str | None, policy: ReplayPolicy) -> ScoringWeights:
    """The default policy's weights with ``SCORER=W,...`` applied, checked as the operator checks them."""
    if text is None:
        return DEFAULT_WEIGHTS
    if policy is not ReplayPolicy.DEFAULT:
        raise UsageError(f"--weights: only the default policy has weights; --policy is {policy.value}")
    pairs: dict[str, str] = {}
    for item in text.split(","):
        name, separator, value = item.partition("=")
        if not separator or not name.strip():
            raise UsageError(f"--weights: expected SCORER=WEIGHT, got {item!r}")
        pairs[name.strip().replace("-", "_")] = value.strip()
    try:
        return ScoringSettings(**pairs).weights()
    except (ValidationError, ValueError) as exc:
        errors = exc.errors() if isinstance(exc, ValidationError) else [{"msg": str(exc)}]
        message = "; ".join(str(error["msg"]).removeprefix("Value error, ") for error in errors)
        raise UsageError(f"--weights: {message}") from None


def _published(args: argparse.Namespace) -> list[PublishedCurve]:
    folder: Path = args.reference_dir or args.pods.resolve().parent.parent / "reference_results"
    path = folder / REFERENCE_FILE
    if not path.is_file():
        if args.reference_dir is not None:
            raise UsageError(f"--reference-dir: {path} does not exist")
        return []
    return read_published_curves(path, args.pods.stem)


def run(args: argparse.Namespace) -> int:
    policy = _policy(args.policy)
    weights = _weights(args.weights, policy)
    if args.output not in OUTPUT_FORMATS:
        raise UsageError(f"-o/--output: unknown format {args.output!r}; choose table or json")
    if not (math.isfinite(args.tune) and 0 <= args.tune <= MAX_TUNE_RATIO):
        raise UsageError(f"--tune: must be between 0 and {MAX_TUNE_RATIO:g}, got {args.tune}")
    try:
        nodes = read_trace_nodes(args.nodes)
        pods = read_trace_pods(args.pods)
        published = _published(args) if args.plot or args.output == "table" else []
    except TraceFileError as exc:
        raise UsageError(str(exc)) from None
    if not any(node.gpus for node in nodes):
        raise UsageError(f"{args.nodes}: gpu: no node has a GPU, so there is no GPU capacity to fill")
    result = replay_trace(nodes, pods, policy=policy, seed=args.seed, tune_ratio=args.tune, weights=weights)
    if args.output == "json":
        json.dump(_as_json(result, nodes=len(nodes)), sys.stdout)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(_as_table(result, published))
    if args.plot:
        _plot(result, published, args.plot, title=args.pods.stem)
    return 0


def _as_json(result: ReplayResult, *, nodes: int) -> dict[str, object]:
    return {
        "policy": result.policy.value,
        "seed": result.seed,
        "tune": result.tune_ratio,
        "nodes": nodes,
        "capacityGpus": result.capacity_gpus,
        "podsArrived": result.pods_arrived,
        "failedPods": result.failed_pods,
        "allocationPercentByArrivedPercent": list(result.allocation_percent_by_arrived_percent),
        "fragmentationPercentByArrivedPercent": list(result.fragmentation_percent_by_arrived_percent),
    }


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _as_table(result: ReplayResult, published: list[PublishedCurve]) -> str:
    allocation = result.allocation_percent_by_arrived_percent
    fragmentation = result.fragmentation_percent_by_arrived_percent
    lines = [
        f"policy {result.policy.value}, seed {result.seed}, tune {result.tune_ratio:g}: "
        f"{result.pods_arrived} tasks tried, {result.failed_pods} failed, {result.capacity_gpus} GPUs",
        "",
        f"{'arrived %':>10} {'allocated %':>12} {'fragmented %':>13}",
    ]
    for percent in (25, 50, 75, 90, 100, 110, 120, 130):
        if percent < len(allocation):
            lines.append(
                f"{percent:>10} {_percent(allocation[percent]):>12} {_percent(fragmentation[percent]):>13}"
            )
    if published:
        lines += ["", "published (mean over seeds) at 100% and 130% arrived:"]
        ours = PUBLISHED_NAMES.get(result.policy)
        for curve in published:
            mark = "  <- this policy" if curve.policy == ours else ""
            points = curve.allocation_percent_by_arrived_percent
            lines.append(f"  {curve.policy:<18} {points[100]:6.2f} {points[130]:6.2f}{mark}")
    return "\n".join(lines) + "\n"


def _plot(result: ReplayResult, published: list[PublishedCurve], path: Path, *, title: str) -> None:
    # Imported here: matplotlib is optional (the `plot` extra) and slow to import.
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    from matplotlib import pyplot  # noqa: PLC0415

    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    arrived = list(range(len(result.allocation_percent_by_arrived_percent)))
    for curve in published:
        axes.plot(
            arrived,
            curve.allocation_percent_by_arrived_percent,
            linewidth=1,
            label=f"{curve.policy} (published)",
        )
    ours = [math.nan if v is None else v for v in result.allocation_percent_by_arrived_percent]
    axes.plot(arrived, ours, color="black", linewidth=2, label=f"{result.policy.value} (seed {result.seed})")
    axes.set_xlabel("arrived GPU demand, % of cluster GPU capacity")
    axes.set_ylabel("GPU allocated, % of capacity")
    axes.set_title(title)
    axes.set_xlim(0, 130)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    figure.tight_layout()
    try:
        figure.savefig(path, dpi=120)
    except OSError as exc:
        raise UsageError(f"--plot: cannot write {path}: {exc.strerror or exc}") from None
    finally:
        pyplot.close(figure)
