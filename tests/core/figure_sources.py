"""Where the figures come from: each source at the commit read, and what it states of its setting."""

# --- published figures (published_figures.py) -----------------------------------------------------

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

# --- measured training runs (training_figures.py) -------------------------------------------------

# The sources, at the commits read:
# - torchtune README "Memory and training speed" (Llama 3.1), pytorch/torchtune README.md
#   @30b8519e86d2094879576e16ab1f8d21a6f6f9f7 (unchanged at @bd2a0fc7c31430972728494fa01aaeeb0ebf1ba1),
#   configs recipes/configs/llama3_1/*.yaml at the same commit.
# - torchtune README "Optimization flags" (Llama 3.2 3B), pytorch/torchtune README.md
#   @1814feb17a9038e1a8053ce93111bd26774a8db6, configs recipes/configs/llama3_2/*.yaml there.
# - torchtune README memory table (Llama2-7B / 70B), pytorch/torchtune README.md
#   @0217d44c2e1e372b34628767745c1f6538086a81, configs recipes/configs/llama2/*.yaml there.
# - torchtune docs, LoRA tutorial, docs/source/tutorials/lora_finetune.rst
#   @ff594c23113891c99050f730c6be0aeacf511b2f ("Trading off memory and model performance with LoRA").
# - torchtune docs, QLoRA tutorial, docs/source/tutorials/qlora_finetune.rst
#   @0914d5cfb5a34bf14a72e36b9ddebc64904763d1 ("Putting it all together: QLoRA finetune").
# - torchtitan benchmarks/llama3_h100_202412_torchtitan.md @820504e20d1149fbf0b98c567af24c4b0433b22d
#   (formerly docs/performance.md; runs at torchtitan 9dec370ad26b5f8e9a7333a0e36165018262644b,
#   whose train_configs/llama3_{8b,70b,405b}.toml give seq_len 8192).
# - torchtitan benchmarks/llama3-8b_h200_202506_trainy-whitefiber.md
#   @4a61bd87d3c7e92bcfeb5d5464d9e6bd13ef440a (run at torchtitan e7c0cae934df78d6e9c2835f42ff1f757dc3fddc).
# - PEFT docs docs/source/accelerate/deepspeed.md and docs/source/accelerate/fsdp.md, huggingface/peft
#   @5d602fdbff04c33c1c4de55cda9d4ae1d7cb7e40 (https://huggingface.co/docs/peft/accelerate/deepspeed,
#   https://huggingface.co/docs/peft/accelerate/fsdp), "Memory usage" sections.
# - PEFT README "High performance on consumer hardware", huggingface/peft README.md
#   @73d7224b5caedb1325bde42b1378b746fa691bc9 (table unchanged at @5d602fdb), script
#   examples/causal_language_modeling/pet_lora_clm_accelerate_ds_zero3_offload.py at 73d7224b5.
# - Hugging Face transformers docs "Efficient Training on a Single GPU",
#   docs/source/en/perf_train_gpu_one.mdx @98513dfd0db6dab00d26c1ef3a0e5f7410ce2035
#   (https://huggingface.co/docs/transformers/v4.27.2/en/perf_train_gpu_one); the vanilla run is
#   repeated in docs/source/en/model_memory_anatomy.md ("Model training anatomy").
#
# Looked at and not used:
# - Qwen1.5 / Qwen2 / Qwen2.5: no fine-tuning memory profile like Qwen (v1)'s README table
#   (QwenLM/Qwen2.5 docs/source/training/* describe scripts and frameworks, no measured memory);
#   the Qwen (v1) table is already in qwen_profile.py (summed over GPUs, not per GPU).
# - torchtune README @30b8519e: "Llama 3.1 8B Full finetune 1x A6000 37.4 GiB" and "LoRA 1x A6000
#   30.3 GiB": the README does not say what differs from the 4090 rows (18.9 / 16.2 GiB with the
#   same recipe defaults), so the settings are unknown.
# - torchtune README @0217d44c: "2 x RTX 4090 LoRA 16.2 GB" (its config 7B_lora has activation
#   checkpointing off, which cannot fit batch 4 x 2048 in 16 GB, so the run's settings are not the
#   config's); "1 x RTX 4090 Full finetune 24.1 GB" (the maintainers could not reproduce it:
#   pytorch/torchtune PR #961 measured 20.2-22.3 GB); "8 x A100 Full Finetune Llama2-70B 70.4 GB"
#   (no 70B full config existed at that commit).
# - torchtitan rows with context parallel > 1 (the sequence is split across GPUs: not expressible).
# - PEFT README rows for bigscience/T0_3B and mt0-xxl: encoder-decoder (T5) models, which the
#   decoder-only Architecture cannot describe.

