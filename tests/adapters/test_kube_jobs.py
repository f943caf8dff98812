"""A ModelJob as the operator reads it: the validated spec (errors name the field), JobFacts, phases."""

from __future__ import annotations

import re
from typing import Any

import pytest

from modeljob.adapters import kube_jobs
from modeljob.adapters.job_fields import ObjectError
from modeljob.core.job_state import JobPhase, Placed
from tests.operator_builders import container, modeljob_dict


def test_job_facts_of_an_example() -> None:
    facts = kube_jobs.job_facts(modeljob_dict("llama-2-13b-training-zero3"))
    assert (facts.namespace, facts.name, facts.uid, facts.generation) == (
        "ml",
        "llama-2-13b-sft",
        "uid-llama-2-13b-training-zero3",
        1,
    )
    assert (facts.replicas, facts.gang, facts.queue, facts.priority) == (4, True, "research", 10)
    assert facts.expected_duration_seconds == 48 * 3600
    assert facts.shape.model.parameters == 13 * 10**9
    assert facts.phase is None
    assert not facts.admitted


def test_job_facts_read_placement_and_the_binding_condition() -> None:
    status = {
        "phase": "Queued",
        "observedGeneration": 2,
        "placement": [{"replica": 0, "pod": "p-0", "node": "gpu-h100-0", "score": 0.5}],
        "conditions": [
            {
                "type": "Binding",
                "status": "True",
                "reason": "Binding",
                "observedGeneration": 2,
                "lastTransitionTime": "2026-01-01T00:00:05Z",
            }
        ],
    }
    facts = kube_jobs.job_facts(modeljob_dict(generation=2, status=status))
    assert facts.admitted
    assert facts.phase is JobPhase.QUEUED
    assert facts.placement == (Placed(replica=0, pod="p-0", node="gpu-h100-0", score=0.5),)
    assert facts.binding
    assert facts.placed_generation == 2


def test_job_facts_read_the_work_earlier_runs_kept() -> None:
    assert kube_jobs.job_facts(modeljob_dict(status={"checkpointedSeconds": 5400})).run_before_seconds == 5400
    assert kube_jobs.job_facts(modeljob_dict(status={})).run_before_seconds == 0


def test_a_job_whose_spec_cannot_be_read_is_seen_from_its_metadata_status_and_queue() -> None:
    status = {
        "phase": "Invalid",
        "observedGeneration": 2,
        "placement": [{"replica": 0, "pod": "p-0", "node": "gpu-h100-0"}],
    }
    job = modeljob_dict("llama-2-13b-training-zero3", status=status)
    job["metadata"]["generation"] = 2
    job["spec"]["template"]["spec"]["containers"] = []
    with pytest.raises(ObjectError):
        kube_jobs.job_facts(job)
    facts = kube_jobs.unread_job_facts(job)
    assert (facts.key, facts.uid, facts.generation) == (("ml", "llama-2-13b-sft"), job["metadata"]["uid"], 2)
    assert (facts.phase, facts.admitted, facts.queue) == (JobPhase.INVALID, True, "research")
    assert facts.placement == (Placed(replica=0, pod="p-0", node="gpu-h100-0"),)
    assert facts.accelerator == kube_jobs.UNREAD_ACCELERATOR != "nvidia.com/gpu", "sized for no node type"


def test_an_unreadable_spec_that_names_no_readable_queue_is_in_the_default_one() -> None:
    job = modeljob_dict("llama-2-13b-training-zero3")
    job["spec"]["scheduling"] = {"queue": 7}
    assert kube_jobs.unread_job_facts(job).queue == "default"
    job["spec"] = "not a spec"
    assert kube_jobs.unread_job_facts(job).queue == "default"


def test_spec_hash_ignores_scheduling_but_not_the_model() -> None:
    base = modeljob_dict()["spec"]
    reprioritised = {**base, "scheduling": {"priority": 5}}
    bigger = {**base, "model": {**base["model"], "parameters": "9B"}}
    assert kube_jobs.spec_hash(base) == kube_jobs.spec_hash(reprioritised)
    assert kube_jobs.spec_hash(base) != kube_jobs.spec_hash(bigger)


@pytest.mark.parametrize(
    ("template", "field"),
    [
        ({}, "spec.template.spec:"),
        ({"spec": {"containers": []}}, "spec.template.spec.containers:"),
        ({"spec": {"containers": [{"name": "x"}]}}, "spec.template.spec.containers[0]:"),
        (
            {"spec": {"containers": [container(requests={"cpu": "lots"})]}},
            "spec.template.spec.containers[0].resources.requests.cpu:",
        ),
        ({"spec": {"containers": [container()], "nodeName": "n"}}, "spec.template.spec.nodeName:"),
        (
            {"spec": {"containers": [container()], "schedulingGates": [{"name": "example.com/quota"}]}},
            "spec.template.spec.schedulingGates: must not be set; the operator places the job's pods",
        ),
    ],
    ids=[
        "no-pod-spec",
        "no-containers",
        "container-without-image",
        "bad-quantity",
        "node-name-set",
        "scheduling-gates-set",
    ],
)
def test_template_the_schema_cannot_judge_is_rejected_naming_the_field(
    template: dict[str, Any], field: str
) -> None:
    with pytest.raises(ObjectError, match="^" + re.escape(field)):
        kube_jobs.parse_spec(modeljob_dict(template=template))


def test_invalid_spec_names_the_field() -> None:
    document = modeljob_dict()
    document["spec"]["replicas"] = 0
    with pytest.raises(ObjectError, match=r"^spec\.replicas: "):
        kube_jobs.parse_spec(document)


def test_jobs_are_counted_by_phase_whether_or_not_their_spec_can_be_read() -> None:
    unreadable = modeljob_dict(status={"phase": "Invalid"}, replicas=0)
    other_team = modeljob_dict(namespace="team-b", status={"phase": "Running"})
    counts = kube_jobs.count_by_phase([unreadable, modeljob_dict(), other_team])
    assert counts == {
        ("ml", JobPhase.INVALID): 1,
        ("ml", JobPhase.PENDING): 1,
        ("team-b", JobPhase.RUNNING): 1,
    }


def test_a_loop_counting_every_cycle_sees_a_new_version_and_a_deleted_job() -> None:
    queued = modeljob_dict(namespace="team-a", status={"phase": "Queued"})
    running = modeljob_dict(namespace="team-b", status={"phase": "Running"})
    phases = kube_jobs.PhaseCounts()
    first = phases.count([queued, running])
    assert first == {("team-a", JobPhase.QUEUED): 1, ("team-b", JobPhase.RUNNING): 1}
    # the watch's next version of the first job: another object
    scheduled = modeljob_dict(namespace="team-a", status={"phase": "Scheduled"})
    assert phases.count([scheduled, running]) == {
        ("team-a", JobPhase.SCHEDULED): 1,
        ("team-b", JobPhase.RUNNING): 1,
    }
    assert phases.count([scheduled]) == kube_jobs.count_by_phase([scheduled])
