"""kube-scheduler with the modeljob extender, on a control plane of its own (the shared dev cluster's
kube-scheduler is never reconfigured).

The module starts a second local control plane (registered as "e2e-extender" in tests/cluster.py)
with two 8-GPU nodes and a CPU node, where 6 GPUs of gpu-a are taken: kube-scheduler alone spreads
a 1-GPU pod to the empty gpu-b, our scoring packs it onto gpu-a (keeping gpu-b's 8 GPUs whole).
The extender runs in this process (its real HTTP server and watches); kube-scheduler gets
hack/extender/extenders.yaml with the port the test chose. The control plane is stopped and
removed at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeljob.adapters import kube_pods, node_catalog
from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.extender.cache import ClusterCache
from modeljob.adapters.extender.cache_feed import ClusterFeed
from modeljob.adapters.extender.metrics import ExtenderMetrics
from modeljob.adapters.extender.routes import build_app
from modeljob.adapters.extender.server import ExtenderServer, build_service
from modeljob.adapters.extender.settings import ExtenderSettings
from modeljob.adapters.kube_nodes import NodeLabelKeys
from modeljob.commands.nodes import apply_nodes, wait_until_ready
from modeljob.core.resources import GIB, TIB
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS
from tests.cluster import (
    CONTROL_PLANES,
    LOCK_WAIT_SECONDS,
    ControlPlaneError,
    binaries,
    condition_taints_lifted,
    create_ready_namespace,
    exists,
    kwok_pod,
)
from tests.e2e.kube import Cluster, wait_for

REPO = Path(__file__).resolve().parents[2]
EXTENDERS = REPO / "hack" / "extender" / "extenders.yaml"
PLANE = CONTROL_PLANES["e2e-extender"]
EXTENDER_PORT = 18888  # below the ephemeral range, and in no control plane's port table
NAMESPACE = "extender-e2e"
SPREADING_SERVICE = {
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "spread-me"},
    "spec": {"clusterIP": "None", "selector": {"app": "spread-me"}, "ports": [{"port": 80}]},
}


def control_plane(script: str, *, extenders: Path | None = None) -> str:
    try:
        return PLANE.run(script, extenders=extenders)
    except ControlPlaneError as exc:
        pytest.fail(str(exc), pytrace=False)


def extenders_file(directory: Path, *, ignorable: bool = False) -> Path:
    """hack/extender/extenders.yaml as shipped, pointed at this test's extender port."""
    document = yaml.safe_load(EXTENDERS.read_text())
    [entry] = document["extenders"]
    entry["urlPrefix"] = f"http://127.0.0.1:{EXTENDER_PORT}/scheduler"
    entry["ignorable"] = ignorable
    path = directory / ("extenders-ignorable.yaml" if ignorable else "extenders.yaml")
    path.write_text(yaml.safe_dump(document))
    return path


class LocalExtender:
    """The extender's watches and HTTP server in this process; HTTP can be stopped and restarted."""

    def __init__(self, gateway: ClusterGateway) -> None:
        # The shortlist off at first (every node that fits passes, kube-scheduler calls prioritize);
        # the test turns it on, as it is by default, where it is about it.
        self.settings = ExtenderSettings(host="127.0.0.1", port=EXTENDER_PORT, shortlist=False)
        self.cache = ClusterCache(assume_seconds=self.settings.assume_seconds)
        self.feed = ClusterFeed(gateway, self.cache, labels=NodeLabelKeys())
        self.metrics = ExtenderMetrics()
        self.service = build_service(
            gateway, self.cache, weights=DEFAULT_WEIGHTS, settings=self.settings, metrics=self.metrics
        )
        self.server: ExtenderServer | None = None

    def start(self) -> None:
        self.feed.start()
        assert self.feed.wait_synced(30), "the extender's watches did not list nodes and pods"
        self.start_http()

    def start_http(self, **settings: Any) -> None:
        """Serve (again), with ``settings`` changed from those it has."""
        if settings:
            self.settings = self.settings.model_copy(update=settings)
            self.service = replace(self.service, settings=self.settings)
        self.server = ExtenderServer(build_app(self.service), host="127.0.0.1", port=EXTENDER_PORT)
        self.server.start_in_thread()

    def stop_http(self) -> None:
        if self.server is not None:
            self.server.stop_thread()
            self.server = None

    def stop(self) -> None:
        self.stop_http()
        self.feed.stop()


@dataclass
class Setup:
    cluster: Cluster
    extender: LocalExtender
    workdir: Path


