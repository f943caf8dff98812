"""Measured per-GPU peak memory of training and fine-tuning runs, each with its source and settings.

Every number below was printed by the source named next to it (README tables, documentation
pages, benchmark reports); none is estimated or recomputed here. Each job restates the setting as
the source describes it, with the recipe or config the source links read at the commit given; what
a ``Workload`` cannot express (torch.compile, chunked cross-entropy, packing, activation offloading,
optimizer-in-backward, Float8, context parallel, the allocator counter) is said in ``note``.

Conventions (tests/core/figure_records.py): ``gb`` is 10^9 bytes, ``gib`` 2^30; FSDP full shard
is ``zero_stage=3``, DDP is ``zero_stage=0``; ``replicas`` is the number of data-parallel ranks that
shard the model states; ``Overrides(gpus=...)`` is the GPUs inside one data-parallel rank (tensor
and pipeline parallel). ``Measure.PEAK_PER_GPU_ALLOCATED`` is torch's allocated/active peak (no
CUDA context, no cached blocks); ``Measure.PEAK_PER_GPU_RESERVED`` is max_memory_reserved,
nvidia-smi, or a "peak memory" whose counter the source does not name.

Framework facts the notes rely on:
- torchtune trains in pure bf16: parameters, gradients and optimizer states are all bf16 (no fp32
  master copy); QLoRA quantises to NF4 (torchao) only the linears that carry LoRA adapters.
- torchtitan (FSDP2) keeps sharded fp32 parameters and AdamW states and computes in bf16; its
  "memory" is torch.cuda max_memory_reserved (train.py logs device_mem_stats.max_reserved_gib).
- Hugging Face Trainer with fp16=True is torch AMP: fp32 weights, fp32 gradients, fp32 AdamW states.
"""

# SOURCES
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

from __future__ import annotations

from modeljob.core.jobs import (
    Architecture,
    Checkpointing,
    Framework,
    JobShape,
    LoraTargets,
    ModelShape,
    Offload,
    Optimizer,
    Overrides,
    Precision,
    Workload,
    WorkloadType,
)
from modeljob.core.resources import GIB
from modeljob.core.sizing import Device
from tests.core.figure_records import Figure, Kind, Measure, gb, gib
from tests.core.figure_shapes import LLAMA31_8B, LLAMA31_70B, LLAMA31_405B, with_precision

# --- devices ---------------------------------------------------------------------------------------

RTX_4090 = Device(memory_bytes=24 * GIB)  # 24 GiB (24,564 MiB usable)
GPU_40GIB = Device(memory_bytes=40 * GIB)  # A100 40 GB
GPU_24GIB = Device(memory_bytes=24 * GIB)  # RTX 3090 / 4090
H100_96GB = Device(memory_bytes=gb("96"))  # torchtitan's Grand Teton H100: "96GB HBM2e"
H200 = Device(memory_bytes=gb("141"))  # H200 as sold: 141 GB
V100_16GB = Device(memory_bytes=16_160 * 2**20)  # nvidia-smi in the HF page: 16160MiB

# --- architectures not in figure_shapes.py (config.json on each model card) ----------------------

LLAMA2_7B = ModelShape(
    name="Llama-2-7b",
    parameters=6_738_415_616,
    architecture=Architecture(32, 4096, 32, kv_heads=32, vocab_size=32_000, intermediate_size=11_008),
)
LLAMA2_70B = ModelShape(
    name="Llama-2-70b",
    parameters=68_976_648_192,
    architecture=Architecture(80, 8192, 64, kv_heads=8, vocab_size=32_000, intermediate_size=28_672),
)
# Tied input/output embeddings (tie_word_embeddings: true); head_dim 128 = 3072 / 24.
LLAMA32_3B = ModelShape(
    name="Llama-3.2-3B",
    parameters=3_212_749_824,
    architecture=Architecture(28, 3072, 24, kv_heads=8, vocab_size=128_256, intermediate_size=8192),
)
# Encoder-only, GELU MLP (not gated), 2-way classification head: no vocabulary-sized logits.
# 335,141,888 for BertModel + 2,050 for the classifier.
BERT_LARGE_CLS = ModelShape(
    name="bert-large-uncased (sequence classification)",
    parameters=335_143_938,
    precision=Precision.FP32,
    architecture=Architecture(24, 1024, 16, vocab_size=30_522, intermediate_size=4096),
)
# BLOOM: GELU MLP (not gated), ALiBi, fused query_key_value; loaded in fp32 by the PEFT script.
BLOOMZ_7B1 = ModelShape(
    name="bloomz-7b1",
    parameters=7_069_016_064,
    precision=Precision.FP32,
    architecture=Architecture(30, 4096, 32, vocab_size=250_880, intermediate_size=16_384),
)


def _job(
    model: ModelShape,
    kind: WorkloadType,
    *,
    sequence_length: int,
    batch_size: int,
    checkpointing: Checkpointing,
    optimizer: Optimizer = Optimizer.ADAMW,
    zero_stage: int = 0,
    replicas: int = 1,
    lora_rank: int | None = None,
    lora_targets: LoraTargets | None = None,
    offload: Offload = Offload.NONE,
    gpus: int = 1,
    framework: Framework = Framework.TRANSFORMERS,
) -> JobShape:
    return JobShape(
        model,
        Workload(
            type=kind,
            sequence_length=sequence_length,
            batch_size=batch_size,
            optimizer=optimizer,
            zero_stage=zero_stage,
            activation_checkpointing=checkpointing,
            lora_rank=lora_rank,
            lora_targets=lora_targets,
            offload=offload,
            replicas=replicas,
            framework=framework,
        ),
        Overrides(gpus=gpus),
    )


