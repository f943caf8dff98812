"""The local control planes tests and benchmarks start: ports, state, binaries, kubectl, pods, polling.

hack/control-plane/lib.sh holds `make cluster`'s loopback ports. Every other control plane this
project starts is registered in CONTROL_PLANES with one offset added to all of lib.sh's ports, so
no two clash and all stay below the kernel's ephemeral range (32768 and up: a fixed port there
can be taken at any moment by some process's outgoing connection; it was, once, in CI).

Tests and benchmarks both import this module (a benchmark run as `python bench/x.py` puts the
repository on sys.path first), and bench/cluster.sh reads its ports from
`python -m tests.cluster exports NAME`. Nothing here imports pytest: a failure raises
ControlPlaneError or TimeoutError, which the e2e fixtures turn into test failures.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modeljob.adapters import node_catalog
from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.cluster_errors import NotFoundError

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "hack" / "control-plane"
CACHE = Path(os.environ.get("MODELJOB_CACHE", Path.home() / ".cache" / "modeljob"))
EPHEMERAL_PORTS_START = 32768
# A cold build compiles Kubernetes (about 11 min on 2 cores); a warm start takes seconds.
BUILD_TIMEOUT_SECONDS = 60 * 60
SCRIPT_TIMEOUT_SECONDS = 600
# How long a test session waits for another to release a control plane: under pytest-timeout's
# 600 s, which counts the first test's set-up.
LOCK_WAIT_SECONDS = 540
# kwok runs no container: any image name will do, and this one can never be pulled by mistake.
KWOK_IMAGE = "registry.invalid/kwok-runs-nothing:1"
EXTENDERS_VARIABLE = "MODELJOB_SCHEDULER_EXTENDERS"


class ControlPlaneError(RuntimeError):
    """A control-plane script or binary failed; the message carries its output."""


@functools.cache
def default_ports() -> dict[str, int]:
    """`make cluster`'s ports, read from lib.sh (`X_PORT="${MODELJOB_X_PORT:-12345}"`), by variable."""
    text = (SCRIPTS / "lib.sh").read_text()
    ports = {name: int(port) for name, port in re.findall(r'"\$\{(MODELJOB_\w+_PORT):-(\d+)\}"', text)}
    if not ports:
        raise ControlPlaneError(f"no MODELJOB_*_PORT defaults found in {SCRIPTS / 'lib.sh'}")
    return ports


@dataclass(frozen=True)
class ControlPlane:
    """One local control plane: its state directory and the offset added to lib.sh's ports
    (None: whatever MODELJOB_*_PORT the environment holds, as lib.sh reads them)."""

    state: Path
    port_offset: int | None

    @property
    def kubeconfig(self) -> Path:
        return self.state / "kubeconfig"

    def ports(self) -> dict[str, int]:
        if self.port_offset is None:
            return {name: int(os.environ.get(name, port)) for name, port in default_ports().items()}
        return {name: port + self.port_offset for name, port in default_ports().items()}

    def environment(self, *, extenders: Path | None = None) -> dict[str, str]:
        """The environment for hack/control-plane scripts; kube-scheduler calls the extenders file
        given, and no other (a user's MODELJOB_SCHEDULER_EXTENDERS never leaks in)."""
        env = {**os.environ, "MODELJOB_CLUSTER_DIR": str(self.state)}
        env.update({name: str(port) for name, port in self.ports().items()})
        env.pop(EXTENDERS_VARIABLE, None)
        if extenders is not None:
            env[EXTENDERS_VARIABLE] = str(extenders)
        return env

    def run(
        self, script: str, *, extenders: Path | None = None, timeout_seconds: float = SCRIPT_TIMEOUT_SECONDS
    ) -> str:
        """Run up.sh or down.sh for this control plane; its stdout, or ControlPlaneError."""
        return run_script(script, self.environment(extenders=extenders), timeout_seconds=timeout_seconds)

    def gateway(self, **options: Any) -> ClusterGateway:
        return ClusterGateway.from_kubeconfig(self.kubeconfig, **options)

    def pin(self, cpus: set[int]) -> int:
        """Run every thread of this plane's running components on ``cpus`` alone (threads they
        start later inherit it from the thread that starts them); how many threads were pinned."""
        pinned = 0
        for pid_file in (self.state / "pids").glob("*.pid"):
            pinned += pin_process(int(pid_file.read_text()), cpus)
        return pinned

    def component_report(self, name: str, *, lines: int = 30) -> str:
        """Whether a component of this plane runs, and the end of its log: for a test's failure
        message, written before the plane is stopped (down.sh removes the logs)."""
        pid_file = self.state / "pids" / f"{name}.pid"
        pid = pid_file.read_text().strip() if pid_file.exists() else ""
        alive = bool(pid) and Path(f"/proc/{pid}").exists()
        log = self.state / "logs" / f"{name}.log"
        tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else ["(no log)"]
        state = f"pid {pid}, {'running' if alive else 'not running'}" if pid else "no pid file"
        return f"{name} ({state}); the end of {log}:\n" + "\n".join(tail)

    @contextlib.contextmanager
    def held_by_this_process(self, *, wait_seconds: float) -> Iterator[None]:
        """Hold <state>.session.lock while the block runs, so one test session or benchmark at a
        time uses this control plane; wait for another holder, then ControlPlaneError naming its
        pid. The kernel drops the lock when the holder exits, however it exits."""
        path = self.state.parent / f"{self.state.name}.session.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a+") as handle:
            try:
                poll(lambda: _locked(handle), f"{path}", timeout_seconds=wait_seconds, interval_seconds=1)
            except TimeoutError:
                handle.seek(0)
                raise ControlPlaneError(
                    f"another process (pid {handle.read().strip()}) still holds {path} after {wait_seconds} s"
                ) from None
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            yield