def gpu_node(name: str) -> node_catalog.NodeSpec:
    return node_catalog.NodeSpec(
        name=name,
        cpu_milli=192_000,
        memory_bytes=2 * TIB,
        ephemeral_storage_bytes=8 * TIB,
        gpus=8,
        gpu=node_catalog.H100_80GB,
    )


def pod(name: str, *, gpus: int = 0) -> dict[str, Any]:
    """A kwok pod asking for 1 CPU and 4 GiB besides its GPUs: kube-scheduler's spreading weighs them."""
    return kwok_pod(name, gpus=gpus, cpu="1", memory="4Gi")


def node_of(cluster: Cluster, name: str) -> str | None:
    node = (cluster.gateway.read_pod(NAMESPACE, name).get("spec") or {}).get("nodeName")
    return str(node) if node else None


def scheduled(cluster: Cluster, name: str, *, timeout_seconds: float = 30) -> str:
    wait_for(
        lambda: node_of(cluster, name) is not None, f"pod {name} to be bound", timeout_seconds=timeout_seconds
    )
    node = node_of(cluster, name)
    assert node is not None
    return node


def scheduling_failures(cluster: Cluster, name: str) -> list[str]:
    items = cluster.gateway.list_events(NAMESPACE, field_selector=f"involvedObject.name={name}")
    return [
        str(e.get("message") or e.get("note") or "") for e in items if e.get("reason") == "FailedScheduling"
    ]


def delete_and_wait(cluster: Cluster, name: str) -> None:
    cluster.gateway.delete_pod(NAMESPACE, name, grace_period_seconds=0)
    wait_for(
        lambda: not exists(lambda: cluster.gateway.read_pod(NAMESPACE, name)), f"pod {name} to be deleted"
    )


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    try:
        with PLANE.held_by_this_process(wait_seconds=LOCK_WAIT_SECONDS):  # one session at a time
            yield from _started(tmp_path_factory.mktemp("extender"))
    except ControlPlaneError as exc:
        pytest.fail(str(exc), pytrace=False)


def _started(workdir: Path) -> Iterator[Setup]:
    bin_dir = binaries()
    control_plane("down.sh")  # a leftover from an interrupted run would keep its old scheduler config
    control_plane("up.sh")
    gateway = PLANE.gateway()
    cluster = Cluster(kubeconfig=PLANE.kubeconfig, bin_dir=bin_dir, gateway=gateway)
    extender = LocalExtender(gateway)
    try:
        specs = [gpu_node("gpu-a"), gpu_node("gpu-b"), node_catalog.NodeSpec("cpu-0", 32_000, 128 * GIB, TIB)]
        apply_nodes(gateway, [node_catalog.node_manifest(s) for s in specs], workers=3)
        names = {s.name for s in specs}
        ready = wait_until_ready(gateway, names, timeout_seconds=60)
        assert ready == names, f"not Ready: {sorted(names - ready)}\n{PLANE.component_report('kwok')}"

        wait_for(
            lambda: condition_taints_lifted(gateway, names),
            "kcm to lift the not-ready taints",
            timeout_seconds=60,
        )
        create_ready_namespace(gateway, NAMESPACE)
        # 6 of gpu-a's 8 GPUs (and a quarter of its CPUs) are taken, bound without any scheduler.
        gateway.create_pod(
            NAMESPACE, kwok_pod("holds-6-gpus", gpus=6, node="gpu-a", cpu="48", memory="256Gi")
        )
        yield Setup(cluster=cluster, extender=extender, workdir=workdir)
    finally:
        extender.stop()
        gateway.close()
        control_plane("down.sh")


# The tests run in file order: each one reconfigures the scheduler for the next.


def test_kube_scheduler_alone_spreads_a_gpu_pod_to_the_empty_node(setup: Setup) -> None:
    cluster = setup.cluster
    cluster.gateway.create_pod(NAMESPACE, pod("alone", gpus=1))
    assert scheduled(cluster, "alone") == "gpu-b", "kube-scheduler's LeastAllocated prefers the emptier node"
    delete_and_wait(cluster, "alone")


