"""`modeljob nodes`: create and delete kwok fake GPU nodes on a (local) cluster."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from modeljob.adapters import node_catalog
from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.cluster_errors import AlreadyExistsError, ClusterError, NotFoundError
from modeljob.adapters.node_catalog import CatalogError, NodeSpec
from modeljob.adapters.trace_files import TraceFileError, read_trace_nodes
from modeljob.commands import UsageError

# Enough parallel POSTs to hide the round trip (each ~2-10 ms on loopback) without queueing the
# API server's default 400 in-flight mutating requests.
DEFAULT_WORKERS = 16
POLL_SECONDS = 0.5
EXIT_CLUSTER_ERROR = 1

_T = TypeVar("_T")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "nodes",
        help="create or delete kwok fake GPU nodes (local control plane)",
        description="Create or delete fake GPU nodes that the kwok controller keeps Ready.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    apply = actions.add_parser(
        "apply",
        help="create fake nodes from a preset or a node list (existing nodes are left as they are)",
        description=(
            "Create kwok nodes with nvidia.com/gpu capacity and GPU Feature Discovery labels. "
            f"Presets: {', '.join(sorted(node_catalog.PRESETS))}. Files: the openb node CSV "
            "(sn,cpu_milli,memory_mib,gpu,model) or a YAML node list (docs/local-control-plane.md)."
        ),
    )
    source = apply.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", help="a named node set, e.g. mixed")
    source.add_argument("--from", dest="from_file", type=Path, help="a node list: FILE.csv or FILE.yaml")
    apply.add_argument("--limit", type=int, help="create only the first N nodes")
    apply.add_argument(
        "--wait",
        type=float,
        metavar="SECONDS",
        help="then wait up to SECONDS until every node is Ready (exit 1 if not)",
    )
    apply.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="parallel requests")
    _add_kubeconfig(apply)
    apply.set_defaults(handler=_apply)

    delete = actions.add_parser("delete", help="delete fake nodes", description="Delete fake (kwok) nodes.")
    delete.add_argument(
        "--all-fake", action="store_true", required=True, help="every node annotated kwok.x-k8s.io/node=fake"
    )
    delete.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="parallel requests")
    _add_kubeconfig(delete)
    delete.set_defaults(handler=_delete)


def _add_kubeconfig(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig", type=Path, help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)"
    )


@dataclass(frozen=True, slots=True)
class ApplyResult:
    created: int
    existing: int


def _apply(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit: must be at least 1, got {args.limit}")
    if args.workers < 1:
        raise UsageError(f"--workers: must be at least 1, got {args.workers}")
    nodes = _load_nodes(args)
    if args.limit is not None:
        nodes = nodes[: args.limit]
    manifests = [node_catalog.node_manifest(node) for node in nodes]
    gateway = _connect(args.kubeconfig)
    with gateway:
        started = time.monotonic()
        try:
            result = apply_nodes(gateway, manifests, workers=args.workers)
        except ClusterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CLUSTER_ERROR
        print(
            f"created {result.created} nodes ({result.existing} already existed) "
            f"in {time.monotonic() - started:.1f} s on {gateway.server}"
        )
        if args.wait is None:
            return 0
        names = {node.name for node in nodes}
        ready = wait_until_ready(gateway, names, timeout_seconds=args.wait)
        elapsed = time.monotonic() - started
        print(f"{len(ready)}/{len(names)} nodes Ready {elapsed:.1f} s after the first request")
        return 0 if len(ready) == len(names) else 1


def _load_nodes(args: argparse.Namespace) -> Sequence[NodeSpec]:
    try:
        if args.preset is not None:
            return node_catalog.preset_nodes(args.preset)
        path: Path = args.from_file
        suffix = path.suffix.lower()
        if suffix == ".csv":
            return _openb_nodes(path)
        if suffix in {".yaml", ".yml"}:
            return node_catalog.yaml_nodes(_read(path), source=str(path))
    except CatalogError as exc:
        raise UsageError(str(exc)) from None
    raise UsageError(f"--from: {path}: expected a .csv (openb node list) or .yaml file")


def _openb_nodes(path: Path) -> Sequence[NodeSpec]:
    try:
        rows = read_trace_nodes(path)
    except TraceFileError as exc:
        raise UsageError(str(exc)) from None
    return node_catalog.openb_nodes(rows, source=str(path))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None


def _connect(kubeconfig: Path | None) -> ClusterGateway:
    try:
        return ClusterGateway.from_kubeconfig(kubeconfig)
    except ClusterError as exc:
        raise UsageError(f"--kubeconfig: {exc}") from None


def apply_nodes(gateway: ClusterGateway, manifests: Sequence[dict[str, Any]], *, workers: int) -> ApplyResult:
    """Create every node in parallel; a node that already exists counts as done (idempotent)."""

    def create(manifest: dict[str, Any]) -> bool:
        try:
            gateway.create_node(manifest)
        except AlreadyExistsError:
            return False
        return True

    created = _in_parallel(create, manifests, workers=workers)
    return ApplyResult(created=sum(created), existing=len(created) - sum(created))


def wait_until_ready(gateway: ClusterGateway, names: set[str], *, timeout_seconds: float) -> set[str]:
    """Poll until every named node reports Ready=True, or the timeout passes; the Ready names."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        ready = {
            node["metadata"]["name"]
            for node in gateway.list_nodes(label_selector=_FAKE_SELECTOR)
            if is_ready(node)
        } & names
        if ready == names or time.monotonic() >= deadline:
            return ready
        time.sleep(POLL_SECONDS)


def is_ready(node: dict[str, Any]) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


_FAKE_SELECTOR = "=".join(node_catalog.FAKE_NODE_LABEL)


def _delete(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise UsageError(f"--workers: must be at least 1, got {args.workers}")
    key, value = node_catalog.FAKE_NODE_ANNOTATION
    with _connect(args.kubeconfig) as gateway:
        try:
            # The label narrows the list server-side; the annotation is what makes a node kwok's.
            fake = [
                node["metadata"]["name"]
                for node in gateway.list_nodes(label_selector=_FAKE_SELECTOR)
                if (node["metadata"].get("annotations") or {}).get(key) == value
            ]

            def delete(name: str) -> bool:
                try:
                    gateway.delete_node(name)
                except NotFoundError:
                    return False
                return True

            deleted = _in_parallel(delete, fake, workers=args.workers)
        except ClusterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_CLUSTER_ERROR
    print(f"deleted {sum(deleted)} fake nodes")
    return 0


def _in_parallel(call: Callable[[_T], bool], items: Sequence[_T], *, workers: int) -> list[bool]:
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(call, items))
