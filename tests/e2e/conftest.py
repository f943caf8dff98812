"""Fixtures for tests against the real local control plane (hack/control-plane/up.sh).

Every test in tests/e2e is marked `e2e`. The session starts the control plane once, or reuses the
one already running, and LEAVES IT RUNNING afterwards, whoever started it: the cluster is a dev
tool like a kind cluster, state lives outside the clone, and the next run (or `make demo`) then
starts in a fraction of a second instead of ~10 s. `make cluster-down` stops it. Tests are
isolated by namespaces, not by fresh clusters. Set MODELJOB_E2E_STOP_CLUSTER=1 to stop a cluster
this session started (CI machines that are not thrown away).

If the control plane cannot be built or started, every e2e test FAILS with the script's output:
a missing cluster is a broken setup, never a reason to skip.

The tests' cluster is not `make cluster`'s: its state is $MODELJOB_CACHE/cluster-e2e and its
ports are those registered as "e2e" in tests/cluster.py, so what a user left in the demo cluster
(`make demo`'s jobs hold the preset nodes' GPUs) never changes what a test sees, and a test run
never touches the user's cluster.
MODELJOB_E2E_CLUSTER_DIR points the tests at another state directory (with the ports in the
MODELJOB_*_PORT variables of hack/control-plane/lib.sh).
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from modeljob.adapters import node_catalog
from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.cluster_errors import NotFoundError
from modeljob.commands.nodes import apply_nodes, wait_until_ready
from tests.cluster import (
    CONTROL_PLANES,
    LOCK_WAIT_SECONDS,
    ControlPlane,
    ControlPlaneError,
    binaries,
    condition_taints_lifted,
    create_ready_namespace,
)
from tests.e2e.kube import Cluster, wait_for
from tests.e2e.operator_fixtures import Pool, install_crds, operators, pools

UP_TIMEOUT_SECONDS = 300
PRESET = "mixed"
NODES_READY_TIMEOUT_SECONDS = 60


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    e2e_dir = Path(__file__).parent
    for item in items:
        if e2e_dir in Path(item.path).parents:
            item.add_marker(pytest.mark.e2e)


def _control_plane() -> ControlPlane:
    """The tests' own control plane (registered in tests/cluster.py), or the one in
    MODELJOB_E2E_CLUSTER_DIR with the ports of the environment."""
    if "MODELJOB_E2E_CLUSTER_DIR" in os.environ:
        return ControlPlane(Path(os.environ["MODELJOB_E2E_CLUSTER_DIR"]), port_offset=None)
    return CONTROL_PLANES["e2e"]


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The tests' control plane, started (or found running), held by this session alone: every
    test's operator watches the whole cluster, so the operators of two sessions at once would act
    on each other's jobs (a queue-policy test would see the other session's policy)."""
    plane = _control_plane()
    try:
        with plane.held_by_this_process(wait_seconds=LOCK_WAIT_SECONDS):
            yield from _started_cluster(plane)
    except ControlPlaneError as exc:
        pytest.fail(str(exc), pytrace=False)


def _started_cluster(plane: ControlPlane) -> Iterator[Cluster]:
    try:
        bin_dir = binaries()
        was_running = (plane.state / "pids" / "kube-apiserver.pid").exists()
        out = plane.run("up.sh", timeout_seconds=UP_TIMEOUT_SECONDS)
    except ControlPlaneError as exc:
        pytest.fail(f"the e2e tests need the local control plane: {exc}", pytrace=False)
    match = re.search(r"^export KUBECONFIG=(.+)$", out, flags=re.MULTILINE)
    if match is None:
        pytest.fail(f"up.sh printed no `export KUBECONFIG=` line:\n{out}", pytrace=False)
    kubeconfig = Path(match.group(1))
    with ClusterGateway.from_kubeconfig(kubeconfig) as gateway:
        yield Cluster(kubeconfig=kubeconfig, bin_dir=bin_dir, gateway=gateway)
    if os.environ.get("MODELJOB_E2E_STOP_CLUSTER") == "1" and not was_running:
        plane.run("down.sh", timeout_seconds=UP_TIMEOUT_SECONDS)


