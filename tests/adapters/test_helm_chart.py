"""The Helm chart (helm/modeljob-operator), rendered by the real helm binary: lint, templates, values.

Its generated files must be what modeljob.api.chart_values renders now; every setting must reach
its MODELJOB_* variable; bad values must fail naming the value. tests/e2e/test_helm.py installs it.

Marked e2e although it needs no cluster: it needs the helm that hack/control-plane/build.sh
builds with the control plane (about 12 minutes the first time), and `pytest -m "not e2e"` must
stay fast on a fresh clone. `make test` runs it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from modeljob.api import chart_values
from modeljob.settings import Settings, environment_variables
from tests.cluster import ControlPlaneError, binaries

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "modeljob-operator"
CRDS_FILE = REPO / "crds" / "modeljob.dev_modeljobs.yaml"
# Every optional part switched on (the settings that are unset by default, set).
ALL_TOGGLES = (
    "scheduler.enabled=true",
    "serviceMonitor.enabled=true",
    "networkPolicy.enabled=true",
    "settings.kubernetes.context=ctx",
    "settings.leaderElection.identity=me",
    "settings.leaderElection.leaseNamespace=elsewhere",
    "settings.kubernetes.kubeconfig=/etc/kubeconfig",
)
MANIFEST = dict[str, Any]
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def helm() -> Path:
    """The helm the control plane's build.sh built (the same binary the e2e tests use)."""
    try:
        return binaries() / "helm"
    except ControlPlaneError as exc:
        pytest.fail(f"the chart tests need build.sh's helm: {exc}")


def run_helm(helm: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, check=False)


def set_flags(sets: tuple[str, ...]) -> list[str]:
    """`--set` for each item; `--set-json` for fractions, which `--set` passes as strings."""
    flags: list[str] = []
    for item in sets:
        flags += ["--set-json", item.removeprefix("json:")] if item.startswith("json:") else ["--set", item]
    return flags


def render(helm: Path, *sets: str) -> list[MANIFEST]:
    result = run_helm(helm, "template", "mj", str(CHART), "--namespace", "modeljob", *set_flags(sets))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(manifests: list[MANIFEST], kind: str, name_suffix: str = "") -> MANIFEST:
    matches = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"].endswith(name_suffix)]
    assert len(matches) == 1, f"{len(matches)} {kind} objects named *{name_suffix}"
    return matches[0]


def operator_container(manifests: list[MANIFEST]) -> MANIFEST:
    container: MANIFEST = find(manifests, "Deployment", "modeljob-operator")["spec"]["template"]["spec"][
        "containers"
    ][0]
    return container


def chart_env(manifests: list[MANIFEST]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in operator_container(manifests)["env"] if "value" in e}


