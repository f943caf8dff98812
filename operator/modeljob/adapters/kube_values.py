"""Values as the API server writes them, read once: timestamps, capped quantities, the accelerator.

Shared by the node, pod and ModelJob translations (kube_nodes, kube_pods, kube_jobs). Pure
translation: no client, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from modeljob.core.cluster_state import TaintEffect, Toleration
from modeljob.core.resources import QuantityError, parse_quantity

# Extended resources that are accelerators, checked in this order when a node has several; any
# other domain-qualified resource also counts (resources under kubernetes.io are the kubelet's).
KNOWN_ACCELERATORS = ("nvidia.com/gpu", "amd.com/gpu", "intel.com/gpu", "google.com/tpu", "habana.ai/gaudi")
_NOT_ACCELERATOR = re.compile(r"^(hugepages-|.*kubernetes\.io/|.*k8s\.io/)")
_BASE_RESOURCES = ("cpu", "memory", "ephemeral-storage", "pods")


def tolerations(items: Iterable[Mapping[str, Any]]) -> Iterator[Toleration]:
    """spec.tolerations as core's Toleration; one with an effect we do not know is left out."""
    for item in items:
        effect_text = item.get("effect") or ""
        try:
            effect = TaintEffect(effect_text) if effect_text else None
        except ValueError:
            continue
        yield Toleration(
            key=str(item.get("key") or ""),
            operator_exists=item.get("operator") == "Exists",
            value=str(item.get("value") or ""),
            effect=effect,
        )


def parse_time(text: object) -> datetime | None:
    """An RFC 3339 timestamp from the API server (`2026-11-23T05:39:49Z`), or None."""
    if not isinstance(text, str) or not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# No node has 2^53 of anything (9 PB of memory, 9e12 cores). A quantity read from the API server
# is capped there: the API server accepts "1e400" in a pod it never schedules, and one such pod
# bound by hand must not overflow the int64 columns every node and pod ends up in. A request at
# the cap fits no node; callers that must refuse such a pod outright compare with it.
MAX_QUANTITY = 2**53


def quantity_int(value: object, parse: Any) -> int:
    """A quantity in the unit `parse` reads (milli-CPU, bytes, a count): 0 if unreadable, at most
    MAX_QUANTITY."""
    try:
        amount = int(parse(value)) if isinstance(value, str | int | float) else 0
    except QuantityError:
        return 0
    return min(amount, MAX_QUANTITY)


def accelerator_of(allocatable: Mapping[str, Any]) -> tuple[str | None, int]:
    """The accelerator among extended resources (a known one first, else the first by name) and its count."""
    counts = {
        str(name): quantity_int(value, parse_quantity)
        for name, value in allocatable.items()
        if "/" in str(name) and str(name) not in _BASE_RESOURCES and not _NOT_ACCELERATOR.match(str(name))
    }
    present = [name for name, count in counts.items() if count > 0]
    for name in KNOWN_ACCELERATORS:
        if name in present:
            return name, counts[name]
    if present:
        name = sorted(present)[0]
        return name, counts[name]
    return None, 0
