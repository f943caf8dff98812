"""The settings the figures describe, stated as the JobShape the estimator sizes."""

from __future__ import annotations

from modeljob.core.jobs import (
    Checkpointing,
    Framework,
    JobShape,
    LoraTargets,
    ModelShape,
    Offload,
    Optimizer,
    Overrides,
    Workload,
    WorkloadType,
)
from tests.core.figure_records import Kind, Measure


def serve(model: ModelShape, *, sequence_length: int = 4096, batch_size: int = 1) -> JobShape:
    return JobShape(
        model, Workload(WorkloadType.INFERENCE, sequence_length=sequence_length, batch_size=batch_size)
    )


def train(
    model: ModelShape,
    kind: WorkloadType,
    *,
    sequence_length: int,
    batch_size: int = 1,
    zero_stage: int = 0,
    replicas: int = 1,
    checkpointing: bool = True,
    lora_rank: int = 16,
    optimizer: Optimizer = Optimizer.ADAMW,
    gpus: int | None = None,
) -> JobShape:
    return JobShape(
        model,
        Workload(
            kind,
            sequence_length=sequence_length,
            batch_size=batch_size,
            optimizer=optimizer,
            zero_stage=zero_stage,
            activation_checkpointing=Checkpointing.FULL if checkpointing else Checkpointing.NONE,
            lora_rank=lora_rank,
            replicas=replicas,
        ),
        Overrides(gpus=gpus),
    )


def qlora_paper(model: ModelShape) -> JobShape:
    """The QLoRA paper's runs (section 4, appendix B): NF4 with double quantization, rank 64 on
    every linear, gradient checkpointing, batch 1, paged AdamW (its states live in paged host
    memory: offload Optimizer), through its own scripts (bf16 adapters and embeddings)."""
    return JobShape(
        model,
        Workload(
            WorkloadType.QLORA,
            sequence_length=512,
            batch_size=1,
            offload=Offload.OPTIMIZER,
            framework=Framework.QLORA_SCRIPTS,
        ),
    )


# --- measured training runs: every setting stated, as the run's source gives it -------------------


def training_run(
    model: ModelShape,
    kind: WorkloadType,
    *,
    sequence_length: int,
    batch_size: int,
    checkpointing: Checkpointing,
    optimizer: Optimizer = Optimizer.ADAMW,
    zero_stage: int = 0,
    replicas: int = 1,
    lora_rank: int | None = None,
    lora_targets: LoraTargets | None = None,
    offload: Offload = Offload.NONE,
    gpus: int = 1,
    framework: Framework = Framework.TRANSFORMERS,
) -> JobShape:
    """A measured run's setting, every choice stated; ``gpus`` is the GPUs in one data-parallel rank."""
    return JobShape(
        model,
        Workload(
            type=kind,
            sequence_length=sequence_length,
            batch_size=batch_size,
            optimizer=optimizer,
            zero_stage=zero_stage,
            activation_checkpointing=checkpointing,
            lora_rank=lora_rank,
            lora_targets=lora_targets,
            offload=offload,
            replicas=replicas,
            framework=framework,
        ),
        Overrides(gpus=gpus),
    )


# Shorthand for the measured-run tables.
FULL = WorkloadType.TRAINING
LORA = WorkloadType.LORA
QLORA = WorkloadType.QLORA
NO_AC = Checkpointing.NONE
SELECTIVE_AC = Checkpointing.SELECTIVE
FULL_AC = Checkpointing.FULL
RESERVED = Measure.PEAK_PER_GPU_RESERVED
ALLOCATED = Measure.PEAK_PER_GPU_ALLOCATED
MEASURED = Kind.MEASURED
