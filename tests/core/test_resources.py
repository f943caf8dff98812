"""Kubernetes quantities and parameter counts parse exactly, and bad ones say what was expected."""

from __future__ import annotations

from decimal import Decimal

import pytest

from modeljob.core.resources import (
    QuantityError,
    format_bytes,
    format_cpu,
    format_quantity_bytes,
    parse_bytes,
    parse_count,
    parse_cpu_milli,
    parse_quantity,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("80Gi", Decimal(80 * 2**30)),
        ("512Mi", Decimal(512 * 2**20)),
        ("500m", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        ("2e3", Decimal(2000)),
        ("100G", Decimal(10**11)),
        ("1k", Decimal(1000)),
        (4, Decimal(4)),
    ],
    ids=str,
)
def test_kubernetes_quantity_forms(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "80 GB", "1.2.3", "eighty", "1Zi", True], ids=str)
def test_malformed_quantities_are_refused(text: str) -> None:
    with pytest.raises(QuantityError, match="expected"):
        parse_quantity(text)


def test_cpu_and_bytes_round_up_like_kubernetes() -> None:
    assert parse_cpu_milli("1500m") == 1500
    assert parse_cpu_milli("0.0001") == 1
    assert parse_bytes("1.5Ki") == 1536
    with pytest.raises(QuantityError, match="non-negative"):
        parse_bytes("-1Gi")


@pytest.mark.parametrize(
    ("text", "count"),
    [
        ("70.6B", 70_600_000_000),
        ("405e9", 405 * 10**9),
        ("7000000000", 7 * 10**9),
        ("1.5T", 15 * 10**11),
        ("125K", 125_000),
    ],
    ids=str,
)
def test_parameter_counts(text: str, count: int) -> None:
    assert parse_count(text) == count


def test_formatting_round_trips_for_humans_and_kubernetes() -> None:
    assert format_bytes(1536 * 2**20) == "1.5 GiB"
    assert format_quantity_bytes(80 * 2**30) == "80Gi"
    assert format_quantity_bytes(1536 * 2**20) == "1536Mi"
    assert format_cpu(4000) == "4"
    assert format_cpu(1500) == "1500m"
