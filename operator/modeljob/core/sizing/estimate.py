"""The estimate of one replica: the entry point, its value, the rule behind each field, and why it misfits."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from modeljob.core.jobs import Checkpointing, JobShape, WorkloadType
from modeljob.core.resources import format_bytes
from modeljob.core.sizing.choice import choose_layout
from modeljob.core.sizing.defaults import recipe
from modeljob.core.sizing.gpu_memory import Memory
from modeljob.core.sizing.host import cpu, ephemeral_storage, host_memory, shared_memory_per_node_bytes
from modeljob.core.sizing.inputs import Device, Shape, check_job, resolve_shape
from modeljob.core.sizing.layout import Layout
from modeljob.core.sizing.model_states import Part

# The fields of the estimate, in the order of docs/sizing.md; each is an Estimate attribute.
_FIELD_ORDER = (
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
)


@dataclass(frozen=True, slots=True)
class Rule:
    field: str  # camelCase estimate field it explains, e.g. "kvCacheBytes"
    value: int
    explanation: str


@dataclass(frozen=True, slots=True)
class Estimate:
    """One replica: GPU memory fields summed over all its GPUs; ``gpus`` and the host fields are
    what each of its ``nodes_per_replica`` pods requests (one pod per node)."""

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
    nodes_per_replica: int
    device_memory_bytes: int
    fits: bool
    # The layout (TP x PP = gpus x nodes_per_replica) and the /dev/shm counted in `memory_bytes`
    # of each pod, so the pods are told the same layout and get the same shared memory.
    tensor_parallel_size: int
    pipeline_parallel_size: int
    shared_memory_per_node_bytes: int
    # The overhead's part outside torch's allocator (CUDA context, workspaces, NCCL, CUDA graphs),
    # per GPU: what a max_memory_allocated measurement does not see.
    runtime_per_gpu_bytes: int = 0
    rules: tuple[Rule, ...] = field(default=())
    # Why one replica cannot fit: the largest part and the spec fields that drive it; "" if it fits.
    misfit: str = ""

    def to_dict(self) -> dict[str, int]:
        """The camelCase fields of the estimate (docs/sizing.md, "The estimate"), in _FIELD_ORDER."""
        return {name: getattr(self, _attribute(name)) for name in _FIELD_ORDER}


def _attribute(field_name: str) -> str:
    """The Estimate attribute of a camelCase field: kvCacheBytes -> kv_cache_bytes."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", field_name).lower()


# --- the entry point ----------------------------------------------------------------------------


def size_replica(job: JobShape, device: Device) -> Estimate:
    """One replica for one device type: its layout, GPU memory breakdown and each pod's host requests."""
    check_job(job, device)
    shape = resolve_shape(job)
    choice = choose_layout(job, shape, device)
    layout, memory = choice.layout, choice.memory
    misfit = "" if choice.fits else _misfit(job, shape, memory)
    gpu_text = f"{choice.why}; {misfit}" if misfit else choice.why
    rules = [
        *_gpu_memory_rules(shape, memory, gpus=layout.gpus, per_pod=layout.gpus_per_node, gpu_text=gpu_text),
        *_host_rules(job, shape, memory, gpus=layout.gpus_per_node, nodes=layout.nodes),
        *_layout_rules(layout),
    ]
    rules.sort(key=lambda rule: _FIELD_ORDER.index(rule.field))
    value = {rule.field: rule.value for rule in rules}  # every rule of a field carries its value
    return Estimate(
        weights_bytes=value["weightsBytes"],
        kv_cache_bytes=value["kvCacheBytes"],
        activations_bytes=value["activationsBytes"],
        gradients_bytes=value["gradientsBytes"],
        optimizer_states_bytes=value["optimizerStatesBytes"],
        overhead_bytes=value["overheadBytes"],
        total_bytes=value["totalBytes"],
        gpus=layout.gpus_per_node,
        gpu_memory_per_gpu_bytes=memory.per_gpu,
        cpu_milli=value["cpuMilli"],
        memory_bytes=value["memoryBytes"],
        ephemeral_storage_bytes=value["ephemeralStorageBytes"],
        nodes_per_replica=layout.nodes,
        device_memory_bytes=device.memory_bytes,
        fits=choice.fits,
        tensor_parallel_size=layout.tensor_parallel,
        pipeline_parallel_size=layout.pipeline,
        shared_memory_per_node_bytes=shared_memory_per_node_bytes(layout.gpus_per_node),
        runtime_per_gpu_bytes=memory.runtime_per_gpu,
        rules=tuple(rules),
        misfit=misfit,
    )


