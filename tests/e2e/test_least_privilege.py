"""Least privilege, proven: the operator runs its lifecycle as the chart's ServiceAccount, and nothing more.

The chart's ServiceAccount, ClusterRole and binding are rendered by helm and applied; a token for
the ServiceAccount comes from the TokenRequest API (`kubectl create token`) into a kubeconfig of
its own; the operator process runs with that kubeconfig only. Then the same credentials try what
the operator must never do, and the API server refuses each (mutations as server-side dry runs,
so a wrongly granted right would still change nothing).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeljob.adapters import kube_services
from modeljob.adapters.cluster_errors import NotFoundError
from tests.cluster import exists
from tests.e2e.kube import Cluster, wait_for
from tests.e2e.operator_fixtures import (
    IDENTITY,
    Pool,
    apply,
    get_job,
    install_crds,
    job_pods,
    model_job,
    operators,
    pools,
    wait_event,
    wait_phase,
)

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "modeljob-operator"
TOKEN_SECONDS = 3600


@dataclass(frozen=True)
class Account:
    """The chart's ServiceAccount in its namespace, and a kubeconfig holding only its token."""

    namespace: str
    name: str
    kubeconfig: Path


def _service_account_objects(cluster: Cluster, release: str, namespace: str) -> str:
    result = subprocess.run(
        [
            str(cluster.bin_dir / "helm"),
            "template",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--show-only",
            "templates/serviceaccount.yaml",
            "--show-only",
            "templates/rbac.yaml",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _token_kubeconfig(cluster: Cluster, account: str, namespace: str, path: Path) -> Path:
    """The admin kubeconfig's server and CA, with the ServiceAccount's token as the only credential."""
    token = cluster.kubectl(
        "-n", namespace, "create", "token", account, f"--duration={TOKEN_SECONDS}s"
    ).stdout.strip()
    config = yaml.safe_load(cluster.kubectl("config", "view", "--raw", "--minify", "--flatten").stdout)
    config["users"] = [{"name": account, "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = account
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def account(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Account]:
    install_crds(cluster)  # as the admin: installing CRDs is the chart's job, not the operator's
    release = f"lp-{uuid.uuid4().hex[:6]}"
    namespace = f"e2e-{release}"
    cluster.gateway.create_namespace(namespace, labels={"modeljob.dev/e2e": "true"})
    objects = _service_account_objects(cluster, release, namespace)
    cluster.kubectl("apply", "-f", "-", stdin=objects)
    name = f"{release}-modeljob-operator"
    wait_for(lambda: exists(lambda: cluster.gateway.read_service_account(namespace, name)), "the SA")
    kubeconfig = _token_kubeconfig(cluster, name, namespace, tmp_path_factory.mktemp("sa") / "kubeconfig")
    yield Account(namespace=namespace, name=name, kubeconfig=kubeconfig)
    cluster.kubectl("delete", "clusterrole,clusterrolebinding", name, "--ignore-not-found", check=False)
    with contextlib.suppress(NotFoundError):
        cluster.gateway.delete_namespace(namespace)


@pytest.fixture
def as_account(cluster: Cluster, account: Account) -> Cluster:
    """The cluster as the ServiceAccount sees it (kubectl and the operator use its kubeconfig)."""
    return Cluster(kubeconfig=account.kubeconfig, bin_dir=cluster.bin_dir, gateway=cluster.gateway)


@pytest.fixture
def pool(cluster: Cluster, namespace: str) -> Iterator[Pool]:
    yield from pools(cluster, namespace)


@pytest.fixture
def start_operator(as_account: Cluster, tmp_path: Path) -> Iterator[Any]:
    yield from operators(as_account, tmp_path)


def test_the_operator_runs_its_whole_lifecycle_as_the_charts_service_account(
    cluster: Cluster,
    account: Account,
    *,
    as_account: Cluster,
    namespace: str,
    pool: Pool,
    start_operator: Any,
) -> None:
    # Its Lease in its own namespace, as in a pod (the chart's Role is there); it must create,
    # read and renew it before its loop acts.
    operator = start_operator(MODELJOB_LEADER_ELECTION__LEASE_NAMESPACE=account.namespace)
    pool.add("h100", 1)
    nonsense = model_job("nonsense", pool)
    nonsense["spec"]["template"]["spec"]["containers"] = []
    apply(cluster, namespace, model_job("gang", pool, replicas=2, gpus=4), nonsense)
    # patch status (Invalid with the field), create an Event
    wait_phase(cluster, namespace, "nonsense", "Invalid")
    wait_event(cluster, namespace, "nonsense", "InvalidSpec")
    # create the job's Service and its pods on their nodes, list and watch nodes and pods,
    # patch status
    wait_phase(cluster, namespace, "gang", "Running")
    first = {p["metadata"]["name"] for p in job_pods(cluster, namespace, "gang")}
    assert len(first) == 2
    service = cluster.gateway.read_service(namespace, "gang")
    assert kube_services.controller_uid(service) == get_job(cluster, namespace, "gang")["metadata"]["uid"]
    # get a Service: a restarted operator finds the job's Service there (409) and reads whose it is
    operator.kill()
    operator.start()
    # a lost replica: the operator deletes the gang's other pod and places the whole gang again
    cluster.gateway.delete_pod(namespace, sorted(first)[0], grace_period_seconds=0)
    wait_for(
        lambda: (
            len(pods := job_pods(cluster, namespace, "gang")) == 2
            and not {p["metadata"]["name"] for p in pods} & first
        ),
        "the gang to be placed again with new pods",
        timeout_seconds=60,
    )
    wait_phase(cluster, namespace, "gang", "Running", timeout_seconds=60)
    wait_event(cluster, namespace, "gang", "PodLost")
    # get one job: the loop does it when its status write after binding meets a conflict (409),
    # which happens only when kopf writes the job at that moment, so it is checked here directly
    assert as_account.kubectl("-n", namespace, "get", "modeljob", "gang", check=False).returncode == 0
    lease = json.loads(
        as_account.kubectl("-n", account.namespace, "get", "lease", "modeljob-operator", "-o", "json").stdout
    )
    assert lease["spec"]["holderIdentity"] == IDENTITY
    assert lease["spec"]["renewTime"] != lease["spec"]["acquireTime"], "renewed, not only created"
    log = operator.log_tail(100_000).lower()
    assert "forbidden" not in log
    assert " 403" not in log


@pytest.mark.parametrize(
    "attempt",
    [
        ("get", "secrets", "-n", "{own}"),
        ("get", "secrets", "--all-namespaces"),
        ("get", "configmaps", "--all-namespaces"),
        ("delete", "node", "{node}", "--dry-run=server"),
        ("label", "node", "{node}", "stolen=yes", "--dry-run=server"),
        ("-n", "{other}", "create", "configmap", "x", "--dry-run=server"),
        ("-n", "{other}", "create", "deployment", "x", "--image=x", "--dry-run=server"),
        ("-n", "default", "delete", "service", "kubernetes", "--dry-run=server"),
        ("-n", "{other}", "delete", "modeljob", "any", "--dry-run=server"),
        ("create", "clusterrolebinding", "x", "--clusterrole=cluster-admin", "--user=x", "--dry-run=server"),
        ("delete", "crd", "modeljobs.modeljob.dev", "--dry-run=server"),
        ("-n", "{other}", "create", "token", "default"),
        ("-n", "{own}", "delete", "lease", "modeljob-operator", "--dry-run=server"),
        ("-n", "{own}", "get", "lease", "someone-elses"),
        ("-n", "{own}", "get", "leases"),
        ("-n", "{other}", "get", "lease", "modeljob-operator"),
    ],
    ids=[
        "read-own-namespace-secrets",
        "read-any-secret",
        "read-configmaps",
        "delete-a-node",
        "change-a-node",
        "create-a-configmap-elsewhere",
        "create-a-deployment-elsewhere",
        "delete-a-service",
        "delete-users-modeljobs",
        "grant-itself-more",
        "delete-the-crd",
        "mint-another-accounts-token",
        "delete-its-lease",
        "read-another-lease",
        "list-leases",
        "read-a-lease-elsewhere",
    ],
)
def test_the_charts_service_account_is_refused_what_the_operator_must_never_do(
    cluster: Cluster, account: Account, as_account: Cluster, namespace: str, attempt: tuple[str, ...]
) -> None:
    node = cluster.gateway.list_nodes()[0]["metadata"]["name"]
    args = [a.format(own=account.namespace, other=namespace, node=node) for a in attempt]
    refused = as_account.kubectl(*args, check=False)
    assert refused.returncode != 0
    assert "forbidden" in refused.stderr.lower(), refused.stderr
