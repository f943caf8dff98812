"""Pydantic models of the ModelJob resource (modeljob.dev/v1alpha1): the contract, one source of truth.

The CRD in `crds/` is generated from these models (`modeljob crd`), so every constraint here is
also enforced by the API server at `kubectl apply`, and every field's description is what
`kubectl explain modeljob.spec...` prints. Rules the OpenAPI subset cannot say are CEL rules
(`x-kubernetes-validations`) attached with `cel_rule(...)`; the same checks run in pydantic
validators, so `modeljob estimate` and the operator reject what the API server would. Written
forms (parameter counts, quantities, durations) live in `api/quantities.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, model_validator

from modeljob.api.model_base import ApiModel as _Model
from modeljob.api.quantities import (
    CPU_FORMS,
    Duration,
    Quantity,
    duration_field,
    quantity_field,
)
from modeljob.api.v1alpha1_model import Model, Workload
from modeljob.api.v1alpha1_status import ModelJobStatus
from modeljob.core.job_state import RestartScope
from modeljob.core.jobs import (
    Architecture as CoreArchitecture,
)
from modeljob.core.jobs import (
    Checkpointing,
    JobShape,
    ModelShape,
    Offload,
    Overrides,
)
from modeljob.core.jobs import (
    Workload as CoreWorkload,
)
from modeljob.core.resources import parse_bytes, parse_count, parse_cpu_milli

GROUP: Final = "modeljob.dev"
VERSION: Final = "v1alpha1"
KIND: Final = "ModelJob"
PLURAL = "modeljobs"
SINGULAR = "modeljob"
SHORT_NAMES = ("mj",)
API_VERSION: Final = "modeljob.dev/v1alpha1"  # GROUP/VERSION, spelled out for the Literal below

# The CRD keeps a field's `default` only when it carries this mark (see crd_schema.py): the API
# server then fills the field in, so `kubectl get` shows it. Other defaults stay the operator's,
# so CEL rules such as "loraRank only for LoRA" see what the user actually wrote.
SERVER_DEFAULT: Final = "x-modeljob-server-default"
_SERVER_DEFAULT: dict[str, JsonValue] = {SERVER_DEFAULT: True}


# --- spec ----------------------------------------------------------------------------------------


# A Kubernetes label key: an optional DNS-subdomain prefix and a name of 1..63 characters.
LABEL_KEY_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)

RESOURCE_NAME_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9][-A-Za-z0-9_.]*$"
)


class Accelerator(_Model):
    """Which devices a replica may run on."""

    resource_name: str = Field(
        default="nvidia.com/gpu",
        max_length=253,
        pattern=RESOURCE_NAME_PATTERN,
        description="Extended resource: nvidia.com/gpu, amd.com/gpu, google.com/tpu, ...",
    )
    products: list[Annotated[str, Field(max_length=128, description="A node's product label.")]] = Field(
        default_factory=list,
        max_length=64,
        description="Allowed device products (the nodes' product label, e.g. NVIDIA-H100-80GB-HBM3); "
        "empty = any.",
    )
    memory_per_device: Quantity | None = quantity_field(
        "spec.accelerator.memoryPerDevice",
        "The smallest device memory a replica may run on, e.g. 48Gi: nodes whose devices are "
        "labelled smaller are not used, nodes that do not label it are taken to have this much, "
        "and `modeljob estimate` sizes for it. Larger devices are sized for their own memory.",
    )


class ResourceOverrides(_Model):
    """Explicit per-replica requests; each one given wins over the estimate."""

    gpus: int | None = Field(
        default=None,
        ge=0,
        le=4096,
        description="Devices per replica, instead of the smallest layout that fits.",
    )
    cpu: Quantity | None = quantity_field(
        "spec.resources.cpu", "CPU per replica, e.g. 16 or 500m.", forms=CPU_FORMS
    )
    memory: Quantity | None = quantity_field("spec.resources.memory", "Host memory per replica, e.g. 256Gi.")
    ephemeral_storage: Quantity | None = quantity_field(
        "spec.resources.ephemeralStorage", "Scratch disk per replica, e.g. 200Gi."
    )


class TopologyMode(StrEnum):
    REQUIRED = "Required"
    PREFERRED = "Preferred"


class Topology(_Model):
    """The topology domain a multi-node replica's group prefers (or requires) to share."""

    key: str | None = Field(
        default=None,
        max_length=317,
        pattern=LABEL_KEY_PATTERN,
        description="Node label whose value names a domain, e.g. topology.kubernetes.io/zone; "
        "default: the operator's topologyKey setting.",
    )
    mode: TopologyMode = Field(
        default=TopologyMode.PREFERRED,
        description="Required: a group waits rather than span domains; Preferred (default): one "
        "domain when one has room, else across domains.",
    )


