"""Sizing inputs: the device type, the checks on a job and the model architecture the rules use."""

from __future__ import annotations

from dataclasses import dataclass

from modeljob.core.jobs import Architecture, JobShape, Offload, Precision, WorkloadType
from modeljob.core.sizing.constants import (
    FALLBACK_ASPECT_RATIO,
    FALLBACK_HEAD_DIM,
    FALLBACK_KV_HEADS,
    FALLBACK_VOCAB_SIZE,
    MAX_GPUS_PER_NODE,
    ceil_div,
)


class SizingError(ValueError):
    """A job the estimator cannot size; the message starts with the offending field's path."""


@dataclass(frozen=True, slots=True)
class Device:
    memory_bytes: int  # memory of ONE accelerator device
    gpus_per_node: int = 8  # devices on one node of this type (caps tensor parallel)


# --- the resolved model -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """The architecture the rules use: declared, or derived from the parameter count."""

    parameters: int
    layers: int
    hidden_size: int
    attention_heads: int
    kv_heads: int
    head_dim: int
    vocab_size: int
    intermediate_size: int
    gated_mlp: bool
    derived: bool
    vocab_assumed: bool

    @property
    def embedding_parameters(self) -> int:
        # Input embedding plus an untied lm_head (tied models are over-counted here, which only
        # matters for quantized weights and errs on the large side).
        return min(self.parameters, 2 * self.vocab_size * self.hidden_size)

    @property
    def linear_parameters(self) -> int:
        return self.parameters - self.embedding_parameters

    @property
    def attention_parameters(self) -> int:
        """The q, k, v and o projections of every layer."""
        q, kv = self.attention_heads * self.head_dim, self.kv_heads * self.head_dim
        return min(self.linear_parameters, self.layers * self.hidden_size * (2 * q + 2 * kv))

    @property
    def largest_layer_parameters(self) -> int:
        return max(self.vocab_size * self.hidden_size, self.linear_parameters // self.layers)

    def describe(self) -> str:
        origin = "derived from the parameter count" if self.derived else "declared"
        return (
            f"{origin}: {self.layers} layers, hidden {self.hidden_size}, {self.attention_heads} heads, "
            f"{self.kv_heads} kv heads x {self.head_dim}"
        )


def resolve_shape(job: JobShape) -> Shape:
    parameters = job.model.parameters
    arch = job.model.architecture
    if arch is None:
        layers = 1
        while 12 * layers * _fallback_hidden(layers) ** 2 < parameters:
            layers += 1
        hidden = _fallback_hidden(layers)
        heads = max(1, hidden // FALLBACK_HEAD_DIM)
        return Shape(
            parameters=parameters,
            layers=layers,
            hidden_size=hidden,
            attention_heads=heads,
            kv_heads=min(heads, FALLBACK_KV_HEADS),
            head_dim=FALLBACK_HEAD_DIM,
            vocab_size=FALLBACK_VOCAB_SIZE,
            intermediate_size=4 * hidden,
            gated_mlp=False,
            derived=True,
            vocab_assumed=True,
        )
    _check_architecture(arch)
    intermediate = arch.intermediate_size or 4 * arch.hidden_size
    return Shape(
        parameters=parameters,
        layers=arch.layers,
        hidden_size=arch.hidden_size,
        attention_heads=arch.attention_heads,
        kv_heads=arch.effective_kv_heads,
        head_dim=arch.effective_head_dim,
        vocab_size=arch.vocab_size or FALLBACK_VOCAB_SIZE,
        intermediate_size=intermediate,
        # A declared MLP width other than 4h is a gated (SwiGLU/GeGLU) MLP in every current
        # family (Llama, Qwen, Mistral, Gemma): gate and up projections both have that width.
        gated_mlp=intermediate != 4 * arch.hidden_size,
        derived=False,
        vocab_assumed=arch.vocab_size is None,
    )


def _fallback_hidden(layers: int) -> int:
    return ceil_div(FALLBACK_ASPECT_RATIO * layers, FALLBACK_HEAD_DIM) * FALLBACK_HEAD_DIM


def _check_architecture(arch: Architecture) -> None:
    path = "spec.model.architecture"
    for name, value in (
        ("layers", arch.layers),
        ("hiddenSize", arch.hidden_size),
        ("attentionHeads", arch.attention_heads),
        ("kvHeads", arch.kv_heads),
        ("headDim", arch.head_dim),
        ("vocabSize", arch.vocab_size),
        ("intermediateSize", arch.intermediate_size),
    ):
        if value is not None and value < 1:
            raise SizingError(f"{path}.{name}: must be at least 1, got {value}")
    kv = arch.effective_kv_heads
    if kv > arch.attention_heads or arch.attention_heads % kv:
        raise SizingError(
            f"{path}.kvHeads: {kv} must divide attentionHeads ({arch.attention_heads}) "
            "(grouped-query attention shares each KV head among a whole group of query heads)"
        )
    if arch.head_dim is None and arch.hidden_size % arch.attention_heads:
        raise SizingError(
            f"{path}.headDim: hiddenSize {arch.hidden_size} is not a multiple of attentionHeads "
            f"{arch.attention_heads}; give headDim explicitly"
        )


def check_job(job: JobShape, device: Device) -> None:
    work = job.workload
    checks = (
        ("spec.model.parameters", job.model.parameters, 1),
        ("spec.workload.sequenceLength", work.sequence_length, 1),
        ("spec.workload.batchSize", work.batch_size, 1),
        ("spec.workload.loraRank", work.lora_rank or 1, 1),
        ("spec.replicas", work.replicas, 1),
        ("spec.accelerator.memoryPerDevice", device.memory_bytes, 1),
    )
    for path, value, least in checks:
        if value < least:
            raise SizingError(f"{path}: must be at least {least}, got {value}")
    if not 1 <= device.gpus_per_node <= MAX_GPUS_PER_NODE:
        raise SizingError(f"gpusPerNode: must be 1..{MAX_GPUS_PER_NODE}, got {device.gpus_per_node}")
    lora = work.type in (WorkloadType.LORA, WorkloadType.QLORA)
    if work.lora_targets is not None and not lora:
        raise SizingError("spec.workload.loraTargets: applies only to LoRA and QLoRA workloads")
    if work.offload is not Offload.NONE and not work.type.trains:
        raise SizingError("spec.workload.offload: applies only to Training, LoRA and QLoRA")
    if work.offload is Offload.OPTIMIZER_AND_PARAMETERS and work.zero_stage != 3:
        raise SizingError(
            "spec.workload.offload: OptimizerAndParameters needs zeroStage 3 (parameters are offloaded "
            "only when sharded)"
        )
    if not 0 <= work.zero_stage <= 3:
        raise SizingError(f"spec.workload.zeroStage: must be 0, 1, 2 or 3, got {work.zero_stage}")
    if work.type is WorkloadType.TRAINING and job.model.precision in (
        Precision.INT8,
        Precision.INT4,
        Precision.NF4,
    ):
        raise SizingError(
            f"spec.model.precision: {job.model.precision.value} weights cannot be trained in full "
            "(integer-quantized weights have no gradients); use workload type QLoRA or LoRA, or "
            "declare the 16-bit checkpoint"
        )
    for path, override in (
        ("spec.resources.gpus", job.overrides.gpus),
        ("spec.resources.cpu", job.overrides.cpu_milli),
        ("spec.resources.memory", job.overrides.memory_bytes),
        ("spec.resources.ephemeralStorage", job.overrides.ephemeral_storage_bytes),
    ):
        if override is not None and override < (1 if path.endswith("gpus") else 0):
            raise SizingError(f"{path}: must be positive, got {override}")
