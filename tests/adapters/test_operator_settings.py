"""The operator's settings: environment variables in, one typed object out, and the documented table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from modeljob.commands import UsageError
from modeljob.commands.run import _run
from modeljob.core.leadership import LeaseTiming
from modeljob.core.queueing import QueueOrder
from modeljob.core.scoring.registry import registered_scorers, setting_name
from modeljob.core.scoring.weights import DEFAULT_WEIGHTS
from modeljob.settings import Settings, environment_variables, render_settings_table

DOCS = Path(__file__).resolve().parents[2] / "docs" / "settings.md"


def test_defaults_need_no_environment() -> None:
    settings = Settings()
    assert settings.queue.policy is QueueOrder.FCFS
    assert settings.scheduling.scheduler_name == "modeljob"
    assert settings.leader_election.enabled
    assert settings.leader_election.timing() == LeaseTiming(15, 10, 2)  # kube-scheduler's


def test_nested_variables_set_each_section(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELJOB_QUEUE__POLICY", "shortest-job-first")
    monkeypatch.setenv("MODELJOB_SCHEDULING__NODE_LOST_AFTER_SECONDS", "0")
    monkeypatch.setenv("modeljob_leader_election__enabled", "false")
    settings = Settings()
    assert settings.queue.policy is QueueOrder.SHORTEST_JOB_FIRST
    assert settings.scheduling.node_lost_after_seconds == 0
    assert not settings.leader_election.enabled


@pytest.mark.parametrize(
    ("variables", "problem"),
    [
        ({"LEASE_DURATION_SECONDS": "10"}, "shorter than the lease duration"),
        ({"RETRY_PERIOD_SECONDS": "9"}, "exceed 1.2 x the retry period"),
    ],
    ids=["deadline-not-below-duration", "retry-too-slow-for-the-deadline"],
)
def test_lease_timings_that_cannot_keep_one_leader_are_refused(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], problem: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(f"MODELJOB_LEADER_ELECTION__{name}", value)
    with pytest.raises(ValidationError, match=problem):
        Settings()


def test_the_scheduling_cycle_is_told_the_queue_scheduling_and_scoring_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MODELJOB_QUEUE__POLICY", "priority")
    monkeypatch.setenv("MODELJOB_QUEUE__STRICT", "true")
    monkeypatch.setenv("MODELJOB_QUEUE__AGING_PER_HOUR", "3")
    monkeypatch.setenv("MODELJOB_QUEUE__DEFAULT_DURATION_SECONDS", "600")
    monkeypatch.setenv("MODELJOB_SCHEDULING__NODE_LOST_AFTER_SECONDS", "45")
    monkeypatch.setenv("MODELJOB_SCORING__COST", "2")
    cycle = Settings().cycle()
    assert cycle.queue.order is QueueOrder.PRIORITY
    assert (cycle.queue.aging_per_hour, cycle.queue.default_duration_seconds) == (3, 600)
    assert cycle.strict
    assert cycle.node_lost_after_seconds == 45
    assert cycle.weights.cost == 2


def test_other_tools_variables_under_the_prefix_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELJOB_CACHE", "/tmp/cache")  # the Makefile's, not ours
    assert Settings().queue.policy is QueueOrder.FCFS


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MODELJOB_QUEUE__POLICY", "random"),
        ("MODELJOB_QUEUE__POLCY", "sjf"),
        ("MODELJOB_SCHEDULING__BIND_WORKERS", "0"),
        ("MODELJOB_SERVER__METRICS_PORT", "70000"),
        ("MODELJOB_SCORING__COST", "-1"),
    ],
    ids=["unknown-policy", "misspelt-field", "no-workers", "port-out-of-range", "negative-weight"],
)
def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError):
        Settings()


def test_at_least_one_scorer_must_count(monkeypatch: pytest.MonkeyPatch) -> None:
    for scorer in registered_scorers():
        monkeypatch.setenv(f"MODELJOB_SCORING__{setting_name(scorer).upper()}", "0")
    with pytest.raises(ValidationError, match="at least one scoring weight"):
        Settings()


def test_an_unknown_scorer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELJOB_SCORING__TEA_LEAVES", "1")
    with pytest.raises(ValidationError, match="unknown scorer 'tea_leaves'"):
        Settings()


def test_scoring_weights_reach_the_core(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELJOB_SCORING__COST", "2")
    weights = Settings().scoring.weights()
    assert weights.cost == 2
    assert weights.gpu_fragmentation == DEFAULT_WEIGHTS.gpu_fragmentation, (
        "unset weights keep the core's default"
    )


def test_run_names_the_bad_variable_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    monkeypatch.setenv("MODELJOB_QUEUE__POLICY", "random")
    with pytest.raises(UsageError, match=r"^MODELJOB_QUEUE__POLICY: Input should be"):
        _run(argparse.Namespace(kubeconfig=None, standalone=False))


def test_every_variable_is_documented_exactly_as_generated() -> None:
    text = DOCS.read_text()
    match = re.search(r"<!-- settings-table:start -->\n(.*?)<!-- settings-table:end -->", text, re.DOTALL)
    assert match is not None, "docs/settings.md lost its table markers"
    assert match.group(1) == render_settings_table(), (
        "regenerate the table with modeljob.settings.render_settings_table()"
    )
    assert len(environment_variables()) == match.group(1).count("\n") - 2
