"""Host resources of one replica: CPU, RAM (with /dev/shm) and scratch disk."""

from __future__ import annotations

from modeljob.core.jobs import JobShape, WorkloadType
from modeljob.core.resources import format_bytes
from modeljob.core.sizing.constants import (
    _BF16,
    _QUANTIZED,
    _WEIGHT_RATES,
    DEEPSPEED_STARTUP_BYTES_PER_PARAM_DEN,
    DEEPSPEED_STARTUP_BYTES_PER_PARAM_NUM,
    DISK_CHECKPOINT_FACTOR_DEN,
    DISK_CHECKPOINT_FACTOR_NUM,
    DISK_FIXED_BYTES,
    DISK_ROUNDING_BYTES,
    INFERENCE_CPU_MILLI_PER_GPU,
    NODE_CPU_FLOOR_MILLI,
    NODE_SYSTEM_MEMORY_BYTES,
    SHM_MULTI_GPU_BYTES_PER_NODE,
    SHM_SINGLE_GPU_BYTES,
    TRAINING_CPU_MILLI_PER_GPU,
    _ceil_div,
)
from modeljob.core.sizing.inputs import _Shape

# --- host resources -----------------------------------------------------------------------------


def _checkpoint_bytes(job: JobShape, shape: _Shape) -> int:
    """Size of the checkpoint as downloaded: the declared precision (QLoRA quantizes on load)."""
    precision = job.model.precision
    if precision in _QUANTIZED:
        return _WEIGHT_RATES[precision].of(shape.linear_parameters) + _BF16.of(shape.embedding_parameters)
    return _WEIGHT_RATES[precision].of(shape.parameters)


def _cpu(job: JobShape, gpus: int, nodes: int) -> tuple[int, str]:
    per_gpu = TRAINING_CPU_MILLI_PER_GPU if job.workload.type.trains else INFERENCE_CPU_MILLI_PER_GPU
    floor = NODE_CPU_FLOOR_MILLI * nodes
    value = max(floor, per_gpu * gpus)
    return value, (
        f"max({per_gpu // 1000} cores x {gpus} GPUs, "
        f"NIM floor {NODE_CPU_FLOOR_MILLI // 1000} cores x {nodes} node(s))"
    )


def shared_memory_per_node_bytes(gpus: int) -> int:
    """Shared memory (/dev/shm) on each node of a replica: 1 GiB for one GPU, else 16 GiB."""
    return SHM_SINGLE_GPU_BYTES if gpus == 1 else SHM_MULTI_GPU_BYTES_PER_NODE


def _host_memory(job: JobShape, shape: _Shape, gpus: int, nodes: int) -> tuple[int, str]:
    work = job.workload
    shm = shared_memory_per_node_bytes(gpus) * nodes
    system = NODE_SYSTEM_MEMORY_BYTES * nodes
    if work.type is WorkloadType.TRAINING:
        per_rank = _ceil_div(
            shape.parameters * DEEPSPEED_STARTUP_BYTES_PER_PARAM_NUM, DEEPSPEED_STARTUP_BYTES_PER_PARAM_DEN
        )
        if work.zero_stage == 3:
            # zero.Init builds only each rank's partition of the fp32 model.
            per_rank = _ceil_div(per_rank, work.replicas)
            staging_text = (
                f"ZeRO-3 zero.Init: 4 B x 1.5 x {shape.parameters:,} params / {work.replicas} replicas"
                " per rank"
            )
        else:
            staging_text = f"DeepSpeed start-up: 4 B x 1.5 x {shape.parameters:,} params per rank"
        staging = per_rank * gpus
        staging_text += f" x {gpus} GPUs"
    else:
        staging = _checkpoint_bytes(job, shape)
        staging_text = (
            f"checkpoint staged in RAM once ({format_bytes(staging)}; NIM: ~2 GB per B params at 16 bit)"
        )
    value = staging + system + shm
    return value, (
        f"{staging_text} + {format_bytes(NODE_SYSTEM_MEMORY_BYTES)} system x {nodes} node(s) + "
        f"shared memory {format_bytes(shm)} (/dev/shm is memory-backed and counts against the limit)"
    )


def _ephemeral_storage(job: JobShape, shape: _Shape, nodes: int) -> tuple[int, str]:
    checkpoint = _checkpoint_bytes(job, shape)
    raw = _ceil_div(checkpoint * DISK_CHECKPOINT_FACTOR_NUM, DISK_CHECKPOINT_FACTOR_DEN) + DISK_FIXED_BYTES
    per_node = _ceil_div(raw, DISK_ROUNDING_BYTES) * DISK_ROUNDING_BYTES
    return per_node * nodes, (
        f"KAITO: checkpoint {format_bytes(checkpoint)} x 2.5 + 48 GiB, rounded up to 10 GiB,"
        f" x {nodes} node(s)"
    )
