"""Rules of the sizing estimator, one table per rule."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modeljob.core.jobs import (
    Architecture,
    Checkpointing,
    JobShape,
    ModelShape,
    Optimizer,
    Overrides,
    Precision,
    Workload,
    WorkloadType,
)
from modeljob.core.resources import GIB
from modeljob.core.sizing import Device, Estimate, SizingError, size_replica
from modeljob.core.sizing.constants import MAX_NODES_PER_REPLICA

H100 = Device(memory_bytes=80 * GIB)
RTX_24G = Device(memory_bytes=24 * GIB)

LLAMA_8B_ARCH = Architecture(32, 4096, 32, kv_heads=8, vocab_size=128_256, intermediate_size=14_336)
LLAMA_70B_ARCH = Architecture(80, 8192, 64, kv_heads=8, vocab_size=128_256, intermediate_size=28_672)


def make_model(
    parameters: int = 8_030_261_248,
    *,
    precision: Precision = Precision.BF16,
    architecture: Architecture | None = LLAMA_8B_ARCH,
    active_parameters: int | None = None,
) -> ModelShape:
    return ModelShape(
        parameters=parameters,
        precision=precision,
        architecture=architecture,
        active_parameters=active_parameters,
    )


def make_job(
    model: ModelShape | None = None,
    *,
    kind: WorkloadType = WorkloadType.INFERENCE,
    sequence_length: int = 4096,
    batch_size: int = 1,
    zero_stage: int = 0,
    replicas: int = 1,
    checkpointing: bool = False,
    optimizer: Optimizer = Optimizer.ADAMW,
    overrides: Overrides | None = None,
) -> JobShape:
    return JobShape(
        model or make_model(),
        Workload(
            kind,
            sequence_length=sequence_length,
            batch_size=batch_size,
            optimizer=optimizer,
            zero_stage=zero_stage,
            activation_checkpointing=Checkpointing.FULL if checkpointing else Checkpointing.NONE,
            replicas=replicas,
        ),
        overrides or Overrides(),
    )


def model_states(estimate: Estimate) -> int:
    return estimate.weights_bytes + estimate.gradients_bytes + estimate.optimizer_states_bytes


# --- the output contract ---------------------------------------------------------------------------


def test_to_dict_has_the_twelve_fields_of_the_design_and_the_layout_as_integers() -> None:
    result = size_replica(make_job(), H100).to_dict()
    assert list(result) == [
        "weightsBytes",
        "kvCacheBytes",
        "activationsBytes",
        "gradientsBytes",
        "optimizerStatesBytes",
        "overheadBytes",
        "totalBytes",
        "gpus",
        "gpuMemoryPerGpuBytes",
        "cpuMilli",
        "memoryBytes",
        "ephemeralStorageBytes",
        "tensorParallelSize",
        "pipelineParallelSize",
        "nodesPerReplica",
    ]
    assert all(type(value) is int for value in result.values())


JOBS = {
    "inference": make_job(),
    "training-zero3": make_job(kind=WorkloadType.TRAINING, zero_stage=3, replicas=8, checkpointing=True),
    "lora": make_job(kind=WorkloadType.LORA, checkpointing=True),
    "qlora-no-architecture": make_job(make_model(architecture=None), kind=WorkloadType.QLORA),
    "70b-on-24g": make_job(make_model(70_553_706_496, architecture=LLAMA_70B_ARCH)),
}


@pytest.mark.parametrize("job", JOBS.values(), ids=JOBS.keys())
def test_every_field_is_explained_and_its_last_rule_carries_its_value(job: JobShape) -> None:
    estimate = size_replica(job, RTX_24G)
    values = estimate.to_dict()
    last_rule = {rule.field: rule for rule in estimate.rules}
    assert set(last_rule) == set(values)
    for name, value in values.items():
        assert last_rule[name].value == value, name
        assert last_rule[name].explanation


@pytest.mark.parametrize("job", JOBS.values(), ids=JOBS.keys())
def test_total_is_the_sum_of_the_parts_and_the_per_gpu_share(job: JobShape) -> None:
    estimate = size_replica(job, H100)
    parts = (
        estimate.weights_bytes
        + estimate.kv_cache_bytes
        + estimate.activations_bytes
        + estimate.gradients_bytes
        + estimate.optimizer_states_bytes
        + estimate.overhead_bytes
    )
    assert estimate.total_bytes == parts == estimate.gpu_memory_per_gpu_bytes * estimate.gpus


def test_the_same_job_needs_more_small_gpus_than_large_ones() -> None:
    job = make_job(
        make_model(70_553_706_496, architecture=LLAMA_70B_ARCH), sequence_length=8192, batch_size=8
    )
    on_80g, on_24g = size_replica(job, H100), size_replica(job, RTX_24G)
    assert on_80g.fits
    assert on_24g.fits
    assert on_80g.gpus < on_24g.gpus
    assert on_80g.device_memory_bytes == 80 * GIB


# --- GPU count: a valid tensor-parallel size ---------------------------------------------------------


@pytest.mark.parametrize(
    ("heads", "kv_heads", "expected_gpus"),
    [
        pytest.param(32, 8, 4, id="32-heads-allow-4"),
        pytest.param(40, 8, 4, id="40-heads-allow-4"),
        pytest.param(12, 4, 4, id="12-heads-allow-4"),
        pytest.param(14, 2, 8, id="14-heads-skip-4-go-to-a-whole-node"),
        pytest.param(20, 5, 8, id="5-kv-heads-rule-out-tp-2-and-4"),
    ],
)
def test_gpu_count_is_the_smallest_tensor_parallel_size_the_heads_allow(
    heads: int, kv_heads: int, expected_gpus: int
) -> None:
    # ~60 GiB of bf16 weights: too big for one or two 24 GiB GPUs, fits four.
    arch = Architecture(48, 5120, heads, kv_heads=kv_heads, head_dim=128, vocab_size=32_000)
    job = make_job(make_model(32_000_000_000, architecture=arch), sequence_length=1024)
    estimate = size_replica(job, RTX_24G)
    assert estimate.fits
    assert estimate.gpus == expected_gpus


@pytest.mark.parametrize(
    ("parameters", "expected_gpus", "expected_nodes"),
    [
        pytest.param(1_000_000_000, 1, 1, id="1B-one-gpu"),
        pytest.param(30_000_000_000, 1, 1, id="30B-one-gpu"),
        pytest.param(70_000_000_000, 2, 1, id="70B-two-gpus"),
        pytest.param(100_000_000_000, 4, 1, id="100B-four-gpus"),
        pytest.param(250_000_000_000, 8, 1, id="250B-one-node"),
        pytest.param(405_000_000_000, 8, 2, id="405B-two-nodes"),
    ],
)
def test_gpus_are_1_2_4_8_then_whole_nodes(parameters: int, expected_gpus: int, expected_nodes: int) -> None:
    estimate = size_replica(make_job(make_model(parameters, architecture=None), sequence_length=2048), H100)
    assert (estimate.gpus, estimate.nodes_per_replica) == (expected_gpus, expected_nodes)
    assert estimate.tensor_parallel_size * estimate.pipeline_parallel_size == expected_gpus * expected_nodes
    assert estimate.gpu_memory_per_gpu_bytes <= 80 * GIB * 9 // 10


def test_smaller_nodes_cap_tensor_parallel_at_their_gpu_count() -> None:
    four_gpu_node = Device(memory_bytes=80 * GIB, gpus_per_node=4)
    estimate = size_replica(make_job(make_model(250_000_000_000, architecture=None)), four_gpu_node)
    assert estimate.gpus == 4
    assert estimate.tensor_parallel_size <= 4
    assert estimate.nodes_per_replica > 1


def test_an_absurd_model_on_24_gib_gpus_does_not_fit() -> None:
    estimate = size_replica(make_job(make_model(20 * 10**12, architecture=None)), RTX_24G)
    assert not estimate.fits
    assert (estimate.gpus, estimate.nodes_per_replica) == (8, MAX_NODES_PER_REPLICA)
    assert "does NOT fit" in {rule.field: rule for rule in estimate.rules}["gpus"].explanation


# --- weights --------------------------------------------------------------------------------------


def test_lower_precision_means_smaller_weights() -> None:
    sizes = [
        size_replica(make_job(make_model(precision=precision)), H100).weights_bytes
        for precision in (
            Precision.FP32,
            Precision.BF16,
            Precision.INT8,
            Precision.FP8,
            Precision.NF4,
            Precision.INT4,
        )
    ]
    assert sizes == sorted(sizes, reverse=True)
    assert len(set(sizes)) == len(sizes)


@pytest.mark.parametrize(
    ("precision", "bytes_per_parameter"),
    [(Precision.FP32, 4), (Precision.BF16, 2), (Precision.FP16, 2)],
)
def test_unquantized_weights_are_parameters_times_their_width(
    precision: Precision, bytes_per_parameter: int
) -> None:
    estimate = size_replica(make_job(make_model(7_000_000_000, precision=precision)), H100)
    assert estimate.weights_bytes == 7_000_000_000 * bytes_per_parameter


def test_quantized_weights_keep_embeddings_in_16_bit() -> None:
    plain = size_replica(make_job(make_model(precision=Precision.INT4, architecture=None)), H100)
    big_vocab = replace(LLAMA_8B_ARCH, vocab_size=256_000)
    small_vocab = replace(LLAMA_8B_ARCH, vocab_size=32_000)
    assert plain.weights_bytes > 8_030_261_248 // 2
    big = size_replica(make_job(make_model(precision=Precision.INT4, architecture=big_vocab)), H100)
    small = size_replica(make_job(make_model(precision=Precision.INT4, architecture=small_vocab)), H100)
    assert big.weights_bytes > small.weights_bytes


def test_moe_weights_follow_total_not_active_parameters() -> None:
    dense = size_replica(make_job(make_model(46_700_000_000)), H100)
    moe = size_replica(make_job(make_model(46_700_000_000, active_parameters=12_900_000_000)), H100)
    assert moe.weights_bytes == dense.weights_bytes == 2 * 46_700_000_000
    assert "MoE" in next(rule.explanation for rule in moe.rules if rule.field == "weightsBytes")


# --- KV cache ---------------------------------------------------------------------------------------


def test_kv_cache_is_two_times_layers_kv_heads_head_dim_bytes_tokens() -> None:
    estimate = size_replica(make_job(sequence_length=8192, batch_size=8), H100)
    assert estimate.kv_cache_bytes == 2 * 32 * 8 * 128 * 2 * 8192 * 8


def test_kv_heads_are_replicated_when_tensor_parallel_exceeds_them() -> None:
    arch = Architecture(80, 8192, 64, kv_heads=2, vocab_size=128_256, intermediate_size=28_672)
    job = make_job(make_model(70_553_706_496, architecture=arch), sequence_length=8192)
    estimate = size_replica(job, H100)
    per_token_total = 2 * 80 * 2 * 128 * 2 * 8192
    assert estimate.gpus == 4
    assert estimate.kv_cache_bytes == per_token_total * 4 // 2  # 4 GPUs hold 2 distinct heads twice


def test_missing_architecture_assumes_a_cache_at_least_as_large_as_real_gqa_models() -> None:
    for parameters, arch in ((8_030_261_248, LLAMA_8B_ARCH), (70_553_706_496, LLAMA_70B_ARCH)):
        declared = make_job(make_model(parameters, architecture=arch), sequence_length=32_768)
        derived = make_job(make_model(parameters, architecture=None), sequence_length=32_768)
        declared_kv = size_replica(replace(declared, overrides=Overrides(gpus=1)), H100).kv_cache_bytes
        derived_kv = size_replica(replace(derived, overrides=Overrides(gpus=1)), H100).kv_cache_bytes
        assert derived_kv >= declared_kv


def test_training_keeps_no_kv_cache_and_inference_no_gradients() -> None:
    training = size_replica(make_job(kind=WorkloadType.TRAINING, checkpointing=True), H100)
    inference = size_replica(make_job(), H100)
    assert training.kv_cache_bytes == 0
    assert inference.gradients_bytes == inference.optimizer_states_bytes == 0


# --- training -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "bytes_per_parameter_x8"),
    [
        pytest.param(0, 16 * 8, id="stage-0-nothing-sharded"),
        pytest.param(1, 4 * 8 + 16, id="stage-1-4P+16P/N"),
        pytest.param(2, 2 * 8 + 18, id="stage-2-2P+18P/N"),
        pytest.param(3, 18, id="stage-3-18P/N"),
    ],
)
def test_zero_stages_shard_model_states_as_deepspeeds_estimators_count(
    stage: int, bytes_per_parameter_x8: int
) -> None:
    """Mixed-precision AdamW over 8 data-parallel ranks (DeepSpeed stage_1_and_2.py / stage3.py)."""
    job = make_job(
        make_model(8_000_000_000, architecture=None), kind=WorkloadType.TRAINING, zero_stage=stage, replicas=8
    )
    assert model_states(size_replica(job, H100)) == bytes_per_parameter_x8 * 1_000_000_000


def test_zero_with_one_rank_shards_nothing() -> None:
    one = make_job(make_model(1_000_000_000, architecture=None), kind=WorkloadType.TRAINING, zero_stage=3)
    assert model_states(size_replica(one, H100)) == 18 * 1_000_000_000


@pytest.mark.parametrize(
    ("optimizer", "bytes_per_parameter"),
    [(Optimizer.ADAMW, 12), (Optimizer.ADAM8BIT, 6), (Optimizer.SGD, 8)],  # fp32 master + moments
)
def test_optimizer_states_per_parameter(optimizer: Optimizer, bytes_per_parameter: int) -> None:
    job = make_job(
        make_model(1_000_000_000, architecture=None), kind=WorkloadType.TRAINING, optimizer=optimizer
    )
    estimate = size_replica(job, H100)
    assert estimate.optimizer_states_bytes == bytes_per_parameter * 1_000_000_000


def test_mixed_precision_adamw_counts_the_zero_papers_16_bytes_per_parameter() -> None:
    estimate = size_replica(
        make_job(make_model(1_000_000_000, architecture=None), kind=WorkloadType.TRAINING), H100
    )
    assert model_states(estimate) == 16 * 1_000_000_000


@pytest.mark.parametrize("kind", [WorkloadType.TRAINING, WorkloadType.LORA, WorkloadType.QLORA])
def test_activation_checkpointing_shrinks_activations(kind: WorkloadType) -> None:
    stored = size_replica(make_job(kind=kind, sequence_length=8192), H100)
    recomputed = size_replica(make_job(kind=kind, sequence_length=8192, checkpointing=True), H100)
    assert recomputed.activations_bytes < stored.activations_bytes / 2


def test_activations_grow_with_sequence_and_batch() -> None:
    short = size_replica(make_job(kind=WorkloadType.LORA, sequence_length=1024, checkpointing=True), H100)
    long = size_replica(make_job(kind=WorkloadType.LORA, sequence_length=4096, checkpointing=True), H100)
    wide = size_replica(
        make_job(kind=WorkloadType.LORA, sequence_length=1024, batch_size=4, checkpointing=True), H100
    )
    assert long.activations_bytes > short.activations_bytes
    assert wide.activations_bytes > short.activations_bytes


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(make_model(), id="llama-8b"),
        pytest.param(make_model(70_553_706_496, architecture=LLAMA_70B_ARCH), id="llama-70b"),
        pytest.param(make_model(13_000_000_000, architecture=None), id="13b-no-architecture"),
    ],
)
def test_qlora_needs_less_than_lora_which_needs_less_than_full_training(model: ModelShape) -> None:
    totals = [
        size_replica(make_job(model, kind=kind, sequence_length=2048, checkpointing=True), H100).total_bytes
        for kind in (WorkloadType.QLORA, WorkloadType.LORA, WorkloadType.TRAINING)
    ]
    assert totals == sorted(totals)
    assert len(set(totals)) == 3


def test_lora_rank_sizes_the_adapters() -> None:
    low = size_replica(
        replace(make_job(kind=WorkloadType.LORA), workload=Workload(WorkloadType.LORA, lora_rank=8)), H100
    )
    high = size_replica(
        replace(make_job(kind=WorkloadType.LORA), workload=Workload(WorkloadType.LORA, lora_rank=256)), H100
    )
    assert high.optimizer_states_bytes == 32 * low.optimizer_states_bytes
    assert high.gradients_bytes > low.gradients_bytes > 0


# --- overrides --------------------------------------------------------------------------------------


def test_explicit_overrides_win_and_the_rule_says_so() -> None:
    overrides = Overrides(gpus=8, cpu_milli=12_345, memory_bytes=99 * GIB, ephemeral_storage_bytes=7 * GIB)
    estimate = size_replica(make_job(overrides=overrides), H100)
    assert (estimate.gpus, estimate.cpu_milli, estimate.memory_bytes, estimate.ephemeral_storage_bytes) == (
        8,
        12_345,
        99 * GIB,
        7 * GIB,
    )
    explained = {rule.field: rule.explanation for rule in estimate.rules}
    for name in ("gpus", "cpuMilli", "memoryBytes", "ephemeralStorageBytes"):
        assert "override" in explained[name], name


def test_a_gpu_override_too_small_for_the_model_is_reported_as_not_fitting() -> None:
    job = make_job(make_model(70_553_706_496, architecture=LLAMA_70B_ARCH), overrides=Overrides(gpus=1))
    estimate = size_replica(job, H100)
    assert estimate.gpus == 1
    assert not estimate.fits


# --- host resources ---------------------------------------------------------------------------------


def test_cpu_has_the_nim_floor_and_grows_with_gpus() -> None:
    one = size_replica(make_job(), H100)
    eight = size_replica(make_job(make_model(250_000_000_000, architecture=None)), H100)
    training = size_replica(make_job(kind=WorkloadType.TRAINING, checkpointing=True), H100)
    assert one.cpu_milli == 8_000
    assert eight.cpu_milli == 32_000
    assert training.cpu_milli >= one.cpu_milli


def test_host_memory_counts_the_checkpoint_and_shared_memory() -> None:
    single = size_replica(make_job(), H100)
    multi = size_replica(make_job(overrides=Overrides(gpus=2)), H100)
    assert single.memory_bytes == single.weights_bytes + 10 * GIB + 1 * GIB
    assert multi.memory_bytes - single.memory_bytes == 15 * GIB  # /dev/shm 16 GiB instead of 1 GiB


def test_training_host_memory_follows_deepspeeds_start_up_rule() -> None:
    job = make_job(make_model(1_000_000_000, architecture=None), kind=WorkloadType.TRAINING)
    estimate = size_replica(job, H100)
    assert estimate.memory_bytes == 6 * 1_000_000_000 + 10 * GIB + 1 * GIB


def test_disk_follows_kaitos_rule_rounded_to_10_gib() -> None:
    estimate = size_replica(make_job(make_model(10 * GIB // 2, architecture=None)), H100)
    # checkpoint 10 GiB x 2.5 + 48 GiB = 73 GiB -> 80 GiB
    assert estimate.ephemeral_storage_bytes == 80 * GIB


# --- bad input --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "device", "path"),
    [
        pytest.param(
            make_job(make_model(precision=Precision.INT4), kind=WorkloadType.TRAINING),
            H100,
            "spec.model.precision",
            id="full-training-of-int4",
        ),
        pytest.param(
            make_job(make_model(architecture=replace(LLAMA_8B_ARCH, kv_heads=5))),
            H100,
            "spec.model.architecture.kvHeads",
            id="kv-heads-not-dividing-heads",
        ),
        pytest.param(
            make_job(make_model(architecture=Architecture(32, 4000, 3))),
            H100,
            "spec.model.architecture.headDim",
            id="hidden-not-multiple-of-heads",
        ),
        pytest.param(make_job(make_model(0)), H100, "spec.model.parameters", id="no-parameters"),
        pytest.param(make_job(zero_stage=4), H100, "spec.workload.zeroStage", id="zero-stage-4"),
        pytest.param(make_job(sequence_length=0), H100, "spec.workload.sequenceLength", id="empty-sequence"),
        pytest.param(make_job(), Device(memory_bytes=0), "spec.accelerator.memoryPerDevice", id="no-memory"),
        pytest.param(make_job(overrides=Overrides(gpus=0)), H100, "spec.resources.gpus", id="zero-gpus"),
    ],
)
def test_unsizeable_jobs_name_the_field(job: JobShape, device: Device, path: str) -> None:
    with pytest.raises(SizingError) as raised:
        size_replica(job, device)
    assert str(raised.value).startswith(f"{path}: ")
