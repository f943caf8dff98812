"""The estimator against published figures: each within its stated tolerance.

Run ``PYTHONPATH=operator:. python -m tests.core.test_sizing_accuracy --markdown`` to print the
tables of docs/sizing-accuracy.md from the same data.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from modeljob.core.jobs import ModelShape, WorkloadType
from modeljob.core.resources import GIB
from modeljob.core.sizing import Device, size_replica
from tests.core.published_figures import (
    FIGURES,
    GPU_80GIB,
    LLAMA_33B,
    LLAMA_65B,
    QWEN_FT_GRID,
    QWEN_FT_SEQUENCE_LENGTHS,
    QWEN_LORA_LOGIT_BYTES,
    TOLERANCES,
    Figure,
    Kind,
    Measure,
    QwenMethod,
    QwenRow,
    Tolerance,
    gib,
    measured,
    qlora_paper,
    qwen_job,
    qwen_run_logit_bytes,
    size_with_logit_bytes,
)
from tests.core.training_figures import TRAINING_FIGURES


@dataclass(frozen=True, slots=True)
class Comparison:
    figure: Figure
    ours_bytes: int

    @property
    def error_percent(self) -> float:
        return (self.ours_bytes - self.figure.published_bytes) / self.figure.published_bytes * 100

    @property
    def passes(self) -> bool:
        return self.figure.tolerance.admits(self.error_percent)


def compare(figure: Figure, logit_bytes: int | None = None) -> Comparison:
    """Ours against the figure; with ``logit_bytes``, the job's loss charged at that many bytes per
    logit instead of its stack's."""
    if logit_bytes is None:
        return Comparison(figure, measured(figure, size_replica(figure.job, figure.device)))
    return Comparison(figure, measured(figure, size_with_logit_bytes(figure.job, figure.device, logit_bytes)))


@pytest.mark.parametrize("figure", FIGURES, ids=[figure.case for figure in FIGURES])
def test_estimate_is_within_the_stated_tolerance_of_the_published_figure(figure: Figure) -> None:
    comparison = compare(figure)
    assert comparison.passes, (
        f"{figure.case}: ours {comparison.ours_bytes / 2**30:.2f} GiB vs published {figure.published} "
        f"({comparison.error_percent:+.1f}%, allowed {figure.tolerance}); source: {figure.source}"
    )


def test_at_least_25_published_figures_are_checked() -> None:
    assert len(FIGURES) >= 25
    assert len({figure.case for figure in FIGURES}) == len(FIGURES)


@pytest.mark.parametrize(
    ("what", "count"),
    [
        ("weights only", lambda f: f.measure is Measure.WEIGHTS),
        ("KV cache", lambda f: f.measure is Measure.KV_CACHE),
        (
            "inference peak",
            lambda f: f.measure is Measure.ALLOCATOR_PEAK and f.job.workload.type is WorkloadType.INFERENCE,
        ),
        (
            "full training",
            lambda f: f.job.workload.type is WorkloadType.TRAINING and f.measure is not Measure.HOST_MEMORY,
        ),
        ("LoRA", lambda f: f.job.workload.type is WorkloadType.LORA),
        ("QLoRA", lambda f: f.job.workload.type is WorkloadType.QLORA),
    ],
)
def test_every_kind_of_figure_is_covered_by_several_sources(
    what: str, count: Callable[[Figure], bool]
) -> None:
    matching = [figure for figure in FIGURES if count(figure)]
    assert len(matching) >= 3, what


def test_measured_peaks_are_held_to_the_oom_bar() -> None:
    assert TOLERANCES[Kind.MEASURED] == Tolerance(below_percent=5, above_percent=35)
    assert any(figure.kind is Kind.MEASURED for figure in FIGURES)


# A lighter-loss figure is over by what we charge above its run's loss, and by nothing else: sized
# with its run's own loss it meets the ordinary measured-peak bar, and at our charge it is never
# under that bar's floor (docs/sizing-accuracy.md, "Tolerances").
def test_a_lighter_loss_figure_meets_the_measured_bar_at_its_runs_loss_and_the_floor_at_ours() -> None:
    bar = TOLERANCES[Kind.MEASURED]
    lighter = [figure for figure in FIGURES if figure.kind is Kind.MEASURED_LIGHTER_LOSS]
    assert lighter
    misses = {}
    for figure in lighter:
        assert figure.run_logit_bytes is not None, figure.case
        at_run = compare(figure, figure.run_logit_bytes).error_percent
        at_ours = compare(figure).error_percent
        if not bar.admits(at_run) or at_ours < -bar.below_percent:
            misses[figure.case] = (round(at_run, 1), round(at_ours, 1))
    assert not misses, f"(error at the run's loss, at ours) outside {bar}: {misses}"


