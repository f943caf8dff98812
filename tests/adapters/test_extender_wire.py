"""kube-scheduler's extender JSON: Go field names in, Go field names out, and readable refusals."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from modeljob.adapters.extender.replies import FilterReply, encode_binding_result, encode_priorities
from modeljob.adapters.extender.wire import (
    Candidates,
    WireError,
    as_sent,
    decode_binding_args,
    decode_scheduling_args,
)
from modeljob.core.resources import GIB
from tests.operator_builders import container, node_dict, pod_dict

GPU_POD = pod_dict(
    "trainer",
    phase="Pending",
    containers=[container(limits={"nvidia.com/gpu": "2"}, requests={"cpu": "4", "memory": "16Gi"})],
)


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


def test_node_names_mode_reads_the_pod_and_the_names_in_order() -> None:
    args = decode_scheduling_args(body({"Pod": GPU_POD, "Nodes": None, "NodeNames": ["b", "a"]}))
    assert args.candidates.names == ("b", "a")
    assert args.candidates.items is None
    assert args.key == ("ml", "trainer")
    assert (args.request.resources.gpus, args.request.resources.cpu_milli) == (2, 4000)
    assert args.request.resources.memory_bytes == 16 * GIB
    assert args.request.accelerator == "nvidia.com/gpu"


def test_whole_nodes_mode_keeps_the_node_objects_to_send_back() -> None:
    nodes = [node_dict(0), node_dict(1)]
    args = decode_scheduling_args(body({"Pod": GPU_POD, "Nodes": {"metadata": {}, "items": nodes}}))
    assert args.candidates.names == ("gpu-h100-0", "gpu-h100-1")
    assert args.candidates.items == tuple(nodes)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"{", "body: not JSON"),
        (b"[1, 2]", "body: expected a JSON object, got list"),
        (b'{"Pod": NaN}', "body: not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "body: "),
        (b"\xff\xfe", "body: not JSON"),
        (body({"NodeNames": ["a"]}), "Pod: Field required"),
        (body({"pod": GPU_POD, "NodeNames": ["a"]}), "Pod: Field required"),
        (body({"Pod": GPU_POD}), "NodeNames: required"),
        (
            body({"Pod": {"metadata": {"name": "x"}, "spec": {"containers": []}}, "NodeNames": []}),
            "Pod.spec.containers",
        ),
        (
            body({"Pod": pod_dict(containers=[container(requests={"cpu": "lots"})]), "NodeNames": []}),
            "Pod.spec.containers.0.resources.requests",
        ),
        (body({"Pod": GPU_POD, "NodeNames": [1]}), "NodeNames.0: Input should be a valid string"),
        (body({"Pod": {**GPU_POD, "metadata": {"name": ""}}, "NodeNames": []}), "Pod.metadata.name"),
    ],
    ids=[
        "truncated",
        "not-an-object",
        "nan",
        "deep-nesting",
        "not-utf8",
        "no-pod",
        "lowercase-key",
        "no-nodes",
        "no-containers",
        "bad-quantity",
        "name-not-string",
        "empty-pod-name",
    ],
)
def test_unreadable_requests_are_refused_naming_the_field(document: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message.replace(".", r"\.").replace("(", r"\(")):
        decode_scheduling_args(document)


def as_go_writes(pod_json: bytes, names_json: bytes) -> bytes:
    """ExtenderArgs as kube-scheduler's json.Marshal writes it with nodeCacheCapable: true."""
    return b'{"Pod":' + pod_json + b',"Nodes":null,"NodeNames":' + names_json + b"}"


def go_json(document: Any, *, ascii_only: bool = True) -> bytes:
    return json.dumps(document, separators=(",", ":"), ensure_ascii=ascii_only).encode()


@given(names=st.lists(st.text(max_size=8), max_size=12), ascii_only=st.booleans())
@example(names=["\x7f"], ascii_only=False)  # DEL is ASCII, but json.dumps escapes it
def test_a_body_as_kube_scheduler_writes_it_reads_as_the_same_body_spelled_otherwise(
    names: list[str], ascii_only: bool
) -> None:
    read = decode_scheduling_args(as_go_writes(go_json(GPU_POD), go_json(names, ascii_only=ascii_only)))
    spaced = decode_scheduling_args(body({"Pod": GPU_POD, "Nodes": None, "NodeNames": names}))
    read_alike = replace(read, candidates=replace(read.candidates, names_json=None), pod_json=None)
    assert read_alike == spaced
    assert read.candidates.names_json in (None, go_json(names))


