"""GPU memory of one replica per layout: weights, KV cache, activations, gradients, optimizer, overhead."""

from __future__ import annotations

from dataclasses import dataclass

from modeljob.core.jobs import Checkpointing, JobShape, Optimizer, Precision, WorkloadType
from modeljob.core.resources import format_bytes
from modeljob.core.sizing.constants import (
    _BF16,
    _FP32,
    _QUANTIZED,
    _WEIGHT_RATES,
    FALLBACK_KV_HEADS,
    INFERENCE_RUNTIME_BYTES_PER_GPU,
    INFERENCE_SLACK_PERCENT,
    LOGIT_BYTES_PER_VALUE,
    PREFILL_TOKEN_BUDGET,
    TRAINING_RUNTIME_BYTES_PER_GPU,
    TRAINING_SLACK_PERCENT,
    ZERO3_GATHER_BYTES_PER_PARAM,
    ZERO3_MAX_LIVE_PARAMETERS,
    ZERO_ALLGATHER_BUCKET_ELEMENTS,
    _ceil_div,
)
from modeljob.core.sizing.defaults import recipe
from modeljob.core.sizing.inputs import _Shape

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
    chosen = recipe(work)
    optimizer = chosen.optimizer
    if kind in (WorkloadType.LORA, WorkloadType.QLORA):
        adapters = _adapter_parameters(shape, chosen.lora_rank)
        # PEFT keeps adapter weights in fp32 (autocast_adapter_dtype): weight 4 + gradient 4 +
        # optimizer states; the frozen base has neither gradients nor optimizer states.
        opt_bytes = {Optimizer.ADAMW: 8, Optimizer.ADAM8BIT: 2, Optimizer.SGD: 4}[optimizer]
        adapter_rule = (
            f"{adapters:,} LoRA params (rank {chosen.lora_rank} on q,k,v,o and MLP linears"
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
    stage = work.zero_stage if work.type.trains else 0
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
    if work.type.trains:
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
    if not work.type.trains:
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
    if recipe(work).checkpointing is not Checkpointing.NONE:
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
    training = job.workload.type.trains
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
