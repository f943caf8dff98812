"""Training sizing as the stacks run it: defaults, frameworks, offload, checkpointing, runtime parts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modeljob.core.jobs import (
    Architecture,
    Checkpointing,
    Framework,
    JobShape,
    LoraTargets,
    ModelShape,
    Offload,
    Overrides,
    Precision,
    Workload,
    WorkloadType,
)
from modeljob.core.resources import GIB
from modeljob.core.sizing import Device, size_replica
from modeljob.core.sizing.defaults import recipe
from tests.core.sizing_readings import (
    LLAMA_8B,
    LLAMA_8B_EMBEDDING,
    LLAMA_8B_LAYER,
    overhead_with,
    rule,
    states,
)

H100 = Device(memory_bytes=80 * GIB)
B = 1_000_000_000


def job(kind: WorkloadType = WorkloadType.TRAINING, model: ModelShape = LLAMA_8B, **work: object) -> JobShape:
    return JobShape(model, Workload(kind, sequence_length=2048, **work))  # type: ignore[arg-type]


def one_gpu(shape: JobShape) -> JobShape:
    return replace(shape, overrides=Overrides(gpus=1))


# --- the stacks' defaults --------------------------------------------------------------------------


def test_each_stack_fills_in_what_the_spec_leaves_open() -> None:
    lora, qlora = WorkloadType.LORA, WorkloadType.QLORA
    transformers_lora = recipe(Workload(lora))
    assert (transformers_lora.lora_rank, transformers_lora.lora_targets) == (8, LoraTargets.ATTENTION)
    assert transformers_lora.checkpointing is Checkpointing.FULL
    transformers_qlora = recipe(Workload(qlora))
    assert (transformers_qlora.lora_rank, transformers_qlora.lora_targets) == (64, LoraTargets.ALL_LINEAR)
    assert recipe(Workload(WorkloadType.TRAINING)).checkpointing is Checkpointing.NONE
    torchtune_qlora = recipe(Workload(qlora, framework=Framework.TORCHTUNE))
    assert (torchtune_qlora.lora_rank, torchtune_qlora.lora_targets) == (8, LoraTargets.ATTENTION_AND_MLP)
    titan = recipe(Workload(WorkloadType.TRAINING, framework=Framework.TORCHTITAN))
    assert titan.checkpointing is Checkpointing.SELECTIVE


def test_what_the_spec_says_wins_over_the_stack() -> None:
    chosen = recipe(Workload(WorkloadType.LORA, lora_rank=32, activation_checkpointing=Checkpointing.NONE))
    assert (chosen.lora_rank, chosen.checkpointing) == (32, Checkpointing.NONE)


@pytest.mark.parametrize(
    ("framework", "bytes_per_parameter"),
    [
        pytest.param(Framework.TRANSFORMERS, 16, id="mixed-precision-with-fp32-master"),
        pytest.param(Framework.TORCHTITAN, 16, id="fp32-sharded-parameters"),
        pytest.param(Framework.TORCHTUNE, 8, id="pure-bf16"),
    ],
)
def test_full_training_model_states_follow_the_stacks_precision(
    framework: Framework, bytes_per_parameter: int
) -> None:
    model = ModelShape(parameters=B)
    estimate = size_replica(one_gpu(job(model=model, framework=framework)), H100)
    assert states(estimate) == bytes_per_parameter * B


# Bytes per logit at each stack's loss peak (defaults.py, "Logits and loss"): Transformers is
# charged the 14 B of its 4.46-4.48 ForCausalLMLoss, since a spec cannot rule those versions out;
# torchtitan's and the QLoRA scripts' (pinned transformers 4.31.0) losses peak at 12 B, torchtune's
# chunked loss at 3 B.
@pytest.mark.parametrize(
    ("framework", "bytes_per_logit"),
    [
        (Framework.TRANSFORMERS, 14),
        (Framework.TORCHTITAN, 12),
        (Framework.QLORA_SCRIPTS, 12),
        (Framework.TORCHTUNE, 3),
    ],
)
def test_each_stack_is_charged_its_own_loss_peak_per_logit(
    framework: Framework, bytes_per_logit: int
) -> None:
    def logits_part(framework: Framework) -> int:
        shape = job(WorkloadType.LORA, framework=framework, activation_checkpointing=Checkpointing.FULL)
        return size_replica(one_gpu(shape), H100).activations_bytes

    layers_part = logits_part(Framework.TORCHTUNE) - 3 * 2048 * 128_256
    assert logits_part(framework) - layers_part == bytes_per_logit * 2048 * 128_256


# --- LoRA and QLoRA --------------------------------------------------------------------------------


def test_adapters_on_the_mlp_too_are_more_adapters_and_all_linear_is_the_same_linears() -> None:
    def adapters(targets: LoraTargets) -> int:
        return size_replica(job(WorkloadType.LORA, lora_targets=targets), H100).gradients_bytes

    assert adapters(LoraTargets.ATTENTION) < adapters(LoraTargets.ATTENTION_AND_MLP)
    assert adapters(LoraTargets.ATTENTION_AND_MLP) == adapters(LoraTargets.ALL_LINEAR)


def test_qlora_quantizes_a_16_bit_checkpoint_with_double_quantization() -> None:
    on_load = size_replica(job(WorkloadType.QLORA), H100)
    pre_quantized = size_replica(
        job(WorkloadType.QLORA, model=replace(LLAMA_8B, precision=Precision.NF4)), H100
    )
    assert on_load.weights_bytes < pre_quantized.weights_bytes
    assert "double quantization" in rule(on_load, "weightsBytes")
    assert "PEFT's fp32 upcast" in rule(on_load, "weightsBytes")


def test_the_qlora_scripts_keep_adapters_and_embeddings_in_bf16() -> None:
    peft = size_replica(job(WorkloadType.QLORA), H100)
    scripts = size_replica(job(WorkloadType.QLORA, framework=Framework.QLORA_SCRIPTS), H100)
    embeddings = 2 * 128_256 * 4096
    assert peft.weights_bytes - scripts.weights_bytes >= 2 * embeddings  # fp32 -> bf16
    assert scripts.gradients_bytes * 2 == peft.gradients_bytes


def test_torchtunes_qlora_holds_at_least_the_load_time_nf4_quantization_peak() -> None:
    # torchao's to_nf4 holds 68 B per element of the linear it quantizes (two 16-wide bf16
    # distance tensors and the bf16 source twice); Llama-3.1-8B's largest is an MLP linear.
    scratch = 68 * 4096 * 14_336
    short = job(WorkloadType.QLORA, framework=Framework.TORCHTUNE, batch_size=1)
    short = replace(short, workload=replace(short.workload, sequence_length=128))
    small_step = size_replica(short, H100)
    tensors = states(small_step) + small_step.activations_bytes
    assert tensors < small_step.weights_bytes + scratch
    assert (
        small_step.gpu_memory_per_gpu_bytes - small_step.runtime_per_gpu_bytes
        >= small_step.weights_bytes + scratch
    )
    assert "load-time NF4 quantization" in rule(small_step, "overheadBytes")
    transformers = size_replica(replace(short, workload=replace(short.workload, framework=None)), H100)
    assert "load-time NF4 quantization" not in rule(transformers, "overheadBytes")


# --- offload -------------------------------------------------------------------------------------------


def test_offloading_the_optimizer_moves_its_states_to_host_memory() -> None:
    stays = size_replica(job(zero_stage=2, replicas=8), H100)
    moved = size_replica(job(zero_stage=2, replicas=8, offload=Offload.OPTIMIZER), H100)
    assert moved.optimizer_states_bytes == 0
    assert moved.gpu_memory_per_gpu_bytes < stays.gpu_memory_per_gpu_bytes
    offloaded = stays.optimizer_states_bytes  # master + moments, per rank
    assert moved.memory_bytes - stays.memory_bytes >= offloaded * 3 // 2  # + DeepSpeed's 1.5 buffers
    assert "offloaded to host memory" in rule(moved, "memoryBytes")


def test_offloading_parameters_too_leaves_no_model_state_on_the_gpu() -> None:
    estimate = size_replica(job(zero_stage=3, replicas=8, offload=Offload.OPTIMIZER_AND_PARAMETERS), H100)
    assert states(estimate) == 0


# An fp32 checkpoint with a tied 250,880 x 4096 embedding, its largest layer (bigscience/bloomz-7b1).
FP32_BIG_VOCAB = ModelShape(
    parameters=7_069_016_064,
    precision=Precision.FP32,
    architecture=Architecture(30, 4096, 32, vocab_size=250_880, intermediate_size=16_384),
)


BUCKET = 500_000_000  # DeepSpeed's reduce_bucket_size


def test_zero3_steps_the_optimizer_where_it_runs_and_on_the_trainable_parameters_only() -> None:
    lora = size_replica(one_gpu(job(WorkloadType.LORA, zero_stage=3, replicas=8)), H100)
    full = size_replica(one_gpu(job(zero_stage=3, replicas=8)), H100)
    offloaded = size_replica(one_gpu(job(zero_stage=3, replicas=8, offload=Offload.OPTIMIZER)), H100)
    adapters = 6_815_744  # rank 8 on q, k, v, o of 32 layers
    # bf16: the bucket, its reduce-scatter copy (at most the trainable parameters) and the step's
    # sub-group (the rank's share of the trainable parameters, capped by sub_group_size 1e9)
    # flattened at 2 B and made fp32 at 4 B; gathered: the larger of DeepSpeed's 1e9 live
    # parameters, the largest layer (the embedding, frozen under LoRA) and FSDP's two layers.
    step = (adapters // 8) * (2 + 4)
    lora_gathered = max(2 * 10**9, 2 * LLAMA_8B_EMBEDDING, 2 * 2 * 2 * LLAMA_8B_LAYER)
    assert lora.overhead_bytes == overhead_with(lora, 2 * BUCKET + 2 * adapters + step + lora_gathered)
    full_gathered = max(2 * 10**9, (2 + 2) * LLAMA_8B_EMBEDDING, 2 * 2 * 2 * LLAMA_8B_LAYER)
    full_step = 10**9 * (2 + 4)
    assert full.overhead_bytes == overhead_with(full, 2 * BUCKET + 2 * BUCKET + full_step + full_gathered)
    # The optimizer steps in host memory: no sub-group buffer on the GPU.
    assert offloaded.overhead_bytes == overhead_with(offloaded, 2 * BUCKET + 2 * BUCKET + full_gathered)
    assert "sub-group of the trainable parameters flattened and made fp32" in rule(lora, "overheadBytes")


def test_zero3_buffers_are_at_the_compute_dtype_and_an_offloaded_layer_is_copied_in_beside_its_gather() -> (
    None
):
    work = Workload(
        WorkloadType.LORA,
        sequence_length=64,
        batch_size=8,
        zero_stage=3,
        offload=Offload.OPTIMIZER_AND_PARAMETERS,
    )
    estimate = size_replica(JobShape(FP32_BIG_VOCAB, work, Overrides(gpus=1)), H100)
    # An fp32 checkpoint under Transformers computes in fp32: every buffer at 4 B.
    adapters = 30 * 8 * 4 * (4096 + 4096)  # rank 8 on q, k, v, o of 30 layers
    embedding = 250_880 * 4096
    # the bucket and its reduce-scatter copy; no step buffer (the optimizer is in host memory); the
    # gathered fp32 embedding and its partition's copy from host memory
    buffers = 4 * BUCKET + 4 * adapters + 2 * 4 * embedding
    assert estimate.overhead_bytes == overhead_with(estimate, buffers)


# --- activations -------------------------------------------------------------------------------------


def test_selective_checkpointing_keeps_less_than_none_and_more_than_full() -> None:
    def acts(mode: Checkpointing) -> int:
        return size_replica(one_gpu(job(activation_checkpointing=mode)), H100).activations_bytes

    assert acts(Checkpointing.FULL) < acts(Checkpointing.SELECTIVE) < acts(Checkpointing.NONE)


def test_an_fp32_checkpoint_computes_in_fp32_under_transformers_only() -> None:
    fp32 = replace(LLAMA_8B, precision=Precision.FP32)
    for kind in (WorkloadType.TRAINING, WorkloadType.LORA):
        bf16 = size_replica(one_gpu(job(kind)), H100).activations_bytes
        full = size_replica(one_gpu(job(kind, model=fp32)), H100).activations_bytes
        # fp32 saved activations; the loss is charged 14 B per logit either way (the 16-bit peak of
        # Transformers 4.46-4.48; in fp32 that loss holds 12 B, the upcast a no-op: the safe side)
        logits = 14 * 2048 * 128_256
        assert full == 2 * (bf16 - logits) + logits, kind
    # QLoRA computes in its 16-bit compute dtype, torchtune and torchtitan in bf16, whatever the
    # checkpoint: the same activations either way.
    for kind, framework in [
        (WorkloadType.QLORA, None),
        (WorkloadType.LORA, Framework.TORCHTUNE),
        (WorkloadType.TRAINING, Framework.TORCHTUNE),
        (WorkloadType.TRAINING, Framework.TORCHTITAN),
    ]:
        acts = [
            size_replica(one_gpu(job(kind, model=model, framework=framework)), H100).activations_bytes
            for model in (LLAMA_8B, fp32)
        ]
        assert acts[0] == acts[1], (kind, framework)


def test_tensor_parallel_training_splits_every_activation_with_sequence_parallelism() -> None:
    def per_gpu(gpus: int) -> int:
        shape = replace(job(activation_checkpointing=Checkpointing.NONE), overrides=Overrides(gpus=gpus))
        estimate = size_replica(shape, H100)
        return estimate.activations_bytes // (estimate.gpus * estimate.nodes_per_replica)

    assert per_gpu(2) * 2 == pytest.approx(per_gpu(1), rel=0.001)


# --- the runtime's parts ----------------------------------------------------------------------------


def test_nccl_is_counted_only_when_a_gpu_talks_to_another() -> None:
    alone = rule(size_replica(one_gpu(job()), H100), "overheadBytes")
    data_parallel = rule(size_replica(one_gpu(job(replicas=4)), H100), "overheadBytes")
    assert "NCCL" not in alone
    assert "NCCL" in data_parallel


def test_cuda_graphs_are_counted_for_serving_only_and_a_small_model_gets_a_small_reserve() -> None:
    small = ModelShape(parameters=494_032_768, architecture=Architecture(24, 896, 14, 2, None, 151_936, 4864))
    serving = size_replica(job(WorkloadType.INFERENCE, model=small), H100)
    assert "CUDA graphs" in rule(serving, "overheadBytes")
    assert "CUDA graphs" not in rule(size_replica(job(model=small), H100), "overheadBytes")
    assert serving.runtime_per_gpu_bytes < 2 * GIB
    big = size_replica(job(WorkloadType.INFERENCE, model=ModelShape(parameters=70 * B)), H100)
    assert big.runtime_per_gpu_bytes > serving.runtime_per_gpu_bytes
