"""Sizing: model + work + device type -> per-replica GPUs, GPU memory, CPU, RAM and disk, with reasons.

Every number comes from a rule in docs/sizing.md, which gives each formula with its source. The
arithmetic is integer bytes throughout; ratios are written as integer fractions so that the
output never depends on float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modeljob.core.jobs import Architecture, JobShape, Optimizer, Precision, WorkloadType
from modeljob.core.resources import GIB, format_bytes

# --- constants, each with the reason it has this value ------------------------------------------

# Share of a device's memory a replica may plan to use. vLLM's gpu_memory_utilization defaulted
# to 0.9 for most of its history (vllm/config/cache.py), TGI leaves 10% wiggle room since 2025
# (TGI_WIGGLE_ROOM) and TensorRT-LLM's free_gpu_memory_fraction is 0.9. KAITO's 0.84 is tuned
# to its own launcher (which adds its 2.3 GiB reserve on top); we count the runtime reserve
# explicitly below, so the engines' common 0.9 is the right cap for what is left.
UTILISATION_NUM, UTILISATION_DEN = 9, 10

# Per-GPU memory the runtime takes before any tensor: CUDA context, cuBLAS workspaces, NCCL
# buffers and, for serving engines, CUDA graphs. KAITO reserves 2.3 GiB per GPU for vLLM
# (pkg/workspace/estimator/nodesestimator/estimator.go); HF's "model training anatomy" measured
# 1.3 GB of CUDA context alone and puts it at 1-2 GB. Training has no CUDA graphs but NCCL
# communicators and the loss's workspaces, so it gets the upper end of that range, 2 GiB.
INFERENCE_RUNTIME_BYTES_PER_GPU = 23 * GIB // 10
TRAINING_RUNTIME_BYTES_PER_GPU = 2 * GIB

# Allocator slack on top of the tensors, in percent of them. Serving allocates once and keeps
# its pools, so KAITO's 5% (of weights, for activations and CUDA graphs) suffices; training
# allocates and frees every step, and the reference synthesis uses ~10% for its fragmentation.
INFERENCE_SLACK_PERCENT = 5
TRAINING_SLACK_PERCENT = 10

# Tokens one forward pass of a serving engine processes at most: a whole prompt for engines
# without chunked prefill (HF transformers, vLLM with chunking off must accept max_model_len at
# once), else the engine's batched-token budget; 8192 is vLLM V1's max_num_batched_tokens
# default for online serving on large GPUs.
PREFILL_TOKEN_BUDGET = 8192

# Training logits, bytes per b x s x V value alive at the loss: Hugging Face's causal-LM loss
# upcasts the 16-bit logits (2 B) to fp32 (4 B) and cross-entropy keeps its fp32 log-softmax
# (4 B); the backward adds a 16-bit gradient (2 B) before those are freed. The vram.asmirnov.xyz
# calculator counts 8 (fp32 logits and their fp32 gradient); we count the 12 above.
LOGIT_BYTES_PER_VALUE = 12

# One replica may span at most 16 nodes: pipeline depth 16 is what Llama 3 405B pre-training
# used (Llama 3 paper, Table 4); beyond it we report fits=False rather than invent a layout.
MAX_NODES_PER_REPLICA = 16

# Architecture fallbacks (only when spec.model.architecture is absent):
# - P ~= 12 * L * h^2 (Kaplan et al. 2020; EleutherAI "Transformer Math 101") with h ~= 100 * L
#   (rounded up to a multiple of 128): Llama 2/3 70B (8192/80 = 102) is the deepest for its width
#   among the common families (Llama 3 8B 128, GPT-3 128, Qwen2.5-7B 128), and the KV cache and
#   activations grow with depth, so the deeper guess is the safe one. Counting embeddings as
#   layer parameters makes L and h larger still.
# - head_dim 128 (Llama, Qwen, Mistral, Mixtral) and 8 KV heads: every GQA model family of
#   2024-2025 uses 8 or fewer (Llama 3.x, Qwen2/2.5/3, Mistral, Mixtral, Gemma 2/3). Older MHA
#   models (Llama 2 7B/13B, Qwen v1) cache more: declare their architecture.
# - vocabulary 152,064 (Qwen2/2.5), the largest of the common families except Gemma (262,144).
FALLBACK_ASPECT_RATIO = 100
FALLBACK_HEAD_DIM = 128
FALLBACK_KV_HEADS = 8
FALLBACK_VOCAB_SIZE = 152_064

# Host side.
# NIM for LLMs support matrix: >= 8 CPU cores per host; 5-10 GB for the OS; 16 GB of shared
# memory for multi-GPU engines; ~2 GB per billion parameters (the 16-bit weights) to stage them.
NODE_CPU_FLOOR_MILLI = 8_000
# Our judgement, not a published rule (docs/sizing.md, host CPU): 4 cores per GPU covers a
# serving engine's worker and tokenizer processes; training also feeds data loaders, so 8 (cloud
# shapes give 12-24 vCPU per GPU, which leaves room for system daemons).
INFERENCE_CPU_MILLI_PER_GPU = 4_000
TRAINING_CPU_MILLI_PER_GPU = 8_000
NODE_SYSTEM_MEMORY_BYTES = 10 * GIB
# /dev/shm is a memory-backed emptyDir whose contents count against the memory limit
# (Kubernetes emptyDir docs): TGI's examples use --shm-size 1g on one GPU; NIM asks 16 GB for
# multi-GPU. It is part of memoryBytes.
SHM_SINGLE_GPU_BYTES = 1 * GIB
SHM_MULTI_GPU_BYTES_PER_NODE = 16 * GIB
# DeepSpeed memory.rst: without zero.Init every rank builds the fp32 model on the CPU at
# start-up, 4 bytes per parameter, times its safety factor 1.5.
DEEPSPEED_STARTUP_BYTES_PER_PARAM_NUM, DEEPSPEED_STARTUP_BYTES_PER_PARAM_DEN = 6, 1
# KAITO pkg/model/interface.go: disk = checkpoint x 2.5 + 48 GiB, rounded up to 10 GiB.
DISK_CHECKPOINT_FACTOR_NUM, DISK_CHECKPOINT_FACTOR_DEN = 5, 2
DISK_FIXED_BYTES = 48 * GIB
DISK_ROUNDING_BYTES = 10 * GIB

# ZeRO communication buffers per GPU. EleutherAI's calculator (cookbook calc_transformer_mem.py)
# charges DeepSpeed's default all-gather bucket (5e8 elements) at the weights' 2 bytes for every
# ZeRO stage, and for ZeRO-3 the default stage3_max_live_parameters (1e9 elements); DeepSpeed's
# memory.rst counts 4 bytes x the largest layer for ZeRO-3's gather: we take the larger of the two.
ZERO_ALLGATHER_BUCKET_ELEMENTS = 500_000_000
ZERO3_MAX_LIVE_PARAMETERS = 1_000_000_000
ZERO3_GATHER_BYTES_PER_PARAM = 4

_QUANTIZED = frozenset({Precision.FP8, Precision.INT8, Precision.INT4, Precision.NF4})
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
)


class SizingError(ValueError):
    """A job the estimator cannot size; the message starts with the offending field's path."""


