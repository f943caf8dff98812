"""Which replica acts: kopf's peering rule."""

from __future__ import annotations

import pytest

from modeljob.core.leadership import Peer, acts
from tests.operator_builders import at


def peer(identity: str, priority: int = 0, *, seen: float = 0, lifetime: float = 60) -> Peer:
    return Peer(identity=identity, priority=priority, last_seen=at(seen), lifetime_seconds=lifetime)


@pytest.mark.parametrize(
    ("peers", "expected"),
    [
        ([peer("me")], True),
        ([], False),
        ([peer("me", seen=-100)], False),
        ([peer("me", 5), peer("other", 1)], True),
        ([peer("me", 1), peer("other", 5)], False),
        ([peer("me", 1), peer("other", 1)], False),
        ([peer("me", 1), peer("other", 5, seen=-100)], True),
    ],
    ids=[
        "alone",
        "not-announced-yet",
        "own-record-expired",
        "highest",
        "outranked",
        "tie-pauses-both",
        "dead-peer",
    ],
)
def test_a_replica_acts_only_while_no_live_peer_outranks_or_ties_it(
    peers: list[Peer], expected: bool
) -> None:
    me = next((p for p in peers if p.identity == "me"), peer("me"))
    assert acts(peers, identity="me", priority=me.priority, now=at(10)) is expected
