"""Pydantic models of the ModelJob resource (modeljob.dev/v1alpha1): the contract, one source of truth.

The CRD in `crds/` is generated from these models (`modeljob crd`), so every constraint here is
also enforced by the API server at `kubectl apply`. Rules the OpenAPI subset cannot say are
CEL rules (`x-kubernetes-validations`) attached with `cel_rule(...)`; the same checks run in
pydantic validators, so `modeljob estimate` and the operator reject what the API server would.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from enum import StrEnum
from typing import Annotated, Any, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    WithJsonSchema,
    model_validator,
)
from pydantic.alias_generators import to_camel

from modeljob.core.jobs import (
    MAX_BATCH_SIZE,
    MAX_PARAMETERS,
    MAX_SEQUENCE_LENGTH,
    JobShape,
    ModelShape,
    Optimizer,
    Overrides,
    Precision,
    WorkloadType,
)
from modeljob.core.jobs import (
    Architecture as CoreArchitecture,
)
from modeljob.core.jobs import (
    Workload as CoreWorkload,
)
from modeljob.core.resources import QuantityError, parse_bytes, parse_count, parse_cpu_milli

GROUP: Final = "modeljob.dev"
VERSION: Final = "v1alpha1"
KIND: Final = "ModelJob"
PLURAL = "modeljobs"
SINGULAR = "modeljob"
SHORT_NAMES = ("mj",)
API_VERSION: Final = "modeljob.dev/v1alpha1"  # GROUP/VERSION, spelled out for the Literal below


def cel_rule(
    rule: str, message: str, *, field_path: str | None = None, reason: str | None = None
) -> dict[str, JsonValue]:
    """One `x-kubernetes-validations` entry; field_path makes the API server name the field."""
    entry: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path is not None:
        entry["fieldPath"] = field_path
    if reason is not None:
        entry["reason"] = reason
    return entry


# --- quantities --------------------------------------------------------------------------------

# String forms of a parameter count, bounded so that no accepted string exceeds MAX_PARAMETERS
# (1e14): the API server can then reject `1e20` or `-7B` at apply time by pattern alone.
PARAMETERS_PATTERN = (
    r"^(?:[0-9]{1,14}"
    r"|[0-9]{1,11}(?:\.[0-9]+)?K"
    r"|[0-9]{1,8}(?:\.[0-9]+)?M"
    r"|[0-9]{1,5}(?:\.[0-9]+)?[BG]"
    r"|(?:[0-9]{1,2}(?:\.[0-9]+)?|100)T"
    r"|[0-9](?:\.[0-9]+)?[eE]\+?(?:[0-9]|1[0-3])"
    r"|[0-9]{2}(?:\.[0-9]+)?[eE]\+?(?:[0-9]|1[0-2])"
    r"|[0-9]{3}(?:\.[0-9]+)?[eE]\+?(?:[0-9]|1[01]))$"
)
# Kubernetes resource.Quantity grammar (apimachinery quantity.go), without signs.
QUANTITY_PATTERN = r"^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?$"
DURATION_PATTERN = r"^(?:[0-9]+(?:\.[0-9]+)?(?:ms|s|m|h|d))+$"
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _int_or_string_schema(pattern: str, description: str, rules: list[dict[str, str]]) -> dict[str, Any]:
    # The only anyOf form structural schemas allow for int-or-string; string checks sit beside it
    # (OpenAPI applies pattern and maxLength to strings only).
    return {
        "x-kubernetes-int-or-string": True,
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "pattern": pattern,
        "maxLength": 32,
        "description": description,
        "x-kubernetes-validations": rules,
    }


def _check_parameters(value: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise ValueError("expected a count such as 70.6B, 405e9 or 7000000000")
    if isinstance(value, str) and not re.match(PARAMETERS_PATTERN, value.strip()):
        raise ValueError(
            f"expected a positive count such as 70.6B, 405e9 or 7000000000 "
            f"(at most {MAX_PARAMETERS:.0e}), got {value!r}"
        )
    try:
        count = parse_count(value)
    except QuantityError as exc:
        raise ValueError(str(exc)) from exc
    if count <= 0:
        raise ValueError(f"must be positive, got {value!r}")
    if count > MAX_PARAMETERS:
        raise ValueError(f"{value!r} is more than {MAX_PARAMETERS:.0e} parameters; is it a typo?")
    return value if isinstance(value, str) else count


def _check_quantity(value: object) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise ValueError("expected a quantity such as 80Gi, 512Mi or 500m")
    if isinstance(value, str) and not re.match(QUANTITY_PATTERN, value.strip()):
        raise ValueError(f"expected a quantity such as 80Gi, 512Mi or 500m, got {value!r}")
    if isinstance(value, int | float) and value < 0:
        raise ValueError(f"must not be negative, got {value!r}")
    return value if isinstance(value, str) else int(value)


_POSITIVE_INT_RULE = cel_rule("type(self) == string || int(self) > 0", "must be positive")

ParameterCount = Annotated[
    int | str,
    BeforeValidator(_check_parameters),
    WithJsonSchema(
        _int_or_string_schema(
            PARAMETERS_PATTERN,
            "Parameter count: an integer, or a string such as 70.6B, 405e9, 560M (K/M/B/T = 1e3..1e12).",
            [
                cel_rule(
                    "type(self) == string ? self.matches('[1-9]')"
                    f" : (int(self) > 0 && int(self) <= {MAX_PARAMETERS})",
                    f"must be a positive count of at most {MAX_PARAMETERS:.0e} parameters",
                )
            ],
        )
    ),
]
Quantity = Annotated[
    int | str,
    BeforeValidator(_check_quantity),
    WithJsonSchema(
        _int_or_string_schema(
            QUANTITY_PATTERN,
            "A Kubernetes quantity such as 80Gi, 512Mi, 500m or 4.",
            [cel_rule("type(self) == string || int(self) >= 0", "must not be negative")],
        )
    ),
]


def _check_duration(value: str) -> str:
    if not re.match(DURATION_PATTERN, value):
        raise ValueError(f"expected a duration such as 2h, 90m or 1h30m, got {value!r}")
    return value


Duration = Annotated[
    str,
    AfterValidator(_check_duration),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": 32,
            "description": "A duration such as 2h, 90m or 1h30m.",
        }
    ),
]


def parse_duration(text: str) -> timedelta:
    """Parse 2h, 90m, 1h30m, 1.5d into a timedelta."""
    seconds = sum(float(number) * _DURATION_UNITS[unit] for number, unit in _DURATION_PART.findall(text))
    return timedelta(seconds=seconds)


# --- spec ----------------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", use_enum_values=False
    )


class Architecture(_Model):
    """Transformer shape; when given, KV cache and activations are exact instead of estimated."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule(
                    "has(self.headDim) || self.hiddenSize % self.attentionHeads == 0",
                    "hiddenSize must be divisible by attentionHeads unless headDim is given",
                    field_path=".hiddenSize",
                ),
                cel_rule(
                    "!has(self.kvHeads) || (self.kvHeads <= self.attentionHeads"
                    " && self.attentionHeads % self.kvHeads == 0)",
                    "kvHeads must divide attentionHeads",
                    field_path=".kvHeads",
                ),
            ]
        }
    )

    layers: int = Field(ge=1, le=10_000, description="num_hidden_layers")
    hidden_size: int = Field(ge=1, le=1_000_000, description="hidden_size")
    attention_heads: int = Field(ge=1, le=100_000, description="num_attention_heads")
    kv_heads: int | None = Field(default=None, ge=1, le=100_000, description="num_key_value_heads (GQA/MQA)")
    head_dim: int | None = Field(
        default=None, ge=1, le=100_000, description="default hiddenSize/attentionHeads"
    )
    vocab_size: int | None = Field(default=None, ge=1, le=100_000_000, description="vocab_size")
    intermediate_size: int | None = Field(default=None, ge=1, le=10_000_000, description="MLP width")

    @model_validator(mode="after")
    def _check_heads(self) -> Architecture:
        if self.head_dim is None and self.hidden_size % self.attention_heads:
            raise ValueError("hiddenSize must be divisible by attentionHeads unless headDim is given")
        if self.kv_heads is not None and (
            self.kv_heads > self.attention_heads or self.attention_heads % self.kv_heads
        ):
            raise ValueError("kvHeads must divide attentionHeads")
        return self


