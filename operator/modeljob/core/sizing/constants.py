"""Sizing constants and storage formats, each with the source or judgement behind its value.

Every number comes from a rule in docs/sizing.md, which gives each formula with its source. The
arithmetic is integer bytes throughout; ratios are written as integer fractions so that the
output never depends on float rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

from modeljob.core.jobs import Precision
from modeljob.core.resources import GIB

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


def _ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)