class Scheduling(_Model):
    """How the job waits and is placed."""

    queue: str = Field(
        default="default",
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description='Queue the job waits in (a DNS label; default "default").',
    )
    priority: int = Field(
        default=0,
        ge=-1_000_000,
        le=1_000_000,
        description="Higher runs first under the priority policy (default 0).",
    )
    expected_duration: Duration | None = duration_field(
        "spec.scheduling.expectedDuration",
        "How long the job runs, e.g. 2h, 90m or 1h30m; ordered by the shortest-job-first policy.",
    )
    checkpoint_interval: Duration | None = duration_field(
        "spec.scheduling.checkpointInterval",
        "How often the job saves a checkpoint it resumes from, e.g. 30m: a preemption loses only "
        "the work since the last one, and only a job that checkpoints takes time-slice turns.",
    )
    gang: bool = Field(default=True, description="Place all replicas together or none (default true).")
    topology: Topology = Field(
        default_factory=Topology,
        description="Where a replica that spans nodes keeps its pods: one domain of a node label.",
    )


class FailurePolicy(_Model):
    """What happens when a pod fails or its node is lost."""

    max_restarts: int = Field(
        default=3,
        ge=0,
        le=10_000,
        description="Times the job (or a replica) is recreated after a failure before the job is "
        "Failed (default 3; 0 = never).",
    )
    restart_scope: RestartScope | None = Field(
        default=None,
        description="Job: recreate every pod (the gang); Replica: only the failed replica's pods. "
        "Default: Job for Training, LoRA, QLoRA and gang jobs, Replica for non-gang Inference.",
    )


class UpdateStrategy(_Model):
    """How a serving (Inference) job's replicas are replaced when its template changes."""

    max_unavailable: int = Field(
        default=1,
        ge=1,
        le=10_000,
        description="Replicas replaced at a time (default 1): each gets its new pod first when "
        "there is room beside the old one, else the old one goes first; the next starts when the "
        "new pod runs. Training jobs are replaced whole.",
    )


# torch.distributed's and PyTorchJob's default rendezvous port.
DEFAULT_RENDEZVOUS_PORT: Final = 29500


class Rendezvous(_Model):
    """Where the job's pods meet: pod 0 listens, the others connect (MASTER_ADDR, MASTER_PORT)."""

    port: int = Field(
        default=DEFAULT_RENDEZVOUS_PORT,
        ge=1,
        le=65535,
        description=f"Port of the rendezvous on pod 0 (MASTER_PORT), 1..65535; "
        f"default {DEFAULT_RENDEZVOUS_PORT}.",
    )


