"""Helpers for tests against the local control plane: the cluster handle and polling that fails the test.

They wrap tests/cluster.py (shared with the benchmarks), turning its errors into test failures.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from modeljob.adapters.cluster import ClusterGateway
from tests import cluster as control_plane


@dataclass(frozen=True)
class Cluster:
    """A running local control plane: where it is, its binaries, and two ways to talk to it."""

    kubeconfig: Path
    bin_dir: Path
    gateway: ClusterGateway

    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the built kubectl against this cluster; check=True fails the test on a non-zero exit."""
        result = control_plane.kubectl(self.kubeconfig, *args, stdin=stdin, check=False)
        if check and result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        return result


def wait_for(condition: Callable[[], bool], what: str, *, timeout_seconds: float = 30) -> None:
    """Poll `condition` until it holds; fail the test naming `what` after the timeout."""
    try:
        control_plane.poll(condition, what, timeout_seconds=timeout_seconds)
    except TimeoutError as exc:
        pytest.fail(str(exc))
