"""Model states on each GPU: weights, gradients and optimizer states, sharded and offloaded as frameworks do.

Each state is a number of bytes per parameter, the ZeRO stage from which it is sharded over the
data-parallel ranks, and whether offload moves it to host memory (docs/sizing.md, "Model states",
gives the table with its sources). Tensor and pipeline parallelism split every state over the
replica's GPUs; ZeRO/FSDP shard them over the data-parallel ranks (`spec.replicas`).
"""

from __future__ import annotations

from dataclasses import dataclass

from modeljob.core.jobs import Framework, JobShape, LoraTargets, Offload, Optimizer, Precision, WorkloadType
from modeljob.core.sizing.constants import (
    BF16,
    FP32,
    NF4_DOUBLE_QUANT,
    QUANTIZED,
    WEIGHT_RATES,
    ceil_div,
)
from modeljob.core.sizing.defaults import Recipe, compute_bytes, recipe
from modeljob.core.sizing.inputs import Shape
from modeljob.core.sizing.layout import Layout


@dataclass(frozen=True, slots=True)
class Part:
    """One component of GPU memory: bytes on each GPU of the replica, and how they came about."""

    per_gpu: int
    rules: tuple[str, ...]


# Which part a state belongs to, and from which ZeRO stage it is sharded ("never" = 4).
_WEIGHTS, _GRADIENTS, _OPTIMIZER = "weights", "gradients", "optimizer"
_NEVER = 4


@dataclass(frozen=True, slots=True)
class _State:
    part: str
    bytes_total: int  # over the whole model copy
    shard_from: int  # ZeRO stage from which it is split over the data-parallel ranks
    offloaded_by: Offload | None  # the offload setting that moves it to host memory
    text: str


@dataclass(frozen=True, slots=True)
class ModelStates:
    weights: Part
    gradients: Part
    optimizer: Part
    host_bytes_per_gpu: int  # what offload keeps in host memory for each GPU's rank
    host_rule: str


def _moment_bytes(optimizer: Optimizer, *, element: int = 4) -> tuple[int, str]:
    """Optimizer state per trained parameter beyond the master weights (``element``: bytes of a
    full-precision moment, 2 when the states are kept in bf16)."""
    return {
        Optimizer.ADAMW: (2 * element, f"AdamW momentum {element} + variance {element}"),
        Optimizer.ADAM8BIT: (2, "8-bit Adam momentum 1 + variance 1 (bitsandbytes)"),
        Optimizer.SGD: (element, f"SGD momentum {element}"),
    }[optimizer]


def _qlora_base(job: JobShape, shape: Shape, chosen: Recipe) -> tuple[int, str]:
    """QLoRA's frozen base: a 16-bit checkpoint quantized on load (NF4 + double quantization), or
    an integer checkpoint in its own format; the rest 16-bit, or fp32 after PEFT's upcast."""
    precision, stack = job.model.precision, chosen.stack
    rate = WEIGHT_RATES[precision] if precision in QUANTIZED else NF4_DOUBLE_QUANT
    quantized = shape.linear_parameters
    if stack.quantize_only_adapted and chosen.lora_targets is LoraTargets.ATTENTION:
        quantized = shape.attention_parameters
    rest = shape.parameters - quantized
    rest_rate, why = (FP32, "PEFT's fp32 upcast") if stack.upcast_unquantized else (BF16, "bf16")
    what = "linear" if quantized == shape.linear_parameters else "attention linear"
    return rate.of(quantized) + rest_rate.of(rest), (
        f"QLoRA base: {quantized:,} {what} params x {rate.label} + {rest:,} other params "
        f"x {rest_rate.label} ({why})"
    )


def base_weights(job: JobShape, shape: Shape) -> tuple[int, str]:
    """Bytes of the (frozen or trained) base weights of one model copy."""
    precision = job.model.precision
    moe = ""
    if job.model.active_parameters is not None and job.model.active_parameters < shape.parameters:
        moe = f" (MoE: all {shape.parameters:,} parameters are resident, not the active ones)"
    linear, embed = shape.linear_parameters, shape.embedding_parameters
    if job.workload.type is WorkloadType.QLORA:
        weights, text = _qlora_base(job, shape, recipe(job.workload))
        return weights, text + moe
    rate = WEIGHT_RATES[precision]
    if precision in QUANTIZED:
        return stored_bytes(precision, shape), (
            f"{linear:,} linear params x {rate.label} + {embed:,} embedding/lm_head params x 2 B "
            f"(kept 16-bit){moe}"
        )
    return stored_bytes(precision, shape), f"{shape.parameters:,} params x {rate.label}{moe}"


