"""Parameter counts, quantities and durations: the API server's CEL rule and pydantic agree on each."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from modeljob.api.v1alpha1 import describe_validation_error, parse_model_job
from modeljob.core.jobs import MAX_PARAMETERS, MIN_PARAMETERS
from tests.crd_validation import validate
from tests.manifests import MALFORMED_FORMS, MalformedForm, make_job_manifest, malformed_manifest, with_field

ACCEPTED_COUNTS = [
    MIN_PARAMETERS,
    "1000000",
    "1M",
    "1.5M",
    "1000K",
    "0.001B",
    "0.5B",
    "8B",
    "70.6B",
    "8G",
    "0.000001T",
    "1e6",
    "10e5",
    "100e4",
    "405e9",
    "100T",
    MAX_PARAMETERS,
]
REFUSED_COUNTS = [
    8,  # eight parameters: a dropped suffix
    MIN_PARAMETERS - 1,
    "8",
    "999999",
    "999K",
    "0.9M",
    "0.0009B",
    "5e5",
    "99e4",
    "8b",  # lower case: "m" is milli in Kubernetes, so no suffix is guessed
    "7m",
    "-7B",
    "0B",
    "100.1T",
    "1e15",
    MAX_PARAMETERS + 1,
    "7 billion",
]


def accepted_by_both(path: str, value: object) -> tuple[bool, bool]:
    manifest = with_field(make_job_manifest(), path, value)
    try:
        parse_model_job(manifest)
        pydantic_accepts = True
    except ValidationError:
        pydantic_accepts = False
    return not validate(manifest), pydantic_accepts


@pytest.mark.parametrize("count", ACCEPTED_COUNTS, ids=repr)
def test_counts_from_one_million_to_a_hundred_trillion_are_accepted(count: object) -> None:
    assert accepted_by_both("spec.model.parameters", count) == (True, True)


@pytest.mark.parametrize("count", REFUSED_COUNTS, ids=repr)
def test_counts_outside_the_range_or_the_forms_are_refused_by_both(count: object) -> None:
    assert accepted_by_both("spec.model.parameters", count) == (False, False)


@pytest.mark.parametrize(
    ("path", "value", "accepted"),
    [
        ("spec.accelerator.memoryPerDevice", "80Gi", True),
        ("spec.accelerator.memoryPerDevice", "141G", True),
        ("spec.accelerator.memoryPerDevice", "80GB", False),
        ("spec.accelerator.memoryPerDevice", "80 Gi", False),
        ("spec.resources.cpu", "500m", True),
        ("spec.resources.cpu", 4, True),
        ("spec.resources.cpu", -1, False),
        ("spec.resources.memory", "1.5Ti", True),
        ("spec.resources.memory", "lots", False),
        ("spec.scheduling.expectedDuration", "1h30m", True),
        ("spec.scheduling.expectedDuration", "1.5d", True),
        ("spec.scheduling.expectedDuration", "90 minutes", False),
        ("spec.workload.batchSize", 65_536, True),
        ("spec.workload.batchSize", 1_000_000, False),
    ],
    ids=str,
)
def test_quantities_and_durations_are_judged_alike(path: str, value: object, accepted: bool) -> None:
    assert accepted_by_both(path, value) == (accepted, accepted)


@pytest.mark.parametrize("case", MALFORMED_FORMS, ids=str)
def test_pydantic_names_the_field_and_shows_valid_forms(case: MalformedForm) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_model_job(malformed_manifest(case))
    [line] = describe_validation_error(caught.value)
    assert line.startswith(f"{case.path}: must be ")
    assert case.example in line
    assert f"got {case.value!r}" in line
    assert "^(" not in line  # no regular expression
