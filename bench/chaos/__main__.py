"""`make chaos`: the soak, from a fresh control plane to docs/reliability.md.

python -m bench.chaos [--seed 17] [--jobs 300] [--leader-kills 100] ... [--keep] [--no-report]
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import bench.chaos  # noqa: F401  (sys.path: modeljob, tests, bench/)
from bench.chaos import faults, hostile, outcome, report, workload
from bench.chaos.checker import Checker, Watcher
from bench.chaos.delays import CycleClock, Delays
from bench.chaos.env import HOSTILE_NAMESPACE, NAMESPACE, PLANE, Api, Node, log, set_up
from bench.chaos.invariants import take, vacuous_quota_checks
from failover import Replicas

from modeljob.adapters.cluster import Watched
from tests.cluster import ControlPlaneError


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--seed", type=int, default=17)
    add("--jobs", type=int, default=300, help="well-formed ModelJobs")
    add("--hostile", type=int, default=1000, help="hostile ModelJobs (and the hostile Queues)")
    add("--leader-kills", type=int, default=100)
    add("--standby-kills", type=int, default=20)
    add("--apiserver-restarts", type=int, default=10)
    add("--etcd-restarts", type=int, default=3)
    add("--node-flaps", type=int, default=12)
    add("--minutes", type=float, default=25.0, help="the span over which jobs and faults are spread")
    add("--settle-minutes", type=float, default=10.0, help="how long the end may take to come to rest")
    add("--h100-nodes", type=int, default=8)
    add("--l4-nodes", type=int, default=6)
    add("--lease", type=float, nargs=3, default=(8, 5, 1.5), metavar=("DURATION", "RENEW", "RETRY"))
    add("--keep", action="store_true", help="leave the chaos control plane running")
    add("--no-report", action="store_true", help="print, do not rewrite docs/reliability.md")
    return parser.parse_args(argv)


def operator_settings(args: argparse.Namespace) -> dict[str, str]:
    duration, renew, retry = args.lease
    return {
        "MODELJOB_LEADER_ELECTION__LEASE_DURATION_SECONDS": str(int(duration)),
        "MODELJOB_LEADER_ELECTION__RENEW_DEADLINE_SECONDS": str(renew),
        "MODELJOB_LEADER_ELECTION__RETRY_PERIOD_SECONDS": str(retry),
        "MODELJOB_SCHEDULING__RESYNC_SECONDS": "5",
    }


def plans(args: argparse.Namespace, rng: random.Random, nodes: list[Node]) -> dict[str, Any]:
    span = args.minutes * 60
    kills = ["leader"] * args.leader_kills + ["standby"] * args.standby_kills
    rng.shuffle(kills)
    restarts = ["kube-apiserver"] * args.apiserver_restarts + ["etcd"] * args.etcd_restarts
    rng.shuffle(restarts)
    times = sorted(rng.uniform(20, span) for _ in restarts)
    flap_times = sorted(rng.uniform(20, max(30.0, span - 60)) for _ in range(args.node_flaps))
    return {
        "jobs": workload.plan_jobs(args.jobs, span, rng),
        "hostile": hostile.plan_hostile(args.hostile, rng),
        "kills": kills,
        "restarts": list(zip(times, restarts, strict=True)),
        "flaps": [(t, rng.choice(("not-ready", "deleted")), rng.choice(nodes)) for t in flap_times],
    }


def create_hostile(
    api: Api, jobs: list[hostile.HostileJob], span: float, rng: random.Random, stop: threading.Event
) -> dict[str, str]:
    refusals: dict[str, str] = {}
    began = time.monotonic()
    for at, job in sorted(((rng.uniform(0, span), j) for j in jobs), key=lambda pair: pair[0]):
        if stop.wait(max(0.0, began + at - time.monotonic())):
            break
        refused = hostile.create(api, job)
        if refused is not None:
            refusals[job.name] = refused
    return refusals


def settle(
    args: argparse.Namespace, api: Api, jobs: list[workload.JobPlan], operators: faults.Operators
) -> list[str]:
    """Wait until every job is at its right end; what is still wrong when the time is up."""
    deadline = time.monotonic() + args.settle_minutes * 60
    wrong: list[str] = ["not looked yet"]
    while wrong and time.monotonic() < deadline:
        operators.check_alive()
        wrong = outcome.wrong_ends(jobs, take(api), NAMESPACE)
        if wrong:
            log(f"settling: {len(wrong)} jobs not at their end yet, e.g. {wrong[0]}")
            time.sleep(10)
    return wrong


@dataclass
class Soak:
    """What one soak runs with: its plan, the operator replicas, the checker and the clocks."""

    args: argparse.Namespace
    api: Api
    plan: dict[str, Any]
    ledger: faults.Ledger
    replicas: Replicas
    operators: faults.Operators
    checker: Checker
    watcher: Watcher
    delays: Delays
    stop: threading.Event = field(default_factory=threading.Event)
    began: float = field(default_factory=time.monotonic)


def start(args: argparse.Namespace) -> Soak:
    """A fresh control plane with its nodes and queues, both replicas, the watching checker."""
    with contextlib.suppress(ControlPlaneError):
        PLANE.run("down.sh")
    PLANE.run("up.sh")
    api = Api()
    nodes = set_up(api, h100_nodes=args.h100_nodes, l4_nodes=args.l4_nodes)
    hostile.create_queues(api)
    ledger = faults.Ledger()
    replicas = Replicas(
        PLANE.state / "logs",
        kubeconfig=PLANE.kubeconfig,
        lease_namespace=NAMESPACE,
        settings=operator_settings(args),
    )
    operators = faults.Operators(replicas, ledger)
    operators.start_all()
    checker, delays = Checker(), Delays(CycleClock(replicas))
    watcher = Watcher(checker, on_job=delays.on_job)
    watcher.start()
    plan = plans(args, random.Random(args.seed), nodes)
    return Soak(args, api, plan, ledger, replicas, operators, checker, watcher, delays)


def run_tasks(soak: Soak) -> dict[str, object]:
    """The workload, the hostile input and the faults, each in its thread, until all are done."""
    args, plan, stop, ledger = soak.args, soak.plan, soak.stop, soak.ledger
    span = args.minutes * 60
    tasks: dict[str, Callable[[], object]] = {
        "workload": lambda: workload.run(
            plan["jobs"], random.Random(args.seed + 1), stop, soak.delays.creating
        ),
        "hostile": lambda: create_hostile(Api(), plan["hostile"], span, random.Random(args.seed + 2), stop),
        "kills": lambda: faults.kill_operators(
            soak.operators, plan["kills"], random.Random(args.seed + 3), stop
        ),
        "restarts": lambda: faults.restart_control_plane(plan["restarts"], ledger, stop),
        "flaps": lambda: faults.flap_nodes(plan["flaps"], ledger, random.Random(args.seed + 4), stop),
    }
    results: dict[str, object] = {}

    def run(name: str, task: Callable[[], object]) -> None:
        try:
            results[name] = task()
        except Exception as exc:  # the soak goes on; the report names the failure
            ledger.problem(f"the {name} thread failed: {exc!r}")

    threads = [threading.Thread(target=run, args=(n, t), name=n, daemon=True) for n, t in tasks.items()]
    clock = threading.Thread(target=soak.delays.clock.run, args=(stop,), name="cycles", daemon=True)
    for thread in [*threads, clock]:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def finish(soak: Soak, results: dict[str, object]) -> report.Result:
    """Settle, stop the watches (joined: nothing checks after), check once more at rest, report."""
    log(f"faults and workload done after {(time.monotonic() - soak.began) / 60:.1f} min; settling")
    wrong = settle(soak.args, soak.api, soak.plan["jobs"], soak.operators)
    soak.watcher.stop()
    final = take(soak.api)
    soak.delays.on_events(soak.api.events(NAMESPACE))
    soak.checker.check(final, at_rest=True)
    found = {
        j["metadata"]["name"]: j
        for j in final.jobs
        if j["metadata"]["namespace"] in (NAMESPACE, HOSTILE_NAMESPACE)
    }
    refusals: dict[str, str] = results.get("hostile") or {}  # type: ignore[assignment]
    hostile_wrong = hostile.unexplained_jobs(soak.plan["hostile"], found, refusals)
    hostile_wrong += hostile.unexplained_queues(soak.api.list(Watched.QUEUES))
    checker = soak.checker
    return report.Result(
        args=soak.args,
        minutes=(time.monotonic() - soak.began) / 60,
        faults=Counter(soak.ledger.counts),
        actions=results.get("workload") or Counter(),  # type: ignore[arg-type]
        shapes=Counter(p.shape for p in soak.plan["jobs"]),
        hostile=Counter(j.kind for j in soak.plan["hostile"]),
        phases=outcome.phases(soak.plan["jobs"], final, NAMESPACE),
        violations=checker.violations,
        wrong_ends=wrong,
        hostile_wrong=hostile_wrong,
        problems=soak.ledger.problems,
        checks=checker.checks,
        watch=soak.watcher.stats,
        longest_half_bound_seconds=checker.longest_half_bound_seconds,
        half_bound_seen=checker.half_bound_seen,
        longest_lingering_seconds=checker.longest_lingering_seconds,
        vacuous_quota=vacuous_quota_checks(final),
        delays=soak.delays.summary(),
        hostile_mixed=sum(1 for j in soak.plan["hostile"] if j.mixed),
        peak_rss_mib=soak.ledger.peak_rss_mib,
    )


def soak(args: argparse.Namespace) -> report.Result:
    running = start(args)
    try:
        return finish(running, run_tasks(running))
    finally:
        running.stop.set()
        running.watcher.stop()
        running.replicas.stop_all()
        if not args.keep:
            with contextlib.suppress(ControlPlaneError):
                PLANE.run("down.sh")


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    with PLANE.held_by_this_process(wait_seconds=60):
        result = soak(args)
    text = report.render(result) + report.findings(report.DOCUMENT)
    print(text)
    if not args.no_report:
        report.DOCUMENT.write_text(text)
        log(f"wrote {report.DOCUMENT}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