@pytest.fixture
def settings_from(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Settings as `modeljob run` would read them from a given environment (and nothing else)."""

    def read(env: dict[str, str]) -> Settings:
        for name in [n for n in os.environ if n.upper().startswith("MODELJOB_")]:
            monkeypatch.delenv(name)
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        return Settings()

    return read


# --- generated files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "rendered"),
    [
        (chart_values.SCHEMA_FILE, chart_values.render_values_schema),
        (chart_values.CRD_TEMPLATE, chart_values.render_crd_template),
        (chart_values.QUEUE_CRD_TEMPLATE, chart_values.render_queue_crd_template),
        (
            chart_values.VALUES_FILE,
            lambda: chart_values.render_values(chart_values.VALUES_FILE.read_text(encoding="utf-8")),
        ),
    ],
    ids=["values.schema.json", "templates/crd.yaml", "templates/crd-queues.yaml", "values.yaml settings"],
)
def test_generated_chart_file_is_current(path: Path, rendered: Any) -> None:
    assert path.read_text(encoding="utf-8") == rendered(), (
        f"{path.relative_to(REPO)} is stale: run `python -m modeljob.api.chart_values` and commit the result"
    )


def test_chart_crd_is_the_crds_directory_crd_kept_on_uninstall(helm: Path) -> None:
    crd = find(render(helm), "CustomResourceDefinition", "modeljobs.modeljob.dev")
    assert crd["metadata"]["annotations"].pop("helm.sh/resource-policy") == "keep"
    if not crd["metadata"]["annotations"]:
        del crd["metadata"]["annotations"]
    assert crd == yaml.safe_load(CRDS_FILE.read_text(encoding="utf-8"))


def test_chart_queue_crd_is_the_crds_directory_crd_kept_on_uninstall(helm: Path) -> None:
    crd = find(render(helm), "CustomResourceDefinition", "queues.modeljob.dev")
    assert crd["metadata"]["annotations"].pop("helm.sh/resource-policy") == "keep"
    if not crd["metadata"]["annotations"]:
        del crd["metadata"]["annotations"]
    assert crd == yaml.safe_load((REPO / "crds" / "modeljob.dev_queues.yaml").read_text(encoding="utf-8"))


def test_crds_install_false_renders_no_modeljob_crd(helm: Path) -> None:
    manifests = render(helm, "crds.install=false")
    assert {"modeljobs.modeljob.dev", "queues.modeljob.dev"}.isdisjoint(
        m["metadata"]["name"] for m in manifests
    )


# --- lint and render ------------------------------------------------------------------------------


@pytest.mark.parametrize("sets", [(), ALL_TOGGLES], ids=["defaults", "every-toggle-on"])
def test_chart_lints_strictly(helm: Path, sets: tuple[str, ...]) -> None:
    flags = [flag for item in sets for flag in ("--set", item)]
    result = run_helm(helm, "lint", "--strict", str(CHART), *flags)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("sets", "kinds"),
    [
        (
            (),
            {
                "CustomResourceDefinition": 2,  # ModelJob, Queue
                "ServiceAccount": 1,
                "ClusterRole": 1,
                "ClusterRoleBinding": 1,
                "Role": 1,  # the leader Lease
                "RoleBinding": 1,
                "Deployment": 1,
                "Service": 1,
                "PodDisruptionBudget": 1,
            },
        ),
        (
            ALL_TOGGLES,
            {
                "CustomResourceDefinition": 2,  # ModelJob, Queue
                "ServiceAccount": 2,
                "ClusterRole": 1,
                "ClusterRoleBinding": 3,
                "Role": 1,
                "RoleBinding": 2,
                "PodDisruptionBudget": 1,
                "ConfigMap": 1,
                "Deployment": 2,
                "Service": 1,
                "ServiceMonitor": 1,
                "NetworkPolicy": 1,
            },
        ),
    ],
    ids=["defaults", "every-toggle-on"],
)
def test_chart_renders_these_objects(helm: Path, sets: tuple[str, ...], kinds: dict[str, int]) -> None:
    manifests = render(helm, *sets)
    counted: dict[str, int] = {}
    for manifest in manifests:
        counted[manifest["kind"]] = counted.get(manifest["kind"], 0) + 1
    assert counted == kinds


def test_operator_container_runs_non_root_read_only_without_capabilities(helm: Path) -> None:
    manifests = render(helm)
    pod = find(manifests, "Deployment", "modeljob-operator")["spec"]["template"]["spec"]
    container = operator_container(manifests)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
    pod_id = next(e for e in container["env"] if e["name"] == "POD_ID")
    assert pod_id["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_second_scheduler_profile_calls_the_extender_service(helm: Path) -> None:
    manifests = render(helm, "scheduler.enabled=true", "scheduler.schedulerName=gpu-sched")
    config = yaml.safe_load(find(manifests, "ConfigMap", "scheduler")["data"]["config.yaml"])
    service = find(manifests, "Service", "modeljob-operator")
    extender_port = next(p["port"] for p in service["spec"]["ports"] if p["name"] == "extender")
    assert config["profiles"] == [{"schedulerName": "gpu-sched"}]
    assert config["extenders"][0]["urlPrefix"] == (
        f"http://mj-modeljob-operator.modeljob.svc:{extender_port}/scheduler"
    )


def test_the_second_schedulers_weight_is_the_one_the_extender_reckons_with(helm: Path) -> None:
    manifests = render(
        helm, "scheduler.enabled=true", "scheduler.extenderWeight=20", "settings.extender.schedulerWeight=20"
    )
    config = yaml.safe_load(find(manifests, "ConfigMap", "scheduler")["data"]["config.yaml"])
    assert config["extenders"][0]["weight"] == 20
    mismatch = run_helm(
        helm,
        "template",
        "mj",
        str(CHART),
        "--set",
        "scheduler.enabled=true",
        "--set",
        "scheduler.extenderWeight=20",
    )
    assert mismatch.returncode != 0
    assert (
        "scheduler.extenderWeight (20) must equal settings.extender.schedulerWeight (50)" in mismatch.stderr
    )


def _ingress_by_port(helm: Path, *sets: str) -> dict[str, list[dict[str, Any]] | None]:
    policy = find(render(helm, "networkPolicy.enabled=true", *sets), "NetworkPolicy")
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "operator"
    return {rule["ports"][0]["port"]: rule.get("from") for rule in policy["spec"]["ingress"]}


def test_network_policy_lets_only_the_extenders_callers_reach_it(helm: Path) -> None:
    alone = _ingress_by_port(helm)
    assert "extender" not in alone, "no caller named: nobody may call the unauthenticated extender"
    assert (alone["metrics"], alone["healthz"]) == (None, None), "scraping and probes stay open"
    wired = _ingress_by_port(
        helm,
        "scheduler.enabled=true",
        "networkPolicy.extenderFrom[0].ipBlock.cidr=10.0.0.0/24",
        "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring",
    )
    callers = wired["extender"]
    assert callers is not None
    assert callers[0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "scheduler"
    assert callers[1] == {"ipBlock": {"cidr": "10.0.0.0/24"}}
    assert wired["metrics"] == [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}]


def test_two_replicas_by_default_on_different_nodes_and_a_drain_keeps_one(helm: Path) -> None:
    manifests = render(helm)
    deployment = find(manifests, "Deployment", "modeljob-operator")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    (term,) = deployment["spec"]["template"]["spec"]["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["podAffinityTerm"] == {
        "topologyKey": "kubernetes.io/hostname",
        "labelSelector": {"matchLabels": selector},
    }
    budget = find(manifests, "PodDisruptionBudget")["spec"]
    assert budget == {"minAvailable": 1, "selector": {"matchLabels": selector}}


@pytest.mark.parametrize(
    "sets",
    [("replicaCount=1",), ("podDisruptionBudget.enabled=false",)],
    ids=["one-replica", "switched-off"],
)
def test_no_disruption_budget_that_would_block_every_drain(helm: Path, sets: tuple[str, ...]) -> None:
    assert "PodDisruptionBudget" not in {m["kind"] for m in render(helm, *sets)}


def test_the_lease_rules_grant_exactly_create_and_get_update_on_its_own_lease(helm: Path) -> None:
    manifests = render(helm, "settings.leaderElection.leaseName=mj-leader")
    role = find(manifests, "Role", "leader-election")
    assert role["metadata"]["namespace"] == "modeljob"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["mj-leader"],
            "verbs": ["get", "update"],
        },
    ]
    binding = find(manifests, "RoleBinding", "leader-election")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert binding["subjects"][0]["name"] == find(manifests, "ServiceAccount")["metadata"]["name"]
    cluster_rules = find(manifests, "ClusterRole")["rules"]
    assert not [rule for rule in cluster_rules if "coordination.k8s.io" in rule["apiGroups"]]


@pytest.mark.parametrize("enabled", [True, False], ids=["extender", "no-extender"])
def test_services_are_listed_and_watched_only_for_the_extenders_shortlist(helm: Path, enabled: bool) -> None:
    manifests = render(helm, f"settings.extender.enabled={str(enabled).lower()}")
    rules = [r for r in find(manifests, "ClusterRole")["rules"] if "services" in r["resources"]]
    verbs = sorted(verb for rule in rules for verb in rule["verbs"])
    assert verbs == (["create", "get", "list", "watch"] if enabled else ["create", "get"])


def test_every_cluster_role_rule_says_why() -> None:
    lines = (CHART / "templates" / "rbac.yaml").read_text(encoding="utf-8").splitlines()
    rules = [i for i, line in enumerate(lines) if line.strip().startswith("- apiGroups:")]
    assert rules
    assert all(lines[i - 1].strip().startswith("#") for i in rules)


# --- values map 1:1 to settings -------------------------------------------------------------------


def test_every_setting_has_exactly_one_value_and_variable(helm: Path) -> None:
    variables = set(chart_env(render(helm, *ALL_TOGGLES)))
    assert variables == {name for name, _, _ in environment_variables()}


def test_default_values_give_the_operator_its_own_defaults(helm: Path, settings_from: Any) -> None:
    assert settings_from(chart_env(render(helm))) == Settings()


@pytest.mark.parametrize(
    ("value", "read"),
    [
        ("settings.queue.policy=priority", lambda s: s.queue.policy.value == "priority"),
        (
            "json:settings.scoring.gpuFragmentation=2.5",
            lambda s: s.scoring.weights().gpu_fragmentation == 2.5,
        ),
        (
            "settings.leaderElection.leaseDurationSeconds=3600",
            lambda s: s.leader_election.lease_duration_seconds == 3600,
        ),
        (
            "settings.queue.defaultDurationSeconds=100000000",
            lambda s: s.queue.default_duration_seconds == 1e8,
        ),
        (
            "settings.nodeLabels.gpuMemoryMib=example.com/mem",
            lambda s: s.node_labels.gpu_memory_mib == "example.com/mem",
        ),
        ("json:settings.scheduling.debounceSeconds=0.25", lambda s: s.scheduling.debounce_seconds == 0.25),
    ],
    ids=["enum", "scorer-weight", "large-int", "large-float", "two-word-section", "fraction"],
)
def test_a_changed_value_reaches_the_operator(helm: Path, settings_from: Any, value: str, read: Any) -> None:
    assert read(settings_from(chart_env(render(helm, value))))


# --- bad values fail naming the value -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ("replicaCount=-1", "/replicaCount"),
        ("settings.queue.policy=sjf", "/settings/queue/policy"),
        ("settings.scoring.gpuFragmentation=heavy", "/settings/scoring/gpuFragmentation"),
        ("settings.scoring.gpuFragmentaton=1", "gpuFragmentaton"),
        ("settings.queue.polcy=fcfs", "polcy"),
        ("settings.leaderElection.leaseDurationSeconds=1", "/settings/leaderElection/leaseDurationSeconds"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
    ],
    ids=[
        "negative-replicas",
        "unknown-policy",
        "weight-not-a-number",
        "misspelt-scorer",
        "misspelt-key",
        "below-minimum",
        "unknown-pull-policy",
    ],
)
def test_bad_value_fails_naming_it(helm: Path, value: str, named: str) -> None:
    result = run_helm(helm, "template", "mj", str(CHART), "--set", value)
    assert result.returncode != 0
    assert named in result.stderr, result.stderr
