"""The operator's scheduling cycles as its /metrics tell them, scrape by scrape: how many, the
histogram's buckets, and the exact time of each cycle that was alone between two scrapes.

`modeljob_scheduling_cycle_duration_seconds` is a histogram (operator/modeljob/adapters/metrics.py),
so its percentiles are known only to a bucket; but its sum is exact, so where one scrape interval
held one cycle alone, the sum's rise is that cycle's own time (bench/deep_queue_cluster.py).

Imported by the benchmarks, which put bench/ and the repository on sys.path.
"""

from __future__ import annotations

import contextlib
import math
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from urllib.parse import urlencode

from deep_queue import percentile

from tests.cluster import OperatorProcess, http_get, sample_sum

SCRAPE_SECONDS = 0.5  # often enough that most cycles of a deep queue are alone between two
CYCLE = "modeljob_scheduling_cycle_duration_seconds"
PLACED, JOBS = "modeljob_scheduling_attempts_total", "modeljob_jobs"
HANDOFFS = "modeljob_handoffs_pending"
# prometheus_client's `name[]` filter: only these series are rendered.
SERIES = urlencode(
    [("name[]", f"{CYCLE}_{part}") for part in ("bucket", "count", "sum")]
    + [("name[]", PLACED), ("name[]", JOBS), ("name[]", HANDOFFS)]
)
BUCKET = re.compile(rf'^{CYCLE}_bucket\{{le="([^"]+)"\}} (\S+)$', re.M)


@dataclass(frozen=True)
class Scrape:
    """What one read of the operator's /metrics says."""

    at_seconds: float  # since the operator was started
    cycles: int
    cycle_sum_seconds: float
    buckets: tuple[tuple[float, float], ...]  # (upper bound, cumulative count), ascending, +Inf last
    placed: int  # jobs whose whole placement was bound
    pending: int  # jobs not yet admitted, as the last cycle saw them
    binding: int  # placements whose plan is being written or pods created and bound (placing, binding pools)


def metrics_text(operator: OperatorProcess) -> str:
    """The series read here from the operator's /metrics, and no others: rendering all of them
    (a gauge per node) at 5,000 nodes took 165 ms, these 0.5 ms (in process, 2 busy CPUs), time
    the operator's cycle would share the interpreter with. A busy operator may miss http_get's
    5 s deadline once or twice."""
    url = f"http://127.0.0.1:{operator.metrics_port}/metrics?{SERIES}"
    for _ in range(2):
        with contextlib.suppress(OSError):
            return http_get(url)
    return http_get(url)


def scrape(operator: OperatorProcess, started: float) -> Scrape:
    text = metrics_text(operator)
    return Scrape(
        at_seconds=time.monotonic() - started,
        cycles=int(sample_sum(text, f"{CYCLE}_count")),
        cycle_sum_seconds=sample_sum(text, f"{CYCLE}_sum"),
        buckets=tuple(sorted((float(bound), float(count)) for bound, count in BUCKET.findall(text))),
        placed=int(sample_sum(text, PLACED, {"result": "placed"})),
        pending=int(sample_sum(text, JOBS, {"phase": "Pending"})),
        binding=sum(int(sample_sum(text, HANDOFFS, {"pool": pool})) for pool in ("placing", "binding")),
    )


@dataclass(frozen=True)
class Cycles:
    """The cycles between a phase's first and last scrape."""

    count: int
    p50_bucket: tuple[float, float]  # (lower, upper] bounds of the bucket holding the p50
    p99_bucket: tuple[float, float]
    within_one_second: int
    alone: tuple[float, ...]  # exact seconds of the cycles alone in a scrape interval

    @classmethod
    def between(cls, scrapes: Sequence[Scrape]) -> Cycles:
        first, last = dict(scrapes[0].buckets), scrapes[-1].buckets
        counts = [(bound, count - first.get(bound, 0.0)) for bound, count in last]
        alone = tuple(
            b.cycle_sum_seconds - a.cycle_sum_seconds
            for a, b in pairwise(scrapes)
            if b.cycles - a.cycles == 1
        )
        return cls(
            count=scrapes[-1].cycles - scrapes[0].cycles,
            p50_bucket=bucket_of(counts, 50),
            p99_bucket=bucket_of(counts, 99),
            within_one_second=int(dict(counts).get(1.0, 0)),
            alone=alone,
        )


def bucket_of(counts: Sequence[tuple[float, float]], percent: float) -> tuple[float, float]:
    """The (lower, upper] bounds of the bucket holding the nearest-rank percentile of a cumulative
    histogram; NaNs when it holds nothing."""
    total = counts[-1][1] if counts else 0
    if not total:
        return math.nan, math.nan
    rank, lower = max(1, math.ceil(total * percent / 100)), 0.0
    for upper, count in counts:
        if count >= rank:
            return lower, upper
        lower = upper
    return lower, math.inf


def seconds_text(values: Sequence[float]) -> str:
    """p50 / p99 (nearest rank) / max of exact cycle times, in ms."""
    if not values:
        return "none"
    p50, p99 = statistics.median(values), percentile(values, 99)
    return f"{p50 * 1000:.0f} / {p99 * 1000:.0f} / {max(values) * 1000:.0f} ms over {len(values)}"


def bucket_text(bounds: tuple[float, float]) -> str:
    lower, upper = bounds
    if math.isnan(upper):
        return "none"
    return f"over {lower * 1000:g} ms" if math.isinf(upper) else f"{lower * 1000:g} - {upper * 1000:g} ms"


def cycle_rows(name: str, cycles: Cycles) -> list[tuple[str, str]]:
    return [
        (f"{name}: cycles", f"{cycles.count}, {cycles.within_one_second} of them within 1 s"),
        (f"{name}: cycle p50, the histogram bucket holding it", bucket_text(cycles.p50_bucket)),
        (f"{name}: cycle p99 (nearest rank), the bucket holding it", bucket_text(cycles.p99_bucket)),
        (f"{name}: cycles alone in a scrape interval, p50 / p99 / max", seconds_text(cycles.alone)),
    ]
