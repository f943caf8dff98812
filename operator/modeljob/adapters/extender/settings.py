"""The extender's settings section: `MODELJOB_EXTENDER__*` (modeljob.settings.Settings.extender).

Scoring weights and node label keys are NOT repeated here: the extender reads the same
`scoring` and `node_labels` sections as the operator, so both make the same decisions.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from modeljob.settings_fields import assume_seconds, listen_host, port, seconds, workers

MIB = 1024 * 1024


class ExtenderSettings(BaseModel):
    """The HTTP server kube-scheduler calls (filter, prioritize, bind) and its limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True,
        description="`modeljob run` also serves the scheduler extender (from the operator's own watches).",
    )
    host: str = listen_host("Address the extender listens on.")
    port: int = port(8888, "Port the extender listens on.")
    path_prefix: str = Field(
        default="/scheduler",
        pattern=r"^(/[A-Za-z0-9._~-]+)*$",
        description="URL path of the verbs: kube-scheduler's `urlPrefix` is `http://HOST:PORT<path_prefix>`.",
    )
    max_body_bytes: int = Field(
        default=8 * MIB,
        ge=64 * 1024,
        le=512 * MIB,
        description=(
            "Largest request body accepted (413 above). With nodeCacheCapable: false kube-scheduler sends "
            "whole Node objects, about 4 KiB each: raise this above ~2,000 nodes."
        ),
    )
    assume_seconds: float = assume_seconds(
        "How long a pod the extender chose (prioritize) or bound counts on its node before the pod "
        "watch must show it there."
    )
    bind_timeout_seconds: float = seconds(
        2.5, "Give up a pods/binding call after this long (keep it below the httpTimeout).", at_most=60
    )
    bind_workers: int = workers(
        16, "pods/binding calls in flight at once (kube-scheduler binds pods in parallel)."
    )
    shortlist: bool = Field(
        default=True,
        description=(
            "The filter passes only the nodes kube-scheduler could still choose, for pods whose "
            "kube-scheduler scores do not depend on the nodes scored (docs/extender.md: no Service, "
            "running pod's affinity term or untolerated PreferNoSchedule taint weighs on them, and "
            "the pod states no preference of its own). Off: every node that fits passes, as with "
            "another prioritizing extender or score plugins the extender cannot see."
        ),
    )
    scheduler_weight: int = Field(
        default=50,
        ge=1,
        le=1_000_000,
        description=(
            "This extender's `weight` in kube-scheduler's configuration (hack/extender/"
            "kube-scheduler-config.yaml: 50). With plugin_score_range it says which nodes kube-scheduler "
            "could still prefer to ours."
        ),
    )
    plugin_score_range: int = Field(
        default=1500,
        ge=0,
        le=100_000_000,
        description=(
            "The most kube-scheduler's own score plugins can add to one node over another: their weights "
            "x 100, summed: 1500 for v1.36's default profile (TaintToleration 3; NodeAffinity, "
            "PodTopologySpread, InterPodAffinity, DynamicResources 2; NodeResourcesFit, "
            "NodeResourcesBalancedAllocation, ImageLocality, VolumeBinding 1). For a pod whose "
            "kube-scheduler scores do not depend on the nodes scored (docs/extender.md), the filter "
            "passes only the nodes close enough to our best for those plugins to make up the "
            "difference, so kube-scheduler scores a few nodes, not every one; set your profile's sum "
            "if it weighs plugins more (a large value passes every node that fits)."
        ),
    )
    sync_timeout_seconds: float = seconds(
        60.0,
        "`modeljob extender` start-up: wait this long for the first list of nodes and pods.",
        at_most=3600,
    )
