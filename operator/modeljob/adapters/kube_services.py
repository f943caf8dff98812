"""The headless Service every job owns, so its pods' names resolve in DNS before they are ready."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeljob.adapters import kube_writes
from modeljob.adapters.kube_pods import LABEL_JOB, LABEL_JOB_UID
from modeljob.api.v1alpha1 import API_VERSION, KIND

JsonObject = dict[str, Any]

_GROUP = API_VERSION.split("/")[0] + "/"  # any version of the ModelJob API owns the same Service


def service_name(job: Mapping[str, Any]) -> str:
    """The pods' subdomain (the job's name, as a DNS label): a pod is `<hostname>.<subdomain>.<ns>.svc`
    only through a headless Service of that name."""
    return kube_writes.job_dns_label(str((job.get("metadata") or {}).get("name", "")))


def service_manifest(job: Mapping[str, Any]) -> JsonObject:
    """The job's headless Service: no cluster IP and no ports (DNS needs neither), selecting the
    job's pods by its uid, listing them before they are ready (a rendezvous starts before any rank
    is ready), owned by the job so the garbage collector deletes it with the job."""
    meta = job.get("metadata") or {}
    job_name, uid = str(meta.get("name", "")), str(meta.get("uid", ""))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": service_name(job),
            "namespace": str(meta.get("namespace", "")),
            # The pods' own values, so `-l modeljob.dev/job=<job>` finds the Service with them.
            "labels": {LABEL_JOB: kube_writes._label_value(job_name), LABEL_JOB_UID: uid},
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
        },
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": {LABEL_JOB_UID: uid},
        },
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