def _layout_rules(layout: Layout) -> list[Rule]:
    nodes = (
        f"{layout.nodes} pods, one per node, each with every GPU of its node; pod 0 leads the group"
        if layout.nodes > 1
        else "the replica fits one node: one pod"
    )
    return [
        Rule("tensorParallelSize", layout.tensor_parallel, "GPUs that split every layer (inside one node)"),
        Rule(
            "pipelineParallelSize",
            layout.pipeline,
            "stages that split the layers (one per node when the replica spans nodes)",
        ),
        Rule("nodesPerReplica", layout.nodes, nodes),
    ]


def _gpu_memory_rules(shape: Shape, memory: Memory, *, gpus: int, per_pod: int, gpu_text: str) -> list[Rule]:
    """The GPU memory breakdown summed over the replica's ``gpus`` GPUs, with the rules behind each
    part, then the total, the GPUs of each pod (why this layout) and what each GPU must hold."""

    def explain(name: str, part: Part, note: str = "") -> list[Rule]:
        *steps, last = part.rules
        return [Rule(name, part.per_gpu * gpus, text) for text in (*steps, last + note)]

    per_gpu = format_bytes(memory.per_gpu)
    return [
        *explain("weightsBytes", memory.weights, f" [architecture {shape.describe()}]"),
        *explain("kvCacheBytes", memory.kv_cache),
        *explain("activationsBytes", memory.activations),
        *explain("gradientsBytes", memory.gradients),
        *explain("optimizerStatesBytes", memory.optimizer),
        # The runtime's parts are one rule, in one line.
        Rule(
            "overheadBytes",
            memory.overhead.per_gpu * gpus,
            "; ".join(memory.overhead.rules) + f"; x {gpus} GPUs",
        ),
        Rule("totalBytes", memory.per_gpu * gpus, f"sum of the parts: {per_gpu} per GPU x {gpus} GPUs"),
        Rule("gpus", per_pod, gpu_text),
        Rule(
            "gpuMemoryPerGpuBytes",
            memory.per_gpu,
            f"weights, KV, activations, gradients, optimizer and overhead on each of the {gpus} GPUs",
        ),
    ]


def _host_rules(job: JobShape, shape: Shape, memory: Memory, *, gpus: int, nodes: int) -> list[Rule]:
    """CPU, host memory and scratch disk of each pod (``gpus`` devices): the estimate, or the spec's
    override of it."""
    overrides = job.overrides
    offload = (memory.host_offload_per_gpu, memory.host_offload_rule)
    return [
        _overridden("cpuMilli", cpu(job, gpus), override=overrides.cpu_milli, spec_field="cpu"),
        _overridden(
            "memoryBytes",
            host_memory(job, shape, gpus, offload, nodes),
            override=overrides.memory_bytes,
            spec_field="memory",
        ),
        _overridden(
            "ephemeralStorageBytes",
            ephemeral_storage(job, shape),
            override=overrides.ephemeral_storage_bytes,
            spec_field="ephemeralStorage",
        ),
    ]


def _overridden(name: str, estimate: tuple[int, str], *, override: int | None, spec_field: str) -> Rule:
    value, text = estimate
    if override is None:
        return Rule(name, value, text)
    return Rule(name, override, f"spec.resources.{spec_field} override (estimate was {text})")


def _misfit(job: JobShape, shape: Shape, memory: Memory) -> str:
    """The largest part of a replica that does not fit, and the spec fields it grows with."""
    work = job.workload
    p, b, s = f"{shape.parameters:,}", work.batch_size, work.sequence_length
    tokens = f"spec.workload.batchSize {b} x spec.workload.sequenceLength {s}"
    trained = (
        f"spec.workload.loraRank {recipe(work).lora_rank} adapters"
        if work.type in (WorkloadType.LORA, WorkloadType.QLORA)
        else f"spec.model.parameters {p} trained in full"
    )
    zero = f", spec.workload.zeroStage {work.zero_stage} over spec.replicas {work.replicas}"
    parts = (
        (
            "weights",
            memory.weights,
            f"spec.model.parameters {p} at spec.model.precision {job.model.precision}",
        ),
        ("KV cache", memory.kv_cache, tokens),
        ("activations", memory.activations, tokens + _checkpointing_hint(job)),
        ("gradients", memory.gradients, trained + zero),
        ("optimizer states", memory.optimizer, f"{trained} with {recipe(work).optimizer.value}{zero}"),
        ("overhead", memory.overhead, "runtime reserve, allocator slack and ZeRO buffers"),
    )
    name, part, drivers = max(parts, key=lambda entry: entry[1].per_gpu)
    return f"largest part: {name} {format_bytes(part.per_gpu)} per GPU, from {drivers}"


def _checkpointing_hint(job: JobShape) -> str:
    work = job.workload
    if work.type is WorkloadType.INFERENCE or recipe(work).checkpointing is not Checkpointing.NONE:
        return ""
    return " (spec.workload.activationCheckpointing is off)"
