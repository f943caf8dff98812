"""Host resources of each pod of a replica (one per node it spans): CPU, RAM with /dev/shm, scratch disk."""

from __future__ import annotations

from modeljob.core.jobs import JobShape, WorkloadType
from modeljob.core.resources import format_bytes
from modeljob.core.sizing.constants import (
    DEEPSPEED_STARTUP_BYTES_PER_PARAM_DEN,
    DEEPSPEED_STARTUP_BYTES_PER_PARAM_NUM,
    DISK_CHECKPOINT_FACTOR_DEN,
    DISK_CHECKPOINT_FACTOR_NUM,
    DISK_FIXED_BYTES,
    DISK_ROUNDING_BYTES,
    INFERENCE_CPU_MILLI_PER_GPU,
    NODE_CPU_FLOOR_MILLI,
    NODE_SYSTEM_MEMORY_BYTES,
    OFFLOAD_BUFFER_PERCENT,
    QUANTIZED,
    SHM_MULTI_GPU_BYTES_PER_NODE,
    SHM_SINGLE_GPU_BYTES,
    TRAINING_CPU_MILLI_PER_GPU,
    ceil_div,
)
from modeljob.core.sizing.inputs import Shape
from modeljob.core.sizing.model_states import stored_bytes

# --- host resources -----------------------------------------------------------------------------


def _checkpoint_bytes(job: JobShape, shape: Shape) -> int:
    """Size of the checkpoint as downloaded: the declared precision. QLoRA of a 16-bit checkpoint
    downloads the 16-bit files and quantizes while loading; a pre-quantized checkpoint (AWQ,
    GPTQ, FP8, NF4) downloads its quantized files."""
    return stored_bytes(job.model.precision, shape)


def cpu(job: JobShape, gpus: int) -> tuple[int, str]:
    """CPU of one pod with ``gpus`` devices."""
    per_gpu = TRAINING_CPU_MILLI_PER_GPU if job.workload.type.trains else INFERENCE_CPU_MILLI_PER_GPU
    value = max(NODE_CPU_FLOOR_MILLI, per_gpu * gpus)
    return value, (
        f"max({per_gpu // 1000} cores x {gpus} GPUs, NIM floor {NODE_CPU_FLOOR_MILLI // 1000} cores per node)"
    )


def shared_memory_per_node_bytes(gpus: int) -> int:
    """Shared memory (/dev/shm) on each node of a replica: 1 GiB for one GPU, else 16 GiB."""
    return SHM_SINGLE_GPU_BYTES if gpus == 1 else SHM_MULTI_GPU_BYTES_PER_NODE


def host_memory(
    job: JobShape, shape: Shape, gpus: int, offload: tuple[int, str] = (0, ""), nodes: int = 1
) -> tuple[int, str]:
    """Host RAM of one pod with ``gpus`` devices, one of the replica's ``nodes``; ``offload`` is
    the model states each GPU's rank keeps in host memory, and why."""
    work = job.workload
    shm = shared_memory_per_node_bytes(gpus)
    system = NODE_SYSTEM_MEMORY_BYTES
    if work.type is WorkloadType.TRAINING:
        per_rank = ceil_div(
            shape.parameters * DEEPSPEED_STARTUP_BYTES_PER_PARAM_NUM, DEEPSPEED_STARTUP_BYTES_PER_PARAM_DEN
        )
        if work.zero_stage == 3:
            # zero.Init builds only each rank's partition of the fp32 model.
            per_rank = ceil_div(per_rank, work.replicas)
            staging_text = (
                f"ZeRO-3 zero.Init: 4 B x 1.5 x {shape.parameters:,} params / {work.replicas} replicas"
                " per rank"
            )
        else:
            staging_text = f"DeepSpeed start-up: 4 B x 1.5 x {shape.parameters:,} params per rank"
        staging = per_rank * gpus
        staging_text += f" x {gpus} GPUs"
    else:
        # Each node of a replica that spans nodes loads only the layers of its own pipeline
        # stages from the checkpoint's shards (vLLM and the engines read the tensors they own).
        checkpoint = _checkpoint_bytes(job, shape)
        staging = ceil_div(checkpoint, nodes)
        staging_text = (
            f"checkpoint staged in RAM once ({format_bytes(checkpoint)}; NIM: ~2 GB per B params at 16 bit)"
        )
        if nodes > 1:
            staging_text += f", this node's share of {nodes}"
    offloaded_per_gpu, offload_text = offload
    offloaded = ceil_div(offloaded_per_gpu * gpus * OFFLOAD_BUFFER_PERCENT, 100)
    if offloaded:
        staging_text += (
            f" + offloaded model states {format_bytes(offloaded)} ({offload_text}; x {gpus} GPUs, "
            f"+{OFFLOAD_BUFFER_PERCENT - 100}% pinned buffers as DeepSpeed's estimators count)"
        )
    value = staging + offloaded + system + shm
    return value, (
        f"{staging_text} + {format_bytes(NODE_SYSTEM_MEMORY_BYTES)} system + "
        f"shared memory {format_bytes(shm)} (/dev/shm is memory-backed and counts against the limit)"
    )


def ephemeral_storage(job: JobShape, shape: Shape) -> tuple[int, str]:
    """Scratch disk of one pod: every node of a replica downloads the whole checkpoint."""
    checkpoint = _checkpoint_bytes(job, shape)
    raw = ceil_div(checkpoint * DISK_CHECKPOINT_FACTOR_NUM, DISK_CHECKPOINT_FACTOR_DEN) + DISK_FIXED_BYTES
    per_node = ceil_div(raw, DISK_ROUNDING_BYTES) * DISK_ROUNDING_BYTES
    return per_node, (
        f"KAITO: checkpoint {format_bytes(checkpoint)}{_downloaded(job)} x 2.5 + 48 GiB, rounded up to 10 GiB"
    )


def _downloaded(job: JobShape) -> str:
    precision = job.model.precision
    if job.workload.type is WorkloadType.QLORA and precision not in QUANTIZED:
        return f" (the {precision.value} files QLoRA downloads and quantizes while loading)"
    if precision in QUANTIZED:
        return f" (the pre-quantized {precision.value} files)"
    return ""
