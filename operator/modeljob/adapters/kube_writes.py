"""The dicts the operator writes: each replica's Pod, its Binding, and Events about a ModelJob.

Each Pod is the job's template plus what the workload needs to run: the estimate as requests, a
stable hostname under the job's headless Service, the rendezvous and layout environment, /dev/shm
(docs/operator.md, "What each pod gets").

Also the API server's refusal of a Pod, read back with the ModelJob's field names (status patches
are core/status.py's). Pure translation: no client, no clock (`now` is passed).
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from modeljob.adapters.kube_jobs import spec_hash
from modeljob.adapters.kube_pods import (
    ANNOTATION_SPEC_HASH,
    GROUP_LEADER,
    GROUP_WORKER,
    LABEL_GROUP_MEMBER,
    LABEL_GROUP_ROLE,
    LABEL_GROUP_SIZE,
    LABEL_JOB,
    LABEL_JOB_UID,
    LABEL_REPLICA,
)
from modeljob.adapters.pod_env import (
    PodLayout,
    job_dns_label,
    pod_hostname,
    pod_index,
    rendezvous_env,
    workload_type,
)
from modeljob.api.v1alpha1 import API_VERSION, KIND
from modeljob.core.conditions import format_time
from modeljob.core.resources import Resources, format_cpu

JsonObject = dict[str, Any]

EVENT_COMPONENT = "modeljob-operator"
_LABEL_VALUE_MAX = 63
_POD_NAME_MAX = 253
SHM_VOLUME = "modeljob-shm"
SHM_PATH = "/dev/shm"  # noqa: S108 - the mount point, not a temporary file we write


def pod_name(job_name: str, replica: int, nonce: str) -> str:
    """`<job>-<replica>-<nonce>`: unique per placement attempt, so a re-placed replica never waits
    for its old pod's name to be free; the job name is cut to keep within the 253-character limit."""
    suffix = f"-{replica}-{nonce}"
    return f"{job_name[: _POD_NAME_MAX - len(suffix)]}{suffix}"


def placement_nonce(job_uid: str, resource_version: str) -> str:
    """Five hex digits naming one placement attempt (the job's resourceVersion changes every write)."""
    return hashlib.sha256(f"{job_uid}/{resource_version}".encode()).hexdigest()[:5]


def label_value(text: str) -> str:
    """``text`` as a label value (at most 63 of A-Z a-z 0-9 - _ ., alphanumeric at both ends): the
    job-name label every object the operator makes for a job carries."""
    cut = re.sub(r"[^A-Za-z0-9_.-]", "-", text)[:_LABEL_VALUE_MAX]
    return cut.strip("-_.") or "x"


def pod_manifest(
    job: Mapping[str, Any],
    *,
    replica: int,
    name: str,
    requests: Resources,
    member: int = 0,
    layout: PodLayout,
    accelerator: str,
    product: str | None,
    scheduler_name: str,
    product_label: str,
    node: str | None = None,
) -> JsonObject:
    """The Pod for one replica (or pod ``member`` of a replica that spans nodes): the job's template
    with the estimate as the first container's requests (GPU and memory also as limits), its
    stable hostname, the rendezvous and layout env and /dev/shm in every container, owned by the
    job, pinned to the chosen GPU product, and bound to ``node`` by its creation when one is given
    (the binder's pods: one request instead of a create and a pods/binding)."""
    spec_dict: Mapping[str, Any] = job.get("spec") or {}
    template: Mapping[str, Any] = spec_dict.get("template") or {}
    pod_spec: JsonObject = copy.deepcopy(dict(template.get("spec") or {}))
    containers = pod_spec.get("containers") or [{}]
    _request(containers[0], requests, accelerator=accelerator)
    pod_spec["containers"] = containers
    pod_spec["schedulerName"] = scheduler_name
    pod_spec.pop("nodeName", None)  # the operator chooses the node, never the template
    if node is not None:
        pod_spec["nodeName"] = node
    job_name = str((job.get("metadata") or {}).get("name", ""))
    pod_spec["hostname"] = pod_hostname(job_name, pod_index(replica, member, layout))
    pod_spec["subdomain"] = job_dns_label(job_name)
    every = [*(pod_spec.get("initContainers") or []), *containers]
    env = rendezvous_env(job, replica=replica, member=member, layout=layout)
    for container in every:
        _inject_env(container, env)
    _mount_shared_memory(pod_spec, every, layout.shared_memory_bytes)
    if workload_type(spec_dict).trains:
        # A finished run must stay finished (Succeeded), which Always (the default) never lets it.
        # Never, not OnFailure: a rank restarted in place alone cannot rejoin its peers'
        # rendezvous; the job's failure policy recreates the gang instead, and counts it.
        pod_spec.setdefault("restartPolicy", "Never")
    if product:
        _require_product(pod_spec, product_label, product)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": _pod_metadata(
            job, replica=replica, member=member, group=layout.nodes_per_replica, name=name
        ),
        "spec": pod_spec,
    }


def _inject_env(container: JsonObject, env: list[JsonObject]) -> None:
    """Put ``env`` before the container's own, so `$(MASTER_ADDR)` in its env, command and args
    expands; a name the container defines itself is left to it (the user's value wins)."""
    own = list(container.get("env") or [])
    defined = {str(item.get("name")) for item in own if isinstance(item, Mapping)}
    container["env"] = [*(dict(item) for item in env if item["name"] not in defined), *own]


