"""Where the figures come from: each source at the commit read, and what it states of its setting."""

HF_LLAMA31 = "HF blog 'Llama 3.1' (huggingface/blog llama31.md @0551785), memory tables"
QWEN25_SPEED = (
    "Qwen2.5 speed benchmark (QwenLM/Qwen2.5 docs/source/benchmark/speed_benchmark.rst), "
    "HF transformers, A100-80GB, batch 1, 2048 new tokens"
)
QWEN_FT = (
    "Qwen (v1) README 'Profiling of Memory and Speed' (QwenLM/Qwen README.md @85cb093): A100-80G, "
    "flash-attn 2, batch 1, gradient checkpointing, LoRA rank 64"
)
ZERO = "ZeRO paper (Rajbhandari et al., arXiv:1910.02054)"
DEEPSPEED_MEMORY = "DeepSpeed docs/code-docs/source/memory.rst, t5-3b (2851M params) on 1 node x 8 GPUs"
LLAMA_FACTORY = "LLaMA-Factory README 'Hardware Requirement' (hiyouga/LLaMA-Factory @ff6d4d1)"
QWEN25_NOTE = "script sums torch.cuda.max_memory_allocated over GPUs / 1024^3: GiB, no CUDA context"
