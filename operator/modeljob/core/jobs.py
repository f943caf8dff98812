"""What a job declares, as the core sees it: the model, the work, and explicit overrides."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Precision(StrEnum):
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"
    FP8 = "fp8"
    INT8 = "int8"
    INT4 = "int4"
    NF4 = "nf4"


class WorkloadType(StrEnum):
    INFERENCE = "Inference"
    TRAINING = "Training"
    LORA = "LoRA"
    QLORA = "QLoRA"

    @property
    def trains(self) -> bool:
        """Training and fine-tuning (gradients, optimizer states, a run that ends) vs serving."""
        return self is not WorkloadType.INFERENCE


class Optimizer(StrEnum):
    ADAMW = "AdamW"
    ADAM8BIT = "Adam8bit"
    SGD = "SGD"


class Checkpointing(StrEnum):
    """Activation checkpointing: none, selective (attention recomputed) or full (per layer)."""

    NONE = "None"
    SELECTIVE = "Selective"
    FULL = "Full"


class LoraTargets(StrEnum):
    """Which linears of each layer carry LoRA adapters."""

    ATTENTION = "attention"  # q, k, v, o
    ATTENTION_AND_MLP = "attention-and-mlp"  # q, k, v, o and the MLP's gate/up/down
    ALL_LINEAR = "all-linear"  # every linear but the output head (PEFT's "all-linear")


class Framework(StrEnum):
    """The training stack, whose memory habits differ (core/sizing/defaults.py says how)."""

    TRANSFORMERS = "Transformers"  # Hugging Face Trainer / TRL / PEFT / Accelerate, with DeepSpeed or FSDP
    TORCHTUNE = "torchtune"
    TORCHTITAN = "torchtitan"
    # The QLoRA paper's scripts (artidoro/qlora qlora.py) and the trainers built on them.
    QLORA_SCRIPTS = "QLoRAScripts"


class Offload(StrEnum):
    """Model states kept in host memory instead of on the GPU (DeepSpeed offload, FSDP CPU offload)."""

    NONE = "None"
    OPTIMIZER = "Optimizer"
    OPTIMIZER_AND_PARAMETERS = "OptimizerAndParameters"


# Largest model the estimator accepts (100 trillion parameters): ~50x the largest published
# dense or MoE checkpoints of 2026, so anything above is a typo (1e20) rather than a model.
MAX_PARAMETERS = 100 * 10**12
# Smallest: 1M. The smallest language models people train or serve have a few million
# parameters (TinyStories-1M, BERT-tiny 4.4M, Pythia-14M); a count below that is a dropped
# suffix ("8" for 8B), which would otherwise be sized as a model of a few bytes.
MIN_PARAMETERS = 10**6
MAX_SEQUENCE_LENGTH = 16 * 1024 * 1024
# Sequences per replica at once: 65,536 is 32x the largest engine default we know (TensorRT-LLM's
# max_batch_size 2048; vLLM's max_num_seqs is 256 to 1024) and far above any training
# micro-batch, so a larger value is a token or sample count written in the wrong field.
MAX_BATCH_SIZE = 1 << 16


@dataclass(frozen=True, slots=True)
class Architecture:
    """Transformer shape (Hugging Face config.json names in comments)."""

    layers: int  # num_hidden_layers
    hidden_size: int  # hidden_size
    attention_heads: int  # num_attention_heads
    kv_heads: int | None = None  # num_key_value_heads; None = attention_heads (MHA)
    head_dim: int | None = None  # head_dim; None = hidden_size / attention_heads
    vocab_size: int | None = None  # vocab_size
    intermediate_size: int | None = None  # MLP width; None = 4 x hidden_size

    @property
    def effective_kv_heads(self) -> int:
        return self.kv_heads if self.kv_heads is not None else self.attention_heads

    @property
    def effective_head_dim(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.attention_heads


@dataclass(frozen=True, slots=True)
class ModelShape:
    parameters: int  # total, all experts for MoE (all are resident in memory)
    precision: Precision = Precision.BF16
    active_parameters: int | None = None  # MoE: per token (FLOPs, not memory)
    architecture: Architecture | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class Workload:
    """The work. Fields left None take the default of the tools people run for this type
    (core/sizing/defaults.py says which tool each default follows)."""

    type: WorkloadType = WorkloadType.INFERENCE
    sequence_length: int = 4096
    batch_size: int = 1
    optimizer: Optimizer | None = None
    zero_stage: int = 0
    activation_checkpointing: Checkpointing | None = None
    lora_rank: int | None = None
    replicas: int = 1  # data-parallel workers; ZeRO shards across them
    lora_targets: LoraTargets | None = None
    offload: Offload = Offload.NONE
    framework: Framework | None = None


@dataclass(frozen=True, slots=True)
class Overrides:
    """Explicit per-replica requests from `spec.resources`; each one, when set, wins."""

    gpus: int | None = None
    cpu_milli: int | None = None
    memory_bytes: int | None = None
    ephemeral_storage_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class JobShape:
    """Everything sizing needs to know about one ModelJob."""

    model: ModelShape
    workload: Workload = field(default_factory=Workload)
    overrides: Overrides = field(default_factory=Overrides)
