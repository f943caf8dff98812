"""What acting on a step does when it fails: the job is left for the next cycle (a conflict), or
left alone for longer each time its steps keep failing (WriteBackoff), logged and counted; nothing
one job does stops the others' steps or the cycle. Used around every step the scheduling loop acts
on, in its cycle or in the pools beside it (adapters/scheduling_loop.py)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from modeljob.adapters.cluster_errors import ClusterError, NotFoundError, NotLeaderError
from modeljob.adapters.cluster_view import ClusterView
from modeljob.adapters.job_status import WriteBackoff
from modeljob.adapters.metrics import AttemptResult, OperatorMetrics
from modeljob.core.steps import Step

logger = logging.getLogger(__name__)


class StepErrors:
    """Handles the errors of acting on steps, sharing the loop's back-off."""

    def __init__(
        self,
        *,
        view: ClusterView,
        metrics: OperatorMetrics,
        backoff: WriteBackoff,
        clock: Callable[[], datetime],
    ) -> None:
        self._view, self._metrics, self._backoff, self._clock = view, metrics, backoff, clock

    @contextlib.contextmanager
    def handled(self, step: Step) -> Iterator[None]:
        """Around acting on a step: API errors are logged and leave the job for the next cycle,
        and a job whose steps keep failing (not a conflict: an error) is left alone for longer
        each time, until one goes through. Nothing one job does stops the others' steps or the
        cycle."""
        job = step.job
        try:
            yield
        except NotFoundError:
            logger.info("%s/%s was deleted while we acted", job.namespace, job.name)
        except NotLeaderError:
            # Fenced: the Lease's proof ran out mid-step; the new leader completes or rolls back.
            logger.info("%s/%s: left to the leader (this replica lost the Lease)", job.namespace, job.name)
        except ClusterError as exc:
            self._view.changed.set()
            if exc.status == 409:
                logger.info("%s/%s changed while we acted; next cycle", job.namespace, job.name)
                self._metrics.record_attempt(job.namespace, AttemptResult.CONFLICT)
                return
            delay = self._backoff.failed(job.uid, self._clock())  # a waiting write may land late
            logger.warning("%s/%s: %s; trying again in %.0f s", job.namespace, job.name, exc, delay)
            self._metrics.record_attempt(job.namespace, AttemptResult.ERROR)
        except Exception:
            delay = self._backoff.failed(job.uid, self._clock())  # a waiting write may land late
            logger.exception(
                "%s/%s: acting on %s failed; trying again in %.0f s", *job.key, type(step).__name__, delay
            )
            self._metrics.record_attempt(job.namespace, AttemptResult.ERROR)
