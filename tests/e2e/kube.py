"""Helpers for tests against the local control plane: the cluster handle, polling, object builders."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from modeljob.adapters.cluster import ClusterGateway, NotFoundError


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
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
        return result


def wait_for(condition: Callable[[], bool], what: str, *, timeout_seconds: float = 30) -> None:
    """Poll `condition` until it holds; fail the test naming `what` after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"timed out after {timeout_seconds} s waiting for {what}")
        time.sleep(0.2)


def exists(read: Callable[[], object]) -> bool:
    """Whether a read succeeds (False on 404)."""
    try:
        read()
    except NotFoundError:
        return False
    return True


def make_pod(name: str, *, gpus: int = 0, scheduler_name: str | None = None) -> dict[str, Any]:
    """A one-container pod; `gpus` > 0 asks for nvidia.com/gpu (limits only: requests default to them)."""
    container: dict[str, Any] = {"name": "main", "image": "registry.invalid/kwok-runs-nothing:1"}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 0}
    if scheduler_name is not None:
        spec["schedulerName"] = scheduler_name
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}
