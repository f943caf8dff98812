"""The Services a job owns: a headless one, so its pods' names resolve in DNS before they are
ready, and for an Inference job that declares a port, a ClusterIP one `<job>-serve` to reach it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from modeljob.adapters import kube_writes, pod_env
from modeljob.adapters.kube_pods import GROUP_LEADER, LABEL_GROUP_ROLE, LABEL_JOB, LABEL_JOB_UID
from modeljob.api.v1alpha1 import API_VERSION, KIND
from modeljob.core.jobs import WorkloadType

JsonObject = dict[str, Any]

_GROUP = API_VERSION.split("/")[0] + "/"  # any version of the ModelJob API owns the same Service
_SERVE_SUFFIX = "-serve"
_DNS_LABEL_MAX = 63
# The IANA name of HTTP, and the name a server that declares several ports (metrics, gRPC)
# gives the one its clients use by convention.
_SERVE_PORT_NAME = "http"


@dataclass(frozen=True, slots=True)
class JobService:
    """A Service the job owns, and the ModelJob field it is made from (a refusal names it)."""

    manifest: JsonObject
    field: str

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])


@dataclass(frozen=True, slots=True)
class ServePort:
    """The container port an Inference job serves on: ``index`` in the first container's ports."""

    index: int
    number: int
    protocol: str
    name: str | None


def job_services(job: Mapping[str, Any]) -> tuple[JobService, ...]:
    """Every Service the job owns, the headless one first."""
    headless = JobService(service_manifest(job), "metadata.name")
    port = serve_port(job)
    if port is None:
        return (headless,)
    served = JobService(serve_manifest(job, port), f"spec.template.spec.containers[0].ports[{port.index}]")
    return headless, served


def service_name(job: Mapping[str, Any]) -> str:
    """The pods' subdomain (the job's name, as a DNS label): a pod is `<hostname>.<subdomain>.<ns>.svc`
    only through a headless Service of that name."""
    return pod_env.job_dns_label(str((job.get("metadata") or {}).get("name", "")))


def service_manifest(job: Mapping[str, Any]) -> JsonObject:
    """The job's headless Service: no cluster IP and no ports (DNS needs neither), selecting the
    job's pods by its uid, listing them before they are ready (a rendezvous starts before any rank
    is ready), owned by the job so the garbage collector deletes it with the job."""
    uid = str((job.get("metadata") or {}).get("uid", ""))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _owned_metadata(job, service_name(job)),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {LABEL_JOB_UID: uid},
        },
    }


def serve_port(job: Mapping[str, Any]) -> ServePort | None:
    """The port an Inference job serves on: of the first container's ports (the server; sidecars
    come after it, as kubectl's default container is the first), the one named `http`, else the
    first. None for other workloads, a first container without ports, or a port number the API
    server would refuse (the pod's refusal names the field better than a Service's would)."""
    spec = job.get("spec") or {}
    if pod_env.workload_type(spec) is not WorkloadType.INFERENCE:
        return None
    containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or [{}]
    ports = [p for p in (containers[0] or {}).get("ports") or [] if isinstance(p, Mapping)]
    if not ports:
        return None
    index = next((i for i, p in enumerate(ports) if p.get("name") == _SERVE_PORT_NAME), 0)
    number = ports[index].get("containerPort")
    if not isinstance(number, int) or isinstance(number, bool) or not 1 <= number <= 65535:
        return None
    name = ports[index].get("name")
    return ServePort(index, number, str(ports[index].get("protocol") or "TCP"), str(name) if name else None)


def serve_service_name(job: Mapping[str, Any]) -> str:
    """`<job>-serve`, the job's part cut (never the suffix) to stay one DNS label."""
    label = service_name(job)[: _DNS_LABEL_MAX - len(_SERVE_SUFFIX)].rstrip("-")
    return f"{label}{_SERVE_SUFFIX}"


def serve_endpoint(job: Mapping[str, Any]) -> str | None:
    """The in-cluster URL of an Inference job with a port (`http://<job>-serve.<ns>.svc:<port>`),
    None for any other job."""
    port = serve_port(job)
    if port is None:
        return None
    namespace = str((job.get("metadata") or {}).get("namespace", ""))
    return f"http://{serve_service_name(job)}.{namespace}.svc:{port.number}"


def serve_manifest(job: Mapping[str, Any], port: ServePort) -> JsonObject:
    """The job's ClusterIP Service on ``port`` (the same number on both sides, its protocol and
    name as declared), balancing across the job's ready pods, owned like the headless one."""
    uid = str((job.get("metadata") or {}).get("uid", ""))
    # A replica that spans nodes serves through its leader (its workers hold the other layers or
    # shards), so requests go to leaders alone; every pod of a one-pod replica leads.
    selector = {LABEL_JOB_UID: uid, LABEL_GROUP_ROLE: GROUP_LEADER}
    service_port: JsonObject = {"port": port.number, "targetPort": port.number, "protocol": port.protocol}
    if port.name:
        service_port["name"] = port.name
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _owned_metadata(job, serve_service_name(job)),
        "spec": {"type": "ClusterIP", "selector": selector, "ports": [service_port]},
    }


def _owned_metadata(job: Mapping[str, Any], name: str) -> JsonObject:
    """A Service's name, the job's namespace, the job's pods' labels, and the job as its controller."""
    meta = job.get("metadata") or {}
    job_name, uid = str(meta.get("name", "")), str(meta.get("uid", ""))
    return {
        "name": name,
        "namespace": str(meta.get("namespace", "")),
        # The pods' own values, so `-l modeljob.dev/job=<job>` finds the Services with them.
        "labels": {LABEL_JOB: kube_writes.label_value(job_name), LABEL_JOB_UID: uid},
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": job_name,
                "uid": uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def controller_uid(service: Mapping[str, Any]) -> str | None:
    """The uid of the ModelJob that controls ``service``, None if no ModelJob does."""
    return next(
        (
            str(ref.get("uid"))
            for ref in (service.get("metadata") or {}).get("ownerReferences") or []
            if ref.get("controller")
            and ref.get("kind") == KIND
            and str(ref.get("apiVersion", "")).startswith(_GROUP)
        ),
        None,
    )
