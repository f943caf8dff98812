"""Resource quantities: Kubernetes quantity strings, parameter counts, and the Resources value."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

KIB = 1024
MIB = 1024**2
GIB = 1024**3
TIB = 1024**4

# Kubernetes resource.Quantity suffixes (apimachinery/pkg/api/resource/suffix.go).
_BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL_SUFFIXES = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")

# Parameter counts as model cards write them: 70.6B, 405e9, 7000000000, 1.5T, 560M, 125K.
_COUNT_SUFFIXES = {"": 1, "K": 10**3, "M": 10**6, "B": 10**9, "G": 10**9, "T": 10**12}
_COUNT = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([KkMmBbGgTt]?)$")


class QuantityError(ValueError):
    """A quantity or count that cannot be parsed; the message says what was expected."""


def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity ("80Gi", "500m", "1.5", "2e3", 4) into an exact Decimal."""
    if isinstance(value, bool):
        raise QuantityError(f"expected a quantity such as 80Gi or 500m, got {value!r}")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"expected a finite quantity, got {value!r}")
        return Decimal(repr(value))
    text = value.strip()
    match = _QUANTITY.match(text)
    if match is None:
        raise QuantityError(f"expected a quantity such as 80Gi, 512Mi, 500m or 2, got {value!r}")
    number, exponent, suffix = match.groups()
    try:
        base = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid numbers
        raise QuantityError(f"expected a number, got {value!r}") from exc
    if exponent:
        return base * Decimal(f"1{exponent}")
    if suffix in _BINARY_SUFFIXES:
        return base * _BINARY_SUFFIXES[suffix]
    return base * _DECIMAL_SUFFIXES[suffix or ""]


def parse_bytes(value: str | int | float) -> int:
    """A byte quantity, rounded up to a whole byte, never negative."""
    amount = parse_quantity(value)
    if amount < 0:
        raise QuantityError(f"expected a non-negative size, got {value!r}")
    return math.ceil(amount)


def parse_cpu_milli(value: str | int | float) -> int:
    """A CPU quantity ("500m", "2", 1.5) in millicores, rounded up as Kubernetes does."""
    amount = parse_quantity(value)
    if amount < 0:
        raise QuantityError(f"expected a non-negative CPU amount, got {value!r}")
    return math.ceil(amount * 1000)


def parse_count(value: str | int | float) -> int:
    """A parameter count: 70.6B, 405e9, 7000000000, 1.5T, 560M (K/M/B/T are powers of 1000)."""
    if isinstance(value, bool):
        raise QuantityError(f"expected a count such as 70.6B, 405e9 or 7000000000, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"expected a finite count, got {value!r}")
        return round(value)
    match = _COUNT.match(value.strip())
    if match is None:
        raise QuantityError(f"expected a count such as 70.6B, 405e9 or 7000000000, got {value!r}")
    number, suffix = match.groups()
    return round(Decimal(number) * _COUNT_SUFFIXES[suffix.upper()])


def format_bytes(value: int) -> str:
    """Human-readable binary size: 1536 MiB -> '1.5 GiB'."""
    for unit, size in (("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if abs(value) >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


def format_quantity_bytes(value: int) -> str:
    """A Kubernetes quantity string for a byte count: exact Mi when possible, else bytes."""
    if value % GIB == 0 and value:
        return f"{value // GIB}Gi"
    if value % MIB == 0 and value:
        return f"{value // MIB}Mi"
    return str(value)


def format_cpu(milli: int) -> str:
    """A Kubernetes CPU quantity for millicores: 4000 -> '4', 1500 -> '1500m'."""
    return str(milli // 1000) if milli % 1000 == 0 else f"{milli}m"


@dataclass(frozen=True, slots=True)
class Resources:
    """Requests of one pod (or free capacity of one node), in integer units named by their field.

    ``gpus`` counts whole devices; ``gpu_milli`` is the share of each device a GPU-sharing pod
    asks for (1000 = a whole device). A whole-device request has ``gpu_milli == 1000``.
    """

    cpu_milli: int = 0
    memory_bytes: int = 0
    ephemeral_storage_bytes: int = 0
    gpus: int = 0
    gpu_milli: int = 1000

    @property
    def total_gpu_milli(self) -> int:
        return self.gpus * self.gpu_milli

    def __add__(self, other: Resources) -> Resources:
        """The sum of two whole requests (a job's demand, a namespace's usage): CPU, memory,
        storage and devices add up; a per-device share does not, so a sum counts whole devices."""
        return Resources(
            cpu_milli=self.cpu_milli + other.cpu_milli,
            memory_bytes=self.memory_bytes + other.memory_bytes,
            ephemeral_storage_bytes=self.ephemeral_storage_bytes + other.ephemeral_storage_bytes,
            gpus=self.gpus + other.gpus,
        )

    def __sub__(self, other: Resources) -> Resources:
        """``self`` less ``other``, counted as ``__add__`` counts."""
        return self + Resources(
            cpu_milli=-other.cpu_milli,
            memory_bytes=-other.memory_bytes,
            ephemeral_storage_bytes=-other.ephemeral_storage_bytes,
            gpus=-other.gpus,
        )
