"""Fake node catalogue: presets, openb rows and our YAML node list become GPU Node manifests."""

from __future__ import annotations

import re
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from modeljob.adapters import node_catalog
from modeljob.adapters.node_catalog import CatalogError, NodeSpec
from modeljob.adapters.trace_files import read_trace_nodes
from modeljob.core.resources import GIB, MIB, parse_bytes, parse_quantity
from modeljob.core.sim.traces import TraceNode

# Kubernetes label values: at most 63 characters, alphanumerics at both ends, -_. inside
# (apimachinery validation.IsValidLabelValue).
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def openb_row(**overrides: Any) -> TraceNode:
    """One openb_node_list_gpu_node.csv row, as the trace reader yields it."""
    values: dict[str, Any] = {
        "name": "openb-node-0000",
        "cpu_milli": 64000,
        "memory_mib": 262144,
        "gpus": 2,
        "model": "P100",
    }
    values.update(overrides)
    return TraceNode(**values)


def make_node(**overrides: Any) -> NodeSpec:
    values: dict[str, Any] = {
        "name": "gpu-0",
        "cpu_milli": 96_000,
        "memory_bytes": 512 * GIB,
        "ephemeral_storage_bytes": 1024 * GIB,
        "gpus": 8,
        "gpu": node_catalog.H100_80GB,
    }
    values.update(overrides)
    return NodeSpec(**values)


def yaml_list(body: str) -> str:
    return textwrap.dedent(body).lstrip("\n")


def one_node(extra: str = "") -> str:
    """A one-entry YAML node list (the entry starts on line 2) plus `extra` field lines."""
    return "nodes:\n- name: a\n  cpu: 1\n  memory: 1Gi\n" + extra


def labels_of(node: NodeSpec) -> dict[str, str]:
    labels: dict[str, str] = node_catalog.node_manifest(node)["metadata"]["labels"]
    return labels


# --- presets ----------------------------------------------------------------------------------


def test_mixed_preset_has_two_nodes_of_each_shape() -> None:
    nodes = node_catalog.preset_nodes("mixed")

    shapes = sorted((n.gpu.product if n.gpu else "cpu-only", n.gpus) for n in nodes)

    assert shapes == [
        ("NVIDIA-A100-SXM4-40GB", 8),
        ("NVIDIA-A100-SXM4-40GB", 8),
        ("NVIDIA-H100-80GB-HBM3", 8),
        ("NVIDIA-H100-80GB-HBM3", 8),
        ("NVIDIA-L4", 4),
        ("NVIDIA-L4", 4),
        ("cpu-only", 0),
        ("cpu-only", 0),
    ]
    assert len({n.name for n in nodes}) == len(nodes)


def test_unknown_preset_names_the_presets_that_exist() -> None:
    with pytest.raises(CatalogError, match=r"unknown preset 'huge'.*mixed.*tiny"):
        node_catalog.preset_nodes("huge")


@pytest.mark.parametrize(
    ("model", "memory_mib"),
    [
        (node_catalog.H100_80GB, 81920),
        (node_catalog.A100_40GB, 40960),
        (node_catalog.L4_24GB, 24576),
    ],
    ids=["h100", "a100", "l4"],
)
def test_preset_gpu_memory_is_nominal_size_in_mib(model: node_catalog.GpuModel, memory_mib: int) -> None:
    assert model.memory_mib == memory_mib


def test_preset_prices_rank_h100_over_a100_over_l4_over_cpu() -> None:
    price = {n.name.rsplit("-", 1)[0]: node_catalog.price_node(n) for n in node_catalog.preset_nodes("mixed")}

    assert price["gpu-h100"] > price["gpu-a100"] > price["gpu-l4"] > price["cpu"] > 0


# --- manifests --------------------------------------------------------------------------------


def test_gpu_node_carries_gpu_feature_discovery_labels() -> None:
    labels = labels_of(make_node(gpus=8, gpu=node_catalog.H100_80GB))

    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert labels["nvidia.com/gpu.memory"] == "81920"
    assert labels["nvidia.com/gpu.count"] == "8"


def test_gpu_node_advertises_gpus_in_capacity_and_allocatable() -> None:
    status = node_catalog.node_manifest(make_node(gpus=4, gpu=node_catalog.L4_24GB))["status"]

    assert status["capacity"]["nvidia.com/gpu"] == "4"
    assert status["allocatable"] == status["capacity"]


def test_host_resources_are_kubernetes_quantities() -> None:
    capacity = node_catalog.node_manifest(
        make_node(cpu_milli=96_500, memory_bytes=384 * GIB, ephemeral_storage_bytes=3 * 1024 * GIB)
    )["status"]["capacity"]

    assert parse_quantity(capacity["cpu"]) == Decimal("96.5")
    assert parse_bytes(capacity["memory"]) == 384 * GIB
    assert parse_bytes(capacity["ephemeral-storage"]) == 3 * 1024 * GIB
    assert capacity["pods"] == "110"


