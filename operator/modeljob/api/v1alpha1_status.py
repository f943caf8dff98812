"""The ModelJob's status (modeljob.dev/v1alpha1): what the operator decided and observed.

Written by the operator only (core/status.py builds every patch); the CRD's status schema and
`kubectl explain modeljob.status` come from these models.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from modeljob.api.model_base import ApiModel as _Model
from modeljob.core.job_state import JobPhase


def _bytes(what: str) -> Any:
    return Field(description=f"{what}, in bytes.")


class EstimateStatus(_Model):
    """The sizing breakdown for one replica (docs/sizing.md), with the rule behind each number."""

    weights_bytes: int = _bytes("GPU memory for the weights, summed over the replica's GPUs")
    kv_cache_bytes: int = _bytes("GPU memory for the KV cache (inference)")
    activations_bytes: int = _bytes("GPU memory for activations")
    gradients_bytes: int = _bytes("GPU memory for gradients (training)")
    optimizer_states_bytes: int = _bytes("GPU memory for optimizer states (training)")
    overhead_bytes: int = _bytes("GPU memory for the runtime, allocator slack and ZeRO buffers")
    total_bytes: int = _bytes("GPU memory of one replica, all parts")
    gpus: int = Field(description="Devices per pod: per replica, or per node of a multi-node replica.")
    gpu_memory_per_gpu_bytes: int = _bytes("GPU memory each device must hold")
    cpu_milli: int = Field(description="CPU per replica, in millicores.")
    memory_bytes: int = _bytes("Host memory per replica")
    ephemeral_storage_bytes: int = _bytes("Scratch disk per replica")
    device_memory_bytes: int | None = _bytes("Memory of one device the replica was sized for")
    tensor_parallel_size: int | None = Field(
        default=None, description="Tensor-parallel degree inside a node (divides the attention heads)."
    )
    pipeline_parallel_size: int | None = Field(
        default=None, description="Pipeline stages, one per node (divides the layers); 1 on one node."
    )
    nodes_per_replica: int | None = Field(
        default=None, description="Nodes one replica spans; each of its pods takes `gpus` devices."
    )
    explanation: list[Annotated[str, Field(description="One rule: field, value and why.")]] = Field(
        default_factory=list, max_length=64, description="The rule behind each number."
    )


class PlacementEntry(_Model):
    """Where one pod of a replica runs."""

    replica: int = Field(ge=0, description="Replica index, from 0.")
    member: int | None = Field(
        default=None,
        ge=0,
        description="The pod's place in its replica's group when the replica spans nodes (0: the "
        "group's leader); absent for a replica of one pod.",
    )
    pod: str = Field(description="The replica's pod.")
    node: str = Field(description="The node it is bound to.")
    score: float | None = Field(default=None, description="The node's score when it was chosen.")


class Condition(_Model):
    """metav1.Condition: one aspect of the job's state."""

    type: str = Field(max_length=316, description="Condition type, e.g. Valid, Scheduled.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(max_length=1024, description="CamelCase reason for the last transition.")
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
    last_transition_time: str = Field(description="When status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        default=None, description="The spec generation this condition was set from."
    )


class ModelJobStatus(_Model):
    """What modeljob decided and observed; written by the operator only."""

    phase: JobPhase | None = Field(
        default=None,
        description="Pending, Queued, Scheduled, Running, Succeeded, Failed, Suspended "
        "(spec.suspend: no pods), Unschedulable (cannot fit any node type) or Invalid (the spec "
        "cannot be sized).",
    )
    observed_generation: int | None = Field(
        default=None, description="The spec generation the status was computed from."
    )
    estimate: EstimateStatus | None = Field(
        default=None, description="Per-replica sizing for the chosen node type."
    )
    placement: list[PlacementEntry] = Field(default_factory=list, description="Where each replica runs.")
    queue_position: int | None = Field(
        default=None,
        description="Place in the queue while Queued (1 = next); refreshed for a bounded number of jobs a "
        "second (MODELJOB_SCHEDULING__STATUS_REFRESHES_PER_SECOND: half to the positions furthest off "
        "relative to the job's place, so the heads of the queue stay near, the rest to those refreshed "
        "longest ago) and at most every 10 s per job, so in a deep queue a job far back may lag by "
        "about twice queue length / that rate seconds. Its appearing and going (Queued or not) are "
        "written at once.",
    )
    gpus: int | None = Field(default=None, description="GPUs of the whole job (all replicas).")
    nodes: str | None = Field(default=None, description="Nodes the replicas are placed on, comma-separated.")
    pods: int | None = Field(
        default=None,
        description="Pods of the placement: one per replica, or per node of a replica that spans nodes.",
    )
    endpoint: str | None = Field(
        default=None,
        description="In-cluster URL of an Inference job whose first container declares a port: "
        "http://<job>-serve.<namespace>.svc:<port>, the ClusterIP Service across its ready pods.",
    )
    restarts: int | None = Field(
        default=None, description="Times the job or one of its replicas was recreated after a failure."
    )
    preemptions: int | None = Field(
        default=None, description="Times the job was preempted (evicted for another job)."
    )
    checkpointed_seconds: int | None = Field(
        default=None,
        ge=0,
        description="Work kept from its earlier runs, in seconds: each preemption adds its run's "
        "time up to the last checkpoint (spec.scheduling.checkpointInterval; none without). "
        "Remaining expected time is the expected duration less this and the current run.",
    )
    preempted_by: list[Annotated[str, Field(description="namespace/name of a preemptor.")]] = Field(
        default_factory=list,
        max_length=16,
        description="The jobs that preempted this one, oldest first (the last 16): no job preempts "
        "one that preempted it.",
    )
    preempting: list[Annotated[str, Field(description="namespace/name of a victim.")]] = Field(
        default_factory=list,
        max_length=64,
        description="While it waits for room it preempted: the jobs evicted for it.",
    )
    nominated_nodes: list[Annotated[str, Field(description="A node name.")]] = Field(
        default_factory=list,
        max_length=256,
        description="While it waits for room it preempted: the nodes its victims ran on, kept "
        "for it until their pods are gone.",
    )
    message: str | None = Field(default=None, description="A one-line summary of the phase.")
    conditions: list[Condition] = Field(default_factory=list, description="Valid, Scheduled and others.")
