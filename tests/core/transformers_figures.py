"""Measured Hugging Face Trainer peaks: bert-large-uncased on one V100, from the single-GPU guide."""

from __future__ import annotations

from modeljob.core.jobs import Optimizer, Precision
from tests.core.figure_jobs import FULL, FULL_AC, MEASURED, NO_AC, RESERVED, training_run
from tests.core.figure_records import V100_16GB, Figure
from tests.core.figure_shapes import BERT_LARGE_CLS, with_precision
from tests.core.figure_sources import HF_NOTE, HF_ONE_GPU, HF_OUTSIDE

TRANSFORMERS_FIGURES: tuple[Figure, ...] = (
    # ---- Hugging Face transformers: bert-large-uncased on one V100 16GB ---------------------------
    Figure(
        "HF bert-large-uncased full training fp32 seq 512 bs 4, V100",
        HF_ONE_GPU + ", 'Vanilla Training' (also in model_memory_anatomy.md)",
        "14949 MB",
        14_949 * 2**20,
        RESERVED,
        MEASURED,
        training_run(BERT_LARGE_CLS, FULL, sequence_length=512, batch_size=4, checkpointing=NO_AC),
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
        training_run(BERT_LARGE_CLS, FULL, sequence_length=512, batch_size=1, checkpointing=NO_AC),
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
        training_run(BERT_LARGE_CLS, FULL, sequence_length=512, batch_size=1, checkpointing=FULL_AC),
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
        training_run(
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
        training_run(
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
        training_run(
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
        training_run(
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
