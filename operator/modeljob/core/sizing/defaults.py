"""The training recipe a job gets when its spec leaves a choice open: the defaults of the tools people run.

One place for every default and every habit of a training stack that changes memory; docs/sizing.md
("Defaults and frameworks") restates each with its source. The spec's `workload.framework` picks the
stack (default Transformers: the Hugging Face Trainer, TRL and PEFT, with DeepSpeed or FSDP).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from modeljob.core.jobs import (
    Checkpointing,
    Framework,
    JobShape,
    LoraTargets,
    Offload,
    Optimizer,
    Precision,
    Workload,
    WorkloadType,
)


@dataclass(frozen=True, slots=True)
class Stack:
    """What a training stack does by default, and the memory habits the spec cannot change."""

    checkpointing: dict[WorkloadType, Checkpointing]
    lora_rank: dict[WorkloadType, int]
    lora_targets: dict[WorkloadType, LoraTargets]
    # Computing in 16 bits, mixed precision keeps an fp32 master copy beside 16-bit weights
    # (DeepSpeed, the Trainer's AMP) or fp32 sharded parameters computed in bf16 (FSDP2 in
    # torchtitan); pure bf16 training (torchtune's dtype: bf16) keeps weights, gradients and
    # optimizer states all in bf16. Computing in fp32 (compute_bytes), everything is fp32.
    fp32_master: bool
    # The stack computes in bf16 whatever the checkpoint's dtype: torchtune builds the model in its
    # config's `dtype: bf16`; torchtitan's FSDP2 MixedPrecisionPolicy casts its fp32 sharded
    # parameters to bf16 (`mixed_precision_param = "bfloat16"`). Otherwise the model computes in
    # the checkpoint's dtype: the Trainer's `bf16`/`fp16` and Accelerate's `mixed_precision`
    # default off (see compute_bytes).
    computes_in_bf16: bool
    # Bytes per (token x vocabulary) value alive at the loss (see the note after this class).
    logit_bytes: int
    # QLoRA: the 16-bit parameters that are not quantized (embeddings, lm_head) are cast to fp32
    # by PEFT's prepare_model_for_kbit_training (recent PEFT skips GPTQ checkpoints; Qwen's
    # measured Q-LoRA profile over GPTQ bases matches the upcast, so we keep it), or stay bf16
    # (torchtune).
    upcast_unquantized: bool
    # QLoRA: only the linears that carry adapters are NF4 (torchtune's lora_*_nf4 builders), or
    # every linear of the base (bitsandbytes via Transformers' quantization_config).
    quantize_only_adapted: bool
    # Bytes of one adapter weight (and of its gradient): PEFT creates LoRA adapters in fp32
    # (nn.Linear's default dtype, kept by autocast_adapter_dtype=True and beside a 4-bit base);
    # torchtune keeps everything in bf16.
    adapter_bytes: int
    # `zeroStage` may run on DeepSpeed. Under Transformers it is DeepSpeed ZeRO or FSDP (the
    # Trainer's `deepspeed` or `fsdp` argument, Accelerate's config file), which the spec does not
    # say: we charge the buffers of both (gpu_memory._zero_buffers), the safe side. torchtune and
    # torchtitan shard with FSDP only: no DeepSpeed bucket, sub-group step buffer or live window.
    may_run_deepspeed: bool
    # QLoRA: the base is quantized to NF4 on the GPU by torchao's to_nf4 as the model is built and
    # loaded (torchtune's LoRALinear and its NF4 copy_), whose nearest-level search materialises
    # a 16-wide distance tensor per element (constants.TORCHAO_NF4_QUANTIZE_BYTES_PER_ELEMENT);
    # bitsandbytes (Transformers) quantizes in a CUDA kernel that writes the packed 4 bits directly.
    quantizes_with_torchao: bool


# Logits and loss, bytes per value, at the loss's peak (sources: docs/sizing.md, "Logits and loss"):
# - Transformers: 14 B, the peak of the versions a spec cannot rule out. From v4.46 until PR
#   huggingface/transformers#35646 (merged January 2025) src/transformers/loss/loss_utils.py
#   ForCausalLMLoss upcast the 16-bit logits (`logits.float()`, 4 B) and then took a contiguous
#   shifted copy of the upcast (`logits[..., :-1, :].contiguous()`, 4 B) while the model still held
#   its 16-bit logits (2 B), and cross-entropy kept its fp32 log-softmax (4 B): 14 B in the forward.
#   Other versions peak at 12 B (the log-softmax's backward: its saved output, the NLL gradient and
#   its own gradient, all fp32), Qwen (v1)'s remote loss under DeepSpeed fp16 at 6 B and an fp32
#   model at 12 B. A spec cannot say which version runs, and charging less than 14 could run a
#   4.46-4.48 job out of memory (the worst case), so every Transformers job is charged 14 (the
#   vram.asmirnov.xyz calculator counts 8).
# - torchtune: CEWithChunkedOutputLoss keeps the bf16 logits (2 B) and upcasts one of 8 chunks at
#   a time (fp32 value and log-softmax, 8 B / 8 chunks): 3 B.
# - torchtitan: 12 B. cross_entropy over pred.float() on labels shifted by the data loader (no
#   shifted copy), and torchtitan/train.py (@000204a4, forward_backward_step) deletes `pred`
#   before loss.backward(): 10 B in the forward, the 12 B backward of the log-softmax above.
# - The QLoRA scripts: 12 B. artidoro/qlora's requirements.txt (@01b09624) pins transformers
#   4.31.0, whose Llama head upcasts its logits (`logits.float()`, the 16-bit output freed) and
#   shifts a copy under the Trainer's autocast: 4 + 4 + 4 B in the forward, 12 B in the backward.
TRANSFORMERS = Stack(
    # PEFT's prepare_model_for_kbit_training turns gradient checkpointing on (use_gradient_
    # checkpointing=True) and the QLoRA scripts pass --gradient_checkpointing True; full training
    # is sized without it: the Trainer's gradient_checkpointing defaults to False, and sizing for
    # "off" cannot run a job that left it off out of memory.
    checkpointing={
        WorkloadType.TRAINING: Checkpointing.NONE,
        WorkloadType.LORA: Checkpointing.FULL,
        WorkloadType.QLORA: Checkpointing.FULL,
    },
    # PEFT's LoraConfig: r=8 on the attention projections of Llama-style models (its default
    # target_modules map lists q_proj and v_proj, which our `attention` target counts as all four
    # projections, a few adapters more: the safe side); QLoRA: the QLoRA scripts' --lora_r 64 on every
    # linear layer (artidoro/qlora qlora.py; paper section 4, "LoRA on all linear layers").
    lora_rank={WorkloadType.LORA: 8, WorkloadType.QLORA: 64},
    lora_targets={WorkloadType.LORA: LoraTargets.ATTENTION, WorkloadType.QLORA: LoraTargets.ALL_LINEAR},
    fp32_master=True,
    computes_in_bf16=False,
    logit_bytes=14,
    upcast_unquantized=True,
    quantize_only_adapted=False,
    adapter_bytes=4,
    may_run_deepspeed=True,
    quantizes_with_torchao=False,
)
TORCHTUNE = Stack(
    # recipes/configs/llama3_1/*: enable_activation_checkpointing: True; lora_rank: 8; LoRA on
    # q_proj and v_proj (counted as `attention`, all four projections), QLoRA on q, k, v, o and
    # the MLP (apply_lora_to_mlp: True).
    checkpointing={kind: Checkpointing.FULL for kind in WorkloadType if kind.trains},
    lora_rank={WorkloadType.LORA: 8, WorkloadType.QLORA: 8},
    lora_targets={
        WorkloadType.LORA: LoraTargets.ATTENTION,
        WorkloadType.QLORA: LoraTargets.ATTENTION_AND_MLP,
    },
    fp32_master=False,
    computes_in_bf16=True,
    logit_bytes=3,
    upcast_unquantized=False,
    quantize_only_adapted=True,
    adapter_bytes=2,
    may_run_deepspeed=False,
    quantizes_with_torchao=True,
)
# torchtitan: FSDP2 keeps fp32 sharded parameters, computes in bf16 and steps on sharded fp32
# gradients (no DeepSpeed buffers); train_configs/llama3_*.toml: activation_checkpoint.mode =
# "selective". It has no LoRA recipes.
TORCHTITAN = replace(
    TRANSFORMERS,
    checkpointing={kind: Checkpointing.SELECTIVE for kind in WorkloadType if kind.trains},
    computes_in_bf16=True,
    may_run_deepspeed=False,
    logit_bytes=12,  # cross_entropy(pred.float()), `del pred` before the backward (above)
)
# The QLoRA scripts: the Transformers stack, then qlora.py casts the LoRA layers and lm_head /
# embed_tokens to bf16 (with --bf16) after PEFT's fp32 upcast, and pages the optimizer states
# (--optim paged_adamw_32bit: say offload Optimizer). Their pinned transformers==4.31.0 loss holds
# 12 B per logit (above).
QLORA_SCRIPTS = replace(TRANSFORMERS, upcast_unquantized=False, adapter_bytes=2, logit_bytes=12)
STACKS = {
    Framework.TRANSFORMERS: TRANSFORMERS,
    Framework.TORCHTUNE: TORCHTUNE,
    Framework.TORCHTITAN: TORCHTITAN,
    Framework.QLORA_SCRIPTS: QLORA_SCRIPTS,
}

# AdamW: the Transformers Trainer's default (adamw_torch), torchtune's and torchtitan's recipes and
# DeepSpeed's examples. (The QLoRA scripts' paged 32-bit AdamW keeps the same states.)
OPTIMIZER = Optimizer.ADAMW


@dataclass(frozen=True, slots=True)
class Recipe:
    """The choices that shape memory, each from the spec or its stack's default."""

    framework: Framework
    stack: Stack
    optimizer: Optimizer
    checkpointing: Checkpointing
    lora_rank: int
    lora_targets: LoraTargets
    offload: Offload