@pytest.fixture(scope="session")
def preset_nodes(cluster: Cluster) -> tuple[node_catalog.NodeSpec, ...]:
    """The `mixed` preset's fake nodes, created if missing and Ready."""
    nodes = node_catalog.preset_nodes(PRESET)
    apply_nodes(cluster.gateway, [node_catalog.node_manifest(n) for n in nodes], workers=8)
    names = {n.name for n in nodes}
    ready = wait_until_ready(cluster.gateway, names, timeout_seconds=NODES_READY_TIMEOUT_SECONDS)
    if ready != names:
        pytest.fail(
            f"fake nodes not Ready after {NODES_READY_TIMEOUT_SECONDS} s: {sorted(names - ready)}\n"
            + _control_plane().component_report("kwok")
        )

    # kcm lifts the not-ready taint (added at creation) on its next node-monitor pass, up to 5 s
    # after Ready; until then the scheduler skips the node.
    wait_for(
        lambda: condition_taints_lifted(cluster.gateway, names),
        "kcm to lift the not-ready taint from the preset nodes",
    )
    return nodes


@pytest.fixture
def idle_preset_nodes(
    cluster: Cluster, preset_nodes: tuple[node_catalog.NodeSpec, ...], namespace: str
) -> None:
    """The preset nodes with nothing bound to them and no ModelJob elsewhere that an operator
    could place there. Earlier tests delete their namespaces without waiting, and the namespace
    controller removes what was in them some seconds later; a test that needs the whole preset
    waits for that here, and fails naming what is left if it never happens."""
    names = {n.name for n in preset_nodes}

    def leftovers() -> list[str]:
        pods = [
            f"pod {p['metadata']['namespace']}/{p['metadata']['name']} on {p['spec']['nodeName']}"
            for p in cluster.gateway.list_pods()
            if (p.get("spec") or {}).get("nodeName") in names
        ]
        listed = cluster.kubectl(
            "get",
            "modeljobs",
            "--all-namespaces",
            "-o",
            "jsonpath={range .items[*]}{.metadata.namespace}/{.metadata.name}{'\\n'}{end}",
            check=False,
        )
        if listed.returncode != 0 and "doesn't have a resource type" not in listed.stderr:
            pytest.fail(f"kubectl get modeljobs: {listed.stderr.strip()}")
        jobs = [f"ModelJob {n}" for n in listed.stdout.split() if not n.startswith(f"{namespace}/")]
        return pods + jobs

    try:
        wait_for(lambda: not leftovers(), "earlier tests' pods and jobs to be gone", timeout_seconds=120)
    except pytest.fail.Exception:
        pytest.fail(f"still there after 120 s: {leftovers()}")


@pytest.fixture
def namespace(cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace named after the test, deleted (without waiting) afterwards."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"e2e-{slug}-{uuid.uuid4().hex[:5]}"
    create_ready_namespace(cluster.gateway, name, labels={"modeljob.dev/e2e": "true"})
    yield name
    with contextlib.suppress(NotFoundError):  # the test may have deleted it itself
        cluster.gateway.delete_namespace(name)


# The operator tests' fixtures (tests/e2e/operator_fixtures.py): the CRDs once per module, an
# operator factory whose processes are stopped afterwards, and the test's own node pool.


@pytest.fixture(scope="module")
def operator_crds(cluster: Cluster) -> None:
    install_crds(cluster)


@pytest.fixture
def start_operator(cluster: Cluster, operator_crds: None, tmp_path: Path) -> Iterator[Any]:
    yield from operators(cluster, tmp_path)


@pytest.fixture
def pool(cluster: Cluster, preset_nodes: object, namespace: str) -> Iterator[Pool]:
    yield from pools(cluster, namespace)
