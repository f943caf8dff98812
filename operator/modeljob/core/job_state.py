"""A ModelJob as the core sees it: its status vocabulary (phase, conditions, requeue reasons) and facts.

Apart from core/lifecycle.py, which judges these facts, so that the steps that judgement returns
(core/steps.py) and the modules that plan a job can name a job without importing the judge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from modeljob.core.affinity import TemplateRules
from modeljob.core.cluster_state import Toleration
from modeljob.core.jobs import JobShape
from modeljob.core.resources import Resources


class JobPhase(StrEnum):
    # status.phase, also the API's type of that field (api/v1alpha1.py). No docstring: pydantic
    # would make it the enum's description and move the CRD field's own description around.

    PENDING = "Pending"
    QUEUED = "Queued"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNSCHEDULABLE = "Unschedulable"
    INVALID = "Invalid"
    SUSPENDED = "Suspended"

    @property
    def finished(self) -> bool:
        return self in (JobPhase.SUCCEEDED, JobPhase.FAILED)


class RestartScope(StrEnum):
    # spec.failurePolicy.restartScope, also the API's type of that field (no docstring, as JobPhase).
    # What a failure recreates: every pod of the job, or only the failed replica's.

    JOB = "Job"
    REPLICA = "Replica"


class ConditionType(StrEnum):
    VALID = "Valid"  # the spec makes sense (written when a generation is admitted)
    SCHEDULED = "Scheduled"  # every replica is bound; False says why the job waits
    BINDING = "Binding"  # a written placement is being bound; True only between plan and bound
    UPDATING = "Updating"  # a serving job's replicas are being replaced after a template change
    PREEMPTED = "Preempted"  # True: the job was last evicted for another job (names it and the rule)


@dataclass(frozen=True, slots=True)
class Placed:
    """One status.placement entry: replica -> pod -> node. A replica that spans nodes has one
    entry per pod of its group, ``member`` 0 (its leader) first."""

    replica: int
    pod: str
    node: str
    score: float | None = None
    member: int = 0


@dataclass(frozen=True, slots=True)
class JobFacts:
    """One ModelJob as the scheduling loop sees it: the parts of its spec that matter, and its status.

    ``spec_hash`` covers everything that shapes its pods (not scheduling.*), so a change of
    priority does not move a running job. ``placed_generation`` is the generation the current
    placement was planned for; ``binding`` is the Binding condition.
    """

    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime
    shape: JobShape
    spec_hash: str
    replicas: int = 1
    gang: bool = True
    queue: str = "default"
    priority: int = 0
    expected_duration_seconds: float | None = None
    checkpoint_interval_seconds: float | None = None  # spec.scheduling.checkpointInterval
    accelerator: str = "nvidia.com/gpu"
    products: tuple[str, ...] = ()
    memory_per_device_bytes: int | None = None
    extra_requests: Resources = field(default_factory=Resources)  # the template's other containers
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Toleration, ...] = ()
    rules: TemplateRules = field(default_factory=TemplateRules)  # affinity, spread, pods' labels
    phase: JobPhase | None = None
    observed_generation: int | None = None
    placement: tuple[Placed, ...] = ()
    binding: bool = False
    placed_generation: int | None = None
    queued_since: datetime | None = None
    restarts: int = 0  # status.restarts: failures the job has been recreated after so far
    max_restarts: int = 3  # spec.failurePolicy.maxRestarts
    restart_scope: RestartScope | None = None  # spec.failurePolicy.restartScope; None: the default
    suspend: bool = False  # spec.suspend
    max_unavailable: int = 1  # spec.updateStrategy.maxUnavailable: replicas replaced at a time
    updating: bool = False  # the Updating condition is True: a rolling update is under way
    topology_key: str | None = None  # spec.scheduling.topology.key; None: the operator's setting
    topology_required: bool = False  # spec.scheduling.topology.mode is Required
    # Preemption, all read back from status so a restart knows what the last run decided:
    started: datetime | None = None  # when the Scheduled condition last became True (this run)
    preemptions: int = 0  # status.preemptions: times the job was preempted
    run_before_seconds: float = 0.0  # status.checkpointedSeconds: work kept from earlier runs
    preempted_by: tuple[str, ...] = ()  # status.preemptedBy: "ns/name" of its preemptors, oldest first
    preempting: tuple[str, ...] = ()  # status.preempting: victims ("ns/name") evicted for it
    nominated_nodes: tuple[str, ...] = ()  # status.nominatedNodes: where its victims ran
    # The job as "namespace/name": how queues, quota and preemption name it. Made once with the
    # facts (a cycle asks it of each of 10,000 waiting jobs several times); replace() makes it anew.
    ref: str = field(init=False, repr=False, compare=False)
    # (namespace, name): how the loop's snapshot keys the job's document, looked up by every pass
    # over the waiting jobs; made once too.
    key: tuple[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ref", f"{self.namespace}/{self.name}")
        object.__setattr__(self, "key", (self.namespace, self.name))

    @property
    def node_rules(self) -> tuple[object, ...]:
        """What decides which nodes the job may use (its nodeSelector, tolerations and required
        node affinity), as one hashable value: jobs alike in it may use the same nodes."""
        selector = tuple(sorted(self.node_selector.items()))
        return (selector, self.tolerations, self.rules.node_affinity.required)

    @property
    def admitted(self) -> bool:
        """Admission has judged the current generation (core/spec_admission.py ``recorded``)."""
        return self.observed_generation == self.generation and self.phase not in (None, JobPhase.PENDING)

    @property
    def placed_replicas(self) -> frozenset[int]:
        """The replicas with a placement (each whole: a group is placed and recreated whole)."""
        return frozenset(entry.replica for entry in self.placement)

    @property
    def rolls(self) -> bool:
        """A template change replaces its replicas a few at a time (core/rolling.py): serving
        replicas stand alone, so the service stays up. Training ranks rendezvous once, so a
        training job is replaced whole."""
        return not self.shape.workload.type.trains

    @property
    def scope(self) -> RestartScope:
        """What a failure recreates: the spec's choice, else the whole job for training (its ranks
        rendezvous once and cannot take a stranger in) and for gangs (placed whole, so recreated
        whole), else only the failed replica (serving replicas stand alone)."""
        if self.restart_scope is not None:
            return self.restart_scope
        if self.gang or self.shape.workload.type.trains:
            return RestartScope.JOB
        return RestartScope.REPLICA


class Requeue(StrEnum):
    """Why a placed job goes back to the queue (Event reasons, metric labels)."""

    NODE_LOST = "NodeLost"
    POD_FAILED = "PodFailed"
    POD_LOST = "PodLost"
    SPEC_CHANGED = "SpecChanged"
    BINDING_FAILED = "BindingFailed"
    PREEMPTED = "Preempted"