def recipe(work: Workload) -> Recipe:
    framework = work.framework or Framework.TRANSFORMERS
    stack = STACKS[framework]
    kind = work.type
    if not kind.trains:
        return Recipe(
            framework, stack, OPTIMIZER, Checkpointing.NONE, 0, LoraTargets.ALL_LINEAR, Offload.NONE
        )
    return Recipe(
        framework=framework,
        stack=stack,
        optimizer=work.optimizer or OPTIMIZER,
        checkpointing=work.activation_checkpointing or stack.checkpointing[kind],
        lora_rank=work.lora_rank or stack.lora_rank.get(kind, 0),
        lora_targets=work.lora_targets or stack.lora_targets.get(kind, LoraTargets.ALL_LINEAR),
        offload=work.offload,
    )


def compute_bytes(job: JobShape) -> int:
    """Bytes of one element as the GPU computes: activations, logits, gathered parameters and the
    ZeRO/FSDP buffers. One place for the rule (docs/sizing.md, "Compute dtype"):
    - QLoRA computes in its 16-bit compute dtype (bnb_4bit_compute_dtype; torchtune's bf16) over
      the NF4 base, whatever the checkpoint was;
    - torchtune and torchtitan compute in bf16 whatever the checkpoint (Stack.computes_in_bf16);
    - Transformers (and the QLoRA scripts) compute in the checkpoint's dtype: mixed precision is
      off unless asked for, and the spec cannot ask for it, so an fp32 checkpoint computes in fp32
      (the safe side when the run did use bf16 mixed precision).
    """
    work = job.workload
    if not work.type.trains:
        return 4 if job.model.precision is Precision.FP32 else 2
    if work.type is WorkloadType.QLORA or recipe(work).stack.computes_in_bf16:
        return 2
    return 4 if job.model.precision is Precision.FP32 else 2
