"""Measured torchtune peaks on Llama 3.1 and 3.2, from the torchtune README's memory tables."""

from __future__ import annotations

from modeljob.core.jobs import Framework, LoraTargets, Offload, Optimizer
from tests.core.figure_jobs import (
    ALLOCATED,
    FULL,
    FULL_AC,
    LORA,
    MEASURED,
    NO_AC,
    QLORA,
    RESERVED,
    training_run,
)
from tests.core.figure_records import RTX_4090, Figure, gib
from tests.core.figure_shapes import LLAMA31_8B, LLAMA31_70B, LLAMA31_405B, LLAMA32_3B
from tests.core.figure_sources import TT_31, TT_31_NOTE, TT_32, TT_32_FULL, TT_32_LORA

TORCHTUNE_LLAMA3_FIGURES: tuple[Figure, ...] = (
    # ---- torchtune README, Llama 3.1 (@30b8519e) -------------------------------------------------
    Figure(
        "torchtune Llama-3.1-8B full fine-tune seq 2048 bs 2, 1x RTX 4090",
        TT_31,
        "18.9 GiB",
        gib("18.9"),
        RESERVED,
        MEASURED,
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
)
