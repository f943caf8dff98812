"""A seeded synthetic stream of GPU jobs (arrivals, sizes, durations, namespaces, priorities) for
exercising queue policies and gang placement without a cluster or a trace."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from modeljob.core.nodes import DEFAULT_ACCELERATOR, PodRequest
from modeljob.core.queueing import QueuedJob
from modeljob.core.resources import GIB, Resources


@dataclass(frozen=True, slots=True)
class SyntheticJob:
    job: QueuedJob  # what the queue sees
    replicas: int
    replica_request: PodRequest
    duration_seconds: float  # how long it really runs once placed
    checkpoint_interval_seconds: float | None = None  # a preempted job keeps work up to its last checkpoint


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """Shape of the stream. Choices are drawn uniformly from the tuples (repeat a value to weight it).

    Durations are log-normal around ``median_duration_seconds``; the duration a job declares is
    its real duration times a log-normal error of ``declared_error_sigma`` (0 = users know
    exactly), and a ``declared_share`` of jobs declare one at all. A ``checkpoint_share`` of jobs
    checkpoint every one of ``checkpoint_intervals_seconds`` (drawn from a second stream of the
    same seed, so the other draws, and every stream made before checkpoints existed, are unchanged).
    """

    jobs: int = 200
    namespaces: tuple[str, ...] = ("team-a", "team-b", "team-c")
    queues: tuple[str, ...] = ("default",)
    mean_interarrival_seconds: float = 60.0
    median_duration_seconds: float = 1800.0
    duration_sigma: float = 1.0
    declared_share: float = 1.0
    declared_error_sigma: float = 0.25
    gpus_per_replica: tuple[int, ...] = (1, 1, 1, 2, 4, 8)
    replicas: tuple[int, ...] = (1, 1, 1, 2, 4)
    priorities: tuple[int, ...] = (0,)
    cpu_milli_per_gpu: int = 8000
    memory_bytes_per_gpu: int = 64 * GIB
    accelerator: str = DEFAULT_ACCELERATOR
    start_seconds: float = 0.0
    name_prefix: str = "job"
    extra_jobs: tuple[SyntheticJob, ...] = field(default=())
    checkpoint_share: float = 0.0
    checkpoint_intervals_seconds: tuple[float, ...] = (600.0, 1800.0)


def generate_workload(spec: WorkloadSpec, *, seed: int) -> tuple[SyntheticJob, ...]:
    """``spec.jobs`` jobs plus ``spec.extra_jobs`` in submission order; a seed always gives one stream."""
    rng = np.random.default_rng(seed)
    checkpoints = np.random.default_rng([seed, 1])
    now = spec.start_seconds
    jobs: list[SyntheticJob] = []
    for index in range(spec.jobs):
        now += float(rng.exponential(spec.mean_interarrival_seconds))
        gpus = int(rng.choice(spec.gpus_per_replica))
        replicas = int(rng.choice(spec.replicas))
        duration = float(spec.median_duration_seconds * rng.lognormal(0.0, spec.duration_sigma))
        declared_error = (
            float(rng.lognormal(0.0, spec.declared_error_sigma)) if spec.declared_error_sigma else 1.0
        )
        declares = bool(rng.random() < spec.declared_share)
        checkpoint = float(checkpoints.choice(spec.checkpoint_intervals_seconds))
        checkpoints_at = checkpoint if checkpoints.random() < spec.checkpoint_share else None
        request = PodRequest(
            resources=Resources(
                cpu_milli=gpus * spec.cpu_milli_per_gpu,
                memory_bytes=gpus * spec.memory_bytes_per_gpu,
                gpus=gpus,
            ),
            accelerator=spec.accelerator,
        )
        jobs.append(
            SyntheticJob(
                job=QueuedJob(
                    name=f"{spec.name_prefix}-{index:05d}",
                    submitted_at_seconds=now,
                    namespace=str(rng.choice(spec.namespaces)),
                    queue=str(rng.choice(spec.queues)),
                    priority=int(rng.choice(spec.priorities)),
                    expected_duration_seconds=duration * declared_error if declares else None,
                    demand=Resources(
                        cpu_milli=replicas * request.resources.cpu_milli,
                        memory_bytes=replicas * request.resources.memory_bytes,
                        gpus=replicas * gpus,
                    ),
                ),
                replicas=replicas,
                replica_request=request,
                duration_seconds=duration,
                checkpoint_interval_seconds=checkpoints_at,
            )
        )
    jobs.extend(spec.extra_jobs)
    return tuple(sorted(jobs, key=lambda item: item.job.key))
