"""Published memory figures the estimator is checked against, each with its source and what it measures.

Every figure was printed by the source named next to it; the job shapes restate the setting the
source describes (model architecture from the model's config.json on its model card). The figures
live by kind of source: inference_figures.py (weights, KV cache, serving peaks),
training_estimates.py (papers', docs' and tools' training totals) and qwen_profile.py (Qwen (v1)'s
fine-tuning grid); the record, its units and tolerances are in figure_records.py, the sources in
figure_sources.py. This module keeps the one table the tests and docs/sizing-accuracy.md read, in
their order, and the names they import.
"""

from __future__ import annotations

from tests.core.figure_jobs import qlora_paper
from tests.core.figure_records import (
    GPU_80GIB,
    TOLERANCES,
    Figure,
    Kind,
    Measure,
    Tolerance,
    gib,
    measured,
    size_with_logit_bytes,
)
from tests.core.figure_shapes import LLAMA_33B, LLAMA_65B
from tests.core.inference_figures import INFERENCE_FIGURES
from tests.core.qwen_profile import (
    QWEN_FT_CHECKED_LENGTH,
    QWEN_FT_FIGURES,
    QWEN_FT_GRID,
    QWEN_FT_SEQUENCE_LENGTHS,
    QWEN_LORA_LOGIT_BYTES,
    QwenMethod,
    QwenRow,
    qwen_job,
    qwen_run_logit_bytes,
)
from tests.core.training_estimates import TRAINING_ESTIMATES

__all__ = [
    "FIGURES",
    "GPU_80GIB",
    "LLAMA_33B",
    "LLAMA_65B",
    "QWEN_FT_CHECKED_LENGTH",
    "QWEN_FT_GRID",
    "QWEN_FT_SEQUENCE_LENGTHS",
    "QWEN_LORA_LOGIT_BYTES",
    "TOLERANCES",
    "Figure",
    "Kind",
    "Measure",
    "QwenMethod",
    "QwenRow",
    "Tolerance",
    "gib",
    "measured",
    "qlora_paper",
    "qwen_job",
    "qwen_run_logit_bytes",
    "size_with_logit_bytes",
]

FIGURES: tuple[Figure, ...] = INFERENCE_FIGURES + TRAINING_ESTIMATES + QWEN_FT_FIGURES