# The Qwen fine-tuning grid, every cell. Only one column is held to the measured-peak bar (see
# published_figures.QWEN_FT_CHECKED_LENGTH); the rest guard against regressions with one band for
# every row, each cell at the loss its run held where that is lighter and widens its bar (the
# Q-LoRA rows at 6 B per logit, qwen_profile.qwen_run_logit_bytes; docs/sizing.md, "Logits and
# loss"), otherwise at our charge. The table shows every cell at our charge.
# Over: +50%, as wide as the misses we know of (the 7B full fine-tune at 256 tokens, +40%).
# Under: the sizing issue's floor for measured peaks, -5%. It holds at our charge only because
# Transformers is charged its worst case, 14 B per logit: the Qwen-1.8B LoRA cells at 2048 and
# 4096 tokens held 12 B and are under at 12 B for reasons not known (COVERED_ONLY_BY_THE_CHARGE).
# The floor is kept there, not widened to admit them, so that a change that lowers what we charge
# brings back that unexplained under-estimate as a failure here.
GRID_GUARD = Tolerance(below_percent=5, above_percent=50)


@dataclass(frozen=True, slots=True)
class GridCell:
    name: str
    row: QwenRow
    length: int
    published_bytes: int

    def error_percent(self, logit_bytes: int | None = None) -> float:
        """Ours against the cell; with ``logit_bytes``, the loss charged at that many bytes per logit."""
        job = qwen_job(self.row, self.length)
        estimate = (
            size_replica(job, GPU_80GIB)
            if logit_bytes is None
            else size_with_logit_bytes(job, GPU_80GIB, logit_bytes)
        )
        return (estimate.total_bytes * self.row.gpus - self.published_bytes) / self.published_bytes * 100

    @property
    def guarded_error_percent(self) -> float:
        return self.error_percent(qwen_run_logit_bytes(self.row))


def grid_cells() -> list[GridCell]:
    return [
        GridCell(
            f"{row.model.name} {row.method.value} seq {length}", row, length, gib(printed.removesuffix("G"))
        )
        for row in QWEN_FT_GRID
        for length, printed in zip(QWEN_FT_SEQUENCE_LENGTHS, row.figures, strict=True)
        if printed != "-"
    ]


def test_the_whole_qwen_fine_tuning_grid_stays_inside_the_regression_band() -> None:
    errors = {cell.name: cell.guarded_error_percent for cell in grid_cells()}
    outside = {name: round(error, 1) for name, error in errors.items() if not GRID_GUARD.admits(error)}
    assert not outside


# The grid cells that are under at their run's own loss and clear the floor only because we charge
# the Transformers loss its worst case: Qwen's LoRA runs held 12 B per logit (transformers 4.32.0
# under the Trainer's autocast, qwen_profile.QWEN_LORA_LOGIT_BYTES), and at 12 B these two are
# under for reasons not known; what was ruled out is in docs/sizing-accuracy.md. The set stays
# true: the test fails when a LoRA cell joins it or one of these leaves it.
COVERED_ONLY_BY_THE_CHARGE = {"Qwen-1.8B LoRA seq 2048", "Qwen-1.8B LoRA seq 4096"}


def test_only_the_named_lora_cells_are_under_at_their_runs_loss() -> None:
    lora = [cell for cell in grid_cells() if cell.row.method is QwenMethod.LORA]
    under = {cell.name for cell in lora if cell.error_percent(QWEN_LORA_LOGIT_BYTES) < 0}
    assert under == COVERED_ONLY_BY_THE_CHARGE


# --- measured training and fine-tuning peaks, per GPU ------------------------------------------------
#
# The band: at least 0.9x and at most 1.5x + 1 GiB of the measured peak, for at least 80% of the
# runs, and none under 0.95x. Under is an out-of-memory for the user, so it is held tightly; over
# is waste, but the sources differ in what we cannot know from a spec (torch.compile, chunked or
# fused losses, packing, optimizer-in-backward, which allocator counter they print), which moves
# a measured peak by up to a third, and on a small model a fixed 1 GiB (a CUDA context) is most of
# the difference.
TRAINING_LOW, TRAINING_FLOOR, TRAINING_HIGH = 0.9, 0.95, 1.5
TRAINING_SLACK_BYTES = 2**30
TRAINING_SHARE_IN_BAND = 0.8

