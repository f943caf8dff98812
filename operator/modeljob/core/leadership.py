"""Who acts among operator replicas: kopf's peering rule, applied to the scheduling loop too.

kopf pauses an operator's handlers while another live peer has a higher priority, and pauses
every peer when two live ones share the highest priority. The scheduling loop follows the same
rule from the same peering object, so it runs exactly when this replica's handlers do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True, slots=True)
class Peer:
    """One entry of a KopfPeering's status: identity -> priority, lastseen, lifetime."""

    identity: str
    priority: int
    last_seen: datetime
    lifetime_seconds: float

    def alive(self, now: datetime) -> bool:
        return now <= self.last_seen + timedelta(seconds=self.lifetime_seconds)


def acts(peers: Sequence[Peer], *, identity: str, priority: int, now: datetime) -> bool:
    """Whether this replica should act: it has announced itself and no other live peer has a
    priority equal to or above its own."""
    own = [p for p in peers if p.identity == identity and p.alive(now)]
    if not own:
        return False
    return not any(p.identity != identity and p.alive(now) and p.priority >= priority for p in peers)
