"""The Helm chart against the real control plane: its manifests pass the API server's own validation,
and install, upgrade and uninstall behave (the CRDs and users' ModelJobs outlive the release).

The operator pod is a kwok pod here (Running, no container runs): enough for the Deployment's
rollout; tests/e2e/test_least_privilege.py runs the operator itself with the chart's RBAC.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.kube import Cluster
from tests.e2e.operator_fixtures import apply, get_job, install_crds, model_job

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "modeljob-operator"
CRDS = ("modeljobs.modeljob.dev", "queues.modeljob.dev")
# Every optional template on. The ServiceMonitor is left to tests/adapters/test_helm_chart.py:
# its CRD (prometheus-operator's) is no Kubernetes API and this cluster does not have it.
EVERY_TOGGLE = (
    "scheduler.enabled=true",
    "networkPolicy.enabled=true",
    "networkPolicy.extenderFrom[0].ipBlock.cidr=10.0.0.0/24",
    "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring",
    "settings.leaderElection.identity=me",
    "settings.kubernetes.context=ctx",
)
WAIT = "--timeout=120s"


def helm(cluster: Cluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(cluster.bin_dir / "helm"), f"--kubeconfig={cluster.kubeconfig}", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check and result.returncode != 0:
        pytest.fail(f"helm {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def sets(*values: str) -> list[str]:
    return [flag for value in values for flag in ("--set", value)]


def adopt_crds(cluster: Cluster, release: str, namespace: str) -> None:
    """Let the release take over CRDs that exist already (installed from crds/, or kept by an earlier
    release): Helm refuses to install over objects without its ownership labels (docs/helm.md)."""
    for crd in CRDS:
        cluster.kubectl("label", "--overwrite", f"crd/{crd}", "app.kubernetes.io/managed-by=Helm")
        cluster.kubectl(
            "annotate",
            "--overwrite",
            f"crd/{crd}",
            f"meta.helm.sh/release-name={release}",
            f"meta.helm.sh/release-namespace={namespace}",
        )


@pytest.fixture
def release(cluster: Cluster, namespace: str) -> Iterator[str]:
    """A release name for this test, uninstalled afterwards if the test left it installed."""
    install_crds(cluster)
    name = f"mj-{uuid.uuid4().hex[:6]}"
    yield name
    helm(cluster, "uninstall", name, "--namespace", namespace, "--wait", WAIT, check=False)


@pytest.mark.parametrize("toggles", [(), EVERY_TOGGLE], ids=["defaults", "every-toggle-on"])
def test_rendered_manifests_pass_the_api_servers_validation(
    cluster: Cluster, namespace: str, toggles: tuple[str, ...]
) -> None:
    install_crds(cluster)  # the chart renders its CRDs; the cluster must know them for the dry run
    rendered = helm(cluster, "template", "mj", str(CHART), "--namespace", namespace, *sets(*toggles)).stdout
    documents = [d for d in yaml.safe_load_all(rendered) if d]
    checked = cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        stdin="\n---\n".join(json.dumps(d) for d in documents),
        check=False,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.count("(server dry run)") == len(documents)


def _deployment(cluster: Cluster, namespace: str, release: str) -> dict[str, Any]:
    out = cluster.kubectl("-n", namespace, "get", "deployment", f"{release}-modeljob-operator", "-o", "json")
    return dict(json.loads(out.stdout))


def _env(deployment: dict[str, Any]) -> dict[str, str]:
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container["env"]}


def _replica_sets(cluster: Cluster, namespace: str) -> set[str]:
    out = cluster.kubectl("-n", namespace, "get", "replicasets", "-o", "name")
    return set(out.stdout.split())


def test_install_upgrade_uninstall_keeps_the_crds_and_users_modeljobs(
    cluster: Cluster, namespace: str, release: str
) -> None:
    adopt_crds(cluster, release, namespace)
    installed = helm(cluster, "install", release, str(CHART), "--namespace", namespace, "--wait", WAIT)
    assert "rollout status" in installed.stdout  # NOTES.txt: what to do next
    first = _deployment(cluster, namespace, release)
    assert _env(first)["MODELJOB_QUEUE__POLICY"] == "fcfs"
    apply(cluster, namespace, model_job("users-job", None))
    before = _replica_sets(cluster, namespace)

    helm(
        cluster,
        "upgrade",
        release,
        str(CHART),
        "--namespace",
        namespace,
        "--reuse-values",
        *sets("settings.queue.policy=priority"),
        "--wait",
        WAIT,
    )
    cluster.kubectl("-n", namespace, "rollout", "status", f"deployment/{release}-modeljob-operator", WAIT)
    upgraded = _deployment(cluster, namespace, release)
    assert _env(upgraded)["MODELJOB_QUEUE__POLICY"] == "priority"
    assert upgraded["metadata"]["generation"] > first["metadata"]["generation"]
    assert _replica_sets(cluster, namespace) - before, "the upgrade rolled out no new ReplicaSet"

    helm(cluster, "uninstall", release, "--namespace", namespace, "--wait", WAIT)
    gone = cluster.kubectl("-n", namespace, "get", "deployment", f"{release}-modeljob-operator", check=False)
    assert "NotFound" in gone.stderr
    assert (
        "NotFound"
        in cluster.kubectl("get", "clusterrole", f"{release}-modeljob-operator", check=False).stderr
    )
    for crd in CRDS:
        cluster.kubectl("get", f"crd/{crd}")
    assert get_job(cluster, namespace, "users-job")["metadata"]["name"] == "users-job"


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("replicaCount=-1", "/replicaCount"),
        ("settings.queue.policy=sjf", "/settings/queue/policy"),
        ("settings.scoring.gpuFragmentation=heavy", "/settings/scoring/gpuFragmentation"),
    ],
    ids=["negative-replicas", "unknown-policy", "weight-not-a-number"],
)
def test_install_with_a_bad_value_fails_naming_it_and_creates_nothing(
    cluster: Cluster, namespace: str, release: str, value: str, named: str
) -> None:
    failed = helm(
        cluster, "install", release, str(CHART), "--namespace", namespace, *sets(value), check=False
    )
    assert failed.returncode != 0
    assert named in failed.stderr, failed.stderr
    listed = helm(cluster, "list", "--namespace", namespace, "--all", "-q").stdout.split()
    assert release not in listed
