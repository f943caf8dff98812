"""Sizing constants and storage formats, each with the source or judgement behind its value.

Every number comes from a rule in docs/sizing.md, which gives each formula with its source. The
arithmetic is integer bytes throughout; ratios are written as integer fractions so that the
output never depends on float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

from modeljob.core.jobs import Precision
from modeljob.core.resources import GIB, MIB

# --- constants, each with the reason it has this value ------------------------------------------

# Share of a device's memory a replica may plan to use. vLLM's gpu_memory_utilization defaulted
# to 0.9 for most of its history (vllm/config/cache.py), TGI leaves 10% wiggle room since 2025
# (TGI_WIGGLE_ROOM) and TensorRT-LLM's free_gpu_memory_fraction is 0.9. KAITO's 0.84 is tuned
# to its own launcher (which adds its 2.3 GiB reserve on top); we count the runtime reserve
# explicitly below, so the engines' common 0.9 is the right cap for what is left.
UTILISATION_NUM, UTILISATION_DEN = 9, 10
# Training has no engine cap of that kind: the stacks allocate as they go, and the allocator's
# fragmentation is counted as slack below. We keep 5% of the device as headroom for what varies
# between steps and is not modelled (a longer sample, an allocator spike).
TRAINING_UTILISATION_NUM, TRAINING_UTILISATION_DEN = 19, 20

# Per-GPU memory the runtime holds outside the tensors, in parts that scale with what the GPU
# runs (docs/sizing.md, "Overhead"), so a 0.5B model on one GPU is not charged a 70B server's:
# - the CUDA context with PyTorch's kernels: HF's "model training anatomy" measured 1,343 MiB
#   (torch.ones(1).cuda(), nvidia-smi). Lazy module loading (PyTorch's default since CUDA 11.7)
#   starts lower, but a run loads the kernels it uses; we take the measurement.
# - library workspaces: cuBLAS keeps 8 x 4 MiB per handle (PyTorch's default
#   CUBLAS_WORKSPACE_CONFIG :4096:8), cuBLASLt 32 MiB on Hopper, plus cuDNN/FlashAttention scratch:
#   256 MiB covers a few streams of them.
# - NCCL, only when the job talks to another GPU (TP, PP or data-parallel training): channel
#   buffers of NCCL_BUFFSIZE 4 MiB per peer and channel, and vLLM's custom all-reduce buffers.
#   512 MiB per GPU (our judgement, between what one and two communicators take).
# - CUDA graphs, serving only: vLLM/TGI capture one graph per batch size over the layers a GPU
#   runs, so they grow with those layers. 8 MiB per layer is our judgement: with the parts above a
#   70B server on TP 4 totals 2.7 GiB, KAITO's 2.3 GiB reserve for vLLM
#   (pkg/workspace/estimator/nodesestimator) with margin, and a 24-layer 0.5B model 1.8 GiB.
CUDA_CONTEXT_BYTES = 1343 * MIB
LIBRARY_WORKSPACE_BYTES = 256 * MIB
NCCL_BUFFER_BYTES = 512 * MIB
CUDA_GRAPH_BYTES_PER_LAYER = 8 * MIB

# Allocator slack on top of the tensors, in percent of them. Serving allocates once and keeps
# its pools, so KAITO's 5% (of weights, for activations and CUDA graphs) suffices; training
# allocates and frees activations and gradients every step, and the reference synthesis uses ~10%
# of the tensors for the caching allocator's fragmentation (what reserved counters and nvidia-smi
# see beyond the live tensors).
INFERENCE_SLACK_PERCENT = 5
TRAINING_SLACK_PERCENT = 10

# Tokens one forward pass of a serving engine processes at most: a whole prompt for engines
# without chunked prefill (HF transformers, vLLM with chunking off must accept max_model_len at
# once), else the engine's batched-token budget; 8192 is vLLM V1's max_num_batched_tokens
# default for online serving on large GPUs.
PREFILL_TOKEN_BUDGET = 8192


# One replica may span at most 16 nodes: pipeline depth 16 is what Llama 3 405B pre-training
# used (Llama 3 paper, Table 4); beyond it we report fits=False rather than invent a layout.
MAX_NODES_PER_REPLICA = 16
# Devices on one node: 1..64. Our judgement: the GPU servers we size for have 8 devices (HGX/DGX
# H100 and H200, MI300X platforms) and some have 16; 64 leaves room for denser trays, and more
# is a typo.
MAX_GPUS_PER_NODE = 64

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
# We count its GB as GiB (7% more, the safe side of the source's unit).
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
# DeepSpeed's estimators (estimate_zero2/3_model_states_mem_needs) multiply offloaded states in
# host memory by additional_buffer_factor=1.5 for the pinned staging buffers.
OFFLOAD_BUFFER_PERCENT = 150
# KAITO pkg/model/interface.go: disk = checkpoint x 2.5 + 48 GiB, rounded up to 10 GiB.
DISK_CHECKPOINT_FACTOR_NUM, DISK_CHECKPOINT_FACTOR_DEN = 5, 2
DISK_FIXED_BYTES = 48 * GIB
DISK_ROUNDING_BYTES = 10 * GIB

# ZeRO communication buffers per GPU, each at the compute dtype (defaults.compute_bytes: 2 B, or
# 4 B for an fp32 checkpoint under Transformers, where no mixed precision is on: DeepSpeed's
# engine casts the module only for fp16/bf16, and stage3.py sets self.dtype from the first
# trainable parameter and allocates its reduce bucket with dtype=self.dtype; stage_1_and_2.py's
# ipg buffer likewise). The bucket, the sub-group step buffer and the live window are DeepSpeed's:
# charged only where DeepSpeed may run (defaults.Stack.may_run_deepspeed). EleutherAI's
# calculator (cookbook calc_transformer_mem.py) charges the 5e8-element bucket at 2 B for every
# stage; DeepSpeed's defaults are reduce_bucket_size = allgather_bucket_size = 5e8
# (runtime/zero/config.py), and stage 3 allocates its reduce bucket whole at start-up
# (contiguous_gradients, default on), whatever the world size. Stage 3 reduce-scatters it with
# reduce_scatter_coalesced (runtime/comm/coalesced_collectives.py), whose torch.cat interleaves
# the bucket's gradients into a copy as large as what the bucket holds.
ZERO_BUCKET_ELEMENTS = 500_000_000
# Stage 3 / FSDP full shard also holds gathered parameters; we take the largest of:
# - DeepSpeed's stage3_max_live_parameters (1e9 elements) at the compute dtype: parameters whose
#   next use is within stage3_max_reuse_distance (1e9) stay gathered, so at the turn from forward
#   to backward the last modules of the forward stay (partitioned_param_coordinator.py
#   __params_to_release); prefetch fills up to max_live;
# - the largest layer gathered (DeepSpeed's estimator: 4 B = 2 B gathered + 2 B gradient, memory.rst
#   "largest_layer_memory"), at the compute dtype, its gradient only where the layer trains (a
#   frozen LoRA base has none). With parameter offload the rank's partition of it is copied from
#   host to GPU beside the gathered buffer (partition_parameters.py all_gather_coalesced:
#   param.ds_tensor.to(cuda) then the all-gather into a full-size buffer), 1/N of it more;
# - FSDP's current and prefetched layer (forward_prefetch / BACKWARD_PRE) unsharded at the compute
#   dtype (MixedPrecision's param_dtype, or the parameters' own without it), with their gradients
#   at that dtype before the reduce-scatter: 2 layers x (e + e) B, 2 x (4 + 4) B computing in fp32.
ZERO3_MAX_LIVE_PARAMETERS = 1_000_000_000
# DeepSpeed stage 3's sub_group_size default: the optimizer steps this many parameters at a time
# (at most the rank's partition of the trainable ones: since DeepSpeed PR #2653 of January 2023
# frozen parameters get no fp32 partition). stage3.py _prepare_fp32_grad_for_sub_group flattens
# their gradients (at the compute dtype) and converts the result to fp32, both alive at once; with
# the optimizer offloaded that happens in host memory (self.device is the CPU).
ZERO3_SUB_GROUP_PARAMETERS = 1_000_000_000
FSDP_LAYERS_IN_FLIGHT = 2
# Under pipeline parallelism (gpu_memory._zero_buffers says why): the gathered stage at the compute
# dtype + its gradients accumulated unsharded in fp32.
FSDP_PP_GRADIENT_BYTES_PER_PARAM = 4

# torchao's NF4 quantizer (NF4Tensor.quantize_tensor_nearest, unchanged from torchao v0.1 of April
# 2024 through v0.5 and after) finds each element's nearest of the 16 NF4 levels by
# `(value.unsqueeze(-1) - nf4).abs()`: two (numel x 16) bf16 tensors alive at once, 64 B per
# element, beside the bf16 source on the GPU and its block-scaled copy (2 B + 2 B). torchtune
# quantizes one linear at a time, so the peak is the quantized model plus this for its largest
# quantized linear (its shard under FSDP: load_from_full_model_state_dict quantizes per shard).
TORCHAO_NF4_QUANTIZE_BYTES_PER_ELEMENT = 68

QUANTIZED = frozenset({Precision.FP8, Precision.INT8, Precision.INT4, Precision.NF4})


# --- storage rates ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rate:
    """Bytes per element as an exact fraction, with the reason."""

    num: int
    den: int
    label: str

    def of(self, count: int) -> int:
        return ceil_div(count * self.num, self.den)


# Weight formats (docs/sizing.md, weights). Quantized formats cover the linear layers;
# embeddings and lm_head stay 16-bit (GPTQ/AWQ/bitsandbytes/FP8 checkpoints all keep them so).
WEIGHT_RATES = {
    Precision.FP32: Rate(4, 1, "4 B (fp32)"),
    Precision.BF16: Rate(2, 1, "2 B (bf16)"),
    Precision.FP16: Rate(2, 1, "2 B (fp16)"),
    # FP8 E4M3 with per-tensor (or 128x128 block) scales: the scales are negligible.
    Precision.FP8: Rate(1, 1, "1 B (fp8)"),
    # GPTQ int8, group 128: 8 bits + fp16 scale and 8-bit zero point per 128 weights.
    Precision.INT8: Rate(131, 128, "1.023 B (int8, group 128: 8 + 24/128 bits)"),
    # GPTQ/AWQ int4, group 128: 4 bits + fp16 scale and 4-bit zero point per 128 weights.
    Precision.INT4: Rate(133, 256, "0.520 B (int4, group 128: 4 + 20/128 bits)"),
    # A pre-quantized NF4 checkpoint: 4 bits + one fp32 absmax per 64 weights (whether it was
    # double-quantized is not in the spec, so the plain rate).
    Precision.NF4: Rate(9, 16, "0.5625 B (nf4: 4 + 32/64 bits)"),
}
# QLoRA quantizing a 16-bit checkpoint on load, as its recipes configure bitsandbytes
# (bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True: the QLoRA scripts, PEFT's and
# TRL's QLoRA examples): 4 bits + an 8-bit absmax per 64 weights + an fp32 constant per 256
# absmax blocks = 67,616 bits per 16,384 weights (QLoRA paper section 3, "Double Quantization").
NF4_DOUBLE_QUANT = Rate(2113, 4096, "0.516 B (nf4 + double quantization: 4 + 8/64 + 32/16384 bits)")
BF16 = Rate(2, 1, "2 B (bf16)")
FP32 = Rate(4, 1, "4 B (fp32)")


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)
