"""`modeljob estimate`: size each ModelJob in a file, offline, and explain every number."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import yaml

from modeljob.adapters.manifests import STDIN, LoadedJob, ManifestError, load_model_jobs, read_manifest
from modeljob.commands import UsageError
from modeljob.core.resources import GIB, QuantityError, format_bytes, format_cpu, parse_bytes
from modeljob.core.sizing import MAX_GPUS_PER_NODE, Device, Estimate, SizingError, size_replica

DEFAULT_DEVICE_MEMORY = "80Gi"
DEFAULT_GPUS_PER_NODE = 8

# Rows of the table, in the order of the estimate's fields (docs/sizing.md). A field's unit is in
# its name: *Bytes are shown as bytes. GPU memory is per replica; GPUs, CPU, RAM and disk per pod
# (a replica that spans nodes has one pod per node).
_ROWS: tuple[tuple[str, str], ...] = (
    ("weightsBytes", "weights"),
    ("kvCacheBytes", "KV cache"),
    ("activationsBytes", "activations"),
    ("gradientsBytes", "gradients"),
    ("optimizerStatesBytes", "optimizer states"),
    ("overheadBytes", "runtime overhead"),
    ("totalBytes", "total GPU memory"),
    ("gpus", "GPUs per pod"),
    ("gpuMemoryPerGpuBytes", "GPU memory per GPU"),
    ("cpuMilli", "CPU"),
    ("memoryBytes", "host memory"),
    ("ephemeralStorageBytes", "scratch disk"),
    ("tensorParallelSize", "tensor parallel"),
    ("pipelineParallelSize", "pipeline stages"),
    ("nodesPerReplica", "nodes per replica"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "estimate",
        help="size ModelJobs offline: GPUs, GPU memory, CPU, RAM and disk per replica",
        description="Size every ModelJob in a manifest file and explain each number. No cluster needed.",
    )
    parser.add_argument(
        "-f",
        "--filename",
        required=True,
        help="manifest (YAML), or - for standard input; documents of other kinds are skipped",
    )
    parser.add_argument(
        "--gpu-memory",
        help="memory of one device, e.g. 24Gi "
        f"(default: spec.accelerator.memoryPerDevice, else {DEFAULT_DEVICE_MEMORY})",
    )
    parser.add_argument(
        "--gpus-per-node", type=int, default=DEFAULT_GPUS_PER_NODE, help="devices per node (default 8)"
    )
    parser.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    parser.set_defaults(handler=_run)


def _device_memory(arg: str | None, loaded: LoadedJob) -> tuple[int, str]:
    """The device size to size for, and where it came from."""
    if arg is not None:
        try:
            return parse_bytes(arg), "--gpu-memory"
        except QuantityError as exc:
            raise UsageError(f"--gpu-memory: {exc}") from None
    declared = loaded.job.spec.accelerator.memory_per_device
    if declared is not None:
        return parse_bytes(declared), "spec.accelerator.memoryPerDevice"
    return parse_bytes(DEFAULT_DEVICE_MEMORY), (
        f"default {DEFAULT_DEVICE_MEMORY}: no --gpu-memory and no spec.accelerator.memoryPerDevice"
    )


def _estimate(loaded: LoadedJob, args: argparse.Namespace) -> dict[str, Any]:
    memory_bytes, memory_source = _device_memory(args.gpu_memory, loaded)
    if memory_bytes <= 0:
        raise UsageError(f"{loaded.source}: device memory must be positive")
    try:
        estimate = size_replica(
            loaded.job.spec.to_core(), Device(memory_bytes=memory_bytes, gpus_per_node=args.gpus_per_node)
        )
    except SizingError as exc:
        raise UsageError(f"{loaded.source} ({loaded.name}): {exc}") from None
    return _result(loaded, estimate, memory_source)


def _result(loaded: LoadedJob, estimate: Estimate, memory_source: str) -> dict[str, Any]:
    return {
        "name": loaded.name,
        "source": loaded.source,
        "replicas": loaded.job.spec.replicas,
        "deviceMemoryBytes": estimate.device_memory_bytes,
        "deviceMemorySource": memory_source,
        **estimate.to_dict(),
        "fits": estimate.fits,
        "misfit": estimate.misfit,
        "explanation": {rule.field: rule.explanation for rule in estimate.rules},
    }


def _run(args: argparse.Namespace) -> int:
    if not 1 <= args.gpus_per_node <= MAX_GPUS_PER_NODE:
        raise UsageError(f"--gpus-per-node: must be 1..{MAX_GPUS_PER_NODE}, got {args.gpus_per_node}")
    source = "stdin" if args.filename == STDIN else args.filename
    try:
        manifest = load_model_jobs(read_manifest(args.filename, sys.stdin), source)
    except ManifestError as exc:
        raise UsageError(str(exc)) from None
    for skipped in manifest.skipped:
        sys.stderr.write(f"skipped {skipped}: not a ModelJob\n")
    results = [_estimate(loaded, args) for loaded in manifest.jobs]
    if args.output == "json":
        payload: Any = results[0] if len(results) == 1 else results
        json.dump(payload, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif args.output == "yaml":
        yaml.safe_dump_all(results, sys.stdout, sort_keys=False)
    else:
        sys.stdout.write("\n\n".join(render_table(result) for result in results) + "\n")
    return 0 if all(result["fits"] for result in results) else 1


def _show(key: str, value: int) -> str:
    if key.endswith("Bytes"):
        return format_bytes(value)
    if key == "cpuMilli":
        return f"{format_cpu(value)} cores" if value % 1000 == 0 else f"{format_cpu(value)} CPU"
    return str(value)


def render_table(result: dict[str, Any]) -> str:
    """A readable per-replica breakdown: value and the rule that produced it."""
    device_gib = result["deviceMemoryBytes"] / GIB
    lines = [
        f"ModelJob {result['name']}  ({result['source']}, {result['replicas']} replica(s))",
        f"sized for {device_gib:g} GiB devices ({result['deviceMemorySource']})",
    ]
    if not result["fits"]:
        lines.append(
            f"DOES NOT FIT: even the largest layout allowed cannot hold one replica ({result['misfit']})"
        )
    width = max(len(label) for _, label in _ROWS)
    lines.append(f"{'per replica':<{width}}  {'value':>11}  rule")
    explanation = result["explanation"]
    for key, label in _ROWS:
        rule = explanation.get(key, "")
        lines.append(f"{label:<{width}}  {_show(key, result[key]):>11}  {rule}")
    return "\n".join(lines)