class Model(_Model):
    name: str | None = Field(
        default=None, max_length=256, description="Informational, e.g. a Hugging Face id."
    )
    parameters: ParameterCount
    active_parameters: ParameterCount | None = Field(
        default=None, description="MoE only: parameters active per token (FLOPs, not memory)."
    )
    precision: Precision = Field(default=Precision.BF16, description="Weight precision (default bf16).")
    architecture: Architecture | None = None


class Workload(_Model):
    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule(
                    "!has(self.loraRank)"
                    " || (has(self.type) && (self.type == 'LoRA' || self.type == 'QLoRA'))",
                    "loraRank applies only to LoRA and QLoRA workloads",
                    field_path=".loraRank",
                ),
                cel_rule(
                    "!(has(self.optimizer) || has(self.zeroStage) || has(self.activationCheckpointing))"
                    " || (has(self.type) && self.type != 'Inference')",
                    "optimizer, zeroStage and activationCheckpointing apply only to Training, LoRA and QLoRA",
                    field_path=".type",
                ),
            ]
        }
    )

    type: WorkloadType = Field(
        default=WorkloadType.INFERENCE, description="Inference | Training | LoRA | QLoRA"
    )
    sequence_length: int = Field(
        default=4096, ge=1, le=MAX_SEQUENCE_LENGTH, description="Tokens per sequence."
    )
    batch_size: int = Field(
        default=1, ge=1, le=MAX_BATCH_SIZE, description="Concurrent sequences (inference) or micro-batch."
    )
    optimizer: Optimizer | None = Field(default=None, description="Training only (default AdamW).")
    zero_stage: int | None = Field(default=None, ge=0, le=3, description="ZeRO stage across replicas (0..3).")
    activation_checkpointing: bool | None = None
    lora_rank: int | None = Field(default=None, ge=1, le=65_536, description="LoRA/QLoRA adapter rank (16).")

    @model_validator(mode="after")
    def _check_fields_fit_type(self) -> Workload:
        lora = self.type in (WorkloadType.LORA, WorkloadType.QLORA)
        if self.lora_rank is not None and not lora:
            raise ValueError("loraRank applies only to LoRA and QLoRA workloads")
        training_only = (self.optimizer, self.zero_stage, self.activation_checkpointing)
        if self.type is WorkloadType.INFERENCE and any(v is not None for v in training_only):
            raise ValueError(
                "optimizer, zeroStage and activationCheckpointing apply only to training workloads"
            )
        return self