TT_31 = (
    "torchtune README 'Memory and training speed' (pytorch/torchtune README.md @30b8519e): "
    "batch 2, no grad accumulation, dataset packed to 2048, torch.compile on"
)
TT_31_NOTE = (
    "pure bf16 (torchtune); config at @30b8519e: {config}; 'Peak Memory per GPU', counter not "
    "named; packed to 2048, compile on; the README does not name the config, the recipe default is assumed"
)
TT_32 = (
    "torchtune README 'Optimization flags' (pytorch/torchtune README.md @1814feb1): Llama 3.2 3B, "
    "batch 2, max seq 4096, bf16, A100, each row adds to the previous one; 'Peak Memory Active (GiB)'"
)
TT_32_FULL = "full_finetune_single_device, pure bf16 (params, grads, optimizer states all bf16)"
TT_32_LORA = (
    "lora_finetune_single_device, reproduce command: packed, compile, CEWithChunkedOutputLoss, "
    "activation checkpointing, activation offloading, torch AdamW, seq 4096, batch 2; "
    "LoRA rank 64 on q, v, output_proj and the MLP (no k_proj)"
)
TT_L2 = "torchtune README table (pytorch/torchtune README.md @0217d44c): 'Peak Memory per GPU (GB)'"
TT_L2_NOTE = (
    "counter not named; GB = 10^9 bytes (torchtune's logger at @0217d44c divides by 1e9); the "
    "README states 'Batch Size = {bs}, Seq Length = {seq}' over config "
    "{config} (alpaca, unpacked: the stated length is read as the padded length, as "
    "pytorch/torchtune PR #961 reproduced it); pure bf16"
)
TT_LORA_TUTORIAL = (
    "torchtune LoRA tutorial (docs/source/tutorials/lora_finetune.rst @ff594c23), table "
    "'Trading off memory and model performance with LoRA': llama2/7B_lora_single_device, batch 2"
)
TT_LORA_TUTORIAL_NOTE = (
    "pure bf16, torch AdamW, activation checkpointing, full (unchunked) cross-entropy, no compile; "
    "alpaca_cleaned unpacked with the builder's max_seq_len 512 (batches padded to their longest, "
    "so 512 is an upper bound); 'Peak Memory' is max_memory_reserved (the QLoRA tutorial prints "
    "the same 15.57 GB as 'Peak memory reserved, training'); GB = 10^9 bytes (torchtune's "
    "logger at that commit divides by 1e9)"
)
TITAN = (
    "torchtitan benchmarks/llama3_h100_202412_torchtitan.md (pytorch/torchtitan @820504e2), "
    "H100 96GB HBM2e, torchtitan 9dec370"
)
TITAN_NOTE = (
    "'Memory(GiB)' is torch max_memory_reserved (train.py logs max_reserved_gib); FSDP2 keeps fp32 "
    "sharded params and AdamW states, bf16 compute"
)
TITAN_H200 = (
    "torchtitan benchmarks/llama3-8b_h200_202506_trainy-whitefiber.md (pytorch/torchtitan "
    "@4a61bd87): 8 x H200 per node, local batch 2, compile, Float8 (fsdp float8 all-gather, "
    "precomputed scales, force_recompute_fp8_weight_in_bwd), sampled at step 100"
)
PEFT_DS = "PEFT docs 'DeepSpeed' (huggingface/peft docs/source/accelerate/deepspeed.md @5d602fdb)"
PEFT_FSDP = "PEFT docs 'FSDP' (huggingface/peft docs/source/accelerate/fsdp.md @5d602fdb)"
PEFT_SFT_NOTE = (
    "examples/sft/train.py (TRL SFTTrainer), Llama-2-70b-hf, max_seq_len 2048 with packing, "
    "flash-attn 2, gradient checkpointing, LoRA r 8 all-linear, adamw_torch; {extra}"
)
PEFT_README = (
    "PEFT README 'High performance on consumer hardware' (huggingface/peft README.md @73d7224b): "
    "bigscience/bloomz-7b1 on ought/raft twitter_complaints, A100 80GB"
)
PEFT_README_NOTE = (
    "script pet_lora_clm_accelerate_ds_zero3_offload.py @73d7224b: fp32 load (no torch_dtype), "
    "batch 8, max_length 64 (padded), LoRA r 8 on the fused query_key_value only, AdamW; counter "
    "torch max_memory_allocated printed in MiB ('GB' read as GiB); mixed precision and the "
    "'PyTorch' column's exact script are not stated"
)
HF_ONE_GPU = (
    "HF transformers docs 'Efficient Training on a Single GPU' (docs/source/en/perf_train_gpu_one.mdx "
    "@98513dfd): bert-large-uncased classification, V100 16GB, seq 512, Trainer"
)
HF_NOTE = (
    "nvidia-smi (pynvml info.used // 1024**2, printed 'MB', i.e. MiB), includes the 1343 MiB CUDA "
    "context; encoder-only, 2-way head; Trainer default AdamW (adamw_hf)"
)
# The estimator sizes decoder language models with FlashAttention/SDPA kernels (no s^2 scores)
# and a language-model head; these 2023 runs used BERT's eager attention, which keeps every
# layer's 16 x 512 x 512 attention scores and probabilities for the backward.
HF_OUTSIDE = "eager attention (s^2 scores kept per layer) in an encoder classifier: not modelled"