@dataclass(frozen=True, slots=True)
class Device:
    memory_bytes: int  # memory of ONE accelerator device
    gpus_per_node: int = 8  # devices on one node of this type (caps tensor parallel)


@dataclass(frozen=True, slots=True)
class Rule:
    field: str  # camelCase estimate field it explains, e.g. "kvCacheBytes"
    value: int
    explanation: str


@dataclass(frozen=True, slots=True)
class Estimate:
    """Per-replica requests; GPU memory fields are summed over the replica's GPUs."""

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
    nodes: int
    device_memory_bytes: int
    fits: bool
    # The layout behind `gpus` (TP x PP = gpus) and the /dev/shm counted in `memory_bytes` for
    # each node, so the pods are told the same layout and get the same shared memory.
    tensor_parallel_size: int
    pipeline_parallel_size: int
    shared_memory_per_node_bytes: int
    rules: tuple[Rule, ...] = field(default=())
    # Why one replica cannot fit: the largest part and the spec fields that drive it; "" if it fits.
    misfit: str = ""

    def to_dict(self) -> dict[str, int]:
        """The 12 camelCase fields of the estimate (docs/sizing.md, "The estimate")."""
        return {
            "weightsBytes": self.weights_bytes,
            "kvCacheBytes": self.kv_cache_bytes,
            "activationsBytes": self.activations_bytes,
            "gradientsBytes": self.gradients_bytes,
            "optimizerStatesBytes": self.optimizer_states_bytes,
            "overheadBytes": self.overhead_bytes,
            "totalBytes": self.total_bytes,
            "gpus": self.gpus,
            "gpuMemoryPerGpuBytes": self.gpu_memory_per_gpu_bytes,
            "cpuMilli": self.cpu_milli,
            "memoryBytes": self.memory_bytes,
            "ephemeralStorageBytes": self.ephemeral_storage_bytes,
        }


# --- storage rates ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Rate:
    """Bytes per element as an exact fraction, with the reason."""

    num: int
    den: int
    label: str

    def of(self, count: int) -> int:
        return _ceil_div(count * self.num, self.den)