def test_kube_schedulers_names_are_kept_as_sent_for_the_reply() -> None:
    names = [f"kwok-node-{i}" for i in range(5)]
    args = decode_scheduling_args(as_go_writes(go_json(GPU_POD), go_json(names)))
    assert args.candidates.names == tuple(names)
    assert args.candidates.names_json == go_json(names)


@given(
    chosen=st.lists(
        st.tuples(st.text(alphabet="abz09.-", min_size=1, max_size=6), st.booleans()), max_size=12
    )
)
def test_the_body_foreseen_for_some_of_the_names_reads_as_foreseen(chosen: list[tuple[str, bool]]) -> None:
    """What the filter relies on to foresee kube-scheduler's prioritize body: the Pod's text as
    sent, and ``some_as_json`` of the passing names, make a body that decodes to the same pod and
    those names."""
    names, kept = [name for name, _ in chosen], [name for name, keep in chosen if keep]
    args = decode_scheduling_args(as_go_writes(go_json(GPU_POD), go_json(names)))
    kept_json = args.candidates.some_as_json(kept)
    assert kept_json == go_json(kept)
    assert args.pod_json is not None
    foreseen = decode_scheduling_args(as_sent(args.pod_json, kept_json))
    assert foreseen == replace(args, candidates=Candidates(names=tuple(kept), names_json=kept_json))


def test_names_sent_otherwise_are_not_rewritten_by_joining() -> None:
    args = decode_scheduling_args(body({"Pod": GPU_POD, "Nodes": None, "NodeNames": ['a"b', "c"]}))
    assert args.candidates.some_as_json(['a"b']) is None
    assert args.pod_json is None


def test_names_sent_with_escapes_are_read_but_not_kept_as_sent() -> None:
    args = decode_scheduling_args(as_go_writes(go_json(GPU_POD), b'["a","\\u0062"]'))
    assert args.candidates.names == ("a", "b")
    assert args.candidates.names_json is None


def test_a_pod_holding_the_names_marker_does_not_confuse_the_reader() -> None:
    pod = {**GPU_POD, "extra": {"Nodes": None, "NodeNames": ["not-a-candidate"]}}
    args = decode_scheduling_args(as_go_writes(go_json(pod), go_json(["a"])))
    assert args.candidates.names == ("a",)


BAD_QUANTITY_POD = pod_dict(containers=[container(requests={"cpu": "lots"})])


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (as_go_writes(go_json(BAD_QUANTITY_POD), b"[]"), "Pod.spec.containers.0.resources.requests"),
        (as_go_writes(go_json({**GPU_POD, "metadata": {"name": ""}}), b"[]"), "Pod.metadata.name"),
        (as_go_writes(go_json(GPU_POD), b"[1]"), "NodeNames.0: Input should be a valid string"),
        (as_go_writes(go_json(GPU_POD), b'["a",]'), "body: not JSON"),
        (as_go_writes(go_json(GPU_POD), b"[NaN]"), "body: not JSON"),
        (as_go_writes(go_json(GPU_POD)[:-1], b"[]"), "body: not JSON"),
        (as_go_writes(b"\xef\xbb\xbf" + go_json(GPU_POD), b"[]"), "body: not JSON"),
        (as_go_writes(go_json(GPU_POD), b'["\xff"]'), "body: not JSON"),
        (as_go_writes(go_json(GPU_POD), b"{}"), "NodeNames: Input should be a valid list"),
        (
            as_go_writes(
                go_json(pod_dict(containers=[container(limits={"nvidia.com/gpu": str(2**53)})])), b"[]"
            ),
            "GPUs request of 2^53 or more",
        ),
    ],
    ids=[
        "bad-quantity",
        "empty-pod-name",
        "name-not-string",
        "trailing-comma",
        "nan",
        "pod-swallows-the-names",
        "byte-order-mark-inside",
        "not-utf8",
        "names-not-a-list",
        "absurd-request",
    ],
)
def test_a_bad_body_as_kube_scheduler_writes_it_is_refused_naming_the_field(
    document: bytes, message: str
) -> None:
    with pytest.raises(WireError, match=re.escape(message)):
        decode_scheduling_args(document)


