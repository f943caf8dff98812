"""Activations on each GPU: one layer's prefill for serving; saved activations and logits for training."""

from __future__ import annotations

from modeljob.core.jobs import Checkpointing, JobShape
from modeljob.core.resources import format_bytes
from modeljob.core.sizing.constants import PREFILL_TOKEN_BUDGET, ceil_div
from modeljob.core.sizing.defaults import compute_bytes, recipe
from modeljob.core.sizing.inputs import Shape
from modeljob.core.sizing.layout import Layout
from modeljob.core.sizing.model_states import Part


def activations(job: JobShape, shape: Shape, layout: Layout) -> Part:
    if job.workload.type.trains:
        return _training(job, shape, layout)
    return _serving(job, shape, layout)


def _serving(job: JobShape, shape: Shape, layout: Layout) -> Part:
    work = job.workload
    h, t = shape.hidden_size, layout.tensor_parallel
    tokens = min(work.batch_size * work.sequence_length, max(work.sequence_length, PREFILL_TOKEN_BUDGET))
    # One layer's forward is the peak: residual, normed and attention-output copies of the
    # hidden state (4h, replicated on every TP rank) and the MLP intermediates (split by t):
    # 3 x I for a gated MLP (gate, up, product), 2 x I otherwise (fc1 output, GeLU output).
    mlp = 3 if shape.gated_mlp else 2
    per_gpu = 2 * tokens * (4 * h + ceil_div(mlp * shape.intermediate_size, t))
    text = (
        f"one layer's forward over a {tokens}-token prefill (min(batch x seq, max(seq, "
        f"{PREFILL_TOKEN_BUDGET}))): 2 B x (4 x {h} hidden + {mlp} x {shape.intermediate_size} MLP"
        f"{f' / TP {t}' if t > 1 else ''}) per token; FlashAttention, no s^2 scores"
    )
    return Part(per_gpu, (text,))


def _one_layer(shape: Shape, tokens: int, t: int) -> tuple[int, str]:
    """Saved activations of one layer for ``tokens`` tokens (16-bit, 1-byte dropout masks).

    Korthikanti et al. 2022 (arXiv 2205.05198) Table 2: 34sbh per layer without the 5as^2b score
    term (FlashAttention never materialises the scores), of which 16sbh is the 4h MLP, generalised
    here to the declared width (8 bytes per value of I for a gated MLP: gate, up, activation and
    product; 4 for GeLU). Under tensor parallelism the training stacks turn on sequence
    parallelism (Megatron-LM's --sequence-parallel, torchtitan's SequenceParallel norms), so
    every term is split by t (the paper's "tensor + sequence parallel" row: 34sbh/t).
    """
    h = shape.hidden_size
    mlp_factor = 8 if shape.gated_mlp else 4
    per_token = 18 * h + mlp_factor * shape.intermediate_size
    kind = f"gated MLP {shape.intermediate_size}" if shape.gated_mlp else f"MLP {shape.intermediate_size}"
    split = f", sequence parallel / {t}" if t > 1 else ""
    return ceil_div(tokens * per_token, t), f"sbh(18 + {mlp_factor}I/h) bytes ({kind}{split})"


def _training(job: JobShape, shape: Shape, layout: Layout) -> Part:
    work = job.workload
    s, b, t = work.sequence_length, work.batch_size, layout.tensor_parallel
    tokens = s * b
    layers = shape.layers
    one_layer, formula = _one_layer(shape, tokens, t)
    inputs = ceil_div(2 * tokens * shape.hidden_size, t)  # a layer's 16-bit input, what checkpointing keeps
    mode = recipe(work).checkpointing
    if mode is Checkpointing.FULL:
        # The backward of a recomputed layer holds its recomputed activations and, beside them,
        # the gradients flowing back through them (of the same size at the peak, before each
        # saved tensor is freed): two layers' worth on top of the checkpointed inputs.
        saved = layers * inputs + 2 * one_layer
        layers_text = (
            f"full checkpointing: {layers} layers x 2 B x {s} x {b} x {shape.hidden_size} (layer inputs) + "
            f"one layer recomputed and its gradients (2 x {format_bytes(one_layer)})"
        )
    elif mode is Checkpointing.SELECTIVE:
        # Selective recomputation as the tools default it keeps about half of what a layer saves
        # (torchtitan's "op" policy saves every other matmul's output; its "layer" policy every
        # other layer): half the layers whole, the other half as checkpointed inputs.
        saved = (layers + 1) // 2 * one_layer + layers // 2 * inputs
        layers_text = (
            f"selective checkpointing: about half of {layers} layers x {format_bytes(one_layer)} kept, "
            f"the rest as layer inputs; {formula}"
        )
    else:
        saved = layers * one_layer
        layers_text = f"{layers} layers x {formula} = {format_bytes(one_layer)} per layer"
    # Computing in fp32 (defaults.compute_bytes: an fp32 checkpoint under Transformers) saves fp32
    # activations. The loss holds the same bytes per logit either way (defaults.Stack.logit_bytes).
    scale = 2 if compute_bytes(job) == 4 else 1
    # Logits are vocab-parallel under Megatron-style TP. Under pipeline parallelism 1F1B keeps up
    # to PP micro-batches in flight on the first stage, which holds layers/PP of each: as much as
    # all layers of one micro-batch; the last stage adds the logits, so the sum bounds both.
    logit_bytes = recipe(work).stack.logit_bytes
    logits = ceil_div(logit_bytes * tokens * shape.vocab_size, t)
    per_gpu = scale * saved + logits
    text = (
        f"{layers_text}; logits {logit_bytes} B x {s} tokens x {b} x {shape.vocab_size} vocab"
        f"{' (vocab assumed)' if shape.vocab_assumed else ''}"
        f"{f'; TP {t}' if t > 1 else ''}{f'; PP {layout.pipeline}' if layout.pipeline > 1 else ''}"
        f"{'; fp32 activations x2' if scale == 2 else ''}"
    )
    return Part(per_gpu, (text,))
