"""A pod's identity and environment: its hostname under the job's headless Service, and the
rendezvous, layout and group variables the conventions users' images already read.

torch.distributed / PyTorchJob (MASTER_ADDR, WORLD_SIZE, RANK, ...), torchrun (PET_*), the
estimator's layout (MODELJOB_*) and, for a replica that spans nodes, LeaderWorkerSet's
(LWS_LEADER_ADDRESS, LWS_GROUP_SIZE, LWS_WORKER_INDEX), so LWS's multi-node vLLM recipe runs
unchanged (docs/operator.md, "What each pod gets"). Pure translation: no client.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modeljob.api.v1alpha1 import DEFAULT_RENDEZVOUS_PORT
from modeljob.core.jobs import WorkloadType
from modeljob.core.sizing import Estimate

JsonObject = dict[str, Any]

_DNS_PREFIX = "mj-"  # before a job name that does not start with a letter (see job_dns_label)
# A pod's hostname and subdomain must each be a DNS-1123 label: [a-z0-9-], at most 63 characters.
_DNS_LABEL_MAX = 63


@dataclass(frozen=True, slots=True)
class PodLayout:
    """The estimator's layout of one replica on the node type it landed on, as its pod is told it."""

    gpus_per_pod: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    nodes_per_replica: int
    shared_memory_bytes: int  # the /dev/shm the estimate counts in the pod's memory

    @classmethod
    def of(cls, estimate: Estimate) -> PodLayout:
        return cls(
            gpus_per_pod=estimate.gpus,
            tensor_parallel_size=estimate.tensor_parallel_size,
            pipeline_parallel_size=estimate.pipeline_parallel_size,
            nodes_per_replica=estimate.nodes_per_replica,
            shared_memory_bytes=estimate.shared_memory_per_node_bytes,
        )


def job_dns_label(job_name: str) -> str:
    """The job's name as a Service name (an RFC 1035 label), its pods' subdomain and its headless
    Service's name: the name itself when it is one, as usual. A name with dots or over 63
    characters has its dots turned into dashes and is cut (a ModelJob's name is a DNS subdomain:
    up to 253, dots allowed); one that starts with a digit (`13b-sft`, a valid ModelJob and pod
    name) gets `mj-` in front: Service names are RFC 1035 labels (a letter first) unless the API
    server runs with RelaxedServiceNameValidation (our v1.36 control plane accepts `13b-x`; older
    clusters refuse it, and the job could never run there)."""
    label = re.sub(r"[^a-z0-9-]", "-", job_name.lower()).strip("-")
    if not label[:1].isalpha():
        label = f"{_DNS_PREFIX}{label}"
    return label[:_DNS_LABEL_MAX].rstrip("-")


def pod_hostname(job_name: str, index: int) -> str:
    """`<job>-<index>`, a DNS label: the job's part is cut, never the index, so every pod's name
    differs even for a 63-character job name (kubelet would cut the index off the end)."""
    suffix = f"-{index}"
    return f"{job_dns_label(job_name)[: _DNS_LABEL_MAX - len(suffix)].rstrip('-')}{suffix}"


def rendezvous_address(job_name: str, namespace: str, index: int = 0) -> str:
    """Pod ``index``'s DNS name through the job's headless Service (pod 0's by default, the job's
    rendezvous): `<job>-<index>.<job>.<namespace>.svc`."""
    return f"{pod_hostname(job_name, index)}.{job_dns_label(job_name)}.{namespace}.svc"


def pod_index(replica: int, member: int, layout: PodLayout) -> int:
    """The pod's index in the job (its hostname's number): replica × pods per replica + member."""
    return replica * layout.nodes_per_replica + member


def rendezvous_env(
    job: Mapping[str, Any], *, replica: int, layout: PodLayout, member: int = 0
) -> list[JsonObject]:
    """What torch.distributed (PyTorchJob's names), torchrun (PET_*), the layout readers and, for a
    replica that spans nodes, LWS's readers see in pod ``member`` of ``replica``.

    Training ranks rendezvous across the whole job: WORLD_SIZE counts every pod, RANK and
    NODE_RANK are the pod's index in the job and MASTER_ADDR is pod 0. A serving replica that
    spans nodes is one engine of its own (vLLM's Ray cluster, LWS's group): its rendezvous is its
    group (WORLD_SIZE = the group's pods, NODE_RANK = the member, MASTER_ADDR = the group's leader).
    """
    meta = job.get("metadata") or {}
    spec_dict = job.get("spec") or {}
    job_name, namespace = str(meta.get("name", "")), str(meta.get("namespace", ""))
    replicas = int(spec_dict.get("replicas") or 1)
    group = layout.nodes_per_replica
    index = pod_index(replica, member, layout)
    leader = rendezvous_address(job_name, namespace, pod_index(replica, 0, layout))
    port = str(int((spec_dict.get("rendezvous") or {}).get("port") or DEFAULT_RENDEZVOUS_PORT))
    per_group = group > 1 and not workload_type(spec_dict).trains
    address = leader if per_group else rendezvous_address(job_name, namespace)
    world, rank = (str(group), str(member)) if per_group else (str(replicas * group), str(index))
    values = {
        "MASTER_ADDR": address,
        "MASTER_PORT": port,
        "WORLD_SIZE": world,
        "RANK": rank,
        "NODE_RANK": rank,
        "PET_NNODES": world,
        # torchrun starts one process per GPU; a pod without GPUs still runs one.
        "PET_NPROC_PER_NODE": str(max(layout.gpus_per_pod, 1)),
        "PET_NODE_RANK": rank,
        "PET_MASTER_ADDR": address,
        "PET_MASTER_PORT": port,
        "MODELJOB_JOB": job_name,
        "MODELJOB_REPLICA": str(replica),
        "MODELJOB_REPLICAS": str(replicas),
        "MODELJOB_GPUS_PER_POD": str(layout.gpus_per_pod),
        "MODELJOB_TENSOR_PARALLEL_SIZE": str(layout.tensor_parallel_size),
        "MODELJOB_PIPELINE_PARALLEL_SIZE": str(layout.pipeline_parallel_size),
        "MODELJOB_NODES_PER_REPLICA": str(group),
    }
    if group > 1:
        # LeaderWorkerSet's names (its pods' env), for recipes written against LWS.
        values |= {
            "LWS_LEADER_ADDRESS": leader,
            "LWS_GROUP_SIZE": str(group),
            "LWS_WORKER_INDEX": str(member),
        }
    return [{"name": key, "value": value} for key, value in values.items()]


def workload_type(spec_dict: Mapping[str, Any]) -> WorkloadType:
    text = (spec_dict.get("workload") or {}).get("type")
    return WorkloadType(text) if text else WorkloadType.INFERENCE