def stored_bytes(precision: Precision, shape: Shape) -> int:
    """A model stored at ``precision``: the checkpoint's files, and the weights as loaded. Quantized
    formats cover the linears; embeddings and lm_head stay 16-bit."""
    rate = WEIGHT_RATES[precision]
    if precision in QUANTIZED:
        return rate.of(shape.linear_parameters) + BF16.of(shape.embedding_parameters)
    return rate.of(shape.parameters)


def adapter_parameters(shape: Shape, chosen: Recipe) -> tuple[int, str]:
    """LoRA parameters: rank x (d_in + d_out) for each adapted linear of every layer."""
    h, q = shape.hidden_size, shape.attention_heads * shape.head_dim
    kv = shape.kv_heads * shape.head_dim
    attention = (h + q) + 2 * (h + kv) + (q + h)
    mlp = (3 if shape.gated_mlp else 2) * (h + shape.intermediate_size)
    targets = chosen.lora_targets
    # "all-linear" (PEFT) is every linear but the output head: in a decoder layer the same
    # linears as attention-and-mlp.
    only_attention = targets is LoraTargets.ATTENTION
    widths = attention if only_attention else attention + mlp
    where = "q, k, v, o" if only_attention else "q, k, v, o and the MLP linears"
    count = chosen.lora_rank * widths * shape.layers
    return (
        count,
        f"{count:,} LoRA params (rank {chosen.lora_rank}, {targets.value}: {where} x {shape.layers} layers)",
    )


def _full_training_states(job: JobShape, shape: Shape, chosen: Recipe) -> list[_State]:
    p = shape.parameters
    opt, param = Offload.OPTIMIZER, Offload.OPTIMIZER_AND_PARAMETERS
    # fp32 training (an fp32 checkpoint computing in fp32, defaults.compute_bytes), FSDP2 with
    # fp32 sharded parameters computing in bf16 (torchtitan), or pure bf16 training (torchtune,
    # whatever the checkpoint): weights, gradients and optimizer states in one precision.
    fp32_params = compute_bytes(job) == 4 or chosen.framework is Framework.TORCHTITAN
    if fp32_params or not chosen.stack.fp32_master:
        element = 4 if fp32_params else 2
        moments, moments_text = _moment_bytes(chosen.optimizer, element=element)
        dtype = "fp32" if fp32_params else "bf16, no fp32 master copy"
        return [
            _State(_WEIGHTS, element * p, 3, param, f"{p:,} params x {element} B ({dtype})"),
            _State(_GRADIENTS, element * p, 2, param, f"{p:,} params x {element} B ({dtype} gradients)"),
            _State(_OPTIMIZER, moments * p, 1, opt, f"{p:,} params x {moments} B ({moments_text})"),
        ]
    # Mixed precision as the ZeRO paper (section 3.1) and DeepSpeed's estimators count it: a
    # 16-bit working copy and 16-bit gradients, an fp32 master copy and the moments (16 B/param
    # with AdamW), plus, from stage 1, the fp32 gradient partition the optimizer steps on
    # (DeepSpeed's current estimate_zero2/3_model_states_mem_needs: 2P + 18P/N for stage 2, its
    # comment "18 = 2_grads_16bit + 4_grads_32bit + 4_params_32bit + 8_optimizer_states_32bit",
    # and 18P/N for stage 3; its pre-2024 stage-2 estimator counted the 16-bit gradients whole,
    # 4P + 16P/N, which is what we keep for stage 1).
    # Stage 3 reduce-scatters the 16-bit gradients straight into that partition.
    moments, moments_text = _moment_bytes(chosen.optimizer)
    stage = job.workload.zero_stage
    states = [
        _State(_WEIGHTS, 2 * p, 3, param, f"{p:,} params x 2 B (16-bit working copy)"),
        _State(_OPTIMIZER, 4 * p, 1, opt, f"{p:,} params x 4 B (fp32 master weights)"),
        _State(_OPTIMIZER, moments * p, 1, opt, f"{p:,} params x {moments} B ({moments_text})"),
    ]
    if stage < 3:
        states.append(_State(_GRADIENTS, 2 * p, 2, param, f"{p:,} params x 2 B (16-bit gradients)"))
    if stage >= 1:
        states.append(_State(_GRADIENTS, 4 * p, 1, opt, f"{p:,} params x 4 B (fp32 gradient partition)"))
    return states