def _locked(handle: Any) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


# The benchmarks' fake nodes at 5,000: kwok renews each one's Lease every quarter of this (150 s,
# not a kubelet's 10 s). 5,000 fake kubelets renewing every 10 s are ~500 writes a second, served
# by the API server and etcd on the 2 CPUs the scheduler under test runs on, where a real control
# plane serves them on machines of its own; and as they lag on such a loaded machine,
# kube-controller-manager marks nodes NotReady and lifts it again, ~10 node writes a second more.
# hack/control-plane/up.sh reads it (MODELJOB_NODE_LEASE_SECONDS).
BENCH_NODE_LEASE_SECONDS = 600
NODE_LEASE_VARIABLE = "MODELJOB_NODE_LEASE_SECONDS"

# Every control plane besides `make cluster`'s, with its offset; tests/test_cluster.py checks that
# no two share a port and that every port is below EPHEMERAL_PORTS_START.
CONTROL_PLANES = {
    "e2e": ControlPlane(CACHE / "cluster-e2e", 1000),  # the tests' shared cluster
    "e2e-extender": ControlPlane(CACHE / "cluster-extender-e2e", 2000),  # kube-scheduler + extender
    "bench-cluster": ControlPlane(CACHE / "cluster-bench", 3000),  # bench/cluster.sh
    "bench-operator": ControlPlane(CACHE / "cluster-bench-operator", 4000),
    "bench-extender": ControlPlane(CACHE / "cluster-bench-extender", 5000),
    "chaos": ControlPlane(CACHE / "cluster-chaos", 6000),  # bench/chaos (make chaos)
    "bench-deep-queue": ControlPlane(CACHE / "cluster-bench-deep-queue", 7000),  # bench/deep_queue_cluster.py
    "e2e-taken-port": ControlPlane(CACHE / "cluster-taken-port-e2e", 8000),  # never gets to run
}


