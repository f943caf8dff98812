"""A benchmark's rewrite of its docs/benchmarks.md section (bench/report.py) replaces what it wrote
and keeps what people wrote under the section's notes line, and every other section."""

from __future__ import annotations

from pathlib import Path

from bench.report import NOTES, write_section

DOCUMENT = f"""# Benchmarks

## Deep queue

Old table, written by the benchmark.

{NOTES}

**A run read by hand.** What was tried, and why it was dropped.

## Failover

Left alone.
"""


def test_a_rewrite_replaces_what_the_benchmark_wrote_and_keeps_the_notes_and_other_sections(
    tmp_path: Path,
) -> None:
    document = tmp_path / "benchmarks.md"
    document.write_text(DOCUMENT)
    write_section("## Deep queue\n\nNew table.\n", document)
    assert (
        document.read_text()
        == f"""# Benchmarks

## Deep queue

New table.

{NOTES}

**A run read by hand.** What was tried, and why it was dropped.

## Failover

Left alone.
"""
    )


def test_a_section_without_notes_is_replaced_whole(tmp_path: Path) -> None:
    document = tmp_path / "benchmarks.md"
    document.write_text("# Benchmarks\n\n## Failover\n\nOld.\n\n## Deep queue\n\nOld too.\n")
    write_section("## Failover\n\nNew.\n", document)
    assert document.read_text() == "# Benchmarks\n\n## Failover\n\nNew.\n\n## Deep queue\n\nOld too.\n"


def test_a_new_section_is_appended(tmp_path: Path) -> None:
    document = tmp_path / "benchmarks.md"
    document.write_text("# Benchmarks\n\n## Failover\n\nOld.\n")
    write_section("## Deep queue\n\nNew.\n", document)
    assert document.read_text() == "# Benchmarks\n\n## Failover\n\nOld.\n\n## Deep queue\n\nNew.\n"
