"""The generated CRD in the real API server: examples accepted, bad input refused naming the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.kube import Cluster
from tests.manifests import (
    BAD_MANIFESTS,
    MALFORMED_FORMS,
    BadManifest,
    MalformedForm,
    bad_manifest,
    make_job_manifest,
    malformed_manifest,
)

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "modeljob.dev_modeljobs.yaml"
EXAMPLES = sorted((ROOT / "crds" / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def crd(cluster: Cluster) -> Cluster:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/modeljobs.modeljob.dev")
    return cluster


def apply(
    cluster: Cluster, namespace: str, manifest: dict[str, Any], *, check: bool = False
) -> tuple[int, str]:
    result = cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest), check=check)
    return result.returncode, result.stderr


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_api_server_accepts_every_example(crd: Cluster, namespace: str, example: Path) -> None:
    crd.kubectl("apply", "-n", namespace, "-f", str(example))
    name = yaml.safe_load(example.read_text(encoding="utf-8"))["metadata"]["name"]
    assert (
        crd.kubectl("get", "mj", name, "-n", namespace, "-o", "name").stdout.strip()
        == f"modeljob.modeljob.dev/{name}"
    )


def test_integer_and_exponent_parameter_counts_are_accepted(crd: Cluster, namespace: str) -> None:
    for index, parameters in enumerate([7000000000, "405e9", "70.6B"]):
        code, err = apply(crd, namespace, make_job_manifest(f"count-{index}", parameters=parameters))
        assert code == 0, err


@pytest.mark.parametrize("case", BAD_MANIFESTS, ids=lambda c: c.id)
def test_api_server_rejects_bad_manifest_naming_the_field(
    crd: Cluster, namespace: str, case: BadManifest
) -> None:
    code, err = apply(crd, namespace, bad_manifest(case))
    assert code != 0, f"{case.id} was accepted by the API server"
    assert case.field in err, err


def test_printer_columns_show_phase_pods_gpus_and_nodes(crd: Cluster, namespace: str) -> None:
    apply(crd, namespace, make_job_manifest("shown"), check=True)
    header = crd.kubectl("get", "mj", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "PHASE", "REPLICAS", "PODS", "GPUS", "NODES", "AGE"]


def test_omitted_replicas_is_filled_in_as_1_so_the_column_is_not_blank(crd: Cluster, namespace: str) -> None:
    manifest = make_job_manifest("one-replica")
    assert "replicas" not in manifest["spec"]
    apply(crd, namespace, manifest, check=True)
    shown = crd.kubectl("get", "mj", "one-replica", "-n", namespace, "-o", "jsonpath={.spec.replicas}")
    assert shown.stdout == "1"


@pytest.mark.parametrize("case", MALFORMED_FORMS, ids=str)
def test_api_server_answers_a_malformed_written_form_with_a_sentence(
    crd: Cluster, namespace: str, case: MalformedForm
) -> None:
    code, err = apply(crd, namespace, malformed_manifest(case))
    assert code != 0
    assert f"{case.path} must be " in err, err
    assert case.example in err, err
    assert "^(" not in err, err  # no regular expression


def test_kubectl_explain_describes_the_spec_and_its_enums(crd: Cluster) -> None:
    spec = crd.kubectl("explain", "modeljob.spec").stdout
    workload = crd.kubectl("explain", "modeljob.spec.workload.type").stdout
    assert "<empty>" not in spec
    assert "<no description>" not in spec
    assert "The model, the work and the devices" in spec
    assert "QLoRA" in workload