def test_with_the_extender_the_same_pod_lands_where_our_scoring_prefers(setup: Setup) -> None:
    cluster, extender = setup.cluster, setup.extender
    extender.start()
    control_plane("up.sh", extenders=extenders_file(setup.workdir))  # restarts kube-scheduler only
    cluster.gateway.create_pod(NAMESPACE, pod("with-extender", gpus=1))
    assert scheduled(cluster, "with-extender") == "gpu-a", "FGD packs it where 2 GPUs were left"
    text = extender.metrics.exposition().decode()
    assert 'modeljob_extender_requests_total{code="200",verb="prioritize"} 1.0' in text
    assert 'modeljob_extender_bindings_total{result="bound"} 1.0' in text, "our bind verb bound it"
    # With the shortlist on (the default): the empty gpu-b trails gpu-a by more than kube-scheduler's
    # plugins can make up, so the filter passes gpu-a alone and kube-scheduler scores nothing, no
    # prioritize.
    extender.stop_http()
    extender.start_http(shortlist=True)
    cluster.gateway.create_pod(NAMESPACE, pod("shortlisted", gpus=1))
    assert scheduled(cluster, "shortlisted") == "gpu-a"
    text = extender.metrics.exposition().decode()
    assert 'modeljob_extender_requests_total{code="200",verb="filter"} 2.0' in text
    assert 'modeljob_extender_requests_total{code="200",verb="prioritize"} 1.0' in text
    delete_and_wait(cluster, "shortlisted")
    # A Service selecting the pod makes kube-scheduler spread it by default, over the nodes it is
    # given: the extender's Service watch sees it, and every node that fits passes again.
    spread = pod("behind-a-service", gpus=1)
    spread["metadata"].update(namespace=NAMESPACE, labels={"app": "spread-me"})
    cluster.gateway.create_service(NAMESPACE, SPREADING_SERVICE)
    wait_for(
        lambda: extender.cache.scoring_reason(kube_pods.pod_facts(spread), (), ()) is not None,
        "the extender's Service watch to see the Service",
    )
    cluster.gateway.create_pod(NAMESPACE, spread)
    assert scheduled(cluster, "behind-a-service") == "gpu-a"
    text = extender.metrics.exposition().decode()
    assert 'modeljob_extender_requests_total{code="200",verb="filter"} 3.0' in text
    assert 'modeljob_extender_requests_total{code="200",verb="prioritize"} 2.0' in text
    delete_and_wait(cluster, "behind-a-service")  # the next tests find gpu-a with one GPU left
    cluster.kubectl("-n", NAMESPACE, "delete", "service", "spread-me")


def test_a_pod_that_fits_no_node_stays_pending_with_our_reason(setup: Setup) -> None:
    cluster = setup.cluster
    cluster.gateway.create_pod(NAMESPACE, pod("sixteen-gpus", gpus=16))
    wait_for(lambda: bool(scheduling_failures(cluster, "sixteen-gpus")), "a FailedScheduling event")
    [message, *_] = scheduling_failures(cluster, "sixteen-gpus")
    assert "modeljob: not enough free GPUs (the pod asks for 16 nvidia.com/gpu)" in message
    assert "modeljob: node has no such accelerator" in message
    assert node_of(cluster, "sixteen-gpus") is None
    delete_and_wait(cluster, "sixteen-gpus")


def test_with_the_extender_down_gpu_pods_wait_and_other_pods_do_not(setup: Setup) -> None:
    """ignorable: false (as shipped): no GPU pod is placed without the extender's check."""
    cluster, extender = setup.cluster, setup.extender
    extender.stop_http()
    cluster.gateway.create_pod(NAMESPACE, pod("gpu-while-down", gpus=1))
    cluster.gateway.create_pod(NAMESPACE, pod("cpu-while-down"))
    assert scheduled(cluster, "cpu-while-down"), "pods without accelerators never reach the extender"
    wait_for(lambda: bool(scheduling_failures(cluster, "gpu-while-down")), "a FailedScheduling event")
    assert f"127.0.0.1:{EXTENDER_PORT}/scheduler/filter" in scheduling_failures(cluster, "gpu-while-down")[0]
    assert node_of(cluster, "gpu-while-down") is None
    extender.start_http()
    assert scheduled(cluster, "gpu-while-down") == "gpu-a", "retried once the extender is back"
    for name in ("gpu-while-down", "cpu-while-down"):
        delete_and_wait(cluster, name)


def test_ignorable_true_would_let_kube_scheduler_overcommit_gpus_while_the_extender_is_down(
    setup: Setup,
) -> None:
    """Why we ship ignorable: false: kube-scheduler does not count the GPUs it leaves to us."""
    cluster, extender = setup.cluster, setup.extender
    extender.stop_http()
    control_plane("up.sh", extenders=extenders_file(setup.workdir, ignorable=True))
    cluster.gateway.create_pod(NAMESPACE, pod("sixteen-gpus-ignored", gpus=16))
    assert scheduled(cluster, "sixteen-gpus-ignored") in {"gpu-a", "gpu-b"}, "an 8-GPU node got a 16-GPU pod"