# Measured peaks we still size below 0.95x, each with what we know of why. Each stays on this
# list only while it is still under (the test below fails when one is fixed, so the list is true).
KNOWN_UNDER = {
    "PEFT bloomz-7b1 LoRA ZeRO-3 CPU offload seq 64 bs 8, 1x A100": (
        "fp32 with parameter and optimizer offload, as the README's config states. Modelled from "
        "DeepSpeed's stage 3 of January 2023 (bf6b9802c, PR #2653): the reduce bucket at the compute "
        "dtype, fp32 here (stage3.py torch.empty(reduce_bucket_size, dtype=self.dtype): 5e8 x 4 B = "
        "1.86 GiB) and reduce_scatter_coalesced's copy of what it holds (the 7.9M LoRA gradients), "
        "the tied 1.03e9-parameter embedding gathered for lm_head beside its partition copied in "
        "from host memory (partition_parameters.py all_gather_coalesced: ds_tensor.to(cuda) and a "
        "full-size buffer, 2 x 3.83 GiB), fp32 activations (mixed_precision 'no'), the allocator "
        "slack over all of it; the sub-groups' fp32 gradients are in host memory (self.device is "
        "the CPU under offload_optimizer). About 1.6 GiB stays unexplained: max_reuse_distance "
        "(1e9) keeps nothing but that embedding across the turn to the backward, and "
        "prefetch_bucket_size (5e7) adds at most one 67M-parameter linear. Nor is it the loss's "
        "shifted copy: in fp32 the forward holds logits, copy and log-softmax (12 B per logit, "
        "under the 14 B we charge); the script keeps `outputs` through accelerator.backward (lines "
        "247-250), so the log-softmax's backward holds 16 B: 0.24 GiB over our 14 B, 0.94x if "
        "charged. The counter is unsure: the README's only log of this family of scripts (T0_3B, "
        "same config) prints 9404 MiB max_memory_allocated where its table says 9.8GB; against "
        "our total (a reserved or device-level reading) we are at 1.01x"
    ),
}


def ratio(figure: Figure) -> float:
    return compare(figure).ours_bytes / figure.published_bytes


def in_band(figure: Figure) -> bool:
    ours, measured_bytes = compare(figure).ours_bytes, figure.published_bytes
    return TRAINING_LOW * measured_bytes <= ours <= TRAINING_HIGH * measured_bytes + TRAINING_SLACK_BYTES


CHECKED_TRAINING = tuple(figure for figure in TRAINING_FIGURES if not figure.outside)


def test_at_least_30_measured_training_peaks_from_named_sources_are_checked() -> None:
    assert len(CHECKED_TRAINING) >= 30
    assert len({figure.case for figure in TRAINING_FIGURES}) == len(TRAINING_FIGURES)
    kinds = {figure.job.workload.type for figure in CHECKED_TRAINING}
    assert kinds == {WorkloadType.TRAINING, WorkloadType.LORA, WorkloadType.QLORA}


def test_at_least_80_percent_of_measured_training_peaks_are_in_the_band() -> None:
    inside = [figure for figure in CHECKED_TRAINING if in_band(figure)]
    outside = {figure.case: round(ratio(figure), 2) for figure in CHECKED_TRAINING if not in_band(figure)}
    assert len(inside) >= TRAINING_SHARE_IN_BAND * len(CHECKED_TRAINING), outside


@pytest.mark.parametrize("figure", CHECKED_TRAINING, ids=[figure.case for figure in CHECKED_TRAINING])
def test_no_measured_training_peak_is_under_provisioned(figure: Figure) -> None:
    if figure.case in KNOWN_UNDER:
        assert ratio(figure) < TRAINING_FLOOR, f"{figure.case} is no longer under: drop it from KNOWN_UNDER"
        return
    assert ratio(figure) >= TRAINING_FLOOR, (
        f"{figure.case}: ours {compare(figure).ours_bytes / 2**30:.1f} GiB is {ratio(figure):.2f}x the "
        f"measured {figure.published}; source: {figure.source}"
    )