def test_binding_args_use_the_go_field_names() -> None:
    args = decode_binding_args(body({"PodName": "p", "PodNamespace": "ml", "PodUID": "u-1", "Node": "n"}))
    assert (args.pod_namespace, args.pod_name, args.pod_uid, args.node) == ("ml", "p", "u-1", "n")
    with pytest.raises(WireError, match="Node: Field required"):
        decode_binding_args(body({"PodName": "p", "PodNamespace": "ml"}))


def test_filter_reply_in_node_names_mode_has_exactly_the_go_fields() -> None:
    reply = json.loads(FilterReply(passed=["a"], failed={"b": "why"}, unresolvable={"c": "never"}).to_json())
    assert reply == {
        "Nodes": None,
        "NodeNames": ["a"],
        "FailedNodes": {"b": "why"},
        "FailedAndUnresolvableNodes": {"c": "never"},
        "Error": "",
    }


def test_filter_reply_in_whole_nodes_mode_returns_the_objects_and_no_names() -> None:
    node = node_dict(0)
    reply = json.loads(FilterReply(passed=["gpu-h100-0"], items=[node]).to_json())
    assert reply["NodeNames"] is None
    assert reply["Nodes"] == {"metadata": {}, "items": [node]}


def test_filter_reply_with_the_names_as_sent_is_the_same_reply() -> None:
    names = ["gpu-a", "gpu-b"]
    reply = FilterReply(passed=names, failed={"c": "why"}, passed_json=go_json(names))
    assert reply.to_json() == FilterReply(passed=names, failed={"c": "why"}).to_json()


def compact(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


# Any text: node names are DNS names in a real cluster, but a request may carry quotes, escapes
# and non-ASCII; the same name asked for again comes from the memo of quoted names.
names = st.lists(st.text(max_size=8), max_size=12)


@given(
    passed=names,
    failed=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=12),
    unresolvable=st.dictionaries(st.text(max_size=8), st.sampled_from(["never", 'a "why"', "é\n"])),
    error=st.text(max_size=8),
)
def test_filter_reply_is_what_json_dumps_writes(
    passed: list[str], failed: dict[str, str], unresolvable: dict[str, str], error: str
) -> None:
    reply = FilterReply(passed=passed, failed=failed, unresolvable=unresolvable, error=error)
    assert reply.to_json() == compact(
        {
            "Nodes": None,
            "NodeNames": passed,
            "FailedNodes": failed,
            "FailedAndUnresolvableNodes": unresolvable,
            "Error": error,
        }
    )


@given(st.lists(st.tuples(st.text(max_size=8), st.integers(0, 10)), max_size=12))
def test_priorities_are_what_json_dumps_writes(entries: list[tuple[str, int]]) -> None:
    hosts, scores = [host for host, _ in entries], [score for _, score in entries]
    expected = compact([{"Host": host, "Score": score} for host, score in entries])
    assert encode_priorities(hosts, scores) == expected


@given(
    st.lists(
        st.tuples(st.text(alphabet="abz09.-", min_size=1, max_size=6), st.sampled_from([0, 3, 9, 10])),
        max_size=80,
    )
)
def test_priorities_of_plain_names_are_what_json_dumps_writes(entries: list[tuple[str, int]]) -> None:
    hosts, scores = [host for host, _ in entries], [score for _, score in entries]
    expected = compact([{"Host": host, "Score": score} for host, score in entries])
    assert encode_priorities(hosts, scores, plain=True) == expected


def test_thousands_of_alike_scores_are_what_json_dumps_writes() -> None:
    hosts = [f"node-{i}" for i in range(5000)]
    scores = [9] * 5000
    scores[1234] = 10
    expected = compact([{"Host": host, "Score": score} for host, score in zip(hosts, scores, strict=True)])
    assert encode_priorities(hosts, scores, plain=True) == expected


def test_priorities_and_binding_results_use_the_go_field_names() -> None:
    assert json.loads(encode_priorities(["a", 'b "quoted"'], [10, 3])) == [
        {"Host": "a", "Score": 10},
        {"Host": 'b "quoted"', "Score": 3},
    ]
    assert json.loads(encode_binding_result()) == {"Error": ""}
    assert json.loads(encode_binding_result("conflict")) == {"Error": "conflict"}
