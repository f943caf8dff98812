"""What breaks, and when: SIGKILLs of the leader and the standby, kube-apiserver and etcd restarts,
kwok nodes turned NotReady, deleted and re-added. Every moment comes from the seed."""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.chaos.env import Api, Node, add_nodes, log, restart_component, retry
from failover import Replicas
from kubernetes import client  # type: ignore[import-untyped]

from modeljob.adapters.cluster_errors import ClusterError, NotFoundError

IDENTITIES = ("replica-0", "replica-1")
NOT_READY_LABEL = "node-not-ready.stage.kwok.x-k8s.io"


@dataclass
class Ledger:
    """What happened, shared by the fault threads: counts by kind, and problems seen."""

    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    peak_rss_mib: float = 0.0  # the largest resident memory of an operator replica seen
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, kind: str) -> None:
        with self.lock:
            self.counts[kind] += 1

    def problem(self, text: str) -> None:
        with self.lock:
            self.problems.append(text)
        log(f"PROBLEM: {text}")


def rss_mib(pid: int) -> float:
    """A process's resident memory (VmRSS), 0 once it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0.0
    return next((int(line.split()[1]) / 1024 for line in lines if line.startswith("VmRSS:")), 0.0)


class Operators:
    """The two replicas: started, SIGKILLed and started again as a kubelet would; an exit nobody
    asked for is a crash, recorded."""

    def __init__(self, replicas: Replicas, ledger: Ledger) -> None:
        self.replicas, self.ledger = replicas, ledger
        self.lock = threading.Lock()
        self.api = Api()

    def start_all(self) -> None:
        for identity in IDENTITIES:
            self.start(identity)

    def start(self, identity: str) -> None:
        for _ in range(5):
            try:
                self.replicas.start(identity)
                return
            except Exception as exc:  # the API server may be restarting; try again
                log(f"{identity} did not start ({str(exc)[:200]}); again")
        self.ledger.problem(f"{identity} did not start five times over")

    def check_alive(self) -> None:
        """Restart any replica that exited on its own (a crash: counted as a problem); note the
        replicas' resident memory."""
        with self.lock:
            for running in self.replicas.running.values():
                self.ledger.peak_rss_mib = max(self.ledger.peak_rss_mib, rss_mib(running.process.pid))
            for identity in IDENTITIES:
                running = self.replicas.running.get(identity)
                if running is not None and running.process.poll() is not None:
                    code = running.process.returncode
                    self.replicas.running.pop(identity)
                    self.ledger.problem(f"operator {identity} exited by itself (code {code})")
                    self.start(identity)

    def leader(self) -> str | None:
        """The live replica that holds the Lease and says it leads, if any."""
        try:
            holder = self.api.lease_holder()
        except (ClusterError, TimeoutError):
            return None  # the API server is restarting: nobody can be seen to lead
        running = self.replicas.running.get(holder)
        if running is None:
            return None
        try:
            return holder if self.replicas.leads(holder) else None
        except OSError:
            return None

    def kill(self, identity: str, *, until_taken_over: bool = False) -> bool:
        """SIGKILL one replica and start it again: at once (a kubelet restarting the container:
        the same identity, which still holds the Lease, leads again), or once the other replica
        has taken the Lease over (a replacement pod that comes up later). Whether it was."""
        with self.lock:
            self.replicas.kill(identity)
        taken = False
        if until_taken_over:
            deadline = time.monotonic() + 120
            while not taken and time.monotonic() < deadline:
                taken = self.leader() not in (None, identity)
                time.sleep(0.1)
            if not taken:
                self.ledger.problem(f"the standby did not take over within 120 s of killing {identity}")
        self.start(identity)
        return taken


def kill_operators(operators: Operators, plan: list[str], rng: random.Random, stop: threading.Event) -> None:
    """For each entry of ``plan`` ("leader" or "standby"): wait until a replica leads, wait a
    random moment, SIGKILL that one and start it again at once."""
    for index, target in enumerate(plan):
        deadline = time.monotonic() + 300
        leader = None
        while leader is None and not stop.is_set():
            operators.check_alive()
            leader = operators.leader()
            if leader is None:
                if time.monotonic() > deadline:
                    operators.ledger.problem("no replica led for 300 s")
                    deadline = time.monotonic() + 300
                time.sleep(0.2)
        if stop.is_set() or leader is None:
            return
        stop.wait(rng.uniform(0.0, 6.0))  # anywhere in what the leader is doing
        victim = leader if target == "leader" else next(i for i in IDENTITIES if i != leader)
        later = target == "leader" and rng.random() < 0.5
        if operators.kill(victim, until_taken_over=later):
            operators.ledger.count("leader kills the standby took over from")
        operators.ledger.count(f"{target} kills")
        how = "after the standby took over" if later else "at once"
        log(f"kill {index + 1}/{len(plan)}: SIGKILLed the {target} {victim}, started it again {how}")
    operators.check_alive()


def restart_control_plane(plan: list[tuple[float, str]], ledger: Ledger, stop: threading.Event) -> None:
    """At each planned second (from the start), SIGKILL and restart one control-plane component."""
    began = time.monotonic()
    for at, component in plan:
        if stop.wait(max(0.0, began + at - time.monotonic())):
            return
        try:
            took = restart_component(component)
        except Exception as exc:
            ledger.problem(f"restarting {component} failed: {exc}")
            continue
        ledger.count(f"{component} restarts")
        log(f"{component} SIGKILLed and back in {took:.1f} s")


def flap_nodes(
    plan: list[tuple[float, str, Node]], ledger: Ledger, rng: random.Random, stop: threading.Event
) -> None:
    """At each planned second: a node turns NotReady (kwok's chaos Stage) or is deleted; some
    seconds later it is deleted if still there and created again, Ready and empty."""
    api = Api()
    began = time.monotonic()
    for at, how, node in plan:
        if stop.wait(max(0.0, began + at - time.monotonic())):
            return
        try:
            if how == "not-ready":
                core = client.CoreV1Api(api.gateway.api_client)
                patch = {"metadata": {"labels": {NOT_READY_LABEL: "true"}}}
                retry(lambda n=node, c=core, b=patch: c.patch_node(n.name, b), f"mark {node.name} NotReady")
            stop.wait(rng.uniform(5.0, 30.0))
            with contextlib.suppress(NotFoundError):
                retry(lambda n=node: api.gateway.delete_node(n.name), f"delete {node.name}")
            stop.wait(rng.uniform(2.0, 15.0))
            add_nodes(api, [node])
        except (ClusterError, TimeoutError) as exc:
            ledger.problem(f"flapping {node.name} failed: {exc}")
            continue
        ledger.count(f"node flaps ({how})")
        log(f"node {node.name}: {'NotReady, then ' if how == 'not-ready' else ''}deleted, re-added")
