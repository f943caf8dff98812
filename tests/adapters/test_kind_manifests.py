"""The kind path for Docker users: hack/kind-config.yaml is a valid kind Cluster that matches our catalogue.

kind cannot run here (no Docker), so the config is checked against kind's v1alpha4 types: field
names are the yaml tags of `Cluster`, `Node` and `Networking` in kubernetes-sigs/kind
pkg/apis/config/v1alpha4/types.go (commit 00b38e3bbfdd20ec214924967fcfa7b5b0f51373). kind decodes
its config strictly, so an unknown or misspelt field fails `kind create cluster`.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeljob.adapters import node_catalog

REPO = Path(__file__).resolve().parents[2]
KIND_CONFIG = REPO / "hack" / "kind-config.yaml"
KIND_GPU_SCRIPT = REPO / "hack" / "kind-gpu-nodes.sh"

KIND_CLUSTER_FIELDS = {
    "kind",
    "apiVersion",
    "name",
    "nodes",
    "networking",
    "featureGates",
    "runtimeConfig",
    "kubeadmConfigPatches",
    "kubeadmConfigPatchesJSON6902",
    "containerdConfigPatches",
    "containerdConfigPatchesJSON6902",
}
KIND_NODE_FIELDS = {
    "role",
    "image",
    "labels",
    "extraMounts",
    "extraPortMappings",
    "gpus",
    "kubeadmConfigPatches",
    "kubeadmConfigPatchesJSON6902",
}
KIND_NODE_ROLES = {"control-plane", "worker"}
# Label keys and values (apimachinery validation): optional DNS-subdomain prefix, a name of at
# most 63 characters; values at most 63 characters, alphanumeric at both ends.
LABEL_NAME = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$")
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(KIND_CONFIG.read_text(encoding="utf-8"))
    return loaded


def workers(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [node for node in config["nodes"] if node.get("role") == "worker"]


def test_config_is_a_kind_v1alpha4_cluster(config: dict[str, Any]) -> None:
    assert config["kind"] == "Cluster"
    assert config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert DNS_SUBDOMAIN.match(config["name"])


def test_config_uses_only_kind_cluster_fields(config: dict[str, Any]) -> None:
    assert set(config) <= KIND_CLUSTER_FIELDS, set(config) - KIND_CLUSTER_FIELDS


def test_every_node_uses_only_kind_node_fields_and_a_known_role(config: dict[str, Any]) -> None:
    for node in config["nodes"]:
        assert set(node) <= KIND_NODE_FIELDS, set(node) - KIND_NODE_FIELDS
        assert node.get("role", "control-plane") in KIND_NODE_ROLES


def test_cluster_has_one_control_plane_and_gpu_and_cpu_workers(config: dict[str, Any]) -> None:
    roles = [node.get("role", "control-plane") for node in config["nodes"]]
    gpu_counts = [node.get("labels", {}).get(node_catalog.LABEL_GPU_COUNT) for node in workers(config)]

    assert roles.count("control-plane") == 1
    assert sorted(count or "cpu-only" for count in gpu_counts) == ["4", "8", "cpu-only"]


def test_labels_are_string_valued_and_valid(config: dict[str, Any]) -> None:
    for node in config["nodes"]:
        for key, value in node.get("labels", {}).items():
            prefix, _, name = key.rpartition("/")
            assert not prefix or DNS_SUBDOMAIN.match(prefix), key
            assert LABEL_NAME.match(name), key
            # kind wants map[string]string: an unquoted 8 would be an int and fail decoding.
            assert isinstance(value, str), (key, value)
            assert LABEL_NAME.match(value), (key, value)


def test_gpu_labels_and_prices_match_the_mixed_preset(config: dict[str, Any]) -> None:
    preset = {
        (n.gpu.product if n.gpu else None): node_catalog.node_manifest(n)["metadata"]["labels"]
        for n in node_catalog.preset_nodes("mixed")
    }

    for node in workers(config):
        labels = node["labels"]
        expected = preset[labels.get(node_catalog.LABEL_GPU_PRODUCT)]
        for key in (
            node_catalog.LABEL_GPU_PRODUCT,
            node_catalog.LABEL_GPU_MEMORY_MIB,
            node_catalog.LABEL_GPU_COUNT,
            node_catalog.LABEL_PRICE_PER_HOUR,
        ):
            assert labels.get(key) == expected.get(key), (key, labels)


def test_gpu_script_is_executable_valid_bash_and_patches_the_status_subresource() -> None:
    script = KIND_GPU_SCRIPT.read_text(encoding="utf-8")

    assert KIND_GPU_SCRIPT.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(KIND_GPU_SCRIPT)], check=True)
    assert "--subresource=status" in script
    # JSON pointer: the "/" inside nvidia.com/gpu must be written "~1".
    assert "/status/capacity/nvidia.com~1gpu" in script