def _mount_shared_memory(pod_spec: JsonObject, containers: list[JsonObject], size_bytes: int) -> None:
    """A memory-backed /dev/shm of the size the estimate counts (the runtime's default is 64 MiB,
    too small for NCCL and multi-GPU engines), in each container that mounts nothing there itself."""
    bare = [
        container
        for container in containers
        if not any(
            str(mount.get("mountPath", "")).rstrip("/") == SHM_PATH
            for mount in container.get("volumeMounts") or []
        )
    ]
    if not bare:
        return
    volume = {"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": bytes_quantity(size_bytes)}}
    pod_spec["volumes"] = [*(pod_spec.get("volumes") or []), volume]
    for container in bare:
        container["volumeMounts"] = [
            *(container.get("volumeMounts") or []),
            {"name": SHM_VOLUME, "mountPath": SHM_PATH},
        ]


def _pod_metadata(job: Mapping[str, Any], *, replica: int, member: int, group: int, name: str) -> JsonObject:
    """The template's labels and annotations, plus what ties the pod to its job: the job's labels,
    the hash of the spec it was made from, and the job as its controlling owner."""
    meta = job.get("metadata") or {}
    spec_dict = job.get("spec") or {}
    template_meta = (spec_dict.get("template") or {}).get("metadata") or {}
    labels = {
        **{str(k): str(v) for k, v in (template_meta.get("labels") or {}).items()},
        LABEL_JOB: label_value(str(meta.get("name", ""))),
        LABEL_JOB_UID: str(meta.get("uid", "")),
        LABEL_REPLICA: str(replica),
        LABEL_GROUP_MEMBER: str(member),
        LABEL_GROUP_ROLE: GROUP_WORKER if member else GROUP_LEADER,
        LABEL_GROUP_SIZE: str(group),
    }
    annotations = {
        **{str(k): str(v) for k, v in (template_meta.get("annotations") or {}).items()},
        ANNOTATION_SPEC_HASH: spec_hash(spec_dict),
    }
    return {
        "name": name,
        "namespace": str(meta.get("namespace", "")),
        "labels": labels,
        "annotations": annotations,
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": str(meta.get("name", "")),
                "uid": str(meta.get("uid", "")),
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def _request(container: JsonObject, requests: Resources, *, accelerator: str) -> None:
    """Write the estimate into ``container``'s requests (GPU and memory also as limits), over the
    template's own values for the same resources and beside its others."""
    resources = container.setdefault("resources", {})
    quantities = {
        "cpu": format_cpu(requests.cpu_milli),
        "memory": bytes_quantity(requests.memory_bytes),
    }
    if requests.ephemeral_storage_bytes:
        quantities["ephemeral-storage"] = bytes_quantity(requests.ephemeral_storage_bytes)
    limits = {"memory": quantities["memory"]}
    if requests.gpus:
        quantities[accelerator] = str(requests.gpus)
        limits[accelerator] = str(requests.gpus)
    resources["requests"] = {**(resources.get("requests") or {}), **quantities}
    resources["limits"] = {**(resources.get("limits") or {}), **limits}


_BINARY_SUFFIXES = (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20), ("Ki", 2**10))
_QUANTITY_DECIMALS = 3


def bytes_quantity(value: int) -> str:
    """A byte count as a quantity people read, and exactly: the largest binary unit that holds it
    with at most three decimals (169114337280 -> "157.5Gi", 165153601 KiB -> "165153601Ki"), else bytes."""
    scale = 10**_QUANTITY_DECIMALS
    for suffix, size in _BINARY_SUFFIXES:
        if value >= size and (value * scale) % size == 0:
            whole, part = divmod(value * scale // size, scale)
            decimals = f".{part:0{_QUANTITY_DECIMALS}d}".rstrip("0") if part else ""
            return f"{whole}{decimals}{suffix}"
    return str(value)


_POD_FIELD = re.compile(r"(?<![\w.])(spec|metadata)\.")


def refused_pod_message(detail: str) -> str:
    """The API server's reason for refusing a pod (422), with each field named as the ModelJob's:
    `spec.containers[0].name` is the template's `spec.template.spec.containers[0].name`."""
    _, _, fields = detail.partition(" is invalid: ")
    return _POD_FIELD.sub(lambda m: f"spec.template.{m.group(1)}.", fields or detail)


def _require_product(pod_spec: JsonObject, label: str, product: str) -> None:
    """AND `label In [product]` into every required node-affinity term (or add the one term), so
    the pod asks for the template's nodes of the chosen product: the planner chose a node both
    admit (core/template_rules.py), and kubelet admits the pod there."""
    expression = {"key": label, "operator": "In", "values": [product]}
    affinity = pod_spec.setdefault("affinity", {})
    node_affinity = affinity.setdefault("nodeAffinity", {})
    required = node_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", {})
    terms = required.get("nodeSelectorTerms") or []
    for term in terms:
        if term:  # an empty term matches no node; with the product in it, it would match some
            term["matchExpressions"] = [*(term.get("matchExpressions") or []), expression]
    required["nodeSelectorTerms"] = terms or [{"matchExpressions": [expression]}]


def binding_manifest(namespace: str, pod: str, node: str) -> JsonObject:
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": pod, "namespace": namespace},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


def event_manifest(
    job: Mapping[str, Any], *, warning: bool, reason: str, message: str, now: datetime, instance: str
) -> JsonObject:
    """A core/v1 Event about a ModelJob, as `kubectl describe mj` lists them."""
    meta = job.get("metadata") or {}
    stamp = format_time(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta.get('name', 'modeljob')}.", "namespace": meta.get("namespace")},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
        },
        "type": "Warning" if warning else "Normal",
        "reason": reason,
        "message": message[:1024],
        "source": {"component": EVENT_COMPONENT},
        "reportingComponent": EVENT_COMPONENT,
        "reportingInstance": instance[:128],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