class ModelJobSpec(_Model):
    """The model, the work and the devices; modeljob sizes, queues and places the replicas."""

    model: Model = Field(description="The model: parameter count, precision and (optionally) architecture.")
    workload: Workload = Field(
        default_factory=Workload,
        description="The work: type, sequence length, batch size and training options.",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=10_000,
        description="Model instances (inference) or data-parallel workers (training); default 1.",
        json_schema_extra=_SERVER_DEFAULT,
    )
    accelerator: Accelerator = Field(
        default_factory=Accelerator,
        description="Device resource, allowed products and, for unlabelled nodes, device memory.",
    )
    resources: ResourceOverrides = Field(
        default_factory=ResourceOverrides,
        description="Per-replica requests that replace the estimate (GPUs, CPU, memory, disk).",
    )
    scheduling: Scheduling = Field(
        default_factory=Scheduling, description="Queue, priority, expected duration and gang placement."
    )
    rendezvous: Rendezvous = Field(
        default_factory=Rendezvous,
        description="Where the pods meet for torch.distributed: the port on pod 0 (default 29500).",
    )
    failure_policy: FailurePolicy = Field(
        default_factory=FailurePolicy,
        description="Restarts after a pod fails or its node is lost: how many and of what.",
    )
    update_strategy: UpdateStrategy = Field(
        default_factory=UpdateStrategy,
        description="How a serving job's replicas are replaced after a template change: how many at a time.",
    )
    suspend: bool = Field(
        default=False,
        description="true: delete the job's pods and free their devices, keep the job (phase "
        "Suspended); false again: queue it once more (default false).",
    )
    template: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
        description="A PodTemplateSpec; the operator fills in resources and placement.",
    )

    def to_core(self) -> JobShape:
        """The core's view of this spec, with the documented defaults applied."""
        model = self.model
        arch = model.architecture
        workload = self.workload
        overrides = self.resources
        return JobShape(
            model=ModelShape(
                parameters=parse_count(model.parameters),
                precision=model.precision,
                active_parameters=(
                    parse_count(model.active_parameters) if model.active_parameters is not None else None
                ),
                # The API's architecture fields are the core's, name for name.
                architecture=None if arch is None else CoreArchitecture(**arch.model_dump()),
                name=model.name or "",
            ),
            workload=CoreWorkload(
                type=workload.type,
                sequence_length=workload.sequence_length,
                batch_size=workload.batch_size,
                optimizer=workload.optimizer,
                zero_stage=workload.zero_stage or 0,
                activation_checkpointing=(
                    None
                    if workload.activation_checkpointing is None
                    else Checkpointing.FULL
                    if workload.activation_checkpointing
                    else Checkpointing.NONE
                ),
                lora_rank=workload.lora_rank,
                replicas=self.replicas,
                lora_targets=workload.lora_targets,
                offload=workload.offload or Offload.NONE,
                framework=workload.framework,
            ),
            overrides=Overrides(
                gpus=overrides.gpus,
                cpu_milli=parse_cpu_milli(overrides.cpu) if overrides.cpu is not None else None,
                memory_bytes=parse_bytes(overrides.memory) if overrides.memory is not None else None,
                ephemeral_storage_bytes=(
                    parse_bytes(overrides.ephemeral_storage)
                    if overrides.ephemeral_storage is not None
                    else None
                ),
            ),
        )

    @model_validator(mode="after")
    def _check_active_parameters(self) -> ModelJobSpec:
        active = self.model.active_parameters
        if active is not None and parse_count(active) > parse_count(self.model.parameters):
            raise ValueError("model.activeParameters cannot exceed model.parameters")
        return self


class ObjectMeta(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str | None = None
    namespace: str | None = None


class ModelJob(_Model):
    api_version: Literal["modeljob.dev/v1alpha1"] = Field(default=API_VERSION)
    kind: Literal["ModelJob"] = KIND
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ModelJobSpec
    status: ModelJobStatus | None = None


# --- errors --------------------------------------------------------------------------------------


def describe_validation_error(error: ValidationError, *, prefix: str = "") -> list[str]:
    """One line per problem, naming the field as kubectl would: `spec.model.parameters: ...`."""
    lines = []
    for item in error.errors(include_url=False):
        path = [str(part) for part in item["loc"] if not _is_union_branch(part)]
        where = ".".join(([prefix] if prefix else []) + path) or prefix or "manifest"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "missing":
            message = "required field is missing"
        elif item["type"] == "extra_forbidden":
            message = "unknown field"
        lines.append(f"{where}: {message}")
    return list(dict.fromkeys(lines))


def _is_union_branch(part: object) -> bool:
    # pydantic names union branches in locations ("int", "str", "function-before[...]").
    return isinstance(part, str) and (part in {"int", "str"} or "[" in part)


def parse_model_job(document: Mapping[str, Any]) -> ModelJob:
    """Validate one manifest; raises ValidationError (use describe_validation_error)."""
    return ModelJob.model_validate(document)
