"""The one Event recorder: the loop's Events (admission's too), posted in the background."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from modeljob.adapters.cluster_errors import ClusterError
from modeljob.adapters.events import EventRecorder
from tests.operator_builders import at, modeljob_dict


class Events:
    """The gateway's create_event, refusing with ``refusal`` when set."""

    def __init__(self, refusal: ClusterError | None = None) -> None:
        self.posted: list[dict[str, Any]] = []
        self.refusal = refusal

    def create_event(self, namespace: str, event: dict[str, Any]) -> dict[str, Any]:
        if self.refusal is not None:
            raise self.refusal
        self.posted.append(event)
        return event


def recorder(gateway: Events) -> EventRecorder:
    return EventRecorder(gateway, identity="op-1", clock=lambda: at(0))  # type: ignore[arg-type]


def test_events_are_posted_in_the_order_recorded_about_their_job() -> None:
    gateway = Events()
    events = recorder(gateway)
    events.record(modeljob_dict(), "Queued", "queued in default")
    events.record(modeljob_dict(), "Scheduled", "1 pod(s) bound", warning=False)
    events.stop()
    assert [(e["reason"], e["involvedObject"]["name"], e["reportingInstance"]) for e in gateway.posted] == [
        ("Queued", "llama-3-1-8b-chat", "op-1"),
        ("Scheduled", "llama-3-1-8b-chat", "op-1"),
    ]


class SlowerFirst(Events):
    """An API server that answers earlier Events more slowly than later ones (a slow network):
    posted side by side, one job's Events would arrive in reverse."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count = count

    def create_event(self, namespace: str, event: dict[str, Any]) -> dict[str, Any]:
        index = int(event["message"])
        time.sleep((self.count - index) * 0.003)
        return super().create_event(namespace, event)


def test_one_jobs_events_keep_their_order_even_when_the_api_server_answers_out_of_order() -> None:
    gateway = SlowerFirst(count=12)
    events = recorder(gateway)
    for index in range(12):
        events.record(modeljob_dict(), "Progress", str(index))
    events.stop()
    assert [e["message"] for e in gateway.posted] == [str(i) for i in range(12)]


def test_an_event_refused_by_rbac_is_a_warning_never_a_failed_decision(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = recorder(Events(ClusterError("create event: 403 Forbidden: no", status=403, reason="Forbidden")))
    with caplog.at_level(logging.INFO, logger="modeljob.adapters.events"):
        events.record(modeljob_dict(), "Queued", "queued in default")
        events.drain()
    assert any(
        r.levelno == logging.WARNING and "cannot post event Queued" in r.message for r in caplog.records
    )


def test_no_warning_for_an_event_in_a_namespace_being_deleted(caplog: pytest.LogCaptureFixture) -> None:
    refusal = ClusterError(
        "create event in ml: 403 Forbidden: ...",
        status=403,
        reason="Forbidden",
        detail='events "job." is forbidden: unable to create new content in namespace ml '
        "because it is being terminated",
    )
    events = recorder(Events(refusal))
    with caplog.at_level(logging.INFO, logger="modeljob.adapters.events"):
        events.record(modeljob_dict(), "NodeLost", "node gone", warning=True)
        events.drain()
    assert [r.levelno for r in caplog.records if "cannot post" in r.message] == []


class Stuck(Events):
    """An API server that holds every Event post until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def create_event(self, namespace: str, event: dict[str, Any]) -> dict[str, Any]:
        self.release.wait(10)
        return super().create_event(namespace, event)


def test_events_past_the_backlog_are_dropped_counted_and_logged_once_then_posted_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="modeljob.adapters.events")
    gateway, dropped = Stuck(), []
    events = EventRecorder(
        gateway,  # type: ignore[arg-type]
        identity="op-1",
        clock=lambda: at(0),
        max_pending=3,
        on_dropped=dropped.append,
    )
    for index in range(5):  # a burst: the API server is behind after the first three
        events.record(modeljob_dict(), "Queued", f"queued {index}")
    assert dropped == ["Queued", "Queued"]
    said = [r.getMessage() for r in caplog.records]
    assert sum("dropping Events" in line for line in said) == 1, "one warning a burst"
    assert sum("Queued: queued 4" in line for line in said) == 1, "the decision is logged all the same"

    gateway.release.set()
    events.drain()
    assert [e["message"] for e in gateway.posted] == ["queued 0", "queued 1", "queued 2"]
    events.record(modeljob_dict(), "Scheduled", "1 pod(s) bound")  # the backlog is gone
    events.stop()
    assert gateway.posted[-1]["reason"] == "Scheduled"
    assert dropped == ["Queued", "Queued"]
