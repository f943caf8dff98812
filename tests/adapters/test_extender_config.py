"""hack/extender: the kube-scheduler configuration we ship is valid, and its two copies agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from modeljob.adapters.extender.settings import ExtenderSettings
from modeljob.adapters.kube_values import KNOWN_ACCELERATORS

HACK = Path(__file__).resolve().parents[2] / "hack" / "extender"
SNIPPET = HACK / "extenders.yaml"
FULL = HACK / "kube-scheduler-config.yaml"
# An extended resource name: domain-qualified, and not in the kubernetes.io namespace (kube-scheduler's
# validation rejects the rest in managedResources).
_EXTENDED = re.compile(
    r"^(?!.*kubernetes\.io/)[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def extenders(path: Path) -> list[dict[str, Any]]:
    document = yaml.safe_load(path.read_text())
    entries: list[dict[str, Any]] = document["extenders"]
    return entries


def test_the_snippet_for_up_sh_is_the_full_configurations_list_with_a_local_url() -> None:
    [local] = extenders(SNIPPET)
    [shipped] = extenders(FULL)
    assert {k: v for k, v in local.items() if k != "urlPrefix"} == {
        k: v for k, v in shipped.items() if k != "urlPrefix"
    }
    settings = ExtenderSettings()
    assert local["urlPrefix"] == f"http://127.0.0.1:{settings.port}{settings.path_prefix}"
    assert shipped["urlPrefix"].endswith(f":{settings.port}{settings.path_prefix}")


def test_the_configuration_passes_kube_schedulers_validation_rules() -> None:
    document = yaml.safe_load(FULL.read_text())
    assert document["apiVersion"] == "kubescheduler.config.k8s.io/v1"
    assert document["kind"] == "KubeSchedulerConfiguration"
    entries = document["extenders"]
    assert sum(1 for e in entries if e.get("bindVerb")) <= 1, "at most one extender may bind"
    for entry in entries:
        if entry.get("prioritizeVerb"):
            assert entry["weight"] > 0
        names = [r["name"] for r in entry["managedResources"]]
        assert len(names) == len(set(names))
        assert all(_EXTENDED.match(name) for name in names), names


def test_every_accelerator_the_operator_knows_goes_to_the_extender_which_alone_counts_it() -> None:
    [entry] = extenders(FULL)
    assert [r["name"] for r in entry["managedResources"]] == list(KNOWN_ACCELERATORS)
    assert all(r["ignoredByScheduler"] for r in entry["managedResources"])
    # ignoredByScheduler hands the count to us, so an unreachable extender must not be skipped.
    assert entry["ignorable"] is False


def test_the_scheduler_waits_longer_than_our_bind_takes_to_give_up() -> None:
    [entry] = extenders(FULL)
    http_timeout = float(entry["httpTimeout"].removesuffix("s"))
    assert ExtenderSettings().bind_timeout_seconds < http_timeout
    assert entry["nodeCacheCapable"] is True
    assert yaml.safe_load(FULL.read_text())["percentageOfNodesToScore"] == 100


def test_the_extender_knows_the_weight_kube_scheduler_gives_it() -> None:
    """The filter's shortlist is computed from this weight: a mismatch would pass too few nodes
    (overruling the pod's preferences) or too many."""
    [entry] = extenders(FULL)
    assert ExtenderSettings().scheduler_weight == entry["weight"]
    # The shipped profile is kube-scheduler's default one, whose score plugins sum to the default range.
    assert "plugins" not in yaml.safe_load(FULL.read_text())["profiles"][0]
