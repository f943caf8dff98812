"""The extender's replies to kube-scheduler (k8s.io/kube-scheduler/extender/v1), as json.dumps writes them.

Go field names, as wire.py explains; compact, byte for byte what json.dumps writes. At 5,000 nodes
encoding a reply costs as much as deciding it, so the big ones are joined from cached pieces.
"""

from __future__ import annotations

import itertools
import json
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from modeljob.adapters.extender.wire import JsonObject
from modeljob.core.nodes import IntArray


def _dumps(document: object) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class FilterReply:
    """ExtenderFilterResult. With nodeCacheCapable: true kube-scheduler reads NodeNames; with false
    it reads Nodes.items (returning only NodeNames there would mean "no node passes")."""

    passed: Sequence[str]
    failed: Mapping[str, str] = field(default_factory=dict)
    unresolvable: Mapping[str, str] = field(default_factory=dict)
    items: Sequence[JsonObject] | None = None  # the passing Node objects, in the nodes-in-full mode
    error: str = ""
    # ``passed`` as json.dumps writes it (compact), when the caller has that text already: the
    # request's own NodeNames when every node passes (Candidates.names_json).
    passed_json: bytes | None = None

    def to_json(self) -> bytes:
        """What json.dumps writes (compact), byte for byte. Without nodes in full, the reasons per
        failing node are joined from cached pieces (`_NamePieces`) by C-level maps; the names that
        pass are ``passed_json`` if given, else json.dumps's (its C encoder streams a list of names
        faster than lookups do)."""
        if self.items is not None:
            return _dumps(
                {
                    "Nodes": {"metadata": {}, "items": list(self.items)},
                    "NodeNames": None,
                    "FailedNodes": dict(self.failed),
                    "FailedAndUnresolvableNodes": dict(self.unresolvable),
                    "Error": self.error,
                }
            )
        names = self.passed_json
        if names is None:
            names = json.dumps(list(self.passed), separators=(",", ":")).encode()
        return b"".join(
            (
                b'{"Nodes":null,"NodeNames":',
                names,
                (
                    ',"FailedNodes":'
                    + _reasons_json(self.failed)
                    + ',"FailedAndUnresolvableNodes":'
                    + _reasons_json(self.unresolvable)
                    + ',"Error":'
                    + json.dumps(self.error)
                    + "}"
                ).encode(),
            )
        )


class _NamePieces(dict[str, str]):
    """``before + json.dumps(name) + after`` per node name, made once and then looked up by
    C-level maps: json.dumps of thousands of names, or of thousands of small objects, costs more
    than filtering or scoring them. Bounded: names come from requests, so a flood of new names
    only empties it."""

    limit = 1 << 16

    def __init__(self, before: str = "", after: str = "") -> None:
        super().__init__()
        self._before, self._after = before, after

    def __missing__(self, name: str) -> str:
        if len(self) >= self.limit:
            self.clear()
        piece = self[name] = self._before + json.dumps(name) + self._after
        return piece


_QUOTED_KEYS = _NamePieces(after=":")
# '{"Host":"<name>","Score":<score>}' by score, then name: kube-scheduler's scores are 0..10.
_HOST_SCORES = tuple(_NamePieces(before='{"Host":', after=f',"Score":{score}}}') for score in range(11))


def _reasons_json(reasons: Mapping[str, str]) -> str:
    """A node -> reason map as a JSON object; the reasons are a few strings, quoted once each."""
    if not reasons:
        return "{}"
    quoted = {reason: json.dumps(reason) for reason in set(reasons.values())}
    pairs = map(
        str.__add__, map(_QUOTED_KEYS.__getitem__, reasons), map(quoted.__getitem__, reasons.values())
    )
    return "{" + ",".join(pairs) + "}"


# Past this many runs of equal scores, a piece per node is quicker than a join per run.
_MOST_RUNS = 64


def encode_priorities(
    hosts: Sequence[str], scores: Sequence[int] | IntArray, *, plain: bool = False
) -> bytes:
    """HostPriorityList: [{"Host": node, "Score": 0..10}, ...], as json.dumps writes it (compact).

    ``plain``: every host is its own JSON text (ASCII, nothing to escape, as the NodeNames
    kube-scheduler sends). Each run of equal scores is then one join of the names: on a cluster of
    alike nodes nearly every node has the same score, and 5,000 entries cost one C-level join."""
    if not len(hosts):
        return b"[]"
    values = np.asarray(scores, dtype=np.int64)
    if plain:
        cuts = np.flatnonzero(values[1:] != values[:-1]) + 1
        if len(cuts) < _MOST_RUNS:
            bounds = [0, *cuts.tolist(), len(values)]
            runs = (_run_json(hosts[a:b], int(values[a])) for a, b in itertools.pairwise(bounds))
            return ("[" + ",".join(runs) + "]").encode()
    listed = values.tolist()
    tables = operator.itemgetter(*listed)(_HOST_SCORES) if len(listed) > 1 else (_HOST_SCORES[listed[0]],)
    return ("[" + ",".join(map(dict.__getitem__, tables, hosts)) + "]").encode()


def _run_json(hosts: Sequence[str], score: int) -> str:
    between = f'","Score":{score}}},{{"Host":"'
    return '{"Host":"' + between.join(hosts) + f'","Score":{score}}}'


def encode_binding_result(error: str = "") -> bytes:
    """ExtenderBindingResult: an empty Error means bound."""
    return _dumps({"Error": error})


def encode_error(message: str) -> bytes:
    """The body of a 4xx/5xx reply. kube-scheduler only sees the status code; people see this."""
    return _dumps({"Error": message})
