"""The extender's prioritize reuses what its filter decoded when kube-scheduler sends the same body."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modeljob.adapters.extender.request_memo import RequestMemo
from modeljob.adapters.extender.wire import WireError
from tests.operator_builders import container, pod_dict

POD = pod_dict("trainer", phase="Pending", containers=[container(limits={"nvidia.com/gpu": "1"})])


def body(*names: str) -> bytes:
    return json.dumps({"Pod": POD, "Nodes": None, "NodeNames": list(names)}, separators=(",", ":")).encode()


def test_the_same_body_again_is_answered_from_the_last_decoding() -> None:
    memo = RequestMemo()
    first = memo.decode(body("a", "b"))
    assert memo.decode(bytes(bytearray(body("a", "b")))) is first


def test_another_body_is_decoded_anew() -> None:
    memo = RequestMemo()
    memo.decode(body("a", "b"))
    assert memo.decode(body("b", "a")).candidates.names == ("b", "a")


def test_a_bad_body_is_refused_and_leaves_the_last_decoding_in_place() -> None:
    memo = RequestMemo()
    first = memo.decode(body("a"))
    with pytest.raises(WireError, match="body: not JSON"):
        memo.decode(b"{")
    assert memo.decode(body("a")) is first


def test_rows_are_kept_for_the_same_names_and_the_same_table() -> None:
    memo = RequestMemo()
    names, row_of = ("b", "a", "x"), {"a": 0, "b": 1}
    rows = memo.rows(names, row_of)
    assert rows.tolist() == [1, 0, -1]
    assert memo.rows(names, row_of) is rows
    assert not rows.flags.writeable, "shared between requests: nobody may change them"


def test_rows_are_looked_up_again_for_a_new_table() -> None:
    memo = RequestMemo()
    names = ("b", "a")
    memo.rows(names, {"a": 0, "b": 1})
    moved = memo.rows(names, {"a": 1, "b": 0})
    assert np.array_equal(moved, [0, 1])
