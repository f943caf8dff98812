"""When the filter may pass kube-scheduler only the nodes that could still win (pure).

kube-scheduler never chooses a node the filter leaves out, but several of its score plugins scale
their scores over the nodes they are given (NodeAffinity, TaintToleration and DynamicResources by
the highest, InterPodAffinity and PodTopologySpread between the lowest and the highest; v1.36's
plugins' NormalizeScore). Scoring fewer nodes could then weigh a pod's preferences differently
among the nodes kept. Those plugins score every node alike, and the shortlist changes nothing,
when none of their inputs is there: the pod states no preferred node affinity, no pod affinity,
no topology spread, no resource claims, and is not a ModelJob's (its job's headless Service
selects it), a ReplicaSet's, a StatefulSet's or a ReplicationController's (whose pods
kube-scheduler spreads by default), no node has a
PreferNoSchedule taint and no pod on the cluster has pod affinity terms (kube-scheduler weighs
those of the pods already running too). What a pod's spec does not show is a Service that selects
it, which kube-scheduler's default spreading also reads: docs/extender.md says so.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeljob.adapters.kube_affinity import has_pod_affinity
from modeljob.adapters.kube_pods import LABEL_JOB_UID

# kube-scheduler's default topology spreading (PodTopologySpread's system defaults) applies to the
# pods of these controllers (helper.DefaultSelector), and to pods a Service selects.
SPREAD_BY_DEFAULT = frozenset({"ReplicaSet", "StatefulSet", "ReplicationController"})


def pod_reason(pod: Mapping[str, Any]) -> str | None:
    """Why kube-scheduler's scores for this Pod depend on which nodes it scores, or None."""
    spec = pod.get("spec") or {}
    affinity = _mapping(spec.get("affinity"))
    if LABEL_JOB_UID in ((pod.get("metadata") or {}).get("labels") or {}):
        return "a ModelJob's pod: its job's headless Service selects it (spread by default)"
    if _mapping(affinity.get("nodeAffinity")).get("preferredDuringSchedulingIgnoredDuringExecution"):
        return "the pod prefers nodes (preferred node affinity)"
    if has_pod_affinity(spec):
        return "the pod has pod affinity terms"
    if spec.get("topologySpreadConstraints"):
        return "the pod spreads over topology"
    if spec.get("resourceClaims"):
        return "the pod claims resources (DynamicResources)"
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("controller") and owner.get("kind") in SPREAD_BY_DEFAULT:
            return f"the pod is a {owner['kind']}'s (spread by default)"
    return None


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
