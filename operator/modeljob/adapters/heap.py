"""The garbage collector kept off what lives long: the watches' caches and the cycle's memory.

With 10,000 ModelJobs watched, the caches hold millions of objects (each job's document, parsed
facts, sizing and queue entry). CPython's collector walks every object it tracks in a full
collection, and a cycle allocates enough to start several: on the real control plane's deep
queue (bench/deep_queue_cluster.py, py-spy attached to the operator with --gil --native) the
collector took about 30% of the time the operator held the interpreter, most of it walking
documents the watches had replaced since the last freeze.

So after each cycle the loop collects the young generations (cheap: only what was allocated
since, which is where reference cycles of a cycle's own work end up) and freezes what is left
(``gc.freeze``: no collection walks it again; objects freed by their reference counts are freed
all the same, frozen or not). Garbage that forms a reference cycle only after it reached the old
generation would be frozen with the rest and never freed, so every ``FULL_EVERY_SECONDS`` the
loop unfreezes everything and collects it all once, then freezes again: a pause of the loop (and,
holding the interpreter, of the watches) between two cycles, logged with its length. At
bench/deep_queue.py's size (10,000 jobs, 5,000 nodes, 14,110 pods: 333,000 tracked objects) it
took 110 ms; the operator also holds its watched documents, a few times as many objects.
Instagram's services freeze their heap the same way (the reason ``gc.freeze`` exists: CPython
issue 31558). Written for CPython 3.11 (the image's): its ``gc.collect(1)`` collects the two young
generations.

Since the loop collects the young generations after every cycle, the automatic collections in
between only walk the cycle's own results while they are being built (a deep queue's cycle makes
a step, a queue entry and their parts for each of 10,000 jobs, alive until the cycle ends): at
CPython's default of a collection per 700 new objects, about 20 of them a cycle, 16 ms of a live
cycle's 200 in bench/deep_queue.py. So the heap starts the first generation's collection at
``YOUNG_THRESHOLD`` new objects instead (a few a cycle: 6 ms, the end-of-cycle collection included);
a reference cycle that becomes garbage mid-cycle waits at most that many allocations, or the
cycle's end.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)

# How often the whole heap is collected once (see the module docstring): a garbage cycle frozen
# by mistake lives at most this long.
FULL_EVERY_SECONDS = 600.0
# New objects (less those freed) that start an automatic collection of the youngest generation,
# in place of CPython's 700 (see the module docstring); the older generations' thresholds are kept.
YOUNG_THRESHOLD = 50_000


class LongLivedHeap:
    """Called after each cycle: young garbage collected, the rest frozen, and the whole heap
    collected when the last full collection is ``full_every`` seconds old (or there was none).
    Making one sets the whole process's young-generation threshold to ``young_threshold``."""

    def __init__(
        self,
        *,
        full_every: float = FULL_EVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        young_threshold: int = YOUNG_THRESHOLD,
    ) -> None:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(young_threshold, older, oldest)
        self._full_every, self._clock = full_every, clock
        self._last_full: float | None = None
        self.full_collections = 0

    def cycle_done(self) -> None:
        now = self._clock()
        if self._last_full is None or now - self._last_full >= self._full_every:
            started = time.perf_counter()
            gc.unfreeze()
            gc.collect()
            gc.freeze()
            self._last_full, self.full_collections = now, self.full_collections + 1
            logger.info("full collection of the heap: %.3f s", time.perf_counter() - started)
            return
        gc.collect(1)
        gc.freeze()
