"""What the training-sizing tests share: Llama-3.1-8B's shape and layers, and readings of an Estimate."""

from __future__ import annotations

from modeljob.core.jobs import Architecture, ModelShape
from modeljob.core.sizing import Estimate

LLAMA_8B = ModelShape(
    parameters=8_030_261_248,
    architecture=Architecture(32, 4096, 32, kv_heads=8, vocab_size=128_256, intermediate_size=14_336),
)
# Llama-3.1-8B's largest layer (the 128,256 x 4096 embedding) and one decoder layer (what is not
# the embedding or lm_head, over 32 layers).
LLAMA_8B_EMBEDDING = 128_256 * 4096
LLAMA_8B_LAYER = (8_030_261_248 - 2 * LLAMA_8B_EMBEDDING) // 32


def states(estimate: Estimate) -> int:
    return estimate.weights_bytes + estimate.gradients_bytes + estimate.optimizer_states_bytes


def rule(estimate: Estimate, field: str) -> str:
    return {r.field: r.explanation for r in estimate.rules}[field]


def overhead_with(estimate: Estimate, buffers: int) -> int:
    """The overhead an estimate must show when its ZeRO/FSDP buffers are ``buffers`` bytes: the
    runtime, the buffers, and the 10% training slack over the tensors and the buffers."""
    tensors = states(estimate) + estimate.activations_bytes + estimate.kv_cache_bytes
    return estimate.runtime_per_gpu_bytes + buffers + -(-(tensors + buffers) * 10 // 100)
