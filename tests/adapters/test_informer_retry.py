"""A list or watch that keeps failing is tried again less and less often (a Forbidden from RBAC that
predates a watch must not log a warning every second forever), and a watch that works again starts
the waits over."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

from modeljob.adapters.cluster import Watched
from modeljob.adapters.cluster_errors import ClusterError
from modeljob.adapters.cluster_view import RETRY_MAX_SECONDS, Informer


class Waits(threading.Event):
    """The informer's stop event: records each wait instead of waiting, and stops it after ``n``."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.seconds = n, []

    def wait(self, timeout: float | None = None) -> bool:
        self.seconds.append(timeout)
        if len(self.seconds) >= self.n:
            self.set()
        return self.is_set()


class Gateway:
    """Lists fail with ``refusals`` in turn, then work; each watch delivers one event, then fails."""

    def __init__(self, refusals: list[int]) -> None:
        self.refusals = refusals

    def list_collection(self, kind: Watched) -> tuple[list[dict[str, Any]], str]:
        if self.refusals:
            raise ClusterError("forbidden", status=self.refusals.pop(0))
        return [], "1"

    def watch_collection(self, kind: Watched, **_: Any) -> Iterator[tuple[str, dict[str, Any]]]:
        yield "ADDED", {"metadata": {"namespace": "ml", "name": "web", "resourceVersion": "2"}}
        raise ClusterError("forbidden", status=403)


def _run(gateway: Gateway, waits: Waits) -> None:
    informer: Informer[dict[str, Any]] = Informer(
        gateway,  # type: ignore[arg-type]
        Watched.SERVICES,
        dict,
        lambda *_: None,
        _stop=waits,
    )
    informer._run()


def test_a_list_that_keeps_being_refused_is_tried_again_less_and_less_often() -> None:
    waits = Waits(n=8)
    _run(Gateway(refusals=[403] * 8), waits)
    assert RETRY_MAX_SECONDS == 10
    assert waits.seconds == [1, 2, 4, 8, 10, 10, 10, 10]


def test_a_watch_that_delivered_events_starts_the_waits_over() -> None:
    waits = Waits(n=5)
    _run(Gateway(refusals=[403, 403, 403]), waits)  # three refusals, then list and watch work
    assert waits.seconds == [1, 2, 4, 1, 1], "each working watch resets the back-off"
