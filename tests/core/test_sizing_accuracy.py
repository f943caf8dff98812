"""The estimator against published figures: each within its stated tolerance.

Run ``PYTHONPATH=operator:. python -m tests.core.test_sizing_accuracy --markdown`` to print the
tables of docs/sizing-accuracy.md from the same data.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from modeljob.core.jobs import WorkloadType
from modeljob.core.sizing import size_replica
from tests.core.published_figures import (
    FIGURES,
    GPU_80GIB,
    QWEN_FT_GRID,
    QWEN_FT_SEQUENCE_LENGTHS,
    TOLERANCES,
    Figure,
    Kind,
    Measure,
    Tolerance,
    gib,
    measured,
    qwen_job,
)


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


def compare(figure: Figure) -> Comparison:
    return Comparison(figure, measured(figure, size_replica(figure.job, figure.device)))


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


# The Qwen fine-tuning grid, every cell. Only one column is held to the measured-peak bar (see
# published_figures.QWEN_FT_CHECKED_LENGTH); the rest guard against regressions with a band as
# wide as the misses we know of and document: 72B LoRA + ZeRO-3 at short sequences (-9%) and
# Q-LoRA at 4k-8k tokens (up to +45%, where the table's Q-LoRA runs grew less per token than
# its LoRA runs on the same models).
GRID_GUARD = Tolerance(below_percent=10, above_percent=50)


def grid_cells() -> list[tuple[str, float]]:
    cells = []
    for row in QWEN_FT_GRID:
        for length, printed in zip(QWEN_FT_SEQUENCE_LENGTHS, row.figures, strict=True):
            if printed == "-":
                continue
            estimate = size_replica(qwen_job(row, length), GPU_80GIB)
            published = gib(printed.removesuffix("G"))
            error = (estimate.total_bytes * row.gpus - published) / published * 100
            cells.append((f"{row.model.name} {row.method.value} seq {length}", error))
    return cells


def test_the_whole_qwen_fine_tuning_grid_stays_inside_the_regression_band() -> None:
    outside = [(cell, round(error, 1)) for cell, error in grid_cells() if not GRID_GUARD.admits(error)]
    assert not outside


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
    errors = dict(grid_cells())
    for row in QWEN_FT_GRID:
        cells = []
        for length, printed in zip(QWEN_FT_SEQUENCE_LENGTHS, row.figures, strict=True):
            key = f"{row.model.name} {row.method.value} seq {length}"
            cells.append("-" if printed == "-" else f"{errors[key]:+.0f}%")
        lines.append(f"| {row.model.name} {row.method.value} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] != ["--markdown"]:
        sys.stderr.write("usage: python -m tests.core.test_sizing_accuracy --markdown\n")
        raise SystemExit(2)
    sys.stdout.write(markdown() + "\n")
