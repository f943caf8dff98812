"""The pydantic models accept what the contract allows and name the field of anything else."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from modeljob.adapters.job_fields import ObjectError
from modeljob.adapters.kube_jobs import parse_spec
from modeljob.api.quantities import parse_duration
from modeljob.api.v1alpha1 import describe_validation_error, parse_model_job
from modeljob.core.job_state import RestartScope
from modeljob.core.jobs import Architecture, Optimizer, Precision, WorkloadType
from modeljob.core.sizing.defaults import recipe
from tests.manifests import BAD_MANIFESTS, bad_manifest, make_job_manifest, with_field


@pytest.mark.parametrize(
    ("written", "count"),
    [
        (7000000000, 7_000_000_000),
        ("70.6B", 70_600_000_000),
        ("405e9", 405_000_000_000),
        ("560M", 560_000_000),
        ("1.5T", 1_500_000_000_000),
        (4.05e11, 405_000_000_000),
    ],
    ids=str,
)
def test_parameter_counts_in_every_written_form(written: object, count: int) -> None:
    job = parse_model_job(make_job_manifest(parameters=written))
    assert job.spec.to_core().model.parameters == count


def test_defaults_are_applied_when_fields_are_omitted() -> None:
    core = parse_model_job(make_job_manifest(workload={"type": "Training"})).spec.to_core()
    assert core.model.precision is Precision.BF16
    assert core.workload.type is WorkloadType.TRAINING
    # Open choices stay open here: sizing takes each from the recipe defaults (core/sizing/defaults.py).
    assert core.workload.optimizer is None
    assert core.workload.activation_checkpointing is None
    assert core.workload.zero_stage == 0
    assert core.workload.replicas == 1
    assert recipe(core.workload).optimizer is Optimizer.ADAMW


def test_explicit_resources_reach_the_core_in_base_units() -> None:
    manifest = make_job_manifest(
        resources={"gpus": 2, "cpu": "1500m", "memory": "64Gi", "ephemeralStorage": "100G"}
    )
    overrides = parse_model_job(manifest).spec.to_core().overrides
    assert (overrides.gpus, overrides.cpu_milli) == (2, 1500)
    assert overrides.memory_bytes == 64 * 2**30
    assert overrides.ephemeral_storage_bytes == 100 * 10**9


def test_an_architecture_reaches_the_core_field_for_field() -> None:
    manifest = make_job_manifest()
    manifest["spec"]["model"]["architecture"] = {
        "layers": 32,
        "hiddenSize": 4096,
        "attentionHeads": 32,
        "kvHeads": 8,
        "vocabSize": 128256,
        "intermediateSize": 14336,
    }
    architecture = parse_model_job(manifest).spec.to_core().model.architecture
    assert architecture == Architecture(
        layers=32,
        hidden_size=4096,
        attention_heads=32,
        kv_heads=8,
        head_dim=None,
        vocab_size=128256,
        intermediate_size=14336,
    )


def test_moe_active_parameters_cannot_exceed_total() -> None:
    manifest = make_job_manifest(parameters="7B")
    manifest["spec"]["model"]["activeParameters"] = "13B"
    with pytest.raises(ValidationError) as caught:
        parse_model_job(manifest)
    assert any("activeParameters" in line for line in describe_validation_error(caught.value, prefix=""))


@pytest.mark.parametrize("case", BAD_MANIFESTS, ids=lambda c: c.id)
def test_bad_manifest_error_names_the_field(case: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_model_job(bad_manifest(case))
    lines = describe_validation_error(caught.value)
    assert any(line.startswith(case.field) for line in lines), lines


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", timedelta(hours=2)),
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(minutes=90)),
        ("1.5d", timedelta(hours=36)),
    ],
    ids=str,
)
def test_expected_duration_forms(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_the_rendezvous_port_defaults_to_torch_distributeds_29500() -> None:
    assert parse_model_job(make_job_manifest()).spec.rendezvous.port == 29500
    manifest = with_field(make_job_manifest(), "spec.rendezvous.port", 23456)
    assert parse_model_job(manifest).spec.rendezvous.port == 23456


@pytest.mark.parametrize("port", [0, 65536], ids=str)
def test_a_rendezvous_port_outside_1_to_65535_names_the_field(port: int) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_model_job(with_field(make_job_manifest(), "spec.rendezvous.port", port))
    lines = describe_validation_error(caught.value)
    assert any(line.startswith("spec.rendezvous.port: Input should be") for line in lines), lines


def test_the_failure_policy_defaults_to_three_restarts_of_a_scope_left_to_the_workload() -> None:
    spec = parse_model_job(make_job_manifest()).spec
    assert (spec.failure_policy.max_restarts, spec.failure_policy.restart_scope, spec.suspend) == (
        3,
        None,
        False,
    )
    manifest = with_field(
        make_job_manifest(), "spec.failurePolicy", {"maxRestarts": 0, "restartScope": "Replica"}
    )
    policy = parse_model_job(manifest).spec.failure_policy
    assert (policy.max_restarts, policy.restart_scope) == (0, RestartScope.REPLICA)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            "spec.failurePolicy.maxRestarts",
            -1,
            "spec.failurePolicy.maxRestarts: Input should be greater than or equal to 0",
        ),
        (
            "spec.failurePolicy.restartScope",
            "Pod",
            "spec.failurePolicy.restartScope: Input should be 'Job' or 'Replica'",
        ),
    ],
    ids=["negative-max-restarts", "unknown-restart-scope"],
)
def test_a_bad_failure_policy_is_refused_naming_the_field_and_what_it_takes(
    path: str, value: object, expected: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_model_job(with_field(make_job_manifest(), path, value))
    lines = describe_validation_error(caught.value)
    assert any(line.startswith(expected) for line in lines), lines
    # The operator's own reading of a job (kube_jobs) says the same, so the job is Invalid with it.
    with pytest.raises(ObjectError, match=re.escape(expected)):
        parse_spec(with_field(make_job_manifest(), path, value))
