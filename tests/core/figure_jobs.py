"""The settings the figures describe, stated as the JobShape the estimator sizes."""

from __future__ import annotations

from modeljob.core.jobs import (
    Checkpointing,
    Framework,
    JobShape,
    ModelShape,
    Offload,
    Optimizer,
    Overrides,
    Workload,
    WorkloadType,
)


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
