"""Fixtures every test folder may use: the openb trace vendored in data/openb."""

from __future__ import annotations

from pathlib import Path

import pytest

OPENB_CSV = Path(__file__).resolve().parents[1] / "data" / "openb" / "csv"


@pytest.fixture(scope="session")
def openb_csv() -> Path:
    """data/openb/csv. The trace is part of the repository, so a test that needs it FAILS when it
    is missing (a broken clone), never skips: a skip would hide the placement checks."""
    if not (OPENB_CSV / "openb_pod_list_default.csv").is_file():
        pytest.fail(
            f"the openb trace is missing: {OPENB_CSV} (vendored in the repository; see data/openb/README.md)"
        )
    return OPENB_CSV
