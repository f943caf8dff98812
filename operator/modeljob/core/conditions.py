"""Status conditions as Kubernetes writes them: one entry per type, sorted by type, its message
within the API server's limit, lastTransitionTime moving only when the status flips."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from modeljob.core.job_state import ConditionType

Json = dict[str, object]

# The API server's limit on a condition message.
CONDITION_MESSAGE_MAX = 32768


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC, to the second, as the API server writes timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Mapping[str, object]],
    *,
    type_: ConditionType,
    status: bool,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None = None,
) -> list[Json]:
    """The conditions list with one condition set; lastTransitionTime moves only when status flips."""
    text = "True" if status else "False"
    previous = next((c for c in conditions if c.get("type") == type_.value), None)
    since = previous.get("lastTransitionTime") if previous and previous.get("status") == text else None
    condition: Json = {
        "type": type_.value,
        "status": text,
        "reason": reason,
        "message": message[:CONDITION_MESSAGE_MAX],
        "lastTransitionTime": since or format_time(now),
    }
    if generation is not None:
        condition["observedGeneration"] = generation
    others = [dict(c) for c in conditions if c.get("type") != type_.value]
    return sorted([*others, condition], key=lambda c: str(c.get("type")))


def conditions_of(status: Mapping[str, object]) -> list[Mapping[str, object]]:
    """status.conditions as written (an entry that is not an object is skipped)."""
    found = status.get("conditions")
    return [c for c in found if isinstance(c, Mapping)] if isinstance(found, list) else []
