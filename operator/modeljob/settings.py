"""The operator's settings: the only reader of environment variables, one pydantic-settings tree.

Every field maps to one environment variable, `MODELJOB_<SECTION>__<FIELD>` (for example
`MODELJOB_QUEUE__POLICY=sjf`); Helm values map 1:1 to these names. `docs/settings.md` is the
table of them all, and a test keeps that table and this file in step.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from modeljob.adapters.extender.settings import ExtenderSettings
from modeljob.core.leadership import LeaseTiming
from modeljob.core.queueing import DEFAULT_AGING_PER_HOUR, DEFAULT_DURATION_SECONDS, QueueOrder
from modeljob.core.queueing import QueueSettings as CoreQueueSettings
from modeljob.core.scheduling_cycle import CycleSettings
from modeljob.core.scoring.registry import registered_scorers, setting_name
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS, ScoringWeights
from modeljob.core.topology import DEFAULT_TOPOLOGY_KEY
from modeljob.settings_fields import assume_seconds, listen_host, port, seconds, workers

ENV_PREFIX = "MODELJOB_"
ENV_NESTED_DELIMITER = "__"
MAX_WEIGHT = 1000.0


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KubernetesSettings(_Section):
    kubeconfig: Path | None = Field(
        default=None,
        description="Kubeconfig file; unset: in-cluster account, else $KUBECONFIG, else ~/.kube/config.",
    )
    context: str | None = Field(default=None, description="Kubeconfig context; unset: the current one.")
    connections: int = Field(
        default=32, ge=1, le=1024, description="HTTP connections kept open to the API server."
    )


class LeaderElectionSettings(_Section):
    """A coordination.k8s.io Lease decides which replica's scheduling loop acts (kube-scheduler's
    timings by default); every replica keeps its watches warm and serves the extender."""

    enabled: bool = Field(
        default=True,
        description="Elect a leader through a Lease; false: this replica always acts (one replica only).",
    )
    lease_name: str = Field(
        default="modeljob-operator", min_length=1, max_length=253, description="The Lease's name."
    )
    lease_namespace: str | None = Field(
        default=None,
        max_length=63,
        description="The Lease's namespace; unset: the operator's own (its service account's), else default.",
    )
    lease_duration_seconds: int = Field(
        default=15,
        ge=2,
        le=3600,
        description="How long a standby waits, seeing the Lease unchanged, before taking it over.",
    )
    renew_deadline_seconds: float = seconds(
        10.0, "The leader stops acting this long after its last renewal was sent.", at_most=3600
    )
    retry_period_seconds: float = seconds(
        2.0,
        "How often the leader reads and renews the Lease; a standby reads it 4 times as often "
        "(it sees each renewal within a quarter of this).",
        at_most=600,
    )
    identity: str | None = Field(
        default=None,
        max_length=253,
        description="This replica's holderIdentity; unset: $POD_ID (the pod's name), else user@host/start.",
    )

    @model_validator(mode="after")
    def _one_leader_possible(self) -> LeaderElectionSettings:
        problem = self.timing().problem()
        if problem is not None:
            raise ValueError(problem)
        return self

    def timing(self) -> LeaseTiming:
        return LeaseTiming(
            duration_seconds=self.lease_duration_seconds,
            renew_deadline_seconds=self.renew_deadline_seconds,
            retry_period_seconds=self.retry_period_seconds,
        )


class ServerSettings(_Section):
    host: str = listen_host("Address the liveness and metrics endpoints listen on.")
    liveness_port: int = port(
        8080,
        "kopf's liveness endpoint `/healthz` (says leader or standby); 0 disables it.",
        zero_disables=True,
    )
    metrics_port: int = port(9090, "Prometheus `/metrics`; 0 disables it.", zero_disables=True)


class QueueSettings(_Section):
    policy: QueueOrder = Field(
        default=QueueOrder.FCFS,
        description="Order of waiting jobs within a queue: fcfs, shortest-job-first, priority or fair-share.",
    )
    strict: bool = Field(
        default=False,
        description=(
            "true: a job that must wait blocks every job behind it (strict order); "
            "false: later jobs that fit go first (backfill)."
        ),
    )
    aging_per_hour: float = Field(
        default=DEFAULT_AGING_PER_HOUR,
        ge=0,
        le=10**6,
        description="priority: points a waiting job gains per hour waited, so nothing starves.",
    )
    default_duration_seconds: float = seconds(
        DEFAULT_DURATION_SECONDS,
        "shortest-job-first: the duration of jobs without spec.scheduling.expectedDuration.",
        at_most=10**8,
    )

    def to_core(self) -> CoreQueueSettings:
        return CoreQueueSettings(
            order=self.policy,
            default_duration_seconds=self.default_duration_seconds,
            aging_per_hour=self.aging_per_hour,
        )


class ScoringSettings(_Section):
    """Weights of the node scorers: `MODELJOB_SCORING__<SCORER>=<weight>` for any scorer that
    core/scoring/registry.py finds (0 switches one off); unset ones keep the core's defaults, so
    a scorer added there is configurable here without a change."""

    model_config = ConfigDict(extra="allow", frozen=True)

    @model_validator(mode="after")
    def _known_scorers(self) -> ScoringSettings:
        known = [setting_name(scorer) for scorer in registered_scorers()]
        for name, value in (self.model_extra or {}).items():
            if name not in known:
                raise ValueError(f"unknown scorer {name!r}; known: {', '.join(known)}")
            try:
                weight = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{name}: expected a number, got {value!r}") from None
            if not 0 <= weight <= MAX_WEIGHT:
                raise ValueError(f"{name}: must be between 0 and {MAX_WEIGHT}, got {value!r}")
        self.weights()  # every weight 0 is refused by the core
        return self

    def weights(self) -> ScoringWeights:
        return DEFAULT_WEIGHTS.replaced(**{name: float(v) for name, v in (self.model_extra or {}).items()})


class SchedulingSettings(_Section):
    scheduler_name: str = Field(
        default="modeljob",
        min_length=1,
        max_length=63,
        description="`spec.schedulerName` of the pods the operator creates and binds.",
    )
    debounce_seconds: float = seconds(
        0.05,
        "After a change in the cluster, wait this long for more before planning.",
        at_most=10,
        zero_allowed=True,
    )
    resync_seconds: float = seconds(10.0, "Plan at least this often even when nothing changed.", at_most=3600)
    bind_workers: int = workers(16, "Pods created and bound in parallel within one plan.")
    job_workers: int = workers(
        8,
        "Jobs acted on in parallel within one scheduling cycle (and waiting jobs' status writes beside it).",
    )
    status_refreshes_per_second: float = Field(
        default=5.0,
        ge=0.1,
        le=10_000,
        description="Waiting jobs whose status.queuePosition or reason alone changed that are rewritten "
        "per second on average (unspent: carried over for up to 10 s): half to those whose shown "
        "position is furthest off, relative to their place, the rest to those refreshed longest ago "
        "(phase changes are written at once).",
    )
    assume_seconds: float = assume_seconds(
        "How long a pod we bound counts from our own plan before the watch must show it."
    )
    node_lost_after_seconds: float = seconds(
        30.0,
        "A node NotReady this long is lost: its replicas (gangs: whole jobs) are re-queued.",
        at_most=86400,
        zero_allowed=True,
    )
    topology_key: str = Field(
        default=DEFAULT_TOPOLOGY_KEY,
        min_length=1,
        max_length=317,
        description="Node label naming the topology domain a replica that spans nodes keeps its pods "
        "in, unless its spec.scheduling.topology.key names another.",
    )


class NodeLabelSettings(_Section):
    gpu_product: str = Field(
        default="nvidia.com/gpu.product", description="Node label naming the accelerator product."
    )
    gpu_memory_mib: str = Field(
        default="nvidia.com/gpu.memory", description="Node label giving each device's memory in MiB."
    )
    price_per_hour: str = Field(
        default="modeljob.dev/price-per-hour", description="Node label giving the node's price per hour."
    )


class LoggingSettings(_Section):
    level: str = Field(
        default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="DEBUG, INFO, WARNING or ERROR."
    )
    format: LogFormat = Field(default=LogFormat.TEXT, description="text, or json (one object per line).")


class Settings(BaseSettings):
    """Everything `modeljob run` can be told, read once at start-up."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
        extra="forbid",
        frozen=True,
        case_sensitive=False,
    )

    kubernetes: KubernetesSettings = Field(default_factory=KubernetesSettings)
    leader_election: LeaderElectionSettings = Field(default_factory=LeaderElectionSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    scheduling: SchedulingSettings = Field(default_factory=SchedulingSettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    node_labels: NodeLabelSettings = Field(default_factory=NodeLabelSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    extender: ExtenderSettings = Field(default_factory=ExtenderSettings)

    def cycle(self) -> CycleSettings:
        """What the core's scheduling cycle is told: queue order, strictness, lost nodes, weights."""
        return CycleSettings(
            queue=self.queue.to_core(),
            strict=self.queue.strict,
            node_lost_after_seconds=self.scheduling.node_lost_after_seconds,
            weights=self.scoring.weights(),
            topology_key=self.scheduling.topology_key,
        )


def environment_variables() -> list[tuple[str, str, str]]:
    """(variable, default, description) for every setting, in declaration order: docs/settings.md."""
    rows: list[tuple[str, str, str]] = []
    for section_name, section in Settings.model_fields.items():
        model = section.annotation
        assert isinstance(model, type)
        assert issubclass(model, BaseModel)
        prefix = f"{ENV_PREFIX}{section_name}{ENV_NESTED_DELIMITER}".upper()
        if model is ScoringSettings:
            rows += [
                (
                    f"{prefix}{setting_name(scorer).upper()}",
                    _shown(weight),
                    f"Weight of the {scorer.name} node scorer (core/scoring).",
                )
                for scorer, weight in DEFAULT_WEIGHTS.named()
            ]
            continue
        for field_name, field in model.model_fields.items():
            rows.append((f"{prefix}{field_name.upper()}", _shown(field.default), field.description or ""))
    return rows


def _shown(default: object) -> str:
    if default is None:
        return "(unset)"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, StrEnum):
        return default.value
    return str(default)


def render_settings_table() -> str:
    """The Markdown table of docs/settings.md (a test keeps the file in step with this)."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    lines += [f"| `{name}` | `{default}` | {text} |" for name, default, text in environment_variables()]
    return "\n".join(lines) + "\n"


def write_settings_doc(path: Path) -> None:
    """Replace the generated table between the markers of docs/settings.md (`make crd`)."""
    text = path.read_text()
    start, end = "<!-- settings-table:start -->\n", "<!-- settings-table:end -->"
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    path.write_text(head + start + render_settings_table() + end + tail)


if __name__ == "__main__":
    write_settings_doc(Path(sys.argv[1]))