def run_script(
    script: str, env: Mapping[str, str] | None = None, *, timeout_seconds: float = SCRIPT_TIMEOUT_SECONDS
) -> str:
    """Run a hack/control-plane script; its stdout, or ControlPlaneError with the end of stderr."""
    try:
        result = subprocess.run(
            [str(SCRIPTS / script)],
            env=dict(env) if env is not None else None,
            capture_output=True,
            text=True,
            timeout=timeout_seconds,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise ControlPlaneError(f"{script} did not finish within {timeout_seconds} s") from exc
    if result.returncode != 0:
        raise ControlPlaneError(f"{script} failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout


@functools.cache
def binaries() -> Path:
    """The directory build.sh built the binaries into (the last line it prints), found once per
    process: build.sh builds only the first time, but each run still checks every binary."""
    return Path(run_script("build.sh", timeout_seconds=BUILD_TIMEOUT_SECONDS).strip().splitlines()[-1])


def kubectl(
    kubeconfig: Path, *args: str, stdin: str | None = None, check: bool = True, timeout_seconds: float = 60
) -> subprocess.CompletedProcess[str]:
    """The built kubectl against one cluster; check=True raises ControlPlaneError on a non-zero exit."""
    result = subprocess.run(
        [str(binaries() / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_seconds,
        check=False,
    )
    if check and result.returncode != 0:
        raise ControlPlaneError(
            f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
        )
    return result


def poll(
    condition: Callable[[], bool], what: str, *, timeout_seconds: float = 30, interval_seconds: float = 0.2
) -> None:
    """Poll ``condition`` until it holds; TimeoutError naming ``what`` after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout_seconds} s waiting for {what}")
        time.sleep(interval_seconds)


# kube-controller-manager's condition taints (node.kubernetes.io/not-ready, added to every node at
# creation, lifted on its next node-monitor pass after Ready, up to 5 s later; unreachable).
CONDITION_TAINT_PREFIX = "node.kubernetes.io/"


def condition_taints_lifted(gateway: ClusterGateway, names: set[str]) -> bool:
    """Whether no node of ``names`` carries a condition taint any more: until then a scheduler
    skips it, Ready or not."""
    return not any(
        str(taint.get("key", "")).startswith(CONDITION_TAINT_PREFIX)
        for node in gateway.list_nodes()
        if node["metadata"]["name"] in names
        for taint in node["spec"].get("taints") or []
    )


def exists(read: Callable[[], object]) -> bool:
    """Whether a read succeeds (False on 404)."""
    try:
        read()
    except NotFoundError:
        return False
    return True


def create_ready_namespace(
    gateway: ClusterGateway, name: str, *, labels: Mapping[str, str] | None = None
) -> None:
    """Create a namespace and wait for its `default` ServiceAccount: admission refuses pods until
    kcm's service-account controller has made it."""
    gateway.create_namespace(name, labels=labels)
    poll(
        lambda: exists(lambda: gateway.read_service_account(name, "default")),
        f"the default service account of namespace {name}",
        timeout_seconds=60,
    )


def gpu_node_manifests(names: Iterable[str]) -> list[dict[str, Any]]:
    """Fake 8-GPU nodes of these names, each like the `mixed` preset's first node (its CPU, memory,
    storage and GPUs; none of its labels beyond what every fake node gets): the benchmarks' nodes."""
    template = node_catalog.PRESETS["mixed"][0].nodes()[0]
    return [
        node_catalog.node_manifest(
            node_catalog.NodeSpec(
                name=name,
                cpu_milli=template.cpu_milli,
                memory_bytes=template.memory_bytes,
                ephemeral_storage_bytes=template.ephemeral_storage_bytes,
                gpus=template.gpus,
                gpu=template.gpu,
            )
        )
        for name in names
    ]


def kwok_pod(
    name: str,
    *,
    gpus: int = 0,
    cpu: str | None = None,
    memory: str | None = None,
    node: str | None = None,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Iterable[Mapping[str, str]] = (),
    scheduler_name: str | None = None,
) -> dict[str, Any]:
    """A one-container pod for kwok's fake nodes. GPUs are asked for as limits only (requests
    default to them); ``node`` binds it without any scheduler."""
    resources: dict[str, Any] = {}
    requests = {key: value for key, value in (("cpu", cpu), ("memory", memory)) if value is not None}
    if requests:
        resources["requests"] = requests
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
    container: dict[str, Any] = {"name": "main", "image": KWOK_IMAGE}
    if resources:
        container["resources"] = resources
    spec: dict[str, Any] = {"containers": [container], "terminationGracePeriodSeconds": 0}
    optional = {
        "nodeName": node,
        "nodeSelector": dict(node_selector) if node_selector else None,
        "tolerations": [dict(t) for t in tolerations] or None,
        "schedulerName": scheduler_name,
    }
    spec.update({key: value for key, value in optional.items() if value is not None})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free now: all held open at once, so the kernel cannot
    hand the same one out twice (one at a time, it may)."""
    with contextlib.ExitStack() as stack:
        sockets = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def http_get(url: str, *, timeout_seconds: float = 10, **options: Any) -> str:
    with urllib.request.urlopen(url, timeout=timeout_seconds, **options) as reply:
        return str(reply.read().decode())


def sample_sum(text: str, name: str, labels: Mapping[str, str] | None = None) -> float:
    """Sum of the samples of one series in a Prometheus exposition whose labels include
    ``labels``; 0.0 when there are none."""
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(?:\{{(.*)\}})? ([0-9.e+-]+|NaN|\+Inf)$", re.MULTILINE)
    for match in pattern.finditer(text):
        found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
        if all(found.get(key) == value for key, value in (labels or {}).items()):
            total += float(match.group(2))
    return total


@dataclass
class OperatorProcess:
    """A `python -m modeljob run` subprocess and the loopback ports it serves on."""

    process: subprocess.Popen[bytes]
    liveness_port: int
    metrics_port: int
    extender_port: int

    def healthy(self) -> bool:
        try:
            http_get(f"http://127.0.0.1:{self.liveness_port}/healthz", timeout_seconds=1)
        except OSError:
            return False
        return True

    def metrics(self) -> str:
        return http_get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout_seconds=5)


def pin_process(pid: int, cpus: set[int]) -> int:
    """Run every thread of process ``pid`` on ``cpus`` alone (sched_setaffinity sets one thread's);
    how many threads were pinned. Threads that end meanwhile are skipped."""
    pinned = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.sched_setaffinity(int(task.name), cpus)
            pinned += 1
    return pinned


def popen_on(cpus: set[int] | None, command: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """subprocess.Popen, the child on ``cpus`` alone (None: as this thread runs). A child starts
    with the affinity of the thread that forks it: this thread's is set for the fork and taken
    back at once."""
    if cpus is None:
        return subprocess.Popen(command, **options)
    own = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus)
    try:
        return subprocess.Popen(command, **options)
    finally:
        os.sched_setaffinity(0, own)


def one_cpu_apart(plane: ControlPlane) -> set[int]:
    """One CPU for a process under test alone: every thread of ``plane``'s components and of
    this process moves to the others (what this process starts later runs there too), as a
    cluster runs an operator or an extender on a node of its own and the control plane elsewhere.
    The CPUs set apart (give them to `popen_on`)."""
    usable = sorted(os.sched_getaffinity(0))
    if len(usable) < 2:
        raise ControlPlaneError(f"a CPU of its own needs 2 CPUs or more; this process may use {len(usable)}")
    apart, rest = {usable[0]}, set(usable[1:])
    plane.pin(rest)
    pin_process(os.getpid(), rest)
    return apart


def start_operator(
    kubeconfig: Path,
    log_path: Path,
    settings: Mapping[str, str],
    *,
    timeout_seconds: float = 60,
    cpus: set[int] | None = None,
) -> OperatorProcess:
    """Start `modeljob run` on free loopback ports with ``settings`` (MODELJOB_* -> value) and
    wait until its liveness endpoint answers; ControlPlaneError (with the log's end) otherwise.
    ``cpus``: the only CPUs it runs on (all of its threads: set before it starts)."""
    liveness_port, metrics_port, extender_port = free_ports(3)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO / "operator"),  # this checkout's code, wherever the venv points
        "KUBECONFIG": str(kubeconfig),
        "MODELJOB_SERVER__HOST": "127.0.0.1",
        "MODELJOB_SERVER__LIVENESS_PORT": str(liveness_port),
        "MODELJOB_SERVER__METRICS_PORT": str(metrics_port),
        "MODELJOB_EXTENDER__HOST": "127.0.0.1",
        "MODELJOB_EXTENDER__PORT": str(extender_port),
        **settings,
    }
    with log_path.open("ab") as log:
        process = popen_on(
            cpus, [sys.executable, "-m", "modeljob", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    started = OperatorProcess(process, liveness_port, metrics_port, extender_port)
    try:
        poll(
            lambda: process.poll() is not None or started.healthy(),
            "the operator's /healthz",
            timeout_seconds=timeout_seconds,
        )
    except TimeoutError:
        process.kill()
        process.wait(timeout=30)
    if process.poll() is not None:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-60:])
        raise ControlPlaneError(f"the operator did not become healthy; its log:\n{tail}")
    return started


def main(argv: list[str]) -> int:
    """`python -m tests.cluster exports NAME`: shell lines setting a registered control plane's
    MODELJOB_CLUSTER_DIR and ports (bench/cluster.sh evaluates them)."""
    if len(argv) != 2 or argv[0] != "exports" or argv[1] not in CONTROL_PLANES:
        print(f"usage: python -m tests.cluster exports {{{','.join(CONTROL_PLANES)}}}", file=sys.stderr)
        return 2
    plane = CONTROL_PLANES[argv[1]]
    print(f"export MODELJOB_CLUSTER_DIR={shlex.quote(str(plane.state))}")
    for name, port in plane.ports().items():
        print(f"export {name}={port}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
