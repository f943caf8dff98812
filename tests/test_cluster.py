"""What tests and benchmarks share of the control planes: ports that never clash, a pod builder,
and a child process started on CPUs of its own."""

from __future__ import annotations

import itertools
import os
import sys
from pathlib import Path

import pytest

from tests.cluster import (
    CONTROL_PLANES,
    EPHEMERAL_PORTS_START,
    ControlPlane,
    ControlPlaneError,
    default_ports,
    kwok_pod,
    popen_on,
    sample_sum,
)


def test_every_control_plane_has_its_own_ports_below_the_ephemeral_range() -> None:
    planes = {"make cluster": default_ports()} | {name: p.ports() for name, p in CONTROL_PLANES.items()}
    for (a, ports_a), (b, ports_b) in itertools.combinations(planes.items(), 2):
        assert not set(ports_a.values()) & set(ports_b.values()), f"{a} and {b} share a port"
    for name, ports in planes.items():
        assert len(set(ports.values())) == len(ports), f"{name} uses one port twice"
        assert max(ports.values()) < EPHEMERAL_PORTS_START, f"{name} has a port in the ephemeral range"


def test_the_port_table_is_read_from_the_scripts_that_start_the_cluster() -> None:
    assert set(default_ports()) == {
        "MODELJOB_ETCD_PORT",
        "MODELJOB_ETCD_PEER_PORT",
        "MODELJOB_APISERVER_PORT",
        "MODELJOB_KCM_PORT",
        "MODELJOB_SCHEDULER_PORT",
        "MODELJOB_KWOK_PORT",
    }


def test_every_control_plane_keeps_its_state_apart() -> None:
    states = [p.state for p in CONTROL_PLANES.values()]
    assert len(set(states)) == len(states)


def test_a_kwok_pod_asks_for_gpus_as_limits_and_for_host_resources_as_requests() -> None:
    pod = kwok_pod("p", gpus=2, cpu="1", memory="1Gi", node="gpu-a")
    [container] = pod["spec"]["containers"]
    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "1Gi"},
        "limits": {"nvidia.com/gpu": "2"},
    }
    assert pod["spec"]["nodeName"] == "gpu-a"
    assert "resources" not in kwok_pod("plain")["spec"]["containers"][0]


def test_sample_sum_adds_the_samples_whose_labels_match() -> None:
    text = "\n".join(
        [
            "# TYPE requests counter",
            'requests_total{code="200",verb="filter"} 3.0',
            'requests_total{code="500",verb="filter"} 1.0',
            'requests_total{code="200",verb="bind"} 2.0',
            "cycles_count 7.0",
        ]
    )
    assert sample_sum(text, "requests_total", {"verb": "filter"}) == 4.0
    assert sample_sum(text, "requests_total") == 6.0
    assert sample_sum(text, "cycles_count") == 7.0
    assert sample_sum(text, "missing") == 0.0


def test_a_control_plane_is_held_by_one_session_at_a_time_and_the_next_is_told_who_holds_it(
    tmp_path: Path,
) -> None:
    plane = ControlPlane(tmp_path / "cluster-x", port_offset=None)
    with (
        plane.held_by_this_process(wait_seconds=1),
        pytest.raises(ControlPlaneError, match=f"pid {os.getpid()}"),
        plane.held_by_this_process(wait_seconds=0.5),
    ):
        pass
    with plane.held_by_this_process(wait_seconds=1):
        pass  # released when the first holder left


def test_a_child_started_on_some_cpus_runs_there_and_its_parent_keeps_its_own() -> None:
    before = os.sched_getaffinity(0)
    first = {min(before)}
    child = popen_on(first, [sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert os.sched_getaffinity(child.pid) == first
        assert os.sched_getaffinity(0) == before
    finally:
        child.kill()
        child.wait()
