"""`modeljob estimate`: readable tables, exact JSON, and one clear line (exit 2) for bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeljob.adapters.kube_jobs import job_facts
from modeljob.cli import main
from modeljob.core.node_types import node_types, size_job
from tests.manifests import (
    BAD_MANIFESTS,
    MALFORMED_FORMS,
    MalformedForm,
    bad_manifest,
    make_job_manifest,
    malformed_manifest,
)
from tests.operator_builders import make_node

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "crds" / "examples").glob("*.yaml"))
TWELVE = {
    "weightsBytes",
    "kvCacheBytes",
    "activationsBytes",
    "gradientsBytes",
    "optimizerStatesBytes",
    "overheadBytes",
    "totalBytes",
    "gpus",
    "gpuMemoryPerGpuBytes",
    "cpuMilli",
    "memoryBytes",
    "ephemeralStorageBytes",
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, *documents: dict[str, Any], name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump_all(documents), encoding="utf-8")
    return path


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_estimates_as_json_with_the_integer_fields(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "estimate", "-f", str(example), "-o", "json")
    assert (code, err) == (0, "")
    result = json.loads(out)
    assert set(result) >= TWELVE
    assert all(isinstance(result[key], int) and result[key] >= 0 for key in TWELVE)
    assert result["gpus"] >= 1
    assert result["gpuMemoryPerGpuBytes"] <= result["deviceMemoryBytes"]


def test_table_explains_each_number_and_names_the_default_device(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "estimate", "-f", str(write(tmp_path, make_job_manifest("chat"))))
    assert code == 0
    assert "ModelJob chat" in out
    assert "sized for 80 GiB devices (default 80Gi" in out
    for label in ("weights", "KV cache", "total GPU memory", "GPUs", "host memory", "scratch disk"):
        assert label in out


def test_gpu_memory_flag_changes_the_gpu_count(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, make_job_manifest(parameters="70B"))
    gpus = {}
    for memory in ("80Gi", "24Gi"):
        code, out, _ = run(capsys, "estimate", "-f", str(path), "--gpu-memory", memory, "-o", "json")
        assert code == 0
        gpus[memory] = json.loads(out)["gpus"]
    assert gpus["24Gi"] > gpus["80Gi"] >= 2


def test_several_documents_give_a_json_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, make_job_manifest("a"), make_job_manifest("b", parameters="70B"))
    code, out, _ = run(capsys, "estimate", "-f", str(path), "-o", "json")
    assert code == 0
    assert [item["name"] for item in json.loads(out)] == ["a", "b"]


def test_yaml_output_is_one_document_per_job(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, make_job_manifest("a"), make_job_manifest("b"))
    code, out, _ = run(capsys, "estimate", "-f", str(path), "-o", "yaml")
    assert code == 0
    assert [doc["name"] for doc in yaml.safe_load_all(out)] == ["a", "b"]


def assert_one_line_error(code: int, out: str, err: str, *needles: str) -> None:
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err


@pytest.mark.parametrize("case", BAD_MANIFESTS, ids=lambda c: c.id)
def test_bad_manifest_prints_one_line_naming_the_field(
    case: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, bad_manifest(case))
    assert_one_line_error(*run(capsys, "estimate", "-f", str(path)), case.field)


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert_one_line_error(
        *run(capsys, "estimate", "-f", str(tmp_path / "nope.yaml")), "nope.yaml", "no such file"
    )


def test_malformed_yaml_names_line_and_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("kind: ModelJob\nspec:\n  model: {parameters: 7B\n", encoding="utf-8")
    assert_one_line_error(*run(capsys, "estimate", "-f", str(path)), "broken.yaml:", "invalid YAML")


SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": []}}


def test_documents_of_other_kinds_are_skipped_and_named_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, make_job_manifest("chat"), SERVICE)
    code, out, err = run(capsys, "estimate", "-f", str(path), "-o", "json")
    assert code == 0
    assert json.loads(out)["name"] == "chat"
    assert err == f"skipped {path}#2: Service web: not a ModelJob\n"


def test_a_file_without_any_modeljob_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, SERVICE, {"apiVersion": "v1", "kind": "ConfigMap"})
    assert_one_line_error(
        *run(capsys, "estimate", "-f", str(path)), "no ModelJob documents found (only Service web, ConfigMap)"
    )


def test_a_document_without_a_kind_is_an_error_not_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = make_job_manifest()
    del manifest["kind"]
    path = write(tmp_path, manifest)
    assert_one_line_error(*run(capsys, "estimate", "-f", str(path)), "kind: expected ModelJob")


def test_dash_reads_the_manifest_from_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = yaml.safe_dump_all([SERVICE, make_job_manifest("piped")])
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    code, out, err = run(capsys, "estimate", "-f", "-", "-o", "json")
    assert code == 0
    assert (json.loads(out)["name"], json.loads(out)["source"]) == ("piped", "stdin#2")
    assert err == "skipped stdin#1: Service web: not a ModelJob\n"


@pytest.mark.parametrize("case", MALFORMED_FORMS, ids=str)
def test_a_malformed_written_form_gets_one_sentence_with_valid_forms(
    case: MalformedForm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "estimate", "-f", str(write(tmp_path, malformed_manifest(case))))
    assert_one_line_error(code, out, err, f"{case.path}: must be ", case.example)
    assert "^(" not in err  # no regular expression


def test_bad_gpu_memory_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, make_job_manifest())
    assert_one_line_error(*run(capsys, "estimate", "-f", str(path), "--gpu-memory", "lots"), "--gpu-memory")


def test_a_model_that_fits_nowhere_exits_1_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, make_job_manifest(parameters="100T"))
    code, out, _ = run(capsys, "estimate", "-f", str(path), "--gpu-memory", "24Gi")
    assert code == 1
    assert "DOES NOT FIT" in out


def test_a_job_that_cannot_fit_names_the_largest_part_and_the_fields_behind_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workload = {"type": "Inference", "sequenceLength": 8192, "batchSize": 65_536}
    path = write(tmp_path, make_job_manifest(workload=workload))
    code, out, _ = run(capsys, "estimate", "-f", str(path), "-o", "json")
    assert code == 1
    assert json.loads(out)["misfit"] == (
        "largest part: KV cache 768.0 GiB per GPU, "
        "from spec.workload.batchSize 65536 x spec.workload.sequenceLength 8192"
    )


# --- whole-node layouts ------------------------------------------------------------------------------

LLAMA_31_ARCH = {
    "405B": {"layers": 126, "hiddenSize": 16384, "attentionHeads": 128, "kvHeads": 8},
    "70B": {"layers": 80, "hiddenSize": 8192, "attentionHeads": 64, "kvHeads": 8},
}


def llama31(size: str, workload: dict[str, Any], **spec: Any) -> dict[str, Any]:
    arch = {
        **LLAMA_31_ARCH[size],
        "vocabSize": 128_256,
        "intermediateSize": 53_248 if size == "405B" else 28_672,
    }
    manifest = make_job_manifest(parameters=size, workload=workload, **spec)
    manifest["spec"]["model"]["architecture"] = arch
    return manifest


def test_405b_serving_at_8k_takes_two_whole_nodes_tp8_pp2_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, llama31("405B", {"type": "Inference", "sequenceLength": 8192}))
    code, out, _ = run(
        capsys, "estimate", "-f", str(path), "--gpu-memory", "80Gi", "--gpus-per-node", "8", "-o", "json"
    )
    result = json.loads(out)
    assert code == 0
    layout = {
        key: result[key] for key in ("gpus", "nodesPerReplica", "tensorParallelSize", "pipelineParallelSize")
    }
    assert layout == {"gpus": 8, "nodesPerReplica": 2, "tensorParallelSize": 8, "pipelineParallelSize": 2}
    why = result["explanation"]["gpus"]
    assert "TP 8 x PP 2 over 2 nodes x 8 GPUs" in why
    assert "PP divides 126 layers" in why
    assert "TP 8 x PP 1 needs" in why  # what one node would need, and that it does not fit


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        # ZeRO-3 over 32 data-parallel ranks with checkpointing: one GPU per rank (FSDP).
        pytest.param(
            {"zeroStage": 3, "activationCheckpointing": True},
            {"gpus": 1, "nodesPerReplica": 1, "tensorParallelSize": 1},
            id="fsdp-across-replicas",
        ),
        # Plain data parallel (no ZeRO): tensor parallel inside a node, pipeline stages across nodes.
        pytest.param({}, {"gpus": 8, "tensorParallelSize": 8}, id="tp-within-a-node"),
    ],
)
def test_a_70b_full_fine_tune_gets_a_layout_a_practitioner_would_recognise(
    spec: dict[str, Any], expected: dict[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    workload = {"type": "Training", "sequenceLength": 4096, **spec}
    path = write(tmp_path, llama31("70B", workload, replicas=32))
    code, out, _ = run(capsys, "estimate", "-f", str(path), "--gpus-per-node", "8", "-o", "json")
    result = json.loads(out)
    assert code == 0
    assert {key: result[key] for key in expected} == expected
    assert result["gpus"] <= 8  # never more GPUs per pod than a node has
    assert (
        result["tensorParallelSize"] * result["pipelineParallelSize"]
        == result["gpus"] * result["nodesPerReplica"]
    )


@pytest.mark.parametrize("value", ["0", "1000"])
def test_an_impossible_gpus_per_node_is_one_line_exit_2(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, make_job_manifest())
    assert_one_line_error(
        *run(capsys, "estimate", "-f", str(path), "--gpus-per-node", value), "--gpus-per-node"
    )


def test_qlora_downloads_the_16_bit_checkpoint_and_serving_a_quantized_one_its_own_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    qlora = llama31("70B", {"type": "QLoRA", "sequenceLength": 2048})
    awq = llama31("70B", {"type": "Inference"})
    awq["spec"]["model"]["precision"] = "int4"
    awq["metadata"]["name"] = "awq"
    code, out, _ = run(capsys, "estimate", "-f", str(write(tmp_path, qlora, awq)), "-o", "json")
    qlora_disk, awq_disk = (result["explanation"]["ephemeralStorageBytes"] for result in json.loads(out))
    assert code == 0
    assert "checkpoint 130.4 GiB (the bf16 files QLoRA downloads and quantizes while loading)" in qlora_disk
    assert "(the pre-quantized int4 files)" in awq_disk


# --- the CLI and the operator agree ------------------------------------------------------------------

# (--gpu-memory, devices per node): 1 x 16 GiB nodes are too small for the larger examples.
DEVICES = [("80Gi", 8), ("24Gi", 4), ("48Gi", 8), ("16Gi", 1)]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
@pytest.mark.parametrize("device", DEVICES, ids=lambda d: f"{d[1]}x{d[0]}")
def test_exit_1_exactly_when_the_operator_finds_no_layout_it_can_place(
    example: Path, device: tuple[str, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    memory, gpus_per_node = device
    manifest = yaml.safe_load(example.read_text(encoding="utf-8"))
    accelerator = manifest["spec"].setdefault("accelerator", {})
    accelerator.pop("memoryPerDevice", None)
    accelerator.pop("products", None)
    node = make_node("gpu-0", product="X", memory_gib=int(memory.removesuffix("Gi")), gpus=gpus_per_node)
    operator_sizing = size_job(job_facts(manifest), node_types([node.view]))
    path = write(tmp_path, manifest)
    flags = ("--gpu-memory", memory, "--gpus-per-node", str(gpus_per_node), "-o", "json")
    code, out, _ = run(capsys, "estimate", "-f", str(path), *flags)
    assert code == (0 if operator_sizing.candidates else 1), operator_sizing.rejected
    if operator_sizing.candidates:
        estimate = operator_sizing.candidates[0].estimate
        layout = ("gpus", "nodesPerReplica", "tensorParallelSize", "pipelineParallelSize")
        assert [json.loads(out)[key] for key in layout] == [estimate.to_dict()[key] for key in layout]
