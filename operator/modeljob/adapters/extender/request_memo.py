"""The last filter/prioritize request, decoded, and its candidates' table rows, kept for the next one.

kube-scheduler sends prioritize the nodes its filters kept, in the order the extender's filter
returned them, with the same pod: when every node passed, the prioritize body is byte for byte the
filter body just answered. At 5,000 nodes decoding it again (~110 KB of JSON) and looking up 5,000
names again costs about as much as scoring them, so both are kept from the filter. One entry:
comparing a body with the last one is a memcmp, and a body seen earlier than that is a new pod.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from modeljob.adapters.extender.decisions import candidate_rows
from modeljob.adapters.extender.wire import SchedulingArgs, decode_scheduling_args
from modeljob.core.nodes import IntArray


@dataclass(frozen=True, slots=True)
class _Decoded:
    body: bytes
    args: SchedulingArgs


@dataclass(frozen=True, slots=True)
class _Rows:
    names: tuple[str, ...]
    row_of: Mapping[str, int]
    rows: IntArray


class RequestMemo:
    """``decode`` and ``rows`` as wire.decode_scheduling_args and decisions.candidate_rows, answered
    from the last call when it had the same input. Each entry is replaced whole (one reference), so
    requests served from several threads at once can only miss it, never see half of one."""

    def __init__(self) -> None:
        self._decoded: _Decoded | None = None
        self._rows: _Rows | None = None

    def decode(self, body: bytes) -> SchedulingArgs:
        last = self._decoded
        if last is not None and last.body == body:
            return last.args
        args = decode_scheduling_args(body)  # a WireError leaves the last entry as it was
        self._decoded = _Decoded(body, args)
        return args

    def rows(self, names: tuple[str, ...], row_of: Mapping[str, int]) -> IntArray:
        """Rows of ``names`` in a table whose name -> row map is ``row_of``. The same tuple and the
        same map (objects, not contents: the cache makes a new map whenever rows move) give the
        same rows. The rows are read-only: callers share them."""
        last = self._rows
        if last is not None and last.names is names and last.row_of is row_of:
            return last.rows
        rows = candidate_rows(names, row_of)
        rows.flags.writeable = False
        self._rows = _Rows(names, row_of, rows)
        return rows