RESOURCE_NAME_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9][-A-Za-z0-9_.]*$"
)


class Accelerator(_Model):
    resource_name: str = Field(
        default="nvidia.com/gpu",
        max_length=253,
        pattern=RESOURCE_NAME_PATTERN,
        description="Extended resource: nvidia.com/gpu, amd.com/gpu, google.com/tpu, ...",
    )
    products: list[Annotated[str, Field(max_length=128)]] = Field(
        default_factory=list, max_length=64, description="Allowed node product labels; empty = any."
    )
    memory_per_device: Quantity | None = Field(
        default=None, description="Assume this device size when the node has no memory label."
    )


class ResourceOverrides(_Model):
    """Explicit per-replica requests; each one given wins over the estimate."""

    gpus: int | None = Field(default=None, ge=0, le=4096)
    cpu: Quantity | None = None
    memory: Quantity | None = None
    ephemeral_storage: Quantity | None = None


class Scheduling(_Model):
    queue: str = Field(default="default", max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    priority: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    expected_duration: Duration | None = Field(default=None, description="Used by shortest-job-first.")
    gang: bool = Field(default=True, description="Place all replicas together or none.")


class ModelJobSpec(_Model):
    model: Model
    workload: Workload = Field(default_factory=Workload)
    replicas: int = Field(default=1, ge=1, le=10_000, description="Model instances or data-parallel workers.")
    accelerator: Accelerator = Field(default_factory=Accelerator)
    resources: ResourceOverrides = Field(default_factory=ResourceOverrides)
    scheduling: Scheduling = Field(default_factory=Scheduling)
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
                architecture=None
                if arch is None
                else CoreArchitecture(
                    layers=arch.layers,
                    hidden_size=arch.hidden_size,
                    attention_heads=arch.attention_heads,
                    kv_heads=arch.kv_heads,
                    head_dim=arch.head_dim,
                    vocab_size=arch.vocab_size,
                    intermediate_size=arch.intermediate_size,
                ),
                name=model.name or "",
            ),
            workload=CoreWorkload(
                type=workload.type,
                sequence_length=workload.sequence_length,
                batch_size=workload.batch_size,
                optimizer=workload.optimizer or Optimizer.ADAMW,
                zero_stage=workload.zero_stage or 0,
                activation_checkpointing=bool(workload.activation_checkpointing),
                lora_rank=workload.lora_rank or CoreWorkload().lora_rank,
                replicas=self.replicas,
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


# --- status --------------------------------------------------------------------------------------


class Phase(StrEnum):
    PENDING = "Pending"
    QUEUED = "Queued"
    SCHEDULED = "Scheduled"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    UNSCHEDULABLE = "Unschedulable"
    INVALID = "Invalid"


class EstimateStatus(_Model):
    """The sizing breakdown for one replica (design.md §3), with the rule behind each number."""

    weights_bytes: int
    kv_cache_bytes: int
    activations_bytes: int
    gradients_bytes: int
    optimizer_states_bytes: int
    overhead_bytes: int
    total_bytes: int
    gpus: int
    gpu_memory_per_gpu_bytes: int
    cpu_milli: int
    memory_bytes: int
    ephemeral_storage_bytes: int
    device_memory_bytes: int | None = None
    explanation: list[str] = Field(default_factory=list, max_length=64)


class PlacementEntry(_Model):
    replica: int = Field(ge=0)
    pod: str
    node: str
    score: float | None = None


class Condition(_Model):
    """metav1.Condition."""

    type: str = Field(max_length=316)
    status: Literal["True", "False", "Unknown"]
    reason: str = Field(max_length=1024)
    message: str = Field(default="", max_length=32768)
    last_transition_time: str
    observed_generation: int | None = None


class ModelJobStatus(_Model):
    phase: Phase | None = None
    observed_generation: int | None = None
    estimate: EstimateStatus | None = None
    placement: list[PlacementEntry] = Field(default_factory=list)
    queue_position: int | None = None
    gpus: int | None = Field(default=None, description="GPUs of the whole job (all replicas).")
    nodes: str | None = Field(default=None, description="Nodes the replicas are placed on, comma-separated.")
    message: str | None = None
    conditions: list[Condition] = Field(default_factory=list)


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
