"""The model and the work of a ModelJob (spec.model, spec.workload): what sizing reads.

Part of the ModelJob API (api/v1alpha1.py re-exports these models); the same conventions hold:
every constraint is in the generated CRD, and CEL rules repeat the cross-field checks the
pydantic validators make.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from modeljob.api.model_base import ApiModel as _Model
from modeljob.api.quantities import ParameterCount, cel_rule, parameters_field
from modeljob.core.jobs import (
    MAX_BATCH_SIZE,
    MAX_SEQUENCE_LENGTH,
    Framework,
    LoraTargets,
    Offload,
    Optimizer,
    Precision,
    WorkloadType,
)


class Architecture(_Model):
    """Transformer shape from the model's config.json; KV cache and activations follow it exactly."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule(
                    "has(self.headDim) || self.hiddenSize % self.attentionHeads == 0",
                    "hiddenSize must be divisible by attentionHeads unless headDim is given",
                    field_path=".hiddenSize",
                ),
                cel_rule(
                    "!has(self.kvHeads) || (self.kvHeads <= self.attentionHeads"
                    " && self.attentionHeads % self.kvHeads == 0)",
                    "kvHeads must divide attentionHeads",
                    field_path=".kvHeads",
                ),
            ]
        }
    )

    layers: int = Field(ge=1, le=10_000, description="Transformer layers (num_hidden_layers).")
    hidden_size: int = Field(ge=1, le=1_000_000, description="Model width (hidden_size).")
    attention_heads: int = Field(ge=1, le=100_000, description="Query heads (num_attention_heads).")
    kv_heads: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Key/value heads (num_key_value_heads): fewer than attentionHeads for GQA or MQA; "
        "default attentionHeads. Sizes the KV cache.",
    )
    head_dim: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Dimension of one head (head_dim); default hiddenSize/attentionHeads.",
    )
    vocab_size: int | None = Field(
        default=None,
        ge=1,
        le=100_000_000,
        description="Vocabulary (vocab_size); sizes embeddings and training logits. Default 152064.",
    )
    intermediate_size: int | None = Field(
        default=None,
        ge=1,
        le=10_000_000,
        description="MLP width (intermediate_size); default 4 x hiddenSize. Any other width is "
        "taken as a gated (SwiGLU) MLP.",
    )

    @model_validator(mode="after")
    def _check_heads(self) -> Architecture:
        if self.head_dim is None and self.hidden_size % self.attention_heads:
            raise ValueError("hiddenSize must be divisible by attentionHeads unless headDim is given")
        if self.kv_heads is not None and (
            self.kv_heads > self.attention_heads or self.attention_heads % self.kv_heads
        ):
            raise ValueError("kvHeads must divide attentionHeads")
        return self


class Model(_Model):
    """The model to run: its size and weight format, and optionally its exact shape."""

    name: str | None = Field(
        default=None, max_length=256, description="Informational, e.g. a Hugging Face id."
    )
    parameters: ParameterCount = parameters_field(
        "spec.model.parameters",
        "Total parameter count (all experts of an MoE), e.g. 7B, 70.6B, 0.5B, 560M, 405e9 or "
        "7000000000 (K, M, B, T = 1e3, 1e6, 1e9, 1e12); from 1M to 100T.",
    )
    active_parameters: ParameterCount | None = parameters_field(
        "spec.model.activeParameters",
        "MoE only: parameters active per token, at most parameters. Informational: every expert "
        "stays resident, so memory follows parameters.",
        default=None,
    )
    precision: Precision = Field(
        default=Precision.BF16,
        description="The checkpoint's weight format: fp32, bf16 (default), fp16, fp8, int8 (GPTQ), "
        "int4 (GPTQ/AWQ) or nf4 (bitsandbytes 4-bit). Training under the Transformers framework "
        "computes in it (an fp32 checkpoint trains in fp32: bf16 mixed precision over it cannot "
        "be stated); torchtune and torchtitan compute in bf16 and QLoRA in its 16-bit compute "
        "dtype, whatever the checkpoint.",
    )
    architecture: Architecture | None = Field(
        default=None,
        description="Transformer shape from config.json; omit it to derive a conservative shape "
        "from the parameter count.",
    )


