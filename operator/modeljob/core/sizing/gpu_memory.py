"""GPU memory of one replica in one layout: model states, KV cache, activations and the runtime's overhead."""

from __future__ import annotations

from dataclasses import dataclass

from modeljob.core.jobs import JobShape, LoraTargets, Offload, WorkloadType
from modeljob.core.resources import format_bytes
from modeljob.core.sizing.activations import activations
from modeljob.core.sizing.constants import (
    CUDA_CONTEXT_BYTES,
    CUDA_GRAPH_BYTES_PER_LAYER,
    FALLBACK_KV_HEADS,
    FSDP_LAYERS_IN_FLIGHT,
    FSDP_PP_GRADIENT_BYTES_PER_PARAM,
    INFERENCE_SLACK_PERCENT,
    LIBRARY_WORKSPACE_BYTES,
    NCCL_BUFFER_BYTES,
    QUANTIZED,
    TORCHAO_NF4_QUANTIZE_BYTES_PER_ELEMENT,
    TRAINING_SLACK_PERCENT,
    ZERO3_MAX_LIVE_PARAMETERS,
    ZERO3_SUB_GROUP_PARAMETERS,
    ZERO_BUCKET_ELEMENTS,
    ceil_div,
)
from modeljob.core.sizing.defaults import compute_bytes, recipe
from modeljob.core.sizing.inputs import Shape
from modeljob.core.sizing.layout import Layout
from modeljob.core.sizing.model_states import ModelStates, Part, adapter_parameters, model_states


@dataclass(frozen=True, slots=True)
class Memory:
    weights: Part
    kv_cache: Part
    activations: Part
    gradients: Part
    optimizer: Part
    overhead: Part
    runtime_per_gpu: int  # the part of the overhead outside torch's allocator (context, NCCL, graphs)
    host_offload_per_gpu: int  # model states offload keeps in host memory, per GPU's rank
    host_offload_rule: str

    @property
    def per_gpu(self) -> int:
        return sum(part.per_gpu for part in self.parts())

    def parts(self) -> tuple[Part, ...]:
        return (self.weights, self.kv_cache, self.activations, self.gradients, self.optimizer, self.overhead)


