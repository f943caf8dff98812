"""The training recipe a job gets when its spec leaves a choice open: the defaults of the tools people run.

One place for every default; docs/sizing.md ("Defaults") restates each with its source.
"""

from __future__ import annotations

from dataclasses import dataclass

from modeljob.core.jobs import Checkpointing, LoraTargets, Offload, Optimizer, Workload, WorkloadType

# LoRA rank 8: PEFT's LoraConfig default (r=8) and torchtune's Llama 3.x LoRA recipes
# (recipes/configs/llama3_1/8B_lora.yaml, lora_rank: 8). QLoRA rank 64: the QLoRA repository's
# scripts (artidoro/qlora qlora.py, --lora_r 64) and the paper's runs (arXiv:2305.14314, App. B).
LORA_RANK = {WorkloadType.LORA: 8, WorkloadType.QLORA: 64}

# Targets: torchtune's LoRA configs adapt the attention projections and the MLP
# (lora_attn_modules + apply_lora_to_mlp: True); the QLoRA paper adapts every linear layer
# ("LoRA on all linear transformer block layers", section 4), which PEFT spells "all-linear".
LORA_TARGETS = {WorkloadType.LORA: LoraTargets.ATTENTION_AND_MLP, WorkloadType.QLORA: LoraTargets.ALL_LINEAR}

# Checkpointing: PEFT's prepare_model_for_kbit_training turns gradient checkpointing on
# (use_gradient_checkpointing=True), the QLoRA scripts pass --gradient_checkpointing True and
# torchtune's LoRA/QLoRA configs set enable_activation_checkpointing: True. Full training is
# sized without it: the Transformers Trainer (gradient_checkpointing=False) and DeepSpeed leave it
# off, and sizing for "off" cannot run a job that turned it off out of memory.
CHECKPOINTING = {
    WorkloadType.TRAINING: Checkpointing.NONE,
    WorkloadType.LORA: Checkpointing.FULL,
    WorkloadType.QLORA: Checkpointing.FULL,
}

# AdamW: the Transformers Trainer's default (adamw_torch), torchtune's recipes and DeepSpeed's
# examples. (The QLoRA scripts' paged 32-bit AdamW keeps the same 8 bytes per trained parameter.)
OPTIMIZER = Optimizer.ADAMW


@dataclass(frozen=True, slots=True)
class Recipe:
    """The choices that shape memory, each from the spec or the default above."""

    optimizer: Optimizer
    checkpointing: Checkpointing
    lora_rank: int
    lora_targets: LoraTargets
    offload: Offload


def recipe(work: Workload) -> Recipe:
    kind = work.type
    if kind is WorkloadType.INFERENCE:
        return Recipe(OPTIMIZER, Checkpointing.NONE, 0, LoraTargets.ALL_LINEAR, Offload.NONE)
    return Recipe(
        optimizer=work.optimizer or OPTIMIZER,
        checkpointing=work.activation_checkpointing or CHECKPOINTING[kind],
        lora_rank=work.lora_rank or LORA_RANK.get(kind, 0),
        lora_targets=work.lora_targets or LORA_TARGETS.get(kind, LoraTargets.ALL_LINEAR),
        offload=work.offload,
    )