class Workload(_Model):
    """What the replicas do with the model, and how much of it at once."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel_rule(
                    "!has(self.loraRank)"
                    " || (has(self.type) && (self.type == 'LoRA' || self.type == 'QLoRA'))",
                    "loraRank applies only to LoRA and QLoRA workloads",
                    field_path=".loraRank",
                ),
                cel_rule(
                    "!has(self.loraTargets)"
                    " || (has(self.type) && (self.type == 'LoRA' || self.type == 'QLoRA'))",
                    "loraTargets applies only to LoRA and QLoRA workloads",
                    field_path=".loraTargets",
                ),
                cel_rule(
                    "!(has(self.optimizer) || has(self.zeroStage) || has(self.activationCheckpointing))"
                    " || (has(self.type) && self.type != 'Inference')",
                    "optimizer, zeroStage and activationCheckpointing apply only to Training, LoRA and QLoRA",
                    field_path=".type",
                ),
                cel_rule(
                    "!has(self.framework) || (has(self.type) && self.type != 'Inference')",
                    "framework applies only to Training, LoRA and QLoRA",
                    field_path=".framework",
                ),
                cel_rule(
                    "!has(self.offload) || (has(self.type) && self.type != 'Inference')",
                    "offload applies only to Training, LoRA and QLoRA (serving keeps its weights on the GPU)",
                    field_path=".offload",
                ),
                cel_rule(
                    "!has(self.offload) || self.offload != 'OptimizerAndParameters'"
                    " || (has(self.zeroStage) && self.zeroStage == 3)",
                    "offload OptimizerAndParameters needs zeroStage 3 (parameters are offloaded only "
                    "when they are sharded: DeepSpeed ZeRO-3 offload_param, FSDP full-shard CPU offload)",
                    field_path=".offload",
                ),
            ]
        }
    )

    type: WorkloadType = Field(
        default=WorkloadType.INFERENCE,
        description="Inference (default: serve the model), Training (full fine-tune or "
        "pre-training), LoRA or QLoRA (adapters on a frozen, for QLoRA 4-bit, base).",
    )
    sequence_length: int = Field(
        default=4096,
        ge=1,
        le=MAX_SEQUENCE_LENGTH,
        description="Tokens per sequence: context length for inference, training sequence length "
        "otherwise (default 4096).",
    )
    batch_size: int = Field(
        default=1,
        ge=1,
        le=MAX_BATCH_SIZE,
        description="Sequences per replica at once: concurrent requests for inference, micro-batch "
        f"for training (default 1, at most {MAX_BATCH_SIZE}).",
    )
    optimizer: Optimizer | None = Field(
        default=None,
        description="Training only: AdamW (default), Adam8bit (bitsandbytes 8-bit states) or SGD "
        "(with momentum).",
    )
    zero_stage: int | None = Field(
        default=None,
        ge=0,
        le=3,
        description="Training only: DeepSpeed ZeRO stage (0..3, default 0), sharding model states "
        "across the replicas.",
    )
    activation_checkpointing: bool | None = Field(
        default=None,
        description="Training only: recompute activations in the backward pass. Default by "
        "framework: Transformers on for LoRA and QLoRA (PEFT, the QLoRA scripts), off for Training "
        "(the Trainer's default); torchtune on; torchtitan selective.",
    )
    lora_rank: int | None = Field(
        default=None,
        ge=1,
        le=65_536,
        description="LoRA and QLoRA only: adapter rank. Default 8 (PEFT's LoraConfig, torchtune's "
        "recipes); 64 for QLoRA under Transformers (the QLoRA scripts).",
    )
    lora_targets: LoraTargets | None = Field(
        default=None,
        description="LoRA and QLoRA only: which linears carry adapters: attention (q, k, v, o), "
        "attention-and-mlp, or all-linear (every linear but the output head). Default: attention "
        "for LoRA (PEFT, torchtune); all-linear for QLoRA (the QLoRA paper), attention-and-mlp under "
        "torchtune.",
    )
    framework: Framework | None = Field(
        default=None,
        description="Training only: the stack that runs it, whose memory habits the estimate "
        "follows: Transformers (default: the Trainer, TRL, PEFT, with DeepSpeed or FSDP, which "
        "zeroStage does not tell apart, so the buffers of both are counted; computes in the "
        "checkpoint's dtype, a 16-bit one with an fp32 master copy), torchtune (pure bf16 whatever "
        "the checkpoint, chunked loss), torchtitan (FSDP2: fp32 sharded parameters, bf16 compute) "
        "or QLoRAScripts (the QLoRA paper's qlora.py: LoRA layers and embeddings cast to bf16).",
    )
    offload: Offload | None = Field(
        default=None,
        description="Training only: keep model states in host memory (counted in memoryBytes): "
        "None (default), Optimizer (DeepSpeed offload_optimizer) or OptimizerAndParameters "
        "(also offload_param / FSDP CPU offload; needs zeroStage 3).",
    )

    @model_validator(mode="after")
    def _check_fields_fit_type(self) -> Workload:
        lora = self.type in (WorkloadType.LORA, WorkloadType.QLORA)
        if self.lora_rank is not None and not lora:
            raise ValueError("loraRank applies only to LoRA and QLoRA workloads")
        if self.lora_targets is not None and not lora:
            raise ValueError("loraTargets applies only to LoRA and QLoRA workloads")
        training_only = (self.optimizer, self.zero_stage, self.activation_checkpointing)
        if self.type is WorkloadType.INFERENCE and any(v is not None for v in training_only):
            raise ValueError(
                "optimizer, zeroStage and activationCheckpointing apply only to training workloads"
            )
        if self.type is WorkloadType.INFERENCE and self.framework is not None:
            raise ValueError("framework applies only to Training, LoRA and QLoRA")
        if self.type is WorkloadType.INFERENCE and self.offload is not None:
            raise ValueError(
                "offload applies only to Training, LoRA and QLoRA (serving keeps its weights on the GPU)"
            )
        if self.offload is Offload.OPTIMIZER_AND_PARAMETERS and self.zero_stage != 3:
            raise ValueError(
                "offload OptimizerAndParameters needs zeroStage 3 (parameters are offloaded only when "
                "they are sharded: DeepSpeed ZeRO-3 offload_param, FSDP full-shard CPU offload)"
            )
        return self