def kv_cache(job: JobShape, shape: Shape, layout: Layout) -> Part:
    work = job.workload
    if work.type.trains:
        return Part(0, ("training runs without a KV cache (use_cache=False)",))
    element = compute_bytes(job)
    per_token = 2 * shape.layers * shape.kv_heads * shape.head_dim * element
    total = per_token * work.sequence_length * work.batch_size
    # Each GPU of a tensor-parallel group holds kv/t heads, or one replicated head when t > kv;
    # pipeline stages each hold their own layers (the busiest stage ceil(layers / PP) of them).
    head_split = min(layout.tensor_parallel, shape.kv_heads)
    stage_layers = -(-shape.layers // layout.pipeline)
    per_gpu = ceil_div(total * stage_layers, head_split * shape.layers)
    dtype = "fp32" if element == 4 else "16-bit"
    text = (
        f"2 (K,V) x {shape.layers} layers x {shape.kv_heads} kv heads x {shape.head_dim} head dim x "
        f"{element} B ({dtype}) x {work.sequence_length} tokens x {work.batch_size} sequences"
    )
    if shape.derived:
        text += f" (GQA assumed: {FALLBACK_KV_HEADS} kv heads; declare the architecture to be exact)"
    if layout.gpus > 1:
        text += f"; each GPU holds 1/{head_split} of the heads of {stage_layers} layers"
        if layout.tensor_parallel > shape.kv_heads:
            text += f" (kv heads replicated: TP {layout.tensor_parallel} > {shape.kv_heads} kv heads)"
    return Part(per_gpu, (text,))


def _runtime(job: JobShape, shape: Shape, layout: Layout) -> tuple[int, list[str]]:
    """What the runtime holds outside the tensors, by part (docs/sizing.md, "Overhead")."""
    work = job.workload
    parts = [
        (CUDA_CONTEXT_BYTES, "CUDA context"),
        (LIBRARY_WORKSPACE_BYTES, "cuBLAS/cuDNN workspaces"),
    ]
    talks = layout.gpus > 1 or (work.type.trains and work.replicas > 1)
    if talks:
        parts.append((NCCL_BUFFER_BYTES, "NCCL buffers"))
    if not work.type.trains:
        layers_here = ceil_div(shape.layers, layout.pipeline)
        graphs = CUDA_GRAPH_BYTES_PER_LAYER * layers_here
        parts.append(
            (graphs, f"CUDA graphs {format_bytes(CUDA_GRAPH_BYTES_PER_LAYER)} x {layers_here} layers")
        )
    total = sum(size for size, _ in parts)
    text = " + ".join(f"{what} {format_bytes(size)}" for size, what in parts)
    return total, [f"runtime {format_bytes(total)} per GPU: {text}"]


def _zero_buffers(job: JobShape, shape: Shape, layout: Layout) -> tuple[int, list[str]]:
    """ZeRO/FSDP buffers at the compute dtype (defaults.compute_bytes). Under Transformers the spec
    cannot tell DeepSpeed from FSDP, so both frameworks' buffers are charged (the safe side); the
    FSDP-only stacks (torchtune, torchtitan) get FSDP's alone."""
    work = job.workload
    # DeepSpeed allocates its buckets whatever the world size (a single-GPU ZeRO run has them too).
    stage = work.zero_stage if work.type.trains else 0
    if stage == 0:
        return 0, []
    element = compute_bytes(job)
    deepspeed = recipe(work).stack.may_run_deepspeed
    size, texts = 0, []
    if deepspeed:
        size = element * ZERO_BUCKET_ELEMENTS
        texts.append(
            f"DeepSpeed gradient bucket {ZERO_BUCKET_ELEMENTS:.0e} elements x {element} B (the compute dtype)"
        )
    if stage < 3:
        return size, texts
    if layout.pipeline > 1:
        # With pipeline stages, FSDP keeps a stage's parameters gathered across its micro-batches
        # (torchtitan sets reshard_after_forward=False under PP) and accumulates their unsharded
        # gradients until the last micro-batch, upcast to the fp32 reduce dtype (FSDP2's
        # to_accumulated_grad_if_needed): e B + 4 B per parameter of the stage.
        per_param = element + FSDP_PP_GRADIENT_BYTES_PER_PARAM
        share_num, share_den = layout.busiest_share(shape.layers)
        stage_bytes = ceil_div(per_param * shape.parameters * share_num, share_den)
        texts.append(
            f"FSDP under PP {layout.pipeline}: the stage's parameters stay gathered and their gradients "
            f"accumulate unsharded ({element} B + 4 B fp32 x its share of {shape.parameters:,} params)"
        )
        return size + stage_bytes, texts
    if deepspeed:
        # Stage 3 reduce-scatters a full bucket through reduce_scatter_coalesced, whose torch.cat
        # interleaves the bucket's gradients into a new tensor of the same size
        # (runtime/comm/coalesced_collectives.py): as many elements as the bucket holds, at most
        # the GPU's trainable parameters.
        copy = min(ZERO_BUCKET_ELEMENTS, ceil_div(_trainable_parameters(job, shape), layout.gpus))
        size += element * copy
        texts.append(f"ZeRO-3 reduce-scatter copy of the bucket ({copy:,} elements x {element} B)")
    step, step_text = _zero3_step_buffer(job, shape, layout)
    gathered, gathered_text = _zero3_gathered(job, shape, element)
    return size + step + gathered, [*texts, step_text, gathered_text]


def _trainable_parameters(job: JobShape, shape: Shape) -> int:
    if job.workload.type is WorkloadType.TRAINING:
        return shape.parameters
    trainable, _ = adapter_parameters(shape, recipe(job.workload))
    return trainable


def _zero3_step_buffer(job: JobShape, shape: Shape, layout: Layout) -> tuple[int, str]:
    """The fp32 gradients of one optimizer sub-group, built where DeepSpeed's optimizer steps."""
    work = job.workload
    chosen = recipe(work)
    if not chosen.stack.may_run_deepspeed:
        return 0, "FSDP steps on its sharded fp32 gradients (no sub-group step buffer)"
    if chosen.offload is not Offload.NONE:
        return 0, (
            "ZeRO-3 optimizer step: the sub-groups' fp32 gradients live with the offloaded optimizer "
            "in host memory"
        )
    partition = ceil_div(_trainable_parameters(job, shape), work.replicas * layout.gpus)
    step = min(partition, ZERO3_SUB_GROUP_PARAMETERS)
    # _prepare_fp32_grad_for_sub_group flattens the sub-group's gradient partitions (a new tensor
    # at the gradient dtype) and converts that to fp32 (a no-op when it is fp32 already): both are
    # alive at the conversion.
    element = compute_bytes(job)
    per_param, per_text = (element + 4, f"{element} B flattened + 4 B fp32") if element != 4 else (4, "4 B")
    return per_param * step, (
        f"ZeRO-3 optimizer step: the gradients of one sub-group of the trainable parameters "
        f"flattened and made fp32 ({step:,} params x {per_text})"
    )


def _zero3_gathered(job: JobShape, shape: Shape, element: int) -> tuple[int, str]:
    """Parameters a ZeRO-3/FSDP rank holds gathered at its peak: the largest of the bounds that
    apply (DeepSpeed's live window only where DeepSpeed may run)."""
    work = job.workload
    chosen = recipe(work)
    largest = shape.largest_layer_parameters
    # The gathered layer and, where it trains, its gradient before the reduce-scatter.
    per_param, per_text = (2 * element, f"({element} B + {element} B gradient)")
    if work.type is not WorkloadType.TRAINING:
        per_param, per_text = element, f"{element} B (frozen: no gradient)"
    largest_bytes = per_param * largest
    if chosen.offload is Offload.OPTIMIZER_AND_PARAMETERS:
        largest_bytes += ceil_div(element * largest, work.replicas)
        per_text += f" + its 1/{work.replicas} partition copied in from host memory"
    bounds = [(largest_bytes, f"{largest:,} largest-layer params x {per_text}")]
    if chosen.stack.may_run_deepspeed:
        live = element * ZERO3_MAX_LIVE_PARAMETERS
        bounds.append((live, f"DeepSpeed's {ZERO3_MAX_LIVE_PARAMETERS:.0e} live params x {element} B"))
    # FSDP's current and prefetched layer, gathered at the compute dtype with a gradient of it
    # before the reduce-scatter (for LoRA too: FSDP with use_orig_params and mixed requires_grad
    # allocates the gradient of the whole flat parameter, frozen parts included).
    layer = shape.linear_parameters // shape.layers
    in_flight = FSDP_LAYERS_IN_FLIGHT * 2 * element * layer
    layers_text = f"FSDP's {FSDP_LAYERS_IN_FLIGHT} layers x {layer:,} params"
    bounds.append((in_flight, f"{layers_text} x ({element} B + {element} B gradient)"))
    text = "ZeRO-3/FSDP gathered parameters: max(" + ", ".join(what for _, what in bounds) + ")"
    return max(size for size, _ in bounds), text


def _quantize_on_load(job: JobShape, shape: Shape, layout: Layout) -> tuple[int, str]:
    """What quantizing the base to NF4 on the GPU holds beyond the weights, while no activation,
    gradient or optimizer state exists yet (the optimizer is built after the model). The GPU must
    hold it as much as the training step's peak; counters reset after start-up do not show it, but
    the caching allocator keeps its blocks reserved (torchtune's QLoRA tutorial of April 2024:
    9.13 GB reserved after model init, 9.29 GB in training)."""
    work = job.workload
    chosen = recipe(work)
    if work.type is not WorkloadType.QLORA or not chosen.stack.quantizes_with_torchao:
        return 0, ""
    if job.model.precision in QUANTIZED:
        return 0, ""  # a pre-quantized checkpoint is loaded as it is
    h = shape.hidden_size
    attention = h * shape.attention_heads * shape.head_dim
    only_attention = chosen.stack.quantize_only_adapted and chosen.lora_targets is LoraTargets.ATTENTION
    largest = attention if only_attention else max(attention, h * shape.intermediate_size)
    shards = layout.gpus * (work.replicas if work.zero_stage >= 3 else 1)
    per_gpu = ceil_div(TORCHAO_NF4_QUANTIZE_BYTES_PER_ELEMENT * largest, shards)
    return per_gpu, (
        f"load-time NF4 quantization (torchao to_nf4): {TORCHAO_NF4_QUANTIZE_BYTES_PER_ELEMENT} B x "
        f"{largest:,} elements of the largest quantized linear"
        f"{f' / {shards} shards' if shards > 1 else ''} beside the quantized weights"
    )


def memory(job: JobShape, shape: Shape, layout: Layout) -> Memory:
    states: ModelStates = model_states(job, shape, layout)
    kv = kv_cache(job, shape, layout)
    acts = activations(job, shape, layout)
    training = job.workload.type.trains
    slack_percent = TRAINING_SLACK_PERCENT if training else INFERENCE_SLACK_PERCENT
    tensors = sum(part.per_gpu for part in (states.weights, kv, acts, states.gradients, states.optimizer))
    # The peak is the larger of loading (weights and the quantizer's scratch) and training.
    scratch, scratch_text = _quantize_on_load(job, shape, layout)
    load_extra = max(0, states.weights.per_gpu + scratch - tensors)
    runtime, runtime_texts = _runtime(job, shape, layout)
    buffers, buffer_texts = _zero_buffers(job, shape, layout)
    # The ZeRO/FSDP buffers are tensors of the caching allocator too (the gathered parameters are
    # allocated and freed every step, on DeepSpeed's all-gather stream, whose blocks no other
    # stream reuses), so the slack covers them as it covers the rest.
    slack = ceil_div((tensors + buffers + load_extra) * slack_percent, 100)
    texts = [
        *runtime_texts,
        f"allocator slack {slack_percent}% of the tensors and buffers ({format_bytes(slack)} per GPU)",
        *buffer_texts,
    ]
    if load_extra:
        texts.append(
            f"{scratch_text}: the load peak exceeds the training step's tensors by {format_bytes(load_extra)}"
        )
    return Memory(
        weights=states.weights,
        kv_cache=kv,
        activations=acts,
        gradients=states.gradients,
        optimizer=states.optimizer,
        overhead=Part(runtime + slack + buffers + load_extra, tuple(texts)),
        runtime_per_gpu=runtime,
        host_offload_per_gpu=states.host_bytes_per_gpu,
        host_offload_rule=states.host_rule,
    )
