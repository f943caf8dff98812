"""Admission of one spec generation: Invalid naming the field, or sized per node type and queued; and
the node types each job may use, computed once per node set."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modeljob.core.affinity import (
    NODE_NAME_FIELD,
    NodeAffinity,
    NodeSelectorTerm,
    Requirement,
    SelectorOperator,
    TemplateRules,
)
from modeljob.core.cluster_state import Taint, TaintEffect
from modeljob.core.job_state import JobFacts, JobPhase
from modeljob.core.jobs import JobShape, ModelShape, Overrides
from modeljob.core.node_types import ClusterNodeTypes, Sizing, node_types, size_job, type_prices
from modeljob.core.spec_admission import judge, recorded
from tests.operator_builders import H100, L4, at, h100_nodes, l4_nodes, make_job, make_node

NODES = [*h100_nodes(2), *l4_nodes(2)]


def _sized(job: JobFacts) -> Sizing:
    return ClusterNodeTypes(NODES).size(job)


def _new(job: JobFacts | None = None, **changes: object) -> JobFacts:
    """A job as just created: no phase, no observed generation."""
    return replace(job or make_job(), phase=None, observed_generation=None, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("observed", "generation", "phase", "expected"),
    [
        (None, 1, None, False),
        (1, 1, None, False),
        (1, 1, JobPhase.PENDING, False),
        (1, 2, JobPhase.RUNNING, False),
        (2, 2, JobPhase.RUNNING, True),
        (1, 1, JobPhase.INVALID, True),
    ],
    ids=["new", "no-phase", "pending", "new-generation", "recorded", "recorded-invalid"],
)
def test_a_generation_is_judged_until_the_status_records_it(
    observed: int | None, generation: int, phase: JobPhase | None, expected: bool
) -> None:
    assert recorded(observed_generation=observed, generation=generation, phase=phase) is expected


def test_a_new_valid_job_is_queued_sized_and_says_so_once() -> None:
    job = _new()
    judgement = judge(job, problem=None, previous=None, generation=1, size=_sized)
    assert judgement.phase is JobPhase.QUEUED
    assert judgement.job == replace(job, phase=JobPhase.QUEUED, observed_generation=1), "planned as admitted"
    reason, message, warning = judgement.event
    assert (reason, warning) == ("Queued", False)
    assert message.startswith(f"queued in default; sized: {L4}, 24.0 GiB: 1 GPU(s)/replica"), "cheapest first"
    assert f"; {H100}, 80.0 GiB: 1 GPU(s)/replica" in message
    patch = judgement.patch({}, now=at(0))
    assert (patch["observedGeneration"], patch["phase"], patch["message"]) == (
        1,
        "Queued",
        "queued in default",
    )
    assert judgement.best is not None
    assert patch["estimate"]["deviceMemoryBytes"] == judgement.best.estimate.device_memory_bytes  # type: ignore[index]


def test_a_placed_jobs_new_generation_keeps_its_phase_and_is_sized() -> None:
    running = replace(make_job(phase=JobPhase.RUNNING, generation=2), observed_generation=1)
    judgement = judge(running, problem=None, previous=JobPhase.RUNNING, generation=2, size=_sized)
    assert judgement.phase is JobPhase.RUNNING
    reason, message, _ = judgement.event
    assert (reason, message.split(":")[0]) == ("Sized", "generation 2 sized")


def test_a_spec_that_makes_no_sense_is_invalid_naming_the_field_and_still_planned_so_its_pods_go() -> None:
    broken = _new(shape=JobShape(model=ModelShape(parameters=8 * 10**9), overrides=Overrides(gpus=0)))
    judgement = judge(broken, problem=None, previous=JobPhase.RUNNING, generation=1, size=_sized)
    assert judgement.phase is JobPhase.INVALID
    assert judgement.sizing is None
    assert judgement.job is not None
    assert judgement.job.phase is JobPhase.INVALID
    reason, message, warning = judgement.event
    assert (reason, warning) == ("InvalidSpec", True)
    assert message.startswith("spec.resources.gpus: ")
    patch = judgement.patch({"queuePosition": 2}, now=at(0))
    assert (patch["phase"], patch["queuePosition"], patch["message"]) == ("Invalid", None, message)


def test_a_spec_that_cannot_be_read_is_invalid_with_what_the_reader_said() -> None:
    problem = "spec.template.spec.containers: at least one container is required"
    judgement = judge(None, problem=problem, previous=None, generation=3, size=_sized)
    assert (judgement.phase, judgement.job, judgement.event) == (
        JobPhase.INVALID,
        None,
        ("InvalidSpec", problem, True),
    )
    assert judgement.patch({}, now=at(0))["observedGeneration"] == 3


def test_a_fixed_spec_enters_the_queue_again() -> None:
    judgement = judge(_new(), problem=None, previous=JobPhase.INVALID, generation=2, size=_sized)
    assert (judgement.phase, judgement.event[0]) == (JobPhase.QUEUED, "Queued")


def test_a_job_with_no_node_of_its_kind_yet_is_queued_and_says_so() -> None:
    judgement = judge(_new(), problem=None, previous=None, generation=1, size=ClusterNodeTypes([]).size)
    assert judgement.best is None
    assert judgement.event[1] == "queued in default; sized: no GPU node types in the cluster yet"
    assert "estimate" not in judgement.patch({}, now=at(0))


def test_node_types_per_job_are_those_of_the_nodes_it_may_use() -> None:
    labelled = [make_node("gpu-h100-z", labels={"zone": "b"}), *l4_nodes(1)]
    types = ClusterNodeTypes(labelled)
    anywhere = make_job(products=())
    views = [n.view for n in labelled]
    assert types.size(anywhere) == size_job(anywhere, node_types(views), prices=type_prices(views))
    in_zone_a = replace(anywhere, node_selector={"zone": "a"})
    assert types.size(in_zone_a) == Sizing(candidates=(), rejected=())
    the_l4 = Requirement(NODE_NAME_FIELD, SelectorOperator.IN, ("gpu-l4-0",))
    affinity = NodeAffinity(required=(NodeSelectorTerm(fields=(the_l4,)),))
    only_l4 = replace(anywhere, rules=TemplateRules(node_affinity=affinity))
    assert [c.node_type.product for c in types.size(only_l4).candidates] == [L4]


def test_a_node_set_change_that_leaves_a_jobs_node_types_gives_the_same_types_object() -> None:
    job = make_job(products=())
    before = ClusterNodeTypes(NODES)
    first = before.types_for(job)
    not_ready = (Taint("node.kubernetes.io/not-ready", TaintEffect.NO_SCHEDULE),)
    one_tainted = [replace(NODES[0], taints=not_ready), *NODES[1:]]
    after = ClusterNodeTypes(one_tainted, previous=before)
    assert after.types_for(job) is first, "the other H100 node is still usable"
    h100s_tainted = [replace(n, taints=not_ready) for n in NODES[:2]] + NODES[2:]
    later = ClusterNodeTypes(h100s_tainted, previous=after)
    assert [t.product for t in later.types_for(job)[0]] == [L4]
    back = ClusterNodeTypes(NODES, previous=later).types_for(job)
    assert back == first
    assert back is not first, "only the node set just before is looked at"
