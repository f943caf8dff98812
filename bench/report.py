"""Rewrites one `## ` section of docs/benchmarks.md, leaving every other section as it was.

Each benchmark owns one section, titled by the first line of the text it writes. Shell
benchmarks call it as `python bench/report.py FILE` with the section's text in FILE. What a
section holds after the ``NOTES`` line (runs read by hand, what was tried) is written by people,
not by the benchmark: a rewrite keeps it, after the benchmark's new text.
"""

from __future__ import annotations

import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
# An HTML comment: invisible where the Markdown is rendered.
NOTES = "<!-- Notes: written by hand, kept when the benchmark rewrites this section. -->"


def write_section(text: str, document: Path = BENCHMARKS) -> Path:
    """Replace the section whose title is ``text``'s first line (up to the next `## ` title), its
    notes kept (``NOTES``), or append it when the document has none; returns the document's path."""
    title = text.splitlines()[0]
    if not title.startswith("## "):
        raise ValueError(f"a section starts with its `## ` title, not {title!r}")
    current = document.read_text() if document.exists() else "# Benchmarks\n"
    lines = current.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.rstrip("\n") == title]
    section = text.rstrip("\n") + "\n"
    if not starts:
        updated = current.rstrip("\n") + "\n\n" + section
    else:
        start = starts[0]
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        marked = [i for i in range(start + 1, end) if lines[i].rstrip("\n") == NOTES]
        if marked:
            notes = "".join(lines[marked[0] : end]).rstrip("\n")
            section = f"{section}\n{notes}\n"
        rest = "".join(lines[end:])
        updated = "".join(lines[:start]) + section + ("\n" + rest if rest else "")
    document.write_text(updated)
    return document


if __name__ == "__main__":
    print(f"wrote {write_section(Path(sys.argv[1]).read_text())}")
