"""A pod of a replica that spans nodes: its hostname (its index in the job), its group's labels, and
the environment LWS's recipes and torch.distributed read, per group for serving, per job for training."""

from __future__ import annotations

from typing import Any

import pytest

from modeljob.adapters import kube_pods, kube_writes, pod_env
from modeljob.core.resources import GIB, Resources
from tests.operator_builders import H100, modeljob_dict

MULTINODE = "llama-3-1-405b-multinode"
LAYOUT = pod_env.PodLayout(
    gpus_per_pod=8,
    tensor_parallel_size=8,
    pipeline_parallel_size=2,
    nodes_per_replica=2,
    shared_memory_bytes=16 * GIB,
)


def group_pod(document: dict[str, Any], *, replica: int, member: int) -> dict[str, Any]:
    return kube_writes.pod_manifest(
        document,
        replica=replica,
        member=member,
        name=f"llama-3-1-405b-chat-{replica * 2 + member}-abcde",
        requests=Resources(cpu_milli=32_000, memory_bytes=782 * GIB, gpus=8),
        layout=LAYOUT,
        accelerator="nvidia.com/gpu",
        product=H100,
        scheduler_name="modeljob",
        product_label="nvidia.com/gpu.product",
    )


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in pod["spec"]["containers"][0]["env"]}


def test_the_second_groups_worker_is_pod_3_and_follows_its_own_leader_pod_2() -> None:
    pod = group_pod(modeljob_dict(MULTINODE, replicas=2), replica=1, member=1)
    assert pod["spec"]["hostname"] == "llama-3-1-405b-chat-3"
    assert pod["spec"]["subdomain"] == "llama-3-1-405b-chat"
    leader = "llama-3-1-405b-chat-2.llama-3-1-405b-chat.ml.svc"
    env = env_of(pod)
    assert {
        key: env[key] for key in env if key.startswith(("LWS_", "MASTER", "WORLD", "RANK", "NODE_RANK"))
    } == {
        "LWS_LEADER_ADDRESS": leader,
        "LWS_GROUP_SIZE": "2",
        "LWS_WORKER_INDEX": "1",
        "MASTER_ADDR": leader,
        "MASTER_PORT": "29500",
        "WORLD_SIZE": "2",
        "RANK": "1",
        "NODE_RANK": "1",
    }
    assert env["MODELJOB_REPLICA"] == "1"
    assert env["MODELJOB_REPLICAS"] == "2"
    assert env["MODELJOB_NODES_PER_REPLICA"] == "2"
    assert env["MODELJOB_PIPELINE_PARALLEL_SIZE"] == "2"
    labels = pod["metadata"]["labels"]
    assert labels[kube_pods.LABEL_REPLICA] == "1"
    assert labels[kube_pods.LABEL_GROUP_MEMBER] == "1"
    assert labels[kube_pods.LABEL_GROUP_ROLE] == "worker"
    assert labels[kube_pods.LABEL_GROUP_SIZE] == "2"


@pytest.mark.parametrize(("replica", "member", "rank"), [(0, 0, 0), (0, 1, 1), (1, 0, 2), (1, 1, 3)])
def test_training_ranks_rendezvous_across_every_pod_of_the_job(replica: int, member: int, rank: int) -> None:
    document = modeljob_dict(MULTINODE, replicas=2, workload={"type": "Training"})
    env = env_of(group_pod(document, replica=replica, member=member))
    assert env["WORLD_SIZE"] == env["PET_NNODES"] == "4"
    assert env["RANK"] == env["NODE_RANK"] == env["PET_NODE_RANK"] == str(rank)
    assert env["MASTER_ADDR"] == "llama-3-1-405b-chat-0.llama-3-1-405b-chat.ml.svc"
    assert env["LWS_LEADER_ADDRESS"] == f"llama-3-1-405b-chat-{replica * 2}.llama-3-1-405b-chat.ml.svc"


def test_the_group_leader_is_labelled_leader_and_serves() -> None:
    pod = group_pod(modeljob_dict(MULTINODE), replica=0, member=0)
    assert pod["metadata"]["labels"][kube_pods.LABEL_GROUP_ROLE] == "leader"
    assert env_of(pod)["LWS_WORKER_INDEX"] == "0"


def test_a_one_pod_replica_gets_no_lws_variables() -> None:
    single = pod_env.PodLayout(1, 1, 1, 1, GIB)
    env = pod_env.rendezvous_env(modeljob_dict(), replica=0, layout=single)
    assert not [item for item in env if item["name"].startswith("LWS_")]