def _adapter_states(job: JobShape, shape: Shape, chosen: Recipe) -> list[_State]:
    base, base_text = base_weights(job, shape)
    fp32_checkpoint = job.model.precision is Precision.FP32 and job.workload.type is WorkloadType.LORA
    if fp32_checkpoint and compute_bytes(job) == 2:
        # A stack that computes in bf16 (torchtune) loads the fp32 checkpoint into bf16.
        base = BF16.of(shape.parameters)
        base_text = f"{shape.parameters:,} params x {BF16.label} (loaded in bf16)"
    adapters, adapter_text = adapter_parameters(shape, chosen)
    # Adapters are fp32 or bf16 by stack (defaults.Stack.adapter_bytes), their gradients alike, and
    # the optimizer steps on them directly (no master copy), its moments fp32 unless the stack
    # trains in pure bf16. The frozen base has neither gradients nor optimizer states.
    # Offloading parameters (DeepSpeed offload_param, FSDP CPUOffload) moves their gradients too.
    element = chosen.stack.adapter_bytes
    dtype = "fp32" if element == 4 else "bf16"
    moments, moments_text = _moment_bytes(chosen.optimizer, element=4 if chosen.stack.fp32_master else 2)
    opt, param = Offload.OPTIMIZER, Offload.OPTIMIZER_AND_PARAMETERS
    return [
        _State(_WEIGHTS, base, 3, param, base_text),
        _State(_WEIGHTS, element * adapters, 3, param, f"{adapter_text} x {element} B ({dtype})"),
        _State(
            _GRADIENTS,
            element * adapters,
            2,
            param,
            f"{adapter_text} x {element} B ({dtype} gradients; the frozen base has none)",
        ),
        _State(_OPTIMIZER, moments * adapters, 1, opt, f"{adapter_text} x {moments} B ({moments_text})"),
    ]


def _states(job: JobShape, shape: Shape, chosen: Recipe) -> list[_State]:
    kind = job.workload.type
    if kind is WorkloadType.INFERENCE:
        base, text = base_weights(job, shape)
        return [_State(_WEIGHTS, base, _NEVER, None, text)]
    if kind is WorkloadType.TRAINING:
        return _full_training_states(job, shape, chosen)
    return _adapter_states(job, shape, chosen)


def model_states(job: JobShape, shape: Shape, layout: Layout) -> ModelStates:
    """Each state split over the replica's GPUs, sharded over the data-parallel ranks from its stage
    on, and moved to host memory when offload covers it."""
    work = job.workload
    chosen = recipe(work)
    stage = work.zero_stage if work.type.trains else 0
    ranks = work.replicas if work.type.trains else 1
    share_num, share_den = layout.busiest_share(shape.layers)
    g = layout.gpus
    parts: dict[str, tuple[int, list[str]]] = {_WEIGHTS: (0, []), _GRADIENTS: (0, []), _OPTIMIZER: (0, [])}
    host, host_texts = 0, []
    for state in _states(job, shape, chosen):
        shards = ranks if stage >= state.shard_from and ranks > 1 else 1
        per_gpu = ceil_div(state.bytes_total * share_num, share_den * shards)
        text = state.text
        if shards > 1:
            text += f"; ZeRO-{stage} shards it over {ranks} data-parallel ranks"
        if g > 1:
            text += f"; split over {g} GPUs"
        if state.offloaded_by is not None and chosen.offload in _covering(state.offloaded_by):
            host += per_gpu
            host_texts.append(f"{text} (offloaded to host memory)")
            continue
        total, texts = parts[state.part]
        parts[state.part] = (total + per_gpu, [*texts, text])
    offloaded = f"offloaded to host memory (spec.workload.offload {chosen.offload.value})"
    trains = work.type.trains
    return ModelStates(
        weights=_part(parts[_WEIGHTS], offloaded),
        gradients=_part(parts[_GRADIENTS], offloaded if trains else "inference keeps no gradients"),
        optimizer=_part(parts[_OPTIMIZER], offloaded if trains else "inference keeps no optimizer states"),
        host_bytes_per_gpu=host,
        host_rule="; ".join(host_texts),
    )


def _covering(needed: Offload) -> tuple[Offload, ...]:
    """The offload settings that move a state marked ``needed`` to the host."""
    if needed is Offload.OPTIMIZER:
        return (Offload.OPTIMIZER, Offload.OPTIMIZER_AND_PARAMETERS)
    return (Offload.OPTIMIZER_AND_PARAMETERS,)


def _part(entry: tuple[int, list[str]], empty: str) -> Part:
    total, texts = entry
    if not texts:
        return Part(0, (empty,))
    if len(texts) == 1:
        return Part(total, (texts[0],))
    return Part(total, (" + ".join(texts),))
