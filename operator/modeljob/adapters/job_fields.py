"""A ModelJob's metadata and status fields read one by one, each checked, and ObjectError, which
names the field of an object the operator cannot use (kube_jobs raises it for the spec too).

Pure translation: no client, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from modeljob.adapters.kube_values import MAX_QUANTITY, parse_time
from modeljob.core.job_state import Placed


class ObjectError(ValueError):
    """An object the operator cannot use; the message names the field (spec.template.spec...)."""


# No status count or duration the operator writes comes near 2^53 (kube_values.MAX_QUANTITY): a
# larger one is no record of ours, and would overflow the int64 columns and sums it ends up in.
MAX_STATUS_NUMBER = MAX_QUANTITY


class JobFields:
    """Reads a ModelJob's metadata and status fields, each checked. ``strict``: one of the wrong
    type or out of range raises ObjectError naming it, so the job is Invalid saying why and every
    other job is scheduled; else (a job known to be unreadable) it reads as unset. A field read
    ``lenient`` reads as unset either way, its problem kept in ``ignored`` (strict) to be logged."""

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict
        self.ignored: list[str] = []

    def _bad(self, where: str, expected: str, *, lenient: bool = False) -> None:
        if self.strict and lenient:
            self.ignored.append(f"{where}: expected {expected}")
        elif self.strict:
            raise ObjectError(f"{where}: expected {expected}")

    def mapping(self, value: object, where: str) -> Mapping[str, Any]:
        if value is None or isinstance(value, Mapping):
            return value or {}
        self._bad(where, "an object")
        return {}

    def items(self, value: object, where: str) -> list[Any]:
        if value is None or isinstance(value, list):
            return value or []
        self._bad(where, "a list")
        return []

    def count(self, value: object, where: str, *, lenient: bool = False) -> int | None:
        """A whole number from 0 to MAX_STATUS_NUMBER; None if unset (or unreadable, lenient)."""
        if value is None:
            return None
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON has one number type; 2.0 is 2
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_STATUS_NUMBER:
            return value
        self._bad(where, f"a whole number from 0 to 2^53, not {value!r:.40}", lenient=lenient)
        return None

    def seconds(self, value: object, where: str, *, lenient: bool = False) -> float:
        if value is None:
            return 0.0
        if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= MAX_STATUS_NUMBER:
            return float(value)  # NaN fails the comparison: refused with the rest
        self._bad(where, f"a number of seconds from 0 to 2^53, not {value!r:.40}", lenient=lenient)
        return 0.0

    def names(self, value: object, where: str) -> tuple[str, ...]:
        items = self.items(value, where)
        for index, item in enumerate(items):
            if not isinstance(item, str):
                self._bad(f"{where}[{index}]", "a name")
        return tuple(item for item in items if isinstance(item, str))

    def created(self, meta: Mapping[str, Any]) -> datetime:
        """metadata.creationTimestamp (the epoch when unset: queue order is by it, oldest first)."""
        text = meta.get("creationTimestamp")
        created = parse_time(text)
        if created is None and text is not None:
            self._bad("metadata.creationTimestamp", "an RFC 3339 time")
        return created or datetime.fromtimestamp(0, UTC)

    def placed(self, entry: object, where: str) -> Placed | None:
        """One status.placement entry (None: unreadable, lenient)."""
        if not isinstance(entry, Mapping):
            self._bad(where, "an object with replica, pod and node")
            return None
        replica, member = (
            self.count(entry.get("replica", 0), f"{where}.replica"),
            self.count(entry.get("member"), f"{where}.member"),
        )
        pod, node, score = entry.get("pod"), entry.get("node"), entry.get("score")
        for field, value in (("pod", pod), ("node", node)):
            if not isinstance(value, str) or not value:
                self._bad(f"{where}.{field}", "a name")
                return None
        if score is not None and (not isinstance(score, int | float) or not math.isfinite(score)):
            self._bad(f"{where}.score", "a number")
            score = None
        if replica is None:
            return None
        return Placed(replica=replica, pod=str(pod), node=str(node), score=score, member=member or 0)
