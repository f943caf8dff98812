"""The extender's settings section: `MODELJOB_EXTENDER__*` (modeljob.settings.Settings.extender).

Scoring weights and node label keys are NOT repeated here: the extender reads the same
`scoring` and `node_labels` sections as the operator, so both make the same decisions.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

MIB = 1024 * 1024


class ExtenderSettings(BaseModel):
    """The HTTP server kube-scheduler calls (filter, prioritize, bind) and its limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True,
        description="`modeljob run` also serves the scheduler extender (from the operator's own watches).",
    )
    host: str = Field(default="0.0.0.0", description="Address the extender listens on.")  # noqa: S104
    port: int = Field(default=8888, ge=1, le=65535, description="Port the extender listens on.")
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
    assume_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description=(
            "How long a pod the extender chose (prioritize) or bound counts on its node before the pod "
            "watch must show it there."
        ),
    )
    bind_timeout_seconds: float = Field(
        default=2.5,
        gt=0,
        le=60,
        description="Give up a pods/binding call after this long (keep it below the httpTimeout).",
    )
    bind_workers: int = Field(
        default=16,
        ge=1,
        le=256,
        description="pods/binding calls in flight at once (kube-scheduler binds pods in parallel).",
    )
    sync_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="`modeljob extender` start-up: wait this long for the first list of nodes and pods.",
    )
