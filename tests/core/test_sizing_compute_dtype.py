"""The dtype a job computes in, one rule of (stack, checkpoint, workload type), and what follows from it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modeljob.core.jobs import (
    Architecture,
    Framework,
    JobShape,
    ModelShape,
    Overrides,
    Precision,
    Workload,
    WorkloadType,
)
from modeljob.core.resources import GIB
from modeljob.core.sizing import Device, size_replica
from modeljob.core.sizing.defaults import compute_bytes
from tests.core.sizing_readings import (
    LLAMA_8B,
    LLAMA_8B_EMBEDDING,
    LLAMA_8B_LAYER,
    overhead_with,
    rule,
    states,
)

BIG = Device(memory_bytes=400 * GIB)  # room for an fp32 70B rank: the bytes are what is checked
LLAMA2_70B = ModelShape(
    parameters=68_976_648_192,
    architecture=Architecture(80, 8192, 64, kv_heads=8, vocab_size=32_000, intermediate_size=28_672),
)
LLAMA2_70B_LAYER = (68_976_648_192 - 2 * 32_000 * 8192) // 80  # 855,654,502


def sharded(kind: WorkloadType, model: ModelShape, framework: Framework | None = None) -> JobShape:
    work = Workload(kind, sequence_length=2048, zero_stage=3, replicas=8, framework=framework)
    return JobShape(model, work, Overrides(gpus=1))


@pytest.mark.parametrize(
    ("framework", "kind", "precision", "expected"),
    [
        # Transformers and the QLoRA scripts: the checkpoint's dtype (mixed precision is off unless
        # asked for, and the spec cannot ask).
        pytest.param(None, WorkloadType.TRAINING, Precision.FP32, 4, id="transformers-fp32-trains-in-fp32"),
        pytest.param(None, WorkloadType.LORA, Precision.FP32, 4, id="transformers-lora-over-fp32"),
        pytest.param(None, WorkloadType.TRAINING, Precision.BF16, 2, id="transformers-bf16"),
        pytest.param(
            Framework.QLORA_SCRIPTS, WorkloadType.LORA, Precision.FP32, 4, id="qlora-scripts-lora-fp32"
        ),
        # QLoRA computes in its 16-bit compute dtype over the NF4 base.
        pytest.param(None, WorkloadType.QLORA, Precision.FP32, 2, id="qlora-over-an-fp32-checkpoint"),
        # torchtune runs its configured bf16; torchtitan casts its fp32 shards to bf16.
        pytest.param(Framework.TORCHTUNE, WorkloadType.TRAINING, Precision.FP32, 2, id="torchtune-bf16"),
        pytest.param(Framework.TORCHTUNE, WorkloadType.LORA, Precision.FP32, 2, id="torchtune-lora-bf16"),
        pytest.param(Framework.TORCHTITAN, WorkloadType.TRAINING, Precision.FP32, 2, id="torchtitan-bf16"),
    ],
)
def test_the_compute_dtype_follows_the_stack_and_the_workload(
    framework: Framework | None, kind: WorkloadType, precision: Precision, expected: int
) -> None:
    model = replace(LLAMA_8B, precision=precision)
    assert compute_bytes(JobShape(model, Workload(kind, framework=framework))) == expected


def test_fsdp_gathers_its_layers_at_the_compute_dtype() -> None:
    # fp32 full training of Llama-2-70B over 8 ranks: FSDP's two layers in flight and their
    # gradients are fp32, 2 x 855,654,502 x (4 + 4) B = 13.7 GB, not the 16-bit 6.8 GB.
    estimate = size_replica(
        sharded(WorkloadType.TRAINING, replace(LLAMA2_70B, precision=Precision.FP32)), BIG
    )
    in_flight = 2 * LLAMA2_70B_LAYER * (4 + 4)
    # the bucket and its reduce-scatter copy at 4 B, the fp32 step sub-group (no conversion copy)
    buffers = 4 * 500_000_000 + 4 * 500_000_000 + 4 * 10**9 + in_flight
    assert estimate.overhead_bytes == overhead_with(estimate, buffers)
    assert "(4 B + 4 B gradient)" in rule(estimate, "overheadBytes")


def test_qlora_buffers_are_16_bit_whatever_the_checkpoint() -> None:
    bf16, fp32 = (
        size_replica(sharded(WorkloadType.QLORA, replace(LLAMA_8B, precision=precision)), BIG)
        for precision in (Precision.BF16, Precision.FP32)
    )
    assert fp32.overhead_bytes == bf16.overhead_bytes
    assert "x 2 B (the compute dtype)" in rule(fp32, "overheadBytes")


@pytest.mark.parametrize("framework", [Framework.TORCHTITAN, Framework.TORCHTUNE])
def test_fsdp_only_stacks_carry_no_deepspeed_buffers(framework: Framework) -> None:
    estimate = size_replica(sharded(WorkloadType.TRAINING, LLAMA_8B, framework), BIG)
    # FSDP's gathered parameters alone: the larger of the largest layer and two layers in flight,
    # each with its gradient; no bucket, no sub-group step buffer, no live window.
    gathered = max((2 + 2) * LLAMA_8B_EMBEDDING, 2 * (2 + 2) * LLAMA_8B_LAYER)
    assert estimate.overhead_bytes == overhead_with(estimate, gathered)
    assert "DeepSpeed" not in rule(estimate, "overheadBytes")


def test_torchtune_trains_an_fp32_checkpoint_in_pure_bf16() -> None:
    bf16, fp32 = (
        size_replica(
            JobShape(
                replace(LLAMA_8B, precision=precision),
                Workload(WorkloadType.TRAINING, framework=Framework.TORCHTUNE),
            ),
            BIG,
        )
        for precision in (Precision.BF16, Precision.FP32)
    )
    assert states(fp32) == states(bf16) == 8 * LLAMA_8B.parameters
