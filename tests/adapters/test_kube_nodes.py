"""A v1 Node as the operator reads it: allocatable, the accelerator and its facts, readiness, taints."""

from __future__ import annotations

import pytest

from modeljob.adapters import kube_nodes
from modeljob.core.cluster_state import Taint, TaintEffect
from modeljob.core.resources import MIB, TIB, Resources
from tests.operator_builders import H100, at, node_dict


def test_gpu_node_reads_allocatable_product_memory_and_price_from_its_labels() -> None:
    facts = kube_nodes.node_facts(node_dict(0))
    view = facts.view
    assert view.name == "gpu-h100-0"
    assert view.allocatable == Resources(
        cpu_milli=192_000, memory_bytes=2 * TIB, ephemeral_storage_bytes=8 * TIB, gpus=8
    )
    assert (view.accelerator, view.gpu_product, view.gpu_memory_bytes) == (
        "nvidia.com/gpu",
        H100,
        80 * 1024 * MIB,
    )
    assert view.price_per_hour == pytest.approx(39.68)
    assert facts.ready
    assert facts.schedulable


def test_cpu_node_has_no_accelerator() -> None:
    view = kube_nodes.node_facts(node_dict(6)).view
    assert (view.accelerator, view.allocatable.gpus, view.gpu_product) == (None, 0, None)


def test_not_ready_node_remembers_since_when() -> None:
    facts = kube_nodes.node_facts(node_dict(0, ready=False, since="2026-01-01T00:00:30Z"))
    assert not facts.ready
    assert facts.not_ready_since == at(30)
    assert facts.lost(now=at(59), grace_seconds=30) is False
    assert facts.lost(now=at(60), grace_seconds=30) is True


def test_cordoned_and_tainted_node() -> None:
    facts = kube_nodes.node_facts(
        node_dict(0, unschedulable=True, taints=[{"key": "gpu", "value": "yes", "effect": "NoSchedule"}])
    )
    assert not facts.schedulable
    assert facts.taints == (Taint(key="gpu", value="yes", effect=TaintEffect.NO_SCHEDULE),)


@pytest.mark.parametrize(
    ("allocatable", "expected"),
    [
        ({"cpu": "8", "amd.com/gpu": "4"}, ("amd.com/gpu", 4)),
        ({"cpu": "8", "hugepages-2Mi": "1Gi", "example.com/fpga": "2"}, ("example.com/fpga", 2)),
        ({"cpu": "8", "nvidia.com/gpu": "0"}, (None, 0)),
        ({"cpu": "8", "nvidia.com/gpu": "8", "example.com/nic": "1"}, ("nvidia.com/gpu", 8)),
    ],
    ids=["amd", "any-domain-resource-but-hugepages", "zero-gpus", "known-accelerator-wins"],
)
def test_accelerator_is_the_extended_resource_the_node_offers(
    allocatable: dict[str, str], expected: tuple[str | None, int]
) -> None:
    node = {"metadata": {"name": "n"}, "status": {"allocatable": allocatable}}
    view = kube_nodes.node_facts(node).view
    assert (view.accelerator, view.allocatable.gpus) == expected