def test_cpu_only_node_has_no_gpu_resource_and_no_gpu_labels() -> None:
    manifest = node_catalog.node_manifest(make_node(gpus=0, gpu=None))

    assert "nvidia.com/gpu" not in manifest["status"]["capacity"]
    assert not [key for key in manifest["metadata"]["labels"] if key.startswith("nvidia.com/")]


def test_node_is_handed_to_kwok_and_findable_by_label() -> None:
    manifest = node_catalog.node_manifest(make_node(name="gpu-7"))

    assert manifest["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
    assert manifest["metadata"]["labels"]["type"] == "kwok"
    assert manifest["metadata"]["labels"]["kubernetes.io/hostname"] == "gpu-7"
    assert manifest["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    assert manifest["metadata"]["labels"]["kubernetes.io/arch"] == "amd64"
    # kube-controller-manager would add these to every node, one update each (node_manifest says why)
    assert manifest["metadata"]["labels"]["beta.kubernetes.io/os"] == "linux"
    assert manifest["metadata"]["labels"]["beta.kubernetes.io/arch"] == "amd64"


@pytest.mark.parametrize("preset", sorted(node_catalog.PRESETS), ids=str)
def test_every_preset_label_is_a_valid_label_value(preset: str) -> None:
    for node in node_catalog.preset_nodes(preset):
        for key, value in labels_of(node).items():
            assert len(value) <= 63, (node.name, key)
            assert LABEL_VALUE.match(value), (node.name, key, value)


@pytest.mark.parametrize(
    ("node", "price"),
    [
        (make_node(gpus=8, gpu=node_catalog.H100_80GB, cpu_milli=192_000), "39.68"),
        (make_node(gpus=4, gpu=node_catalog.L4_24GB, cpu_milli=48_000), "5.12"),
        (make_node(gpus=0, gpu=None, cpu_milli=32_000), "1.28"),
        (make_node(gpus=0, gpu=None, cpu_milli=500), "0.02"),
        (make_node(price_per_hour=Decimal("12.50")), "12.50"),
    ],
    ids=["8xh100-192cpu", "4xl4-48cpu", "cpu-32", "half-cpu-rounds-half-up", "declared-price-wins"],
)
def test_price_label_is_gpu_hours_plus_vcpu_hours_in_dollars(node: NodeSpec, price: str) -> None:
    assert labels_of(node)["modeljob.dev/price-per-hour"] == price


# --- openb trace nodes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "product", "memory_mib"),
    [
        ("P100", "Tesla-P100-PCIE-16GB", 16 * 1024),
        ("T4", "Tesla-T4", 16 * 1024),
        ("V100M16", "Tesla-V100-SXM2-16GB", 16 * 1024),
        ("V100M32", "Tesla-V100-SXM2-32GB", 32 * 1024),
        ("A10", "NVIDIA-A10", 24 * 1024),
        ("G1", "openb-G1", 32 * 1024),
        ("G2", "openb-G2", 32 * 1024),
        ("G3", "openb-G3", 32 * 1024),
    ],
    ids=str,
)
def test_openb_model_maps_to_product_and_memory(model: str, product: str, memory_mib: int) -> None:
    (node,) = node_catalog.openb_nodes([openb_row(model=model)], source="nodes.csv")

    labels = labels_of(node)
    assert labels["nvidia.com/gpu.product"] == product
    assert labels["nvidia.com/gpu.memory"] == str(memory_mib)


def test_openb_row_keeps_its_name_and_host_size() -> None:
    (node,) = node_catalog.openb_nodes(
        [openb_row(name="openb-node-0042", cpu_milli=96000, memory_mib=393216, gpus=8, model="G2")],
        source="nodes.csv",
    )

    assert (node.name, node.cpu_milli, node.memory_bytes, node.gpus) == (
        "openb-node-0042",
        96000,
        384 * GIB,
        8,
    )


def test_openb_row_without_gpus_needs_no_model() -> None:
    (node,) = node_catalog.openb_nodes([openb_row(gpus=0, model="")], source="nodes.csv")

    assert node.gpu is None


def test_openb_unknown_model_names_file_line_and_column() -> None:
    rows = [openb_row(name="a"), openb_row(name="b", model="H800")]

    with pytest.raises(CatalogError, match=r"^nodes\.csv:3: model: unknown GPU model 'H800'"):
        node_catalog.openb_nodes(rows, source="nodes.csv")


def test_openb_duplicate_node_names_are_refused() -> None:
    with pytest.raises(CatalogError, match="'a' appears twice"):
        node_catalog.openb_nodes([openb_row(name="a"), openb_row(name="a")], source="nodes.csv")


# --- our YAML node list -----------------------------------------------------------------------


def test_yaml_entry_with_count_expands_to_numbered_nodes() -> None:
    text = yaml_list(
        """
        nodes:
        - name: gpu-h100
          count: 2
          cpu: "192"
          memory: 2Ti
          gpus: 8
          product: NVIDIA-H100-80GB-HBM3
          gpuMemory: 80Gi
          pricePerGpuHour: 4
        - name: login
          cpu: 4
          memory: 16Gi
        """
    )

    nodes = node_catalog.yaml_nodes(text, source="n.yaml")

    assert [n.name for n in nodes] == ["gpu-h100-0", "gpu-h100-1", "login"]
    assert nodes[0].gpu == node_catalog.GpuModel("NVIDIA-H100-80GB-HBM3", 81920, Decimal("4.00"))
    assert node_catalog.price_node(nodes[0]) == Decimal("39.68")
    assert nodes[2].ephemeral_storage_bytes == 1024 * GIB
    assert nodes[2].memory_bytes == 16 * 1024 * MIB


def test_yaml_declared_node_price_overrides_the_computed_one() -> None:
    text = yaml_list(
        """
        nodes:
        - {name: a, cpu: 8, memory: 32Gi, pricePerHour: "0.5"}
        """
    )

    (node,) = node_catalog.yaml_nodes(text, source="n.yaml")

    assert labels_of(node)["modeljob.dev/price-per-hour"] == "0.50"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("nodes:\n- name: a\n  memory: 1Gi\n", r"^n\.yaml:2: cpu: required$"),
        ("nodes:\n- name: a\n  cpu: lots\n  memory: 1Gi\n", r"^n\.yaml:2: cpu: expected a quantity"),
        (one_node("  gpus: 2\n"), r"^n\.yaml:2: product: required$"),
        (
            one_node("  gpus: 2\n  product: X\n  gpuMemory: big\n"),
            r"^n\.yaml:2: gpuMemory: expected",
        ),
        (one_node("  gpu: 2\n"), r"^n\.yaml:2: gpu: unknown field"),
        (
            "nodes:\n- name: A_1\n  cpu: 1\n  memory: 1Gi\n",
            r"^n\.yaml:2: name: expected a lowercase DNS name",
        ),
        (
            one_node("  count: 0\n"),
            r"^n\.yaml:2: count: must be at least 1",
        ),
        (one_node("  gpus: -1\n"), r"^n\.yaml:2: gpus: expected a whole"),
        (
            one_node("  pricePerHour: cheap\n"),
            r"^n\.yaml:2: pricePerHour: expected a non-negative price",
        ),
        (
            "nodes:\n- {name: a, cpu: 1, memory: 1Gi}\n- {name: a, cpu: 1, memory: 1Gi}\n",
            r"^n\.yaml: name: node 'a' appears twice",
        ),
        ("nodes: []\n", r"^n\.yaml:1: nodes: the list is empty"),
        ("- name: a\n", r"^n\.yaml:1: nodes: expected a mapping with a `nodes:` list"),
        ("nodes:\n- name: [a\n", r"^n\.yaml:\d+: invalid YAML"),
    ],
    ids=[
        "missing-cpu",
        "bad-cpu",
        "gpus-without-product",
        "bad-gpu-memory",
        "unknown-field",
        "bad-name",
        "zero-count",
        "negative-gpus",
        "bad-price",
        "duplicate-name",
        "empty-list",
        "not-a-mapping",
        "invalid-yaml",
    ],
)
def test_yaml_error_names_file_line_and_field(body: str, expected: str) -> None:
    with pytest.raises(CatalogError, match=expected):
        node_catalog.yaml_nodes(body, source="n.yaml")


def test_openb_csv_read_by_the_trace_reader_becomes_nodes(tmp_path: Path) -> None:
    csv_file = tmp_path / "openb_node_list_gpu_node.csv"
    csv_file.write_text(
        "sn,cpu_milli,memory_mib,gpu,model\n"
        "openb-node-0000,64000,262144,2,P100\n"
        "openb-node-0700,96000,393216,8,G2\n"
        "openb-node-1500,32000,65536,0,\n",
        encoding="utf-8",
    )

    nodes = node_catalog.openb_nodes(read_trace_nodes(csv_file), source=str(csv_file))

    products = [labels_of(n).get("nvidia.com/gpu.product") for n in nodes]
    assert products == ["Tesla-P100-PCIE-16GB", "openb-G2", None]
    assert [n.gpus for n in nodes] == [2, 8, 0]