# Weight formats (docs/sizing.md, weights). Quantized formats cover the linear layers;
# embeddings and lm_head stay 16-bit (GPTQ/AWQ/bitsandbytes/FP8 checkpoints all keep them so).
_WEIGHT_RATES = {
    Precision.FP32: _Rate(4, 1, "4 B (fp32)"),
    Precision.BF16: _Rate(2, 1, "2 B (bf16)"),
    Precision.FP16: _Rate(2, 1, "2 B (fp16)"),
    # FP8 E4M3 with per-tensor (or 128x128 block) scales: the scales are negligible.
    Precision.FP8: _Rate(1, 1, "1 B (fp8)"),
    # GPTQ int8, group 128: 8 bits + fp16 scale and 8-bit zero point per 128 weights.
    Precision.INT8: _Rate(131, 128, "1.023 B (int8, group 128: 8 + 24/128 bits)"),
    # GPTQ/AWQ int4, group 128: 4 bits + fp16 scale and 4-bit zero point per 128 weights.
    Precision.INT4: _Rate(133, 256, "0.520 B (int4, group 128: 4 + 20/128 bits)"),
    # QLoRA NF4: 4 bits + one fp32 absmax per 64 weights (double quantization would give 0.516;
    # not every recipe turns it on, so the plain rate).
    Precision.NF4: _Rate(9, 16, "0.5625 B (nf4: 4 + 32/64 bits)"),
}
_BF16 = _Rate(2, 1, "2 B (bf16)")
_FP32 = _Rate(4, 1, "4 B (fp32)")


