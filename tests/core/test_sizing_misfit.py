"""A replica that cannot fit is explained by its largest part and the spec fields that drive it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from modeljob.core.jobs import JobShape, ModelShape, Overrides, Workload, WorkloadType
from modeljob.core.resources import GIB
from modeljob.core.sizing import Device, size_replica

H100 = Device(memory_bytes=80 * GIB)
L4 = Device(memory_bytes=24 * GIB)
B = 10**9


@dataclass(frozen=True)
class Misfit:
    id: str
    job: JobShape
    device: Device
    part: str
    fields: tuple[str, ...]


def _job(parameters: int, workload: Workload | None = None, *, gpus: int | None = None) -> JobShape:
    return JobShape(
        model=ModelShape(parameters=parameters),
        workload=workload or Workload(),
        overrides=Overrides(gpus=gpus),
    )


MISFITS = (
    Misfit(
        "huge-batch-kv-cache",
        _job(8 * B, Workload(batch_size=65_536, sequence_length=8192)),
        H100,
        "KV cache",
        ("spec.workload.batchSize 65536", "spec.workload.sequenceLength 8192"),
    ),
    Misfit(
        "weights-on-one-small-gpu",
        _job(70 * B, gpus=1),
        L4,
        "weights",
        ("spec.model.parameters 70,000,000,000", "spec.model.precision bf16"),
    ),
    Misfit(
        "full-training-optimizer-states",
        _job(70 * B, Workload(type=WorkloadType.TRAINING, sequence_length=512), gpus=1),
        H100,
        "optimizer states",
        ("spec.model.parameters 70,000,000,000 trained in full", "AdamW", "spec.workload.zeroStage 0"),
    ),
    Misfit(
        "long-training-sequence-activations",
        _job(8 * B, Workload(type=WorkloadType.TRAINING, sequence_length=1_048_576, batch_size=8)),
        H100,
        "activations",
        ("spec.workload.sequenceLength 1048576", "spec.workload.activationCheckpointing is off"),
    ),
)


@pytest.mark.parametrize("case", MISFITS, ids=lambda c: c.id)
def test_misfit_names_the_largest_part_and_its_spec_fields(case: Misfit) -> None:
    estimate = size_replica(case.job, case.device)
    assert not estimate.fits
    assert estimate.misfit.startswith(f"largest part: {case.part} ")
    for field in case.fields:
        assert field in estimate.misfit
    gpus_rule = next(rule for rule in estimate.rules if rule.field == "gpus")
    assert gpus_rule.explanation.endswith(estimate.misfit)


def test_a_replica_that_fits_has_no_misfit() -> None:
    assert size_replica(_job(8 * B), H100).misfit == ""