FULL = WorkloadType.TRAINING
LORA = WorkloadType.LORA
QLORA = WorkloadType.QLORA
NO_AC = Checkpointing.NONE
SELECTIVE_AC = Checkpointing.SELECTIVE
FULL_AC = Checkpointing.FULL
RESERVED = Measure.PEAK_PER_GPU_RESERVED
ALLOCATED = Measure.PEAK_PER_GPU_ALLOCATED
MEASURED = Kind.MEASURED

# --- source labels ---------------------------------------------------------------------------------

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


# torchtitan splits a pipeline rank's local batch into as many micro-batches as there are stages
# unless told otherwise (parallelism.pipeline_parallel_microbatches unset); the spec's batchSize is
# the micro-batch, so the 405B rows state local batch / 8.
PIPELINE_MICROBATCHES = 8


TRAINING_FIGURES: tuple[Figure, ...] = (
    # ---- torchtune README, Llama 3.1 (@30b8519e) -------------------------------------------------
    Figure(
        "torchtune Llama-3.1-8B full fine-tune seq 2048 bs 2, 1x RTX 4090",
        TT_31,
        "18.9 GiB",
        gib("18.9"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_8B,
            FULL,
            sequence_length=2048,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            optimizer=Optimizer.ADAM8BIT,
        ),
        device=RTX_4090,
        note=TT_31_NOTE.format(config="llama3_1/8B_full_single_device")
        + "; bitsandbytes PagedAdamW8bit with optimizer_in_bwd (no full gradient kept), "
        "CEWithChunkedOutputLoss",
    ),
    Figure(
        "torchtune Llama-3.1-8B LoRA seq 2048 bs 2, 1x RTX 4090",
        TT_31,
        "16.2 GiB",
        gib("16.2"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_8B,
            LORA,
            sequence_length=2048,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            lora_rank=8,
            lora_targets=LoraTargets.ATTENTION,
        ),
        device=RTX_4090,
        note=TT_31_NOTE.format(config="llama3_1/8B_lora_single_device")
        + "; LoRA rank 8 on q_proj and v_proj only; torch AdamW; CEWithChunkedOutputLoss",
    ),
    Figure(
        "torchtune Llama-3.1-8B QLoRA seq 2048 bs 2, 1x RTX 4090",
        TT_31,
        "7.4 GiB",
        gib("7.4"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_8B,
            QLORA,
            sequence_length=2048,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            lora_rank=8,
            lora_targets=LoraTargets.ATTENTION_AND_MLP,
        ),
        device=RTX_4090,
        note=TT_31_NOTE.format(config="llama3_1/8B_qlora_single_device")
        + "; NF4 (torchao) base for q, k, v, o and MLP linears, embeddings and lm_head bf16; "
        "LoRA rank 8; torch AdamW; CEWithChunkedOutputLoss",
    ),
    Figure(
        "torchtune Llama-3.1-70B full fine-tune seq 2048 bs 2, 8x A100, FSDP + CPU offload",
        TT_31,
        "13.9 GiB",
        gib("13.9"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_70B,
            FULL,
            sequence_length=2048,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            zero_stage=3,
            replicas=8,
            offload=Offload.OPTIMIZER_AND_PARAMETERS,
        ),
        note=TT_31_NOTE.format(config="llama3_1/70B_full")
        + "; README: 'Uses CPU offload with fused optimizer': FSDP full shard over 8 GPUs with "
        "fsdp_cpu_offload (parameters, gradients and AdamW states on the host), AdamW(fused=True); "
        "CEWithChunkedOutputLoss; A100 size not stated (80 GB assumed)",
    ),
    Figure(
        "torchtune Llama-3.1-70B LoRA seq 2048 bs 2, 8x A100 FSDP",
        TT_31,
        "27.6 GiB",
        gib("27.6"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_70B,
            LORA,
            sequence_length=2048,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            zero_stage=3,
            replicas=8,
            lora_rank=16,
            lora_targets=LoraTargets.ATTENTION,
        ),
        note=TT_31_NOTE.format(config="llama3_1/70B_lora")
        + "; FSDP full shard over 8 GPUs; LoRA rank 16 on q, k, v (not o); torch AdamW; "
        "CEWithChunkedOutputLoss; A100 size not stated (80 GB assumed)",
    ),
    Figure(
        "torchtune Llama-3.1-405B QLoRA seq 2048 bs 2, 8x A100 FSDP",
        TT_31,
        "44.8 GB",
        gib("44.8"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_405B,
            QLORA,
            sequence_length=2048,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            zero_stage=3,
            replicas=8,
            lora_rank=16,
            lora_targets=LoraTargets.ATTENTION_AND_MLP,
        ),
        note=TT_31_NOTE.format(config="llama3_1/405B_qlora")
        + "; FSDP full shard over 8 GPUs, fsdp cpu_offload False; NF4 base for q, k, v, o and MLP, "
        "LoRA rank 16; AdamW(fused=True); torch.nn.CrossEntropyLoss (not chunked); this row alone "
        "prints 'GB' where the others print GiB; torchtune's logger at this commit prints GiB, so "
        "read as GiB (also the stricter reading)",
    ),
    # ---- torchtune README, optimisation flags on Llama 3.2 3B (@1814feb1) -------------------------
    Figure(
        "torchtune Llama-3.2-3B full fine-tune packed seq 4096 bs 2, 1x A100 (no AC, AdamW)",
        TT_32 + ": row '+ Packed Dataset'",
        "60.0 GiB",
        gib("60.0"),
        ALLOCATED,
        MEASURED,
        _job(
            LLAMA32_3B,
            FULL,
            sequence_length=4096,
            batch_size=2,
            checkpointing=NO_AC,
            framework=Framework.TORCHTUNE,
        ),
        note=TT_32_FULL + "; packed to 4096; torch AdamW (bf16 states); no compile; full "
        "cross-entropy over 128,256 logits; no activation checkpointing",
    ),
    Figure(
        "torchtune Llama-3.2-3B full fine-tune packed seq 4096 bs 2, 1x A100 (+compile)",
        TT_32 + ": row '+ Compile'",
        "51.0 GiB",
        gib("51.0"),
        ALLOCATED,
        MEASURED,
        _job(
            LLAMA32_3B,
            FULL,
            sequence_length=4096,
            batch_size=2,
            checkpointing=NO_AC,
            framework=Framework.TORCHTUNE,
        ),
        note=TT_32_FULL + "; packed 4096; torch.compile; torch AdamW; full cross-entropy; no AC",
    ),
    Figure(
        "torchtune Llama-3.2-3B full fine-tune packed seq 4096 bs 2, 1x A100 (+chunked CE)",
        TT_32 + ": row '+ Chunked Cross Entropy'",
        "42.9 GiB",
        gib("42.9"),
        ALLOCATED,
        MEASURED,
        _job(
            LLAMA32_3B,
            FULL,
            sequence_length=4096,
            batch_size=2,
            checkpointing=NO_AC,
            framework=Framework.TORCHTUNE,
        ),
        note=TT_32_FULL + "; packed 4096; compile; CEWithChunkedOutputLoss; torch AdamW; no AC",
    ),
    Figure(
        "torchtune Llama-3.2-3B full fine-tune packed seq 4096 bs 2, 1x A100 (+AC)",
        TT_32 + ": row '+ Activation Checkpointing'",
        "24.9 GiB",
        gib("24.9"),
        ALLOCATED,
        MEASURED,
        _job(
            LLAMA32_3B,
            FULL,
            sequence_length=4096,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
        ),
        note=TT_32_FULL + "; packed 4096; compile; chunked CE; full (per-layer) activation "
        "checkpointing; torch AdamW",
    ),
    Figure(
        "torchtune Llama-3.2-3B full fine-tune packed seq 4096 bs 2, 1x A100 (+optimizer in bwd)",
        TT_32 + ": row '+ Fuse optimizer step into backward'",
        "23.1 GiB",
        gib("23.1"),
        ALLOCATED,
        MEASURED,
        _job(
            LLAMA32_3B,
            FULL,
            sequence_length=4096,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
        ),
        note=TT_32_FULL + "; packed 4096; compile; chunked CE; AC; optimizer_in_bwd (gradients "
        "freed layer by layer, never all held); torch AdamW",
    ),
    Figure(
        "torchtune Llama-3.2-3B full fine-tune packed seq 4096 bs 2, 1x A100 (+activation offload)",
        TT_32 + ": row '+ Activation Offloading'",
        "21.8 GiB",
        gib("21.8"),
        ALLOCATED,
        MEASURED,
        _job(
            LLAMA32_3B,
            FULL,
            sequence_length=4096,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
        ),
        note=TT_32_FULL + "; packed 4096; compile; chunked CE; AC; optimizer_in_bwd; activation "
        "offloading to CPU; torch AdamW",
    ),
    Figure(
        "torchtune Llama-3.2-3B full fine-tune packed seq 4096 bs 2, 1x A100 (+8-bit AdamW)",
        TT_32 + ": row '+ 8-bit AdamW'",
        "17.6 GiB",
        gib("17.6"),
        ALLOCATED,
        MEASURED,
        _job(
            LLAMA32_3B,
            FULL,
            sequence_length=4096,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            optimizer=Optimizer.ADAM8BIT,
        ),
        note=TT_32_FULL + "; packed 4096; compile; chunked CE; AC; optimizer_in_bwd; activation "
        "offloading; 8-bit AdamW (bitsandbytes; the config's PagedAdamW8bit)",
    ),
    Figure(
        "torchtune Llama-3.2-3B LoRA packed seq 4096 bs 2, 1x A100",
        TT_32 + ": row 'LoRA'",
        "8.5 GiB",
        gib("8.5"),
        ALLOCATED,
        MEASURED,
        _job(
            LLAMA32_3B,
            LORA,
            sequence_length=4096,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            lora_rank=64,
            lora_targets=LoraTargets.ATTENTION_AND_MLP,
        ),
        note=TT_32_LORA + "; config llama3_2/3B_lora_single_device",
    ),
    Figure(
        "torchtune Llama-3.2-3B QLoRA packed seq 4096 bs 2, 1x A100",
        TT_32 + ": row 'QLoRA' (command printed under the table)",
        "4.6 GiB",
        gib("4.6"),
        ALLOCATED,
        MEASURED,
        _job(
            LLAMA32_3B,
            QLORA,
            sequence_length=4096,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            lora_rank=64,
            lora_targets=LoraTargets.ATTENTION_AND_MLP,
        ),
        note=TT_32_LORA + "; config llama3_2/3B_qlora_single_device: NF4 base only for the "
        "adapted linears (k_proj stays bf16), tied embedding bf16",
    ),
    # ---- torchtune README, Llama 2 (@0217d44c) ----------------------------------------------------
    Figure(
        "torchtune Llama-2-7B QLoRA seq 2048 bs 4, 1x RTX 4090",
        TT_L2,
        "12.3 GB",
        gb("12.3"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA2_7B,
            QLORA,
            sequence_length=2048,
            batch_size=4,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            lora_rank=8,
            lora_targets=LoraTargets.ATTENTION_AND_MLP,
        ),
        device=RTX_4090,
        note=TT_L2_NOTE.format(bs=4, seq=2048, config="llama2/7B_qlora_single_device")
        + "; torch.compile (README '**'); NF4 base for q, k, v, o and MLP, LoRA rank 8; torch AdamW; "
        "full cross-entropy",
    ),
    Figure(
        "torchtune Llama-2-7B LoRA seq 2048 bs 4, 1x RTX 4090",
        TT_L2,
        "21.3 GB",
        gb("21.3"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA2_7B,
            LORA,
            sequence_length=2048,
            batch_size=4,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            lora_rank=8,
            lora_targets=LoraTargets.ATTENTION,
        ),
        device=RTX_4090,
        note=TT_L2_NOTE.format(bs=4, seq=2048, config="llama2/7B_lora_single_device")
        + "; LoRA rank 8 on q, v only; AC on; torch AdamW; full cross-entropy; no compile",
    ),
    Figure(
        "torchtune Llama-2-7B full fine-tune seq 2048 bs 4, 4x RTX 4090 FSDP",
        TT_L2,
        "24.1 GB",
        gb("24.1"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA2_7B,
            FULL,
            sequence_length=2048,
            batch_size=4,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            zero_stage=3,
            replicas=4,
        ),
        device=RTX_4090,
        note=TT_L2_NOTE.format(bs=4, seq=2048, config="llama2/7B_full")
        + "; FSDP full shard over 4 GPUs; torch AdamW (bf16 states); AC on; full cross-entropy; "
        "24.1 GB on a 24 GiB card: at its limit",
    ),
    Figure(
        "torchtune Llama-2-70B LoRA seq 4096 bs 4, 8x A100 FSDP",
        TT_L2,
        "26.4 GB",
        gb("26.4"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA2_70B,
            LORA,
            sequence_length=4096,
            batch_size=4,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            zero_stage=3,
            replicas=8,
            lora_rank=16,
            lora_targets=LoraTargets.ATTENTION,
        ),
        note=TT_L2_NOTE.format(bs=4, seq=4096, config="llama2/70B_lora")
        + "; FSDP full shard over 8 GPUs; LoRA rank 16 on q, k, v (not o); AC on; torch AdamW; "
        "A100 size not stated (80 GB assumed)",
    ),
    # ---- torchtune docs: LoRA and QLoRA tutorials (Llama2-7B, batch 2) ----------------------------
    Figure(
        "torchtune Llama-2-7B LoRA q,v rank 8 seq <=512 bs 2, 1 GPU",
        TT_LORA_TUTORIAL + ": row 'Q and V only, 8, 16'",
        "15.57 GB",
        gb("15.57"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA2_7B,
            LORA,
            sequence_length=512,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            lora_rank=8,
            lora_targets=LoraTargets.ATTENTION,
        ),
        note=TT_LORA_TUTORIAL_NOTE + "; GPU not stated (80 GB assumed)",
    ),
    Figure(
        "torchtune Llama-2-7B LoRA all layers + output rank 8 seq <=512 bs 2, 1 GPU",
        TT_LORA_TUTORIAL + ": row 'all layers, 8, 16'",
        "15.87 GB",
        gb("15.87"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA2_7B,
            LORA,
            sequence_length=512,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            lora_rank=8,
            lora_targets=LoraTargets.ALL_LINEAR,
        ),
        note=TT_LORA_TUTORIAL_NOTE + "; 'all layers' = q, k, v, o, MLP and the output projection "
        "(apply_lora_to_output: True), one more than all-linear; GPU not stated (80 GB assumed)",
    ),
    Figure(
        "torchtune Llama-2-7B LoRA q,v rank 64 seq <=512 bs 2, 1 GPU",
        TT_LORA_TUTORIAL + ": row 'Q and V only, 64, 128'",
        "15.86 GB",
        gb("15.86"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA2_7B,
            LORA,
            sequence_length=512,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            lora_rank=64,
            lora_targets=LoraTargets.ATTENTION,
        ),
        note=TT_LORA_TUTORIAL_NOTE + "; LoRA on q and v only; GPU not stated (80 GB assumed)",
    ),
    Figure(
        "torchtune Llama-2-7B LoRA all layers + output rank 64 seq <=512 bs 2, 1 GPU",
        TT_LORA_TUTORIAL + ": row 'all layers, 64, 128'",
        "17.04 GB",
        gb("17.04"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA2_7B,
            LORA,
            sequence_length=512,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            lora_rank=64,
            lora_targets=LoraTargets.ALL_LINEAR,
        ),
        note=TT_LORA_TUTORIAL_NOTE + "; 'all layers' includes the output projection (32000 wide); "
        "GPU not stated (80 GB assumed)",
    ),
    Figure(
        "torchtune Llama-2-7B QLoRA rank 8 seq <=512 bs 2, 1 GPU",
        "torchtune QLoRA tutorial (docs/source/tutorials/qlora_finetune.rst @0914d5cf), table "
        "'Peak memory reserved, training': llama2/7B_qlora_single_device",
        "9.29 GB",
        gb("9.29"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA2_7B,
            QLORA,
            sequence_length=512,
            batch_size=2,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTUNE,
            lora_rank=8,
            lora_targets=LoraTargets.ATTENTION_AND_MLP,
        ),
        note="config at @0914d5cf: NF4 base for q, k, v, o and MLP, LoRA rank 8, batch 2, AC, "
        "torch AdamW, full cross-entropy, no compile, pure bf16; alpaca_cleaned unpacked, "
        "max_seq_len 512 (upper bound); max_memory_reserved; GB = 10^9 bytes (logger divides by 1e9). "
        "The same table gives 9.13 GB reserved after model init: the peak is set while loading, "
        "when torchao 0.1's to_nf4 quantizes each bf16 linear on the GPU through a (numel x 16) "
        "distance tensor (NF4Tensor.quantize_tensor_nearest), and memory_stats_log's "
        "reset_peak_memory_stats keeps the reserved blocks; training adds 0.16 GB",
    ),
    # ---- torchtitan, Llama 3.1 on H100 (Dec 2024) ------------------------------------------------
    Figure(
        "torchtitan Llama-3.1-8B FSDP 8 GPUs seq 8192 bs 2, selective AC",
        TITAN + ", Table 1 row 'FSDP'",
        "82.4 GiB",
        gib("82.4"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_8B,
            FULL,
            sequence_length=8192,
            batch_size=2,
            checkpointing=SELECTIVE_AC,
            framework=Framework.TORCHTITAN,
            zero_stage=3,
            replicas=8,
        ),
        device=H100_96GB,
        note=TITAN_NOTE + "; local batch 2; seq 8192 from train_configs/llama3_8b.toml (the table "
        "does not state it); selective op AC; no compile; full cross-entropy",
    ),
    Figure(
        "torchtitan Llama-3.1-8B FSDP 8 GPUs seq 8192 bs 2, selective AC, compile",
        TITAN + ", Table 1 row 'FSDP + torch.compile'",
        "77.0 GiB",
        gib("77.0"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_8B,
            FULL,
            sequence_length=8192,
            batch_size=2,
            checkpointing=SELECTIVE_AC,
            framework=Framework.TORCHTITAN,
            zero_stage=3,
            replicas=8,
        ),
        device=H100_96GB,
        note=TITAN_NOTE + "; as Table 1 'FSDP' plus torch.compile",
    ),
    Figure(
        "torchtitan Llama-3.1-8B FSDP 8 GPUs seq 8192 bs 2, selective AC, compile, Float8",
        TITAN + ", Table 1 row 'FSDP + torch.compile + Float8'",
        "76.8 GiB",
        gib("76.8"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_8B,
            FULL,
            sequence_length=8192,
            batch_size=2,
            checkpointing=SELECTIVE_AC,
            framework=Framework.TORCHTITAN,
            zero_stage=3,
            replicas=8,
        ),
        device=H100_96GB,
        note=TITAN_NOTE + "; as above plus Float8 linears (torchao)",
    ),
    Figure(
        "torchtitan Llama-3.1-8B FSDP 8 GPUs seq 32768 bs 1, full AC, compile, Float8",
        TITAN + ", Table 2 row 'FSDP 8, CP 1'",
        "83.9 GiB",
        gib("83.9"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_8B,
            FULL,
            sequence_length=32_768,
            batch_size=1,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTITAN,
            zero_stage=3,
            replicas=8,
        ),
        device=H100_96GB,
        note=TITAN_NOTE + "; local batch 1, seq 32768, no context parallel; full AC; compile; Float8",
    ),
    Figure(
        "torchtitan Llama-3.1-8B FSDP 128 GPUs seq 8192 bs 2, selective AC",
        TITAN + ", Table 3 row 'FSDP'",
        "67.0 GiB",
        gib("67.0"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_8B,
            FULL,
            sequence_length=8192,
            batch_size=2,
            checkpointing=SELECTIVE_AC,
            framework=Framework.TORCHTITAN,
            zero_stage=3,
            replicas=128,
        ),
        device=H100_96GB,
        note=TITAN_NOTE + "; local batch 2 (global 256); seq 8192 from the config; selective op AC",
    ),
    Figure(
        "torchtitan Llama-3.1-8B FSDP 128 GPUs seq 8192 bs 2, selective AC, compile",
        TITAN + ", Table 3 row 'FSDP + torch.compile'",
        "62.0 GiB",
        gib("62.0"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_8B,
            FULL,
            sequence_length=8192,
            batch_size=2,
            checkpointing=SELECTIVE_AC,
            framework=Framework.TORCHTITAN,
            zero_stage=3,
            replicas=128,
        ),
        device=H100_96GB,
        note=TITAN_NOTE + "; as Table 3 'FSDP' plus torch.compile",
    ),
    Figure(
        "torchtitan Llama-3.1-8B FSDP 128 GPUs seq 8192 bs 2, selective AC, compile, Float8",
        TITAN + ", Table 3 row 'FSDP + torch.compile + Float8'",
        "61.8 GiB",
        gib("61.8"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_8B,
            FULL,
            sequence_length=8192,
            batch_size=2,
            checkpointing=SELECTIVE_AC,
            framework=Framework.TORCHTITAN,
            zero_stage=3,
            replicas=128,
        ),
        device=H100_96GB,
        note=TITAN_NOTE + "; as above plus Float8 linears",
    ),
    Figure(
        "torchtitan Llama-3.1-70B FSDP 32 x TP 8 seq 8192 bs 16, full AC, compile, Float8",
        TITAN + ", Table 4 row '2D'",
        "71.9 GiB",
        gib("71.9"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_70B,
            FULL,
            sequence_length=8192,
            batch_size=16,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTITAN,
            zero_stage=3,
            replicas=32,
            gpus=8,
        ),
        device=H100_96GB,
        note=TITAN_NOTE + "; 256 GPUs: FSDP 32 x TP 8 (one TP group per node); local batch 16 per "
        "data-parallel rank (global 512); seq 8192 from train_configs/llama3_70b.toml; full AC; "
        "compile; Float8",
    ),
    Figure(
        "torchtitan Llama-3.1-70B FSDP 32 x TP 8 seq 8192 bs 16, full AC, compile, Float8, AsyncTP",
        TITAN + ", Table 4 row '2D + AsyncTP'",
        "67.6 GiB",
        gib("67.6"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_70B,
            FULL,
            sequence_length=8192,
            batch_size=16,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTITAN,
            zero_stage=3,
            replicas=32,
            gpus=8,
        ),
        device=H100_96GB,
        note=TITAN_NOTE + "; as Table 4 '2D' plus asynchronous tensor parallel",
    ),
    Figure(
        "torchtitan Llama-3.1-405B FSDP 8 x TP 8 x PP 8 seq 8192 bs 32, 1F1B",
        TITAN + ", Table 5 row '1F1B'",
        "82.5 GiB",
        gib("82.5"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_405B,
            FULL,
            sequence_length=8192,
            batch_size=32 // PIPELINE_MICROBATCHES,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTITAN,
            zero_stage=3,
            replicas=8,
            gpus=64,
        ),
        device=H100_96GB,
        note=TITAN_NOTE + "; 512 GPUs: FSDP 8 x TP 8 x PP 8; local batch 32 per data-parallel rank "
        "(global 256), split into pipeline microbatches whose count is not stated; seq 8192 from "
        "train_configs/llama3_405b.toml; full AC; compile; Float8; AsyncTP; the figure is the "
        "maximum over all GPUs (pipeline stages differ)",
    ),
    Figure(
        "torchtitan Llama-3.1-405B FSDP 8 x TP 8 x PP 8 seq 8192 bs 32, interleaved 1F1B",
        TITAN + ", Table 5 row 'Interleaved 1F1B'",
        "72.7 GiB",
        gib("72.7"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_405B,
            FULL,
            sequence_length=8192,
            batch_size=32 // PIPELINE_MICROBATCHES,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTITAN,
            zero_stage=3,
            replicas=8,
            gpus=64,
        ),
        device=H100_96GB,
        note=TITAN_NOTE + "; as Table 5 '1F1B' with the interleaved 1F1B schedule",
    ),
    Figure(
        "torchtitan Llama-3.1-405B FSDP 8 x TP 8 x PP 8 seq 32768 bs 8, 1F1B",
        TITAN + ", Table 6 row 'FSDP 8, CP 1'",
        "75.3 GiB",
        gib("75.3"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_405B,
            FULL,
            sequence_length=32_768,
            batch_size=8 // PIPELINE_MICROBATCHES,
            checkpointing=FULL_AC,
            framework=Framework.TORCHTITAN,
            zero_stage=3,
            replicas=8,
            gpus=64,
        ),
        device=H100_96GB,
        note=TITAN_NOTE + "; 512 GPUs: FSDP 8 x TP 8 x PP 8, no context parallel; local batch 8, "
        "seq 32768; 1F1B; full AC; compile; Float8; AsyncTP; maximum over all GPUs",
    ),
    Figure(
        "torchtitan Llama-3.1-8B FSDP 32 GPUs (4 nodes) seq 8192 bs 2, H200",
        TITAN_H200 + ", row NUM_NODES 4",
        "47.96 GiB",
        gib("47.96"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_8B,
            FULL,
            sequence_length=8192,
            batch_size=2,
            checkpointing=SELECTIVE_AC,
            framework=Framework.TORCHTITAN,
            zero_stage=3,
            replicas=32,
        ),
        device=H200,
        note=TITAN_NOTE + "; config torchtitan/models/llama3/train_configs/llama3_8b.toml @e7c0cae: "
        "seq 8192, selective op AC, FSDP over all 32 GPUs; compile; Float8",
    ),
    Figure(
        "torchtitan Llama-3.1-8B FSDP 64 GPUs (8 nodes) seq 8192 bs 2, H200",
        TITAN_H200 + ", row NUM_NODES 8",
        "46.97 GiB",
        gib("46.97"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA31_8B,
            FULL,
            sequence_length=8192,
            batch_size=2,
            checkpointing=SELECTIVE_AC,
            framework=Framework.TORCHTITAN,
            zero_stage=3,
            replicas=64,
        ),
        device=H200,
        note=TITAN_NOTE + "; as the 4-node row over 64 GPUs",
    ),
    # ---- PEFT docs: Llama-2-70B with DeepSpeed ZeRO-3 and FSDP ------------------------------------
    Figure(
        "PEFT Llama-2-70B LoRA ZeRO-3 8x H100 seq 2048 bs 8",
        PEFT_DS + ", 'Memory usage': 'the memory consumed per GPU is 64 GB (80%)'",
        "64 GB",
        gb("64"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA2_70B,
            LORA,
            sequence_length=2048,
            batch_size=8,
            checkpointing=FULL_AC,
            zero_stage=3,
            replicas=8,
            lora_rank=8,
            lora_targets=LoraTargets.ALL_LINEAR,
        ),
        note=PEFT_SFT_NOTE.format(
            extra="per_device_train_batch_size 8, non-reentrant checkpointing, bf16 mixed precision, "
            "DeepSpeed ZeRO-3 (zero3_init, no offload) over 8 H100 80GB; read from a screenshot of "
            "GPU memory use (device-level, like nvidia-smi)"
        ),
    ),
    Figure(
        "PEFT Llama-2-70B QLoRA ZeRO-3 2x 40GB seq 2048 bs 2",
        PEFT_DS + ", QLoRA + ZeRO-3 'Memory usage': 'the memory consumed per GPU is 36.6 GB'",
        "36.6 GB",
        gb("36.6"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA2_70B,
            QLORA,
            sequence_length=2048,
            batch_size=2,
            checkpointing=FULL_AC,
            zero_stage=3,
            replicas=2,
            lora_rank=8,
            lora_targets=LoraTargets.ALL_LINEAR,
        ),
        device=GPU_40GIB,
        note=PEFT_SFT_NOTE.format(
            extra="per_device_train_batch_size 2, reentrant checkpointing, bitsandbytes NF4 with "
            "double quant, bnb_4bit_quant_storage bf16 (so ZeRO-3 shards the 4-bit weights), "
            "compute bf16, ZeRO-3 over 2 GPUs, no offload; counter not named"
        ),
    ),
    Figure(
        "PEFT Llama-2-70B LoRA FSDP 8x H100 seq 2048 bs 8",
        PEFT_FSDP + ", 'Memory usage': 'the memory consumed per GPU is 72-80 GB (90-98%)'",
        "72-80 GB",
        gb("80"),
        RESERVED,
        MEASURED,
        _job(
            # examples/sft/utils.py loads without quantization in torch.float32 (torch_dtype is the
            # quant storage dtype only under 4-bit), and FSDP keeps its flat parameters in that
            # dtype; DeepSpeed's bf16 engine casts the module to bf16 (the ZeRO-3 row above).
            with_precision(LLAMA2_70B, Precision.FP32),
            LORA,
            sequence_length=2048,
            batch_size=8,
            checkpointing=FULL_AC,
            zero_stage=3,
            replicas=8,
            lora_rank=8,
            lora_targets=LoraTargets.ALL_LINEAR,
        ),
        note=PEFT_SFT_NOTE.format(
            extra="per_device_train_batch_size 8, non-reentrant checkpointing, FSDP FULL_SHARD over "
            "8 H100 80GB, use_orig_params false, no offload, bf16 mixed precision; a range is "
            "printed: recorded at its top (80 GB), which the page says includes a rise at the end "
            "from saving a FULL_STATE_DICT; device-level screenshot. The spec cannot state bf16 "
            "mixed precision over an fp32 checkpoint: we size fp32 compute (the Trainer's and "
            "Accelerate's default), so over"
        ),
    ),
    Figure(
        "PEFT Llama-2-70B QLoRA FSDP 2 GPUs seq 2048 bs 2, CPU offload",
        PEFT_FSDP + ", FSDP + QLoRA 'Memory usage': 'memory consumed per GPU is 19.6 GB'",
        "19.6 GB",
        gb("19.6"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA2_70B,
            QLORA,
            sequence_length=2048,
            batch_size=2,
            checkpointing=FULL_AC,
            zero_stage=3,
            replicas=2,
            lora_rank=8,
            lora_targets=LoraTargets.ALL_LINEAR,
            offload=Offload.OPTIMIZER_AND_PARAMETERS,
        ),
        device=GPU_24GIB,
        note=PEFT_SFT_NOTE.format(
            extra="per_device_train_batch_size 2, reentrant checkpointing, NF4 + double quant, "
            "quant storage bf16, accelerate mixed_precision 'no' (pure bf16), FSDP FULL_SHARD over "
            "2 GPUs with fsdp_offload_params true (CPU RAM ~107 GB); counter not named"
        ),
    ),
    Figure(
        "PEFT Llama-2-70B QLoRA FSDP 2 GPUs seq 2048 bs 2, no offload",
        PEFT_FSDP + ", FSDP + QLoRA: 'When disabling CPU offloading, the GPU memory usage is 35.6 GB/ GPU'",
        "35.6 GB",
        gb("35.6"),
        RESERVED,
        MEASURED,
        _job(
            LLAMA2_70B,
            QLORA,
            sequence_length=2048,
            batch_size=2,
            checkpointing=FULL_AC,
            zero_stage=3,
            replicas=2,
            lora_rank=8,
            lora_targets=LoraTargets.ALL_LINEAR,
        ),
        note=PEFT_SFT_NOTE.format(
            extra="as the offload row with fsdp_offload_params false; 35.6 GB cannot have run on "
            "the 24 GB cards the section names, GPU not stated (80 GB assumed); counter not named"
        ),
    ),
    # ---- PEFT README: bloomz-7b1 on twitter_complaints -------------------------------------------
    Figure(
        "PEFT bloomz-7b1 LoRA fp32 seq 64 bs 8, 1x A100",
        PEFT_README + ", column 'PEFT-LoRA PyTorch'",
        "32GB GPU",
        gib("32"),
        ALLOCATED,
        MEASURED,
        _job(
            BLOOMZ_7B1,
            LORA,
            sequence_length=64,
            batch_size=8,
            checkpointing=NO_AC,
            lora_rank=8,
            lora_targets=LoraTargets.ATTENTION,
        ),
        note=PEFT_README_NOTE + "; no gradient checkpointing in the script",
    ),
    Figure(
        "PEFT bloomz-7b1 LoRA ZeRO-3 CPU offload seq 64 bs 8, 1x A100",
        PEFT_README + ", column 'PEFT-LoRA DeepSpeed with CPU Offloading' (CPU: 35 GB)",
        "18.1GB GPU",
        gib("18.1"),
        ALLOCATED,
        MEASURED,
        _job(
            BLOOMZ_7B1,
            LORA,
            sequence_length=64,
            batch_size=8,
            checkpointing=NO_AC,
            zero_stage=3,
            replicas=1,
            lora_rank=8,
            lora_targets=LoraTargets.ATTENTION,
            offload=Offload.OPTIMIZER_AND_PARAMETERS,
        ),
        note=PEFT_README_NOTE + "; DeepSpeed ZeRO-3 on one GPU with parameter and optimizer offload "
        "to CPU, as the README at @73d7224b prints its accelerate config (ds_zero3_cpu.yaml: "
        "offload_optimizer_device cpu, offload_param_device cpu, zero3_init_flag true, "
        "mixed_precision 'no', DeepSpeed with PR #2653 for frozen weights). Parameters kept on the "
        "GPU are ruled out: 7,069,016,064 x 4 B = 26.3 GiB > 18.1 GiB, and 16-bit ones (13.2 GiB) "
        "contradict mixed_precision 'no' and the 35 GB CPU column (26.3 GiB of fp32 parameters in "
        "host RAM + the 3.8 GB the PyTorch column's process holds). The README's log of the T0_3B "
        "script under the same config (1916 MiB allocated before training: the 5e8 x 4 B reduce "
        "bucket and the LoRA weights; 9404 MiB peak) does not reproduce its table row (9.8GB), so "
        "the table's counter is not surely the script's",
    ),
    # ---- Hugging Face transformers: bert-large-uncased on one V100 16GB ---------------------------
    Figure(
        "HF bert-large-uncased full training fp32 seq 512 bs 4, V100",
        HF_ONE_GPU + ", 'Vanilla Training' (also in model_memory_anatomy.md)",
        "14949 MB",
        14_949 * 2**20,
        RESERVED,
        MEASURED,
        _job(BERT_LARGE_CLS, FULL, sequence_length=512, batch_size=4, checkpointing=NO_AC),
        device=V100_16GB,
        note=HF_NOTE + "; fp32 weights, gradients and AdamW states",
        outside=HF_OUTSIDE,
    ),
    Figure(
        "HF bert-large-uncased full training fp32 seq 512 bs 1, V100",
        HF_ONE_GPU + ", 'Gradient Accumulation' (batch 1, accumulation 4)",
        "8681 MB",
        8681 * 2**20,
        RESERVED,
        MEASURED,
        _job(BERT_LARGE_CLS, FULL, sequence_length=512, batch_size=1, checkpointing=NO_AC),
        device=V100_16GB,
        note=HF_NOTE + "; fp32; gradient accumulation 4 (one micro-batch of 1 at a time)",
        outside=HF_OUTSIDE,
    ),
    Figure(
        "HF bert-large-uncased full training fp32 seq 512 bs 1 + gradient checkpointing, V100",
        HF_ONE_GPU + ", 'Gradient Checkpointing'",
        "6775 MB",
        6775 * 2**20,
        RESERVED,
        MEASURED,
        _job(BERT_LARGE_CLS, FULL, sequence_length=512, batch_size=1, checkpointing=FULL_AC),
        device=V100_16GB,
        note=HF_NOTE + "; fp32; accumulation 4; gradient_checkpointing=True (per layer)",
        outside=HF_OUTSIDE,
    ),
    Figure(
        "HF bert-large-uncased full training fp16 AMP seq 512 bs 4, V100",
        HF_ONE_GPU + ", 'FP16 Training' (batch 4)",
        "13939 MB",
        13_939 * 2**20,
        RESERVED,
        MEASURED,
        _job(
            with_precision(BERT_LARGE_CLS, Precision.FP16),
            FULL,
            sequence_length=512,
            batch_size=4,
            checkpointing=NO_AC,
        ),
        device=V100_16GB,
        note=HF_NOTE + "; fp16=True is torch AMP: fp32 weights, gradients and AdamW states, fp16 "
        "activations and autocast weight copies (the page: 1.5x the model on the GPU)",
        outside=HF_OUTSIDE,
    ),
    Figure(
        "HF bert-large-uncased full training fp16 AMP seq 512 bs 1 + gradient checkpointing, V100",
        HF_ONE_GPU + ", 'FP16 Training' combined with accumulation 4 and checkpointing",
        "7275 MB",
        7275 * 2**20,
        RESERVED,
        MEASURED,
        _job(
            with_precision(BERT_LARGE_CLS, Precision.FP16),
            FULL,
            sequence_length=512,
            batch_size=1,
            checkpointing=FULL_AC,
        ),
        device=V100_16GB,
        note=HF_NOTE + "; AMP fp16 as above; batch 1, accumulation 4, gradient checkpointing",
        outside=HF_OUTSIDE,
    ),
    Figure(
        "HF bert-large-uncased full training fp32 seq 512 bs 4, 8-bit Adam, V100",
        HF_ONE_GPU + ", '8-bit Adam' (batch 4)",
        "13085 MB",
        13_085 * 2**20,
        RESERVED,
        MEASURED,
        _job(
            BERT_LARGE_CLS,
            FULL,
            sequence_length=512,
            batch_size=4,
            checkpointing=NO_AC,
            optimizer=Optimizer.ADAM8BIT,
        ),
        device=V100_16GB,
        note=HF_NOTE + "; fp32 weights and gradients; bitsandbytes Adam8bit replaces AdamW",
        outside=HF_OUTSIDE,
    ),
    Figure(
        "HF bert-large-uncased full training fp16 AMP seq 512 bs 1 + checkpointing, 8-bit Adam, V100",
        HF_ONE_GPU + ", '8-bit Adam' with the full settings",
        "5363 MB",
        5363 * 2**20,
        RESERVED,
        MEASURED,
        _job(
            with_precision(BERT_LARGE_CLS, Precision.FP16),
            FULL,
            sequence_length=512,
            batch_size=1,
            checkpointing=FULL_AC,
            optimizer=Optimizer.ADAM8BIT,
        ),
        device=V100_16GB,
        note=HF_NOTE + "; AMP fp16; batch 1, accumulation 4, gradient checkpointing, Adam8bit",
        outside=HF_OUTSIDE,
    ),
)
