"""Measured torchtune peaks on Llama 2, from the torchtune README and its LoRA and QLoRA tutorials."""

from __future__ import annotations

from modeljob.core.jobs import Framework, LoraTargets
from tests.core.figure_jobs import FULL, FULL_AC, LORA, MEASURED, QLORA, RESERVED, training_run
from tests.core.figure_records import RTX_4090, Figure, gb
from tests.core.figure_shapes import LLAMA2_7B, LLAMA2_70B
from tests.core.figure_sources import TT_L2, TT_L2_NOTE, TT_LORA_TUTORIAL, TT_LORA_TUTORIAL_NOTE

TORCHTUNE_LLAMA2_FIGURES: tuple[Figure, ...] = (
    # ---- torchtune README, Llama 2 (@0217d44c) ----------------------------------------------------
    Figure(
        "torchtune Llama-2-7B QLoRA seq 2048 bs 4, 1x RTX 4090",
        TT_L2,
        "12.3 GB",
        gb("12.3"),
        RESERVED,
        MEASURED,
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
)
