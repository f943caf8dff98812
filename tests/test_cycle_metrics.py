"""The deep-queue benchmark's reading of the operator's cycle histogram (bench/cycle_metrics.py):
what it reports as a percentile and as an exact cycle time is what the scrapes can prove."""

from __future__ import annotations

import math
import sys
from pathlib import Path

# The benchmarks import one another by module name, as they do when run as scripts.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from cycle_metrics import Cycles, Scrape, bucket_of

INF = math.inf


def scraped(at_seconds: float, cycles: int, total_seconds: float, *buckets: tuple[float, float]) -> Scrape:
    return Scrape(
        at_seconds=at_seconds,
        cycles=cycles,
        cycle_sum_seconds=total_seconds,
        buckets=buckets,
        placed=0,
        pending=0,
        binding=0,
    )


def test_a_percentile_is_the_bucket_that_holds_its_nearest_rank() -> None:
    # 100 cycles: 98 within 0.5 s, one in (0.5, 1], one over 2.5 s.
    counts = [(0.5, 98.0), (1.0, 99.0), (2.5, 99.0), (INF, 100.0)]
    assert bucket_of(counts, 50) == (0.0, 0.5)
    assert bucket_of(counts, 99) == (0.5, 1.0)
    assert bucket_of(counts, 100) == (2.5, INF)


def test_an_empty_histogram_has_no_percentile() -> None:
    assert all(math.isnan(bound) for bound in bucket_of([(1.0, 0.0), (INF, 0.0)], 99))


def test_a_phase_counts_only_the_cycles_after_its_first_scrape() -> None:
    before = scraped(0, 10, 50.0, (1.0, 0.0), (INF, 10.0))  # ten slow cycles of an earlier phase
    after = scraped(5, 14, 51.0, (1.0, 4.0), (INF, 14.0))
    cycles = Cycles.between([before, after])
    assert (cycles.count, cycles.within_one_second) == (4, 4)
    assert cycles.p99_bucket == (0.0, 1.0)


def test_a_cycle_alone_between_two_scrapes_is_timed_exactly_and_two_together_are_not() -> None:
    scrapes = [
        scraped(0.0, 0, 0.0),
        scraped(0.5, 1, 0.3),  # one cycle of 0.3 s
        scraped(1.0, 3, 0.7),  # two cycles of 0.4 s together: neither known alone
        scraped(1.5, 3, 0.7),  # none
        scraped(2.0, 4, 1.9),  # one of 1.2 s
    ]
    alone = Cycles.between(scrapes).alone
    assert [round(seconds, 6) for seconds in alone] == [0.3, 1.2]
