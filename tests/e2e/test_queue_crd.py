"""The generated Queue CRD in the real API server: the example accepted, bad input refused naming the field.

The offline checks (tests/api/test_queue_crd.py) evaluate the CEL rules with cel-python; this
proves the API server compiles them within its cost budget and answers the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_queue_crd import BAD, Bad, queue_manifest
from tests.e2e.kube import Cluster

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / "modeljob.dev_queues.yaml"
EXAMPLE = ROOT / "crds" / "examples" / "queues" / "two-teams.yaml"


@pytest.fixture(scope="module")
def crd(cluster: Cluster) -> Iterator[Cluster]:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_FILE))
    cluster.kubectl("wait", "--for=condition=Established", "--timeout=30s", "crd/queues.modeljob.dev")
    yield cluster
    # Queues are cluster-scoped: no test namespace takes them away.
    cluster.kubectl("delete", "-f", str(EXAMPLE), "--ignore-not-found", check=False)


def apply(cluster: Cluster, manifest: dict[str, Any]) -> tuple[int, str]:
    result = cluster.kubectl("apply", "-f", "-", stdin=json.dumps(manifest), check=False)
    return result.returncode, result.stderr


def test_api_server_accepts_the_two_team_example_and_kubectl_get_shows_the_columns(crd: Cluster) -> None:
    crd.kubectl("apply", "-f", str(EXAMPLE))
    names = crd.kubectl("get", "mjq", "-o", "name").stdout.split()
    assert {"queue.modeljob.dev/research", "queue.modeljob.dev/team-a", "queue.modeljob.dev/team-b"} <= set(
        names
    )
    header = crd.kubectl("get", "mjq").stdout.splitlines()[0].split()
    assert header == ["NAME", "PARENT", "NOMINAL", "USED", "BORROWED", "PENDING", "ADMITTED", "AGE"]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.id)
def test_api_server_rejects_bad_queue_naming_the_field(crd: Cluster, case: Bad) -> None:
    manifest = case.manifest
    if case.id != "own-parent":  # a name of its own, so no accepted case could clash with another
        manifest = {**manifest, "metadata": {"name": f"bad-{case.id}"}}
    code, err = apply(crd, manifest)
    assert code != 0, f"{case.id} was accepted by the API server"
    assert re.sub(r"[.](\d+)", r"[\1]", case.field) in err, err  # the server writes quota[0]


def test_a_good_queue_is_accepted(crd: Cluster) -> None:
    code, err = apply(crd, queue_manifest("good-queue", order="time-slice", timeSlice="1h"))
    assert code == 0, err
    crd.kubectl("delete", "mjq", "good-queue")
