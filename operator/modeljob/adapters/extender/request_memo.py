"""The next prioritize request, decoded, with its candidates' table rows, as the filter foresees it.

kube-scheduler sends prioritize the nodes its filters kept, in the order the extender's filter
returned them, with the same pod, written the same way: the filter that answers a body written as
kube-scheduler writes it knows the prioritize body to come byte for byte (its Pod text, then the
NodeNames text the filter replied). At 5,000 nodes decoding that body (~110 KB of JSON) and looking
up 5,000 names again costs about as much as scoring them, so the filter leaves both here. A body
that is not the one foreseen is decoded as usual: one entry, and comparing is a memcmp.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from modeljob.adapters.extender.decisions import Priorities, candidate_rows
from modeljob.adapters.extender.wire import SchedulingArgs, decode_scheduling_args
from modeljob.core.nodes import IntArray


@dataclass(frozen=True, slots=True)
class _Decoded:
    body: bytes
    args: SchedulingArgs


@dataclass(frozen=True, slots=True)
class FilterScores:
    """What the filter scored for one pod: every node that fit (``full``, on ``snapshot``) and the
    nodes it passed (``kept``: the same scores, stated from the lowest of them)."""

    fits: tuple[str, ...]
    # The cache snapshot scored on, by identity; held, so up to REMEMBERED tables stay alive (a
    # few MB each at 5,000 nodes), only while the shortlist is on.
    snapshot: object
    full: Priorities
    kept: Priorities


@dataclass(frozen=True, slots=True)
class _Rows:
    names: tuple[str, ...]
    row_of: Mapping[str, int]
    rows: IntArray


REMEMBERED = 64


class RequestMemo:
    """``decode`` and ``rows`` as wire.decode_scheduling_args and decisions.candidate_rows, answered
    from the last call when it had the same input. Each entry is replaced whole (one reference), so
    requests served from several threads at once can only miss it, never see half of one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._decoded: _Decoded | None = None
        self._rows: _Rows | None = None
        self._scores: OrderedDict[tuple[str, str], FilterScores] = OrderedDict()

    def decode(self, body: bytes) -> SchedulingArgs:
        last = self._decoded
        if last is not None and last.body == body:
            return last.args
        args = decode_scheduling_args(body)  # a WireError leaves the last entry as it was
        self._decoded = _Decoded(body, args)
        return args

    def expect(self, body: bytes, args: SchedulingArgs, *, rows: IntArray, row_of: Mapping[str, int]) -> None:
        """Take ``args`` as what ``body`` decodes to, and ``rows`` (in the table of ``row_of``) as
        the rows of its candidates: the filter's prediction of the prioritize body to come."""
        rows.flags.writeable = False
        self._decoded = _Decoded(body, args)
        self._rows = _Rows(args.candidates.names, row_of, rows)

    def remember_scores(self, pod: tuple[str, str], scores: FilterScores | None) -> None:
        """The filter's scores for ``pod`` (namespace, name); None: it scored none, forget them.
        The last REMEMBERED pods are kept: a prioritize follows its filter at once, but more than
        one scheduler may call."""
        with self._lock:
            self._scores.pop(pod, None)
            if scores is not None:
                self._scores[pod] = scores
                while len(self._scores) > REMEMBERED:
                    self._scores.popitem(last=False)

    def scores_of(self, pod: tuple[str, str]) -> FilterScores | None:
        with self._lock:
            return self._scores.get(pod)

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
