"""Read openb trace CSVs (nodes, tasks, published curves) into core values; errors name file:line: column."""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from modeljob.core.sim.traces import TraceNode, TracePod

T = TypeVar("T")

NODE_COLUMNS = ("sn", "cpu_milli", "memory_mib", "gpu", "model")
# The multigpu variants have only these five columns; the others add gpu_spec, qos, phase, times.
POD_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
MAX_GPU_MILLI = 1000


class TraceFileError(ValueError):
    """A trace file that cannot be used; the message starts with ``file:line: column:``."""


@dataclass(frozen=True, slots=True)
class _Row:
    path: Path
    line: int
    values: dict[str, str]

    def fail(self, column: str, what: str) -> TraceFileError:
        return TraceFileError(f"{self.path}:{self.line}: {column}: {what}")

    def text(self, column: str, *, required: bool = True) -> str:
        value = (self.values.get(column) or "").strip()
        if required and not value:
            raise self.fail(column, "is empty")
        return value

    def count(self, column: str, *, maximum: int | None = None) -> int:
        raw = self.text(column)
        try:
            value = int(raw)
        except ValueError:
            raise self.fail(column, f"expected a whole number, got {raw!r}") from None
        if value < 0:
            raise self.fail(column, f"must not be negative, got {value}")
        if maximum is not None and value > maximum:
            raise self.fail(column, f"must be at most {maximum}, got {value}")
        return value


def _rows(path: Path, required: Sequence[str]) -> Iterator[_Row]:
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise TraceFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise TraceFileError(f"{path}:1: header: the file is empty")
            header = [h.strip() for h in header]
            missing = [c for c in required if c not in header]
            if missing:
                raise TraceFileError(
                    f"{path}:1: {missing[0]}: missing column (the header has: {', '.join(header)})"
                )
            for fields in reader:
                if not fields or all(not f.strip() for f in fields):
                    continue
                if len(fields) != len(header):
                    raise TraceFileError(
                        f"{path}:{reader.line_num}: row: expected {len(header)} columns as in the header, "
                        f"found {len(fields)}"
                    )
                yield _Row(path=path, line=reader.line_num, values=dict(zip(header, fields, strict=True)))
        except UnicodeDecodeError as exc:
            raise TraceFileError(f"{path}: not UTF-8 text: {exc.reason}") from None
        except csv.Error as exc:
            raise TraceFileError(f"{path}:{reader.line_num}: row: {exc}") from None


def _read(
    path: Path, required: Sequence[str], parse: Callable[[_Row], T], name: Callable[[T], str]
) -> list[T]:
    items: list[T] = []
    seen: dict[str, int] = {}
    for row in _rows(path, required):
        item = parse(row)
        key = name(item)
        if key in seen:
            raise row.fail(required[0], f"duplicate name {key!r} (first on line {seen[key]})")
        seen[key] = row.line
        items.append(item)
    if not items:
        raise TraceFileError(f"{path}:2: row: the file has a header but no rows")
    return items


def _node(row: _Row) -> TraceNode:
    return TraceNode(
        name=row.text("sn"),
        cpu_milli=row.count("cpu_milli"),
        memory_mib=row.count("memory_mib"),
        gpus=row.count("gpu", maximum=64),
        model=row.text("model", required=False),
    )


def _pod(row: _Row) -> TracePod:
    gpus = row.count("num_gpu", maximum=64)
    gpu_milli = row.count("gpu_milli", maximum=MAX_GPU_MILLI)
    if gpus and not gpu_milli:
        raise row.fail("gpu_milli", f"must be 1..{MAX_GPU_MILLI} when num_gpu is {gpus}, got 0")
    if gpus > 1 and gpu_milli != MAX_GPU_MILLI:
        raise row.fail(
            "gpu_milli", f"a task with {gpus} GPUs must ask for whole devices (1000), got {gpu_milli}"
        )
    if not gpus and gpu_milli:
        raise row.fail("gpu_milli", f"must be 0 when num_gpu is 0, got {gpu_milli}")
    spec = row.text("gpu_spec", required=False)
    return TracePod(
        name=row.text("name"),
        cpu_milli=row.count("cpu_milli"),
        memory_mib=row.count("memory_mib"),
        gpus=gpus,
        gpu_milli=gpu_milli,
        gpu_spec=tuple(model for model in spec.split("|") if model.strip()),
    )


def read_trace_nodes(path: Path) -> list[TraceNode]:
    """Nodes from an ``openb_node_list_*.csv`` file."""
    return _read(path, NODE_COLUMNS, _node, lambda node: node.name)


def read_trace_pods(path: Path) -> list[TracePod]:
    """Tasks from an ``openb_pod_list_*.csv`` file (5-column multigpu files included)."""
    return _read(path, POD_COLUMNS, _pod, lambda pod: pod.name)


@dataclass(frozen=True, slots=True)
class PublishedCurve:
    """One policy's published allocation curve on one workload: mean over its seeds."""

    policy: str  # as the artifact names it, e.g. "06-FGD"
    seeds: int
    allocation_percent_by_arrived_percent: tuple[float, ...]


def read_published_curves(path: Path, workload: str) -> list[PublishedCurve]:
    """Mean published curves for ``workload`` from ``analysis_allo_discrete.csv`` (empty if none)."""
    by_policy: dict[str, list[list[float]]] = {}
    for row in _rows(path, ("workload", "sc_policy", "seed", "0", "130")):
        if row.values["workload"] != workload:
            continue
        points: list[float] = []
        for percent in range(131):
            raw = row.text(str(percent))
            try:
                points.append(float(raw))
            except ValueError:
                raise row.fail(str(percent), f"expected a number, got {raw!r}") from None
        by_policy.setdefault(row.values["sc_policy"], []).append(points)
    return [
        PublishedCurve(
            policy=policy,
            seeds=len(runs),
            allocation_percent_by_arrived_percent=tuple(
                math.fsum(column) / len(runs) for column in zip(*runs, strict=True)
            ),
        )
        for policy, runs in sorted(by_policy.items())
    ]
