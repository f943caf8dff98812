"""The kinds of setting several sections declare (addresses, ports, thread pools, durations), and
the fields the operator and the extender share: one place for each default and bound; each
section gives its own description."""

from __future__ import annotations

from typing import Any

from pydantic import Field

MAX_PORT = 65535
MAX_WORKERS = 256  # threads in one pool: the calls are I/O-bound, past this they only queue
# How long a pod we chose or bound counts on its node before the pod watch must show it: the
# operator's loop and the extender assume the same way, so by default for as long.
ASSUME_SECONDS = 30.0
MAX_ASSUME_SECONDS = 3600


def listen_host(description: str) -> Any:
    """The address a server listens on: in a pod, every interface."""
    return Field(default="0.0.0.0", description=description)  # noqa: S104


def port(default: int, description: str, *, zero_disables: bool = False) -> Any:
    return Field(default=default, ge=0 if zero_disables else 1, le=MAX_PORT, description=description)


def workers(default: int, description: str) -> Any:
    """The size of a thread pool."""
    return Field(default=default, ge=1, le=MAX_WORKERS, description=description)


def seconds(default: float, description: str, *, at_most: float, zero_allowed: bool = False) -> Any:
    """A duration in seconds up to `at_most`: more than 0, or from 0 where not waiting at all makes
    sense (no debounce, a NotReady node lost at once)."""
    if zero_allowed:
        return Field(default=default, ge=0, le=at_most, description=description)
    return Field(default=default, gt=0, le=at_most, description=description)


def assume_seconds(description: str) -> Any:
    return seconds(ASSUME_SECONDS, description, at_most=MAX_ASSUME_SECONDS)