# --- the resolved model -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Shape:
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
    def largest_layer_parameters(self) -> int:
        return max(self.vocab_size * self.hidden_size, self.linear_parameters // self.layers)

    def describe(self) -> str:
        origin = "derived from the parameter count" if self.derived else "declared"
        return (
            f"{origin}: {self.layers} layers, hidden {self.hidden_size}, {self.attention_heads} heads, "
            f"{self.kv_heads} kv heads x {self.head_dim}"
        )


def _resolve_shape(job: JobShape) -> _Shape:
    parameters = job.model.parameters
    arch = job.model.architecture
    if arch is None:
        layers = 1
        while 12 * layers * _fallback_hidden(layers) ** 2 < parameters:
            layers += 1
        hidden = _fallback_hidden(layers)
        heads = max(1, hidden // FALLBACK_HEAD_DIM)
        return _Shape(
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
    return _Shape(
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
    return _ceil_div(FALLBACK_ASPECT_RATIO * layers, FALLBACK_HEAD_DIM) * FALLBACK_HEAD_DIM


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


def _check_job(job: JobShape, device: Device) -> None:
    work = job.workload
    checks = (
        ("spec.model.parameters", job.model.parameters, 1),
        ("spec.workload.sequenceLength", work.sequence_length, 1),
        ("spec.workload.batchSize", work.batch_size, 1),
        ("spec.workload.loraRank", work.lora_rank, 1),
        ("spec.replicas", work.replicas, 1),
        ("spec.accelerator.memoryPerDevice", device.memory_bytes, 1),
        ("gpusPerNode", device.gpus_per_node, 1),
    )
    for path, value, least in checks:
        if value < least:
            raise SizingError(f"{path}: must be at least {least}, got {value}")
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


# --- GPU memory per replica, per layout -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Layout:
    tensor_parallel: int
    gpus: int  # tensor_parallel x pipeline stages

    @property
    def pipeline(self) -> int:
        return self.gpus // self.tensor_parallel


@dataclass(frozen=True, slots=True)
class _Part:
    """One component of GPU memory: bytes on each GPU of the replica, and how they came about."""

    per_gpu: int
    rules: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Memory:
    weights: _Part
    kv_cache: _Part
    activations: _Part
    gradients: _Part
    optimizer: _Part
    overhead: _Part

    @property
    def per_gpu(self) -> int:
        return sum(
            part.per_gpu
            for part in (
                self.weights,
                self.kv_cache,
                self.activations,
                self.gradients,
                self.optimizer,
                self.overhead,
            )
        )


@dataclass(frozen=True, slots=True)
class _ModelStates:
    """Per-replica bytes of weights, gradients and optimizer states before splitting over GPUs."""

    weights: int
    weights_rule: str
    gradients: int
    gradients_rule: str
    optimizer: int
    optimizer_rule: str


def _is_training(kind: WorkloadType) -> bool:
    return kind is not WorkloadType.INFERENCE


def _weights(job: JobShape, shape: _Shape) -> tuple[int, str]:
    """Bytes of the (frozen or trained) base weights of one model copy."""
    precision = job.model.precision
    kind = job.workload.type
    moe = ""
    if job.model.active_parameters is not None and job.model.active_parameters < shape.parameters:
        moe = f" (MoE: all {shape.parameters:,} parameters are resident, not the active ones)"
    if kind is WorkloadType.QLORA:
        # QLoRA quantizes the base linears to 4 bit (NF4) unless the checkpoint is already an
        # integer format; PEFT's prepare_model_for_kbit_training casts every remaining 16-bit
        # parameter (embeddings, lm_head, norms) to fp32 (peft src/peft/utils/other.py).
        rate = (
            _WEIGHT_RATES[precision]
            if precision in (Precision.INT8, Precision.INT4)
            else (_WEIGHT_RATES[Precision.NF4])
        )
        linear = rate.of(shape.linear_parameters)
        embed = _FP32.of(shape.embedding_parameters)
        return linear + embed, (
            f"QLoRA base: {shape.linear_parameters:,} linear params x {rate.label} + "
            f"{shape.embedding_parameters:,} embedding/lm_head params x 4 B (fp32, PEFT upcast){moe}"
        )
    rate = _WEIGHT_RATES[precision]
    if precision in _QUANTIZED:
        linear = rate.of(shape.linear_parameters)
        embed = _BF16.of(shape.embedding_parameters)
        return linear + embed, (
            f"{shape.linear_parameters:,} linear params x {rate.label} + "
            f"{shape.embedding_parameters:,} embedding/lm_head params x 2 B (kept 16-bit){moe}"
        )
    return rate.of(shape.parameters), f"{shape.parameters:,} params x {rate.label}{moe}"


def _adapter_parameters(shape: _Shape, rank: int) -> int:
    """LoRA on every linear of every layer (the QLoRA paper's recipe): r x (d_in + d_out) each."""
    h, q, kv = shape.hidden_size, shape.attention_heads * shape.head_dim, shape.kv_heads * shape.head_dim
    attention = (h + q) + 2 * (h + kv) + (q + h)
    mlp = (3 if shape.gated_mlp else 2) * (h + shape.intermediate_size)
    return rank * (attention + mlp) * shape.layers


def _model_states(job: JobShape, shape: _Shape) -> _ModelStates:
    work = job.workload
    kind = work.type
    base, base_rule = _weights(job, shape)
    if kind is WorkloadType.INFERENCE:
        return _ModelStates(base, base_rule, 0, "inference keeps no gradients", 0, "inference: no optimizer")
    optimizer = work.optimizer
    if kind in (WorkloadType.LORA, WorkloadType.QLORA):
        adapters = _adapter_parameters(shape, work.lora_rank)
        # PEFT keeps adapter weights in fp32 (autocast_adapter_dtype): weight 4 + gradient 4 +
        # optimizer states; the frozen base has neither gradients nor optimizer states.
        opt_bytes = {Optimizer.ADAMW: 8, Optimizer.ADAM8BIT: 2, Optimizer.SGD: 4}[optimizer]
        adapter_rule = (
            f"{adapters:,} LoRA params (rank {work.lora_rank} on q,k,v,o and MLP linears"
            f" x {shape.layers} layers)"
        )
        return _ModelStates(
            weights=base + 4 * adapters,
            weights_rule=f"{base_rule} + {adapter_rule} x 4 B (fp32)",
            gradients=4 * adapters,
            gradients_rule=f"{adapter_rule} x 4 B (fp32 gradients; the frozen base has none)",
            optimizer=opt_bytes * adapters,
            optimizer_rule=f"{adapter_rule} x {opt_bytes} B ({optimizer.value} states)",
        )
    p = shape.parameters
    if job.model.precision is Precision.FP32:
        opt_bytes = {Optimizer.ADAMW: 8, Optimizer.ADAM8BIT: 2, Optimizer.SGD: 4}[optimizer]
        return _ModelStates(
            weights=4 * p,
            weights_rule=f"{p:,} params x 4 B (fp32)",
            gradients=4 * p,
            gradients_rule=f"{p:,} params x 4 B (fp32 gradients)",
            optimizer=opt_bytes * p,
            optimizer_rule=f"{p:,} params x {opt_bytes} B ({optimizer.value} states, fp32 training)",
        )
    # Mixed precision as DeepSpeed accounts it (memory.rst: ZeRO-2 "4P + 16P/N"): 16-bit weights
    # and gradients (2 + 2) plus an fp32 master copy, fp32 gradient partition and the optimizer
    # moments. FP8 training keeps the same 16-bit/fp32 copies (FP8 casts are transient).
    moments = {Optimizer.ADAMW: 8, Optimizer.ADAM8BIT: 2, Optimizer.SGD: 4}[optimizer]
    label = {
        Optimizer.ADAMW: "fp32 master 4 + momentum 4 + variance 4",
        Optimizer.ADAM8BIT: "fp32 master 4 + 8-bit momentum 1 + 8-bit variance 1",
        Optimizer.SGD: "fp32 master 4 + momentum 4",
    }[optimizer]
    return _ModelStates(
        weights=2 * p,
        weights_rule=f"{p:,} params x 2 B (16-bit working copy)",
        gradients=6 * p,
        gradients_rule=f"{p:,} params x (2 B 16-bit gradient + 4 B fp32 gradient partition)",
        optimizer=(4 + moments) * p,
        optimizer_rule=f"{p:,} params x {4 + moments} B ({optimizer.value}: {label})",
    )


def _sharded(job: JobShape, states: _ModelStates, layout: _Layout) -> tuple[_Part, _Part, _Part]:
    """Split model states over the replica's GPUs (tensor/pipeline) and ZeRO across replicas."""
    work = job.workload
    stage = work.zero_stage if _is_training(work.type) else 0
    n = work.replicas
    g = layout.gpus

    def split(total: int, shard_from_stage: int, what: str, rule: str) -> _Part:
        shards = n if stage >= shard_from_stage and n > 1 else 1
        per_gpu = _ceil_div(total, g * shards)
        text = rule
        if shards > 1:
            text += f"; ZeRO-{stage} shards {what} over {n} replicas"
        if g > 1 and total:
            text += f"; split over {g} GPUs"
        return _Part(per_gpu, (text,))

    weights = split(states.weights, 3, "weights", states.weights_rule)
    if stage >= 1 and n > 1 and states.gradients:
        # The fp32 gradient partition (and, for LoRA, the adapters' fp32 gradients) goes with the
        # optimizer from stage 1. The 16-bit gradients stay whole below stage 3: DeepSpeed's own
        # estimator counts them in full for ZeRO-1/2 (memory.rst "4P + 16P/N"), because autograd
        # materialises them before the bucketed reduce-scatter frees them.
        sixteen_bit = 2 * job.model.parameters if work.type is WorkloadType.TRAINING else 0
        full = sixteen_bit if stage < 3 else 0
        sharded = states.gradients - full
        per_gpu = _ceil_div(full, g) + _ceil_div(sharded, g * n)
        text = f"{states.gradients_rule}; ZeRO-{stage} shards {format_bytes(sharded)} of it over {n} replicas"
        if g > 1:
            text += f"; split over {g} GPUs"
        gradients = _Part(per_gpu, (text,))
    else:
        gradients = split(states.gradients, 3, "gradients", states.gradients_rule)
    optimizer = split(states.optimizer, 1, "optimizer states", states.optimizer_rule)
    return weights, gradients, optimizer


def _kv_cache(job: JobShape, shape: _Shape, layout: _Layout) -> _Part:
    work = job.workload
    if _is_training(work.type):
        return _Part(0, ("training runs without a KV cache (use_cache=False)",))
    element = 4 if job.model.precision is Precision.FP32 else 2
    per_token = 2 * shape.layers * shape.kv_heads * shape.head_dim * element
    total = per_token * work.sequence_length * work.batch_size
    # Each GPU of a tensor-parallel group holds kv/t heads, or one replicated head when t > kv;
    # pipeline stages each hold their own layers.
    head_split = min(layout.tensor_parallel, shape.kv_heads)
    per_gpu = _ceil_div(total, head_split * layout.pipeline)
    dtype = "fp32" if element == 4 else "16-bit"
    text = (
        f"2 (K,V) x {shape.layers} layers x {shape.kv_heads} kv heads x {shape.head_dim} head dim x "
        f"{element} B ({dtype}) x {work.sequence_length} tokens x {work.batch_size} sequences"
    )
    if shape.derived:
        text += f" (GQA assumed: {FALLBACK_KV_HEADS} kv heads; declare the architecture to be exact)"
    if layout.gpus > 1:
        text += f"; each GPU holds 1/{head_split * layout.pipeline}"
        if layout.tensor_parallel > shape.kv_heads:
            text += f" (kv heads replicated: TP {layout.tensor_parallel} > {shape.kv_heads} kv heads)"
    return _Part(per_gpu, (text,))


def _mlp_width_factor(shape: _Shape) -> tuple[int, str]:
    """Saved MLP activations per token, in units of the MLP width (bytes, 16-bit)."""
    if shape.gated_mlp:
        return 8, f"gated MLP {shape.intermediate_size}: gate, up, act and product 4 x 2 B"
    return 4, f"MLP {shape.intermediate_size}: GeLU input and output 2 x 2 B"


def _activations(job: JobShape, shape: _Shape, layout: _Layout) -> _Part:
    work = job.workload
    h, t = shape.hidden_size, layout.tensor_parallel
    scale = 2 if job.model.precision is Precision.FP32 and work.type is WorkloadType.TRAINING else 1
    if not _is_training(work.type):
        tokens = min(work.batch_size * work.sequence_length, max(work.sequence_length, PREFILL_TOKEN_BUDGET))
        # One layer's forward is the peak: residual, normed and attention-output copies of the
        # hidden state (4h, replicated on every TP rank) and the MLP intermediates (split by t):
        # 3 x I for a gated MLP (gate, up, product), 2 x I otherwise (fc1 output, GeLU output).
        mlp = 3 if shape.gated_mlp else 2
        per_gpu = 2 * tokens * (4 * h + _ceil_div(mlp * shape.intermediate_size, t))
        text = (
            f"one layer's forward over a {tokens}-token prefill (min(batch x seq, max(seq, "
            f"{PREFILL_TOKEN_BUDGET}))): 2 B x (4 x {h} hidden + {mlp} x {shape.intermediate_size} MLP"
            f"{f' / TP {t}' if t > 1 else ''}) per token; FlashAttention, no s^2 scores"
        )
        return _Part(per_gpu, (text,))
    s, b = work.sequence_length, work.batch_size
    mlp_factor, mlp_text = _mlp_width_factor(shape)
    # Korthikanti et al. 2022 (arXiv 2205.05198) Table 2, per layer, 16-bit with 1-byte masks:
    # 10sbh replicated on every TP rank + 24sbh split by t (of which 16sbh is the 4h MLP,
    # generalised here to the declared MLP width); FlashAttention removes the 5as^2b term.
    replicated = 10 * s * b * h
    split = s * b * (8 * h + mlp_factor * shape.intermediate_size)
    one_layer = replicated + _ceil_div(split, t)
    if work.activation_checkpointing:
        # Full checkpointing keeps each layer's input (2sbh) and recomputes one layer at a time.
        layers_bytes = shape.layers * 2 * s * b * h + one_layer
        layers_text = (
            f"checkpointing: {shape.layers} layers x 2 B x {s} x {b} x {h} (layer inputs) + one layer "
            f"recomputed ({format_bytes(one_layer)})"
        )
    else:
        layers_bytes = shape.layers * one_layer
        layers_text = (
            f"{shape.layers} layers x sbh(10 + (8 + {mlp_factor}I/h)/t) bytes = {format_bytes(one_layer)} "
            f"per layer ({mlp_text})"
        )
    # Logits are vocab-parallel under Megatron-style TP.
    logits = _ceil_div(LOGIT_BYTES_PER_VALUE * s * b * shape.vocab_size, t)
    per_gpu = scale * layers_bytes + logits
    text = (
        f"{layers_text}; logits {LOGIT_BYTES_PER_VALUE} B x {s} tokens x {b} x {shape.vocab_size} vocab"
        f"{' (vocab assumed)' if shape.vocab_assumed else ''}"
        f"{f'; TP {t}' if t > 1 else ''}{'; fp32 activations x2' if scale == 2 else ''}"
    )
    return _Part(per_gpu, (text,))


def _memory(job: JobShape, shape: _Shape, states: _ModelStates, layout: _Layout) -> _Memory:
    weights, gradients, optimizer = _sharded(job, states, layout)
    kv = _kv_cache(job, shape, layout)
    activations = _activations(job, shape, layout)
    training = _is_training(job.workload.type)
    runtime = TRAINING_RUNTIME_BYTES_PER_GPU if training else INFERENCE_RUNTIME_BYTES_PER_GPU
    slack_percent = TRAINING_SLACK_PERCENT if training else INFERENCE_SLACK_PERCENT
    tensors = sum(part.per_gpu for part in (weights, kv, activations, gradients, optimizer))
    slack = _ceil_div(tensors * slack_percent, 100)
    gather = 0
    texts = [
        f"runtime {format_bytes(runtime)} per GPU "
        f"(CUDA context, NCCL{', CUDA graphs' if not training else ''})",
        f"allocator slack {slack_percent}% of the tensors ({format_bytes(slack)} per GPU)",
    ]
    stage = job.workload.zero_stage if training else 0
    if stage >= 1:
        bucket = 2 * ZERO_ALLGATHER_BUCKET_ELEMENTS
        gather += bucket
        texts.append(f"ZeRO all-gather bucket {ZERO_ALLGATHER_BUCKET_ELEMENTS:.0e} elements x 2 B")
    if stage == 3:
        largest = ZERO3_GATHER_BYTES_PER_PARAM * shape.largest_layer_parameters
        live = 2 * ZERO3_MAX_LIVE_PARAMETERS
        gather += max(largest, live)
        texts.append(
            f"ZeRO-3 gathered parameters: max(4 B x {shape.largest_layer_parameters:,} largest-layer params, "
            f"{ZERO3_MAX_LIVE_PARAMETERS:.0e} live params x 2 B)"
        )
    overhead = _Part(runtime + slack + gather, tuple(texts))
    return _Memory(weights, kv, activations, gradients, optimizer, overhead)


# --- choosing the layout ------------------------------------------------------------------------


def _tensor_parallel_sizes(shape: _Shape, gpus_per_node: int) -> list[int]:
    """Powers of two within one node that the attention heads (and KV heads) allow."""
    sizes = []
    t = 1
    while t <= gpus_per_node:
        heads_ok = shape.derived or shape.attention_heads % t == 0
        kv_ok = shape.derived or shape.kv_heads % t == 0 or t % shape.kv_heads == 0
        if heads_ok and kv_ok:
            sizes.append(t)
        t *= 2
    return sizes


def _node_layout(sizes: list[int], gpus: int) -> _Layout:
    """Tensor parallel inside the node (largest allowed size dividing it), pipeline beyond."""
    tensor = max(t for t in sizes if gpus % t == 0)
    return _Layout(tensor_parallel=tensor, gpus=gpus)


def _candidates(shape: _Shape, device: Device) -> list[_Layout]:
    sizes = _tensor_parallel_sizes(shape, device.gpus_per_node)
    layouts = [_Layout(t, t) for t in sizes]
    largest = max(sizes)
    for nodes in range(1, MAX_NODES_PER_REPLICA + 1):
        gpus = device.gpus_per_node * nodes
        if gpus > largest:
            layouts.append(_node_layout(sizes, gpus))
    return layouts


def _budget(device: Device) -> int:
    return device.memory_bytes * UTILISATION_NUM // UTILISATION_DEN


def _choose_layout(
    job: JobShape, shape: _Shape, states: _ModelStates, device: Device
) -> tuple[_Layout, _Memory, bool, str]:
    budget = _budget(device)
    budget_text = (
        f"{format_bytes(budget)} budget ({UTILISATION_NUM}/{UTILISATION_DEN} of "
        f"{format_bytes(device.memory_bytes)})"
    )
    sizes = _tensor_parallel_sizes(shape, device.gpus_per_node)
    if job.overrides.gpus is not None:
        layout = _node_layout(sizes, job.overrides.gpus)
        memory = _memory(job, shape, states, layout)
        fits = memory.per_gpu <= budget
        verdict = "fits" if fits else "does NOT fit"
        return (
            layout,
            memory,
            fits,
            (
                f"spec.resources.gpus override: {layout.gpus} GPUs (TP {layout.tensor_parallel} x PP "
                f"{layout.pipeline}); {format_bytes(memory.per_gpu)} per GPU {verdict} the {budget_text}"
            ),
        )
    tried: list[str] = []
    layout = _Layout(1, 1)
    memory = _memory(job, shape, states, layout)
    for layout in _candidates(shape, device):
        memory = _memory(job, shape, states, layout)
        if memory.per_gpu <= budget:
            why = "" if shape.derived else f", TP divides {shape.attention_heads} heads"
            tried_text = f" ({'; '.join(tried)} did not fit)" if tried else ""
            return (
                layout,
                memory,
                True,
                (
                    f"smallest layout whose per-GPU need {format_bytes(memory.per_gpu)} "
                    f"fits the {budget_text}: "
                    f"TP {layout.tensor_parallel} x PP {layout.pipeline}{why}{tried_text}"
                ),
            )
        tried.append(f"{layout.gpus} GPUs need {format_bytes(memory.per_gpu)}")
    return (
        layout,
        memory,
        False,
        (
            f"does NOT fit: even {layout.gpus} GPUs ({MAX_NODES_PER_REPLICA} nodes x {device.gpus_per_node}, "
            f"the largest layout allowed) need {format_bytes(memory.per_gpu)} per GPU > {budget_text}"
        ),
    )


# --- host resources -----------------------------------------------------------------------------


def _checkpoint_bytes(job: JobShape, shape: _Shape) -> int:
    """Size of the checkpoint as downloaded: the declared precision (QLoRA quantizes on load)."""
    precision = job.model.precision
    if precision in _QUANTIZED:
        return _WEIGHT_RATES[precision].of(shape.linear_parameters) + _BF16.of(shape.embedding_parameters)
    return _WEIGHT_RATES[precision].of(shape.parameters)


def _cpu(job: JobShape, gpus: int, nodes: int) -> tuple[int, str]:
    per_gpu = TRAINING_CPU_MILLI_PER_GPU if _is_training(job.workload.type) else INFERENCE_CPU_MILLI_PER_GPU
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


# --- the entry point ----------------------------------------------------------------------------


def size_replica(job: JobShape, device: Device) -> Estimate:
    """Per-replica GPU count, GPU memory breakdown and host requests for one device type."""
    _check_job(job, device)
    shape = _resolve_shape(job)
    states = _model_states(job, shape)
    layout, memory, fits, gpu_text = _choose_layout(job, shape, states, device)
    misfit = "" if fits else _misfit(job, shape, memory)
    if misfit:
        gpu_text += f"; {misfit}"
    gpus = layout.gpus
    nodes = -(-gpus // device.gpus_per_node)
    rules = [
        *_gpu_memory_rules(shape, memory, gpus=gpus, gpu_text=gpu_text),
        *_host_rules(job, shape, gpus=gpus, nodes=nodes),
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
        gpus=gpus,
        gpu_memory_per_gpu_bytes=memory.per_gpu,
        cpu_milli=value["cpuMilli"],
        memory_bytes=value["memoryBytes"],
        ephemeral_storage_bytes=value["ephemeralStorageBytes"],
        nodes=nodes,
        device_memory_bytes=device.memory_bytes,
        fits=fits,
        tensor_parallel_size=layout.tensor_parallel,
        pipeline_parallel_size=layout.pipeline,
        shared_memory_per_node_bytes=shared_memory_per_node_bytes(gpus),
        rules=tuple(rules),
        misfit=misfit,
    )


def _gpu_memory_rules(shape: _Shape, memory: _Memory, *, gpus: int, gpu_text: str) -> list[Rule]:
    """The GPU memory breakdown summed over the replica's GPUs, with the rules behind each part,
    then the total, the GPU count (why this layout) and the memory each GPU must hold."""

    def explain(name: str, part: _Part, note: str = "") -> list[Rule]:
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
        Rule("gpus", gpus, gpu_text),
        Rule(
            "gpuMemoryPerGpuBytes",
            memory.per_gpu,
            f"weights, KV, activations, gradients, optimizer and overhead on each of the {gpus} GPUs",
        ),
    ]


def _host_rules(job: JobShape, shape: _Shape, *, gpus: int, nodes: int) -> list[Rule]:
    """CPU, host memory and scratch disk per replica: the estimate, or the spec's override of it."""
    overrides = job.overrides
    return [
        _overridden("cpuMilli", _cpu(job, gpus, nodes), override=overrides.cpu_milli, spec_field="cpu"),
        _overridden(
            "memoryBytes",
            _host_memory(job, shape, gpus, nodes),
            override=overrides.memory_bytes,
            spec_field="memory",
        ),
        _overridden(
            "ephemeralStorageBytes",
            _ephemeral_storage(job, shape, nodes),
            override=overrides.ephemeral_storage_bytes,
            spec_field="ephemeralStorage",
        ),
    ]


def _overridden(name: str, estimate: tuple[int, str], *, override: int | None, spec_field: str) -> Rule:
    value, text = estimate
    if override is None:
        return Rule(name, value, text)
    return Rule(name, override, f"spec.resources.{spec_field} override (estimate was {text})")


def _misfit(job: JobShape, shape: _Shape, memory: _Memory) -> str:
    """The largest part of a replica that does not fit, and the spec fields it grows with."""
    work = job.workload
    p, b, s = f"{shape.parameters:,}", work.batch_size, work.sequence_length
    tokens = f"spec.workload.batchSize {b} x spec.workload.sequenceLength {s}"
    trained = (
        f"spec.workload.loraRank {work.lora_rank} adapters"
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
        ("optimizer states", memory.optimizer, f"{trained} with {work.optimizer.value}{zero}"),
        ("overhead", memory.overhead, "runtime reserve, allocator slack and ZeRO buffers"),
    )
    name, part, drivers = max(parts, key=lambda entry: entry[1].per_gpu)
    return f"largest part: {name} {format_bytes(part.per_gpu)} per GPU, from {drivers}"


def _checkpointing_hint(job: JobShape) -> str:
    work = job.workload
    if work.type is WorkloadType.INFERENCE or work.activation_checkpointing:
        return ""
    return " (spec.workload.activationCheckpointing is off)"


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)
