"""Training memory as papers, docs and tools state it: model states, LoRA and QLoRA totals."""

from __future__ import annotations

from modeljob.core.jobs import ModelShape, WorkloadType
from modeljob.core.sizing import Device
from tests.core.figure_jobs import qlora_paper, train
from tests.core.figure_records import Figure, Kind, Measure, gb, gib
from tests.core.figure_shapes import GPT2_1_5B, GPT3_175B, LLAMA31_70B, LLAMA_65B, T5_3B
from tests.core.figure_sources import DEEPSPEED_MEMORY, HF_LLAMA31, LLAMA_FACTORY, ZERO

QLORA_PAPER_65B = qlora_paper(LLAMA_65B)

TRAINING_ESTIMATES: tuple[Figure, ...] = (
    # ---- full training --------------------------------------------------------------------------
    Figure(
        "7.5B model states, ZeRO-0 (DDP), 64 GPUs",
        ZERO + " Figure 1 (K = 12), per GPU",
        "120 GB",
        gb("120"),
        Measure.MODEL_STATES,
        Kind.ESTIMATE,
        train(ModelShape(parameters=7_500_000_000), WorkloadType.TRAINING, sequence_length=1024, replicas=64),
        note="16 B/param unsharded: 16-bit weights and gradients, fp32 master and AdamW moments",
    ),
    Figure(
        "7.5B model states, ZeRO-1, 64 GPUs",
        ZERO + " Figure 1, per GPU",
        "31.4 GB",
        gb("31.4"),
        Measure.MODEL_STATES,
        Kind.ESTIMATE,
        train(
            ModelShape(parameters=7_500_000_000),
            WorkloadType.TRAINING,
            sequence_length=1024,
            replicas=64,
            zero_stage=1,
        ),
    ),
    Figure(
        "7.5B model states, ZeRO-3, 64 GPUs",
        ZERO + " Figure 1, per GPU",
        "1.9 GB",
        gb("1.9"),
        Measure.MODEL_STATES,
        Kind.ESTIMATE,
        train(
            ModelShape(parameters=7_500_000_000),
            WorkloadType.TRAINING,
            sequence_length=1024,
            replicas=64,
            zero_stage=3,
        ),
    ),
    Figure(
        "GPT-2 1.5B model states, mixed-precision Adam",
        ZERO + " section 3.1: 'at least 24 GB'",
        "24 GB",
        gb("24"),
        Measure.MODEL_STATES,
        Kind.ESTIMATE,
        train(GPT2_1_5B, WorkloadType.TRAINING, sequence_length=1024),
    ),
    # (memory.rst's printed t5-3b ZeRO-2 example, 15.93 GiB, came from the pre-2024 estimator,
    # 4P + 16P/N; DeepSpeed's stage_1_and_2.py now counts 2P + 18P/N, the 16-bit gradients
    # sharded too, which is what we count: the paper's figure below checks the same stage.)
    Figure(
        "7.5B model states, ZeRO-2, 64 GPUs",
        ZERO + " Figure 1, per GPU",
        "16.6 GB",
        gb("16.6"),
        Measure.MODEL_STATES,
        Kind.ESTIMATE,
        train(
            ModelShape(parameters=7_500_000_000),
            WorkloadType.TRAINING,
            sequence_length=1024,
            replicas=64,
            zero_stage=2,
        ),
        note="the paper counts 2P + 14P/N; DeepSpeed's estimator adds the fp32 gradient partition: "
        "2P + 18P/N",
    ),
    Figure(
        "t5-3b model states, ZeRO-3, 8 GPUs",
        DEEPSPEED_MEMORY + ", estimate_zero3 'per GPU, offload none, zero_init=1'",
        "6.10GB",
        gib("6.10"),
        Measure.MODEL_STATES,
        Kind.ESTIMATE,
        train(T5_3B, WorkloadType.TRAINING, sequence_length=512, replicas=8, zero_stage=3),
        note="their figure also holds the 4 x largest-layer gather buffer (0.12 GiB); ours is in overhead",
    ),
    Figure(
        "t5-3b host RAM, ZeRO-2 start-up, 8 GPUs",
        DEEPSPEED_MEMORY + ", estimate_zero2 'per CPU'",
        "127.48GB",
        gib("127.48"),
        Measure.HOST_MEMORY,
        Kind.ESTIMATE,
        train(T5_3B, WorkloadType.TRAINING, sequence_length=512, zero_stage=2, gpus=8),
        note="one node's 8 ranks as one replica; ours adds 10 GiB system + 16 GiB /dev/shm",
    ),
    Figure(
        "LLaMA-Factory: 7B full fine-tune (AMP)",
        LLAMA_FACTORY + ": Full (bf16 or fp16), 18x GB",
        "120GB",
        gb("120"),
        Measure.TOTAL,
        Kind.RULE_OF_THUMB,
        train(
            ModelShape(parameters=7 * 10**9),
            WorkloadType.TRAINING,
            sequence_length=1024,
        ),
        note="no architecture given: our fallbacks; seq 1024, batch 1, checkpointing",
    ),
    # ---- LoRA -----------------------------------------------------------------------------------
    Figure(
        "GPT-3 175B LoRA",
        "LoRA paper (Hu et al., arXiv:2106.09685) section 4.2: training VRAM 1.2 TB -> 350 GB",
        "350 GB",
        gb("350"),
        Measure.TOTAL,
        Kind.ESTIMATE,
        train(GPT3_175B, WorkloadType.LORA, sequence_length=2048, lora_rank=4),
        note="rank 4 as in the paper's GPT-3 runs; batch 1, checkpointing (not stated there)",
    ),
    Figure(
        "HF blog: Llama 3.1 70B LoRA",
        HF_LLAMA31 + " 'Training Memory Requirements'",
        "160 GB",
        gb("160"),
        Measure.TOTAL,
        Kind.RULE_OF_THUMB,
        train(LLAMA31_70B, WorkloadType.LORA, sequence_length=2048),
        note="settings not stated: seq 2048, batch 1, rank 16, checkpointing",
    ),
    # ---- QLoRA ----------------------------------------------------------------------------------
    Figure(
        "LLaMA 65B QLoRA on one 48 GB GPU",
        "QLoRA paper (Dettmers et al., arXiv:2305.14314) abstract: '<48GB' (>780 GB for 16-bit fine-tuning)",
        "48 GB",
        gb("48"),
        Measure.TOTAL,
        Kind.UPPER_BOUND,
        QLORA_PAPER_65B,
        device=Device(memory_bytes=48 * 10**9),
        note="an upper bound (the run fit a 48 GB GPU); the QLoRA scripts: rank 64 on all linears, "
        "bf16 adapters, paged AdamW (offload Optimizer), seq 512, batch 1",
    ),
    Figure(
        "HF blog: Llama 3.1 70B QLoRA",
        HF_LLAMA31 + " 'Training Memory Requirements'",
        "48 GB",
        gb("48"),
        Measure.TOTAL,
        Kind.RULE_OF_THUMB,
        train(LLAMA31_70B, WorkloadType.QLORA, sequence_length=2048),
        note="settings not stated: seq 2048, batch 1, rank 16, checkpointing",
    ),
    Figure(
        "LLaMA-Factory: 70B QLoRA 4-bit",
        LLAMA_FACTORY + ": QLoRA 4-bit, x/2 GB",
        "48GB",
        gb("48"),
        Measure.TOTAL,
        Kind.RULE_OF_THUMB,
        train(ModelShape(parameters=70 * 10**9), WorkloadType.QLORA, sequence_length=1024),
        note="no architecture given: our fallbacks; seq 1024, batch 1, rank 16",
    ),
)
