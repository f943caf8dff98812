"""The headless Service every job owns, so its pods' names resolve in DNS before they are ready."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeljob.adapters.kube_pods import LABEL_JOB, LABEL_JOB_UID
from modeljob.api.v1alpha1 import API_VERSION, KIND

JsonObject = dict[str, Any]

_GROUP = API_VERSION.split("/")[0] + "/"  # any version of the ModelJob API owns the same Service


def service_name(job: Mapping[str, Any]) -> str:
    """The job's own name: a pod with `subdomain: <job>` is `<hostname>.<job>.<namespace>.svc`."""
    return str((job.get("metadata") or {}).get("name", ""))


def service_manifest(job: Mapping[str, Any]) -> JsonObject:
    """The job's headless Service: no cluster IP and no ports (DNS needs neither), selecting the
    job's pods by its uid, listing them before they are ready (a rendezvous starts before any rank
    is ready), owned by the job so the garbage collector deletes it with the job."""
    meta = job.get("metadata") or {}
    name, uid = service_name(job), str(meta.get("uid", ""))
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": str(meta.get("namespace", "")),
            # The pods' labels. A name a Service accepts (a DNS label) is already a label value.
            "labels": {LABEL_JOB: name, LABEL_JOB_UID: uid},
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": name,
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
