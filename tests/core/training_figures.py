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

from __future__ import annotations

from tests.core.figure_records import Figure
from tests.core.peft_figures import PEFT_FIGURES
from tests.core.torchtitan_figures import TORCHTITAN_FIGURES
from tests.core.torchtune_llama2_figures import TORCHTUNE_LLAMA2_FIGURES
from tests.core.torchtune_llama3_figures import TORCHTUNE_LLAMA3_FIGURES
from tests.core.transformers_figures import TRANSFORMERS_FIGURES

# One table, in the order docs/sizing-accuracy.md numbers its rows; each source and its commit
# are in figure_sources.py, each family's runs in its own module.
TRAINING_FIGURES: tuple[Figure, ...] = (
    TORCHTUNE_LLAMA3_FIGURES
    + TORCHTUNE_LLAMA2_FIGURES
    + TORCHTITAN_FIGURES
    + PEFT_FIGURES
    + TRANSFORMERS_FIGURES
)
