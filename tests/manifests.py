"""ModelJob manifests for tests: a valid builder and the table of bad manifests every layer must reject."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]


def make_job_manifest(
    name: str = "job",
    *,
    parameters: object = "8B",
    workload: dict[str, Any] | None = None,
    **spec: Any,
) -> Manifest:
    """A minimal valid ModelJob; keyword arguments replace top-level spec fields."""
    body: dict[str, Any] = {
        "model": {"parameters": parameters, "precision": "bf16"},
        "workload": workload or {"type": "Inference", "sequenceLength": 4096, "batchSize": 1},
    }
    body.update(spec)
    return {
        "apiVersion": "modeljob.dev/v1alpha1",
        "kind": "ModelJob",
        "metadata": {"name": name},
        "spec": body,
    }


def with_field(manifest: Manifest, path: str, value: Any) -> Manifest:
    """A copy of the manifest with the dotted path set (or removed when value is DELETE)."""
    result = copy.deepcopy(manifest)
    *parents, leaf = path.split(".")
    node = result
    for part in parents:
        node = node.setdefault(part, {})
    if value is DELETE:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return result


DELETE = object()


@dataclass(frozen=True)
class BadManifest:
    id: str
    path: str  # dotted path to change, from the document root
    value: Any
    field: str  # the field the error must name
    base: Manifest | None = None


_TRAINING = make_job_manifest(workload={"type": "Training", "sequenceLength": 2048, "batchSize": 1})

BAD_MANIFESTS: tuple[BadManifest, ...] = (
    BadManifest("missing-parameters", "spec.model.parameters", DELETE, "spec.model.parameters"),
    BadManifest("parameters-not-a-number", "spec.model.parameters", "abc", "spec.model.parameters"),
    BadManifest("parameters-negative", "spec.model.parameters", "-7B", "spec.model.parameters"),
    BadManifest("parameters-zero", "spec.model.parameters", 0, "spec.model.parameters"),
    BadManifest("parameters-absurd", "spec.model.parameters", "1e20", "spec.model.parameters"),
    BadManifest("parameters-absurd-int", "spec.model.parameters", 10**17, "spec.model.parameters"),
    BadManifest("parameters-eight", "spec.model.parameters", 8, "spec.model.parameters"),
    BadManifest("parameters-lower-case-suffix", "spec.model.parameters", "8b", "spec.model.parameters"),
    BadManifest("batch-size-absurd", "spec.workload.batchSize", 1_000_000, "spec.workload.batchSize"),
    BadManifest("unknown-precision", "spec.model.precision", "fp64", "spec.model.precision"),
    BadManifest("unknown-workload-type", "spec.workload.type", "Serving", "spec.workload.type"),
    BadManifest("zero-replicas", "spec.replicas", 0, "spec.replicas"),
    BadManifest("rendezvous-port-too-high", "spec.rendezvous.port", 65536, "spec.rendezvous.port"),
    BadManifest("rendezvous-port-zero", "spec.rendezvous.port", 0, "spec.rendezvous.port"),
    BadManifest(
        "negative-max-restarts", "spec.failurePolicy.maxRestarts", -1, "spec.failurePolicy.maxRestarts"
    ),
    BadManifest(
        "unknown-restart-scope", "spec.failurePolicy.restartScope", "Pod", "spec.failurePolicy.restartScope"
    ),
    BadManifest(
        "zero-max-unavailable", "spec.updateStrategy.maxUnavailable", 0, "spec.updateStrategy.maxUnavailable"
    ),
    BadManifest(
        "max-unavailable-not-a-number",
        "spec.updateStrategy.maxUnavailable",
        "one",
        "spec.updateStrategy.maxUnavailable",
    ),
    BadManifest("zero-stage-too-high", "spec.workload.zeroStage", 4, "spec.workload.zeroStage", _TRAINING),
    BadManifest("lora-rank-on-inference", "spec.workload.loraRank", 16, "spec.workload"),
    BadManifest("optimizer-on-inference", "spec.workload.optimizer", "AdamW", "spec.workload"),
    BadManifest(
        "lora-targets-on-training", "spec.workload.loraTargets", "attention", "spec.workload", _TRAINING
    ),
    BadManifest("offload-on-inference", "spec.workload.offload", "Optimizer", "spec.workload"),
    BadManifest("framework-on-inference", "spec.workload.framework", "torchtune", "spec.workload"),
    BadManifest(
        "parameter-offload-below-stage-3",
        "spec.workload.offload",
        "OptimizerAndParameters",
        "spec.workload",
        _TRAINING,
    ),
    BadManifest(
        "unknown-lora-targets", "spec.workload.loraTargets", "mlp", "spec.workload.loraTargets", _TRAINING
    ),
    BadManifest("zero-sequence-length", "spec.workload.sequenceLength", 0, "spec.workload.sequenceLength"),
    BadManifest(
        "bad-memory-quantity", "spec.accelerator.memoryPerDevice", "lots", "spec.accelerator.memoryPerDevice"
    ),
    BadManifest(
        "memory-in-gigabytes", "spec.accelerator.memoryPerDevice", "80GB", "spec.accelerator.memoryPerDevice"
    ),
    BadManifest(
        "bad-duration", "spec.scheduling.expectedDuration", "soon", "spec.scheduling.expectedDuration"
    ),
    BadManifest(
        "kv-heads-do-not-divide",
        "spec.model.architecture",
        {"layers": 32, "hiddenSize": 4096, "attentionHeads": 32, "kvHeads": 5},
        "spec.model.architecture",
    ),
)


@dataclass(frozen=True)
class MalformedForm:
    path: str  # dotted path of a parameter count, quantity or duration
    value: Any
    example: str  # part of the valid forms every layer's message must show

    def __str__(self) -> str:  # the test id
        return f"{self.path.rsplit('.', 1)[-1]}={self.value!r}"


# Every layer (pydantic, the CRD's CEL rules, `modeljob estimate`, the API server) answers these
# with a sentence naming the field and showing valid forms, never a regular expression.
MALFORMED_FORMS: tuple[MalformedForm, ...] = (
    MalformedForm("spec.model.parameters", "-7B", "such as 7B, 70.6B"),
    MalformedForm("spec.model.parameters", "8b", "K, M, B, T in capitals"),
    MalformedForm("spec.model.parameters", 8, "from 1M to 100T"),
    MalformedForm("spec.accelerator.memoryPerDevice", "80GB", "such as 80Gi"),
    MalformedForm("spec.resources.cpu", "2 cores", "such as 4, 1.5 or 500m"),
    MalformedForm("spec.resources.memory", "64 GiB", "such as 80Gi"),
    MalformedForm("spec.scheduling.expectedDuration", "soon", "such as 2h, 90m"),
)


def malformed_manifest(case: MalformedForm) -> Manifest:
    return with_field(make_job_manifest(), case.path, case.value)


def bad_manifest(case: BadManifest) -> Manifest:
    return with_field(case.base or make_job_manifest(), case.path, case.value)
