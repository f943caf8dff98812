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

import bench.chaos  # noqa: F401  (sys.path: modeljob, tests, bench/)
from bench.chaos import faults, hostile, invariants, outcome, report, workload
from bench.chaos.env import HOSTILE_NAMESPACE, NAMESPACE, PLANE, Api, log, set_up
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


def plans(args: argparse.Namespace, rng: random.Random, nodes: list[object]) -> dict[str, object]:
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
        wrong = outcome.wrong_ends(jobs, invariants.take(api), NAMESPACE)
        if wrong:
            log(f"settling: {len(wrong)} jobs not at their end yet, e.g. {wrong[0]}")
            time.sleep(10)
    return wrong


def soak(args: argparse.Namespace) -> report.Result:
    rng = random.Random(args.seed)
    with contextlib.suppress(ControlPlaneError):
        PLANE.run("down.sh")
    PLANE.run("up.sh")
    api = Api()
    nodes = set_up(api, h100_nodes=args.h100_nodes, l4_nodes=args.l4_nodes)
    hostile.create_queues(api)
    plan = plans(args, rng, nodes)
    ledger = faults.Ledger()
    replicas = Replicas(
        PLANE.state / "logs",
        kubeconfig=PLANE.kubeconfig,
        lease_namespace=NAMESPACE,
        settings=operator_settings(args),
    )
    operators = faults.Operators(replicas, ledger)
    operators.start_all()
    checker = invariants.Checker()
    checker.start()
    stop, began = threading.Event(), time.monotonic()
    results: dict[str, object] = {}
    span = args.minutes * 60
    tasks = {
        "workload": lambda: workload.run(plan["jobs"], random.Random(args.seed + 1), stop),
        "hostile": lambda: create_hostile(Api(), plan["hostile"], span, random.Random(args.seed + 2), stop),
        "kills": lambda: faults.kill_operators(operators, plan["kills"], random.Random(args.seed + 3), stop),
        "restarts": lambda: faults.restart_control_plane(plan["restarts"], ledger, stop),
        "flaps": lambda: faults.flap_nodes(plan["flaps"], ledger, random.Random(args.seed + 4), stop),
    }

    def run(name: str, task: Callable[[], object]) -> None:
        try:
            results[name] = task()
        except Exception as exc:  # the soak goes on; the report names the failure
            ledger.problem(f"the {name} thread failed: {exc!r}")

    threads = [threading.Thread(target=run, args=(n, t), name=n, daemon=True) for n, t in tasks.items()]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        log(f"faults and workload done after {(time.monotonic() - began) / 60:.1f} min; settling")
        wrong = settle(args, api, plan["jobs"], operators)
        checker.stop()
        final = invariants.take(api)
        checker.check(final, at_rest=True)
        hostile_found = invariants.jobs_in(final, HOSTILE_NAMESPACE)
        hostile_wrong = hostile.unexplained_jobs(plan["hostile"], hostile_found, results.get("hostile") or {})
        hostile_wrong += hostile.unexplained_queues(api.list(Watched.QUEUES))
        return report.Result(
            args=args,
            minutes=(time.monotonic() - began) / 60,
            faults=Counter(ledger.counts),
            actions=results.get("workload") or Counter(),
            shapes=Counter(p.shape for p in plan["jobs"]),
            hostile=Counter(j.kind for j in plan["hostile"]),
            phases=outcome.phases(plan["jobs"], final, NAMESPACE),
            violations=checker.violations,
            wrong_ends=wrong,
            hostile_wrong=hostile_wrong,
            problems=ledger.problems,
            samples=checker.samples,
            longest_half_bound_seconds=checker.longest_half_bound_seconds,
            half_bound_seen=checker.half_bound_seen,
            peak_rss_mib=ledger.peak_rss_mib,
        )
    finally:
        stop.set()
        checker.stop()
        replicas.stop_all()
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
