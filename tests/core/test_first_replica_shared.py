"""Gangs of one request that differ only in their replica count (a deep queue holds such jobs by
the hundred) share the plan of their first replica when it finds no node (PlanMemo.first_failure),
and each still says what a cycle planning every job afresh says."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from modeljob.core import gang_placement
from modeljob.core.gang_request import GangRequest
from modeljob.core.jobs import Overrides
from modeljob.core.nodes import NodeTable
from modeljob.core.scheduling_cycle import CycleMemory
from modeljob.core.steps import Wait
from tests.core.test_cycle_memory import World, decide
from tests.operator_builders import H100, make_job, make_node, make_pod


def test_jobs_alike_but_for_their_replica_count_share_one_plan_of_their_first_replica(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Gangs of 2, 4 and 8 replicas of one request wait on an H100 node with one GPU free (a deep
    queue holds such classes by the hundred): their first replica finds no node, whatever the
    count, so it is planned once, and each job's reason (its own replica count, whether it ever
    fits) is word for word what a cycle planning afresh says."""
    shape = replace(make_job().shape, overrides=Overrides(gpus=2))
    jobs = [
        replace(make_job(f"j{n}", replicas=n, products=(H100,), created=n), shape=shape, uid=f"u{n}")
        for n in (2, 4, 8)
    ]
    world = World(
        [make_node("h100-0"), make_node("h100-1")],
        [make_pod("a", node="h100-0", gpus=7), make_pod("b", node="h100-1", gpus=7)],
        jobs,
    )
    afresh = decide(world, 1000, None)
    replicas_planned: list[int] = []
    plan = gang_placement._plan

    def counted(table: NodeTable, gang: GangRequest, **kwargs: Any) -> Any:
        replicas_planned.append(gang.replicas)
        return plan(table, gang, **kwargs)

    monkeypatch.setattr(gang_placement, "_plan", counted)
    remembered = decide(world, 1000, CycleMemory())
    assert remembered.steps == afresh.steps
    messages = {s.job.name: s.message for s in remembered.steps if isinstance(s, Wait)}
    assert "replica 1 of 8 has no node now" in messages["j8"]
    assert "replica 1 of 2 has no node now" in messages["j2"]
    # One plan, the first job's (whether each fits an empty cluster is counted, not planned).
    assert replicas_planned == [2]