@pytest.mark.parametrize(
    ("model", "device_bytes"),
    [
        pytest.param(LLAMA_65B, 48 * GIB, id="65B-on-one-48-GiB-GPU"),
        pytest.param(LLAMA_33B, 24 * GIB, id="33B-on-one-24-GiB-GPU"),
    ],
)
def test_the_qlora_papers_single_gpu_claims_reproduce(model: ModelShape, device_bytes: int) -> None:
    estimate = size_replica(qlora_paper(model), Device(memory_bytes=device_bytes))
    assert (estimate.fits, estimate.gpus, estimate.nodes_per_replica) == (True, 1, 1)


def test_the_known_under_provisioned_runs_are_few_and_named() -> None:
    assert len(KNOWN_UNDER) <= 3
    assert set(KNOWN_UNDER) <= {figure.case for figure in CHECKED_TRAINING}


# --- the markdown tables of docs/sizing-accuracy.md ----------------------------------------------


def _size(value: int) -> str:
    return f"{value / 2**30:,.2f} GiB"


def markdown() -> str:
    lines = [
        "| # | case | source | published | compared with | ours | error | tolerance | pass |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for number, figure in enumerate(FIGURES, start=1):
        comparison = compare(figure)
        note = f" ({figure.note})" if figure.note else ""
        lines.append(
            f"| {number} | {figure.case} | {figure.source}{note} | {figure.published} "
            f"(= {_size(figure.published_bytes)}) | {figure.measure.value} | "
            f"{_size(comparison.ours_bytes)} | "
            f"{comparison.error_percent:+.1f}% | {figure.kind.value}: {figure.tolerance} | "
            f"{'yes' if comparison.passes else '**NO**'} |"
        )
    passed = sum(compare(figure).passes for figure in FIGURES)
    lines += ["", f"{passed} of {len(FIGURES)} figures within tolerance.", ""]
    header = " | ".join(str(length) for length in QWEN_FT_SEQUENCE_LENGTHS)
    lines += [
        "Qwen (v1) fine-tuning grid, error of our total against every cell (GiB reading):",
        "",
        f"| model, method | {header} |",
        "|---|" + "---|" * len(QWEN_FT_SEQUENCE_LENGTHS),
    ]
    errors = {cell.name: cell.error_percent() for cell in grid_cells()}
    for row in QWEN_FT_GRID:
        cells = []
        for length, printed in zip(QWEN_FT_SEQUENCE_LENGTHS, row.figures, strict=True):
            key = f"{row.model.name} {row.method.value} seq {length}"
            cells.append("-" if printed == "-" else f"{errors[key]:+.0f}%")
        lines.append(f"| {row.model.name} {row.method.value} | " + " | ".join(cells) + " |")
    lines += ["", *training_markdown()]
    return "\n".join(lines)


def training_markdown() -> list[str]:
    lines = [
        "Measured training and fine-tuning peaks, one GPU each (tests/core/training_figures.py):",
        "",
        "| # | run | source | measured | counter | ours | ratio | in band | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for number, figure in enumerate(TRAINING_FIGURES, start=1):
        value = ratio(figure)
        if figure.outside:
            verdict = f"not modelled: {figure.outside}"
        elif figure.case in KNOWN_UNDER:
            verdict = f"**under**: {KNOWN_UNDER[figure.case]}"
        else:
            verdict = "yes" if in_band(figure) else "over"
        lines.append(
            f"| {number} | {figure.case} | {figure.source} | {figure.published} "
            f"(= {_size(figure.published_bytes)}) | {figure.measure.value} | "
            f"{_size(compare(figure).ours_bytes)} | {value:.2f}x | {verdict} | {figure.note} |"
        )
    inside = sum(in_band(figure) for figure in CHECKED_TRAINING)
    lines += [
        "",
        f"{inside} of {len(CHECKED_TRAINING)} modelled runs in the band (0.9x to 1.5x + 1 GiB), "
        f"{len(KNOWN_UNDER)} under 0.95x; {len(TRAINING_FIGURES) - len(CHECKED_TRAINING)} runs outside "
        "what the estimator models are shown, not checked.",
    ]
    return lines


def test_docs_sizing_accuracy_shows_the_tables_these_figures_give() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "sizing-accuracy.md"
    assert markdown() in doc.read_text(encoding="utf-8"), (
        "docs/sizing-accuracy.md is stale: paste the output of "
        "`PYTHONPATH=operator:. python -m tests.core.test_sizing_accuracy --markdown` under '## The table'"
    )


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.stderr.write("usage: python -m tests.core.test_sizing_accuracy --markdown\n")
        raise SystemExit(2)
    sys.stdout.write(markdown() + "\n")
