"""Creating and binding a placement's pods (in parallel), and deleting pods the loop gives up.

A pod is created from the job's template with the estimate as its requests and `spec.nodeName`
set to its planned node, so its creation binds it: one request per pod instead of a create and a
pods/binding (a pod with a node is no scheduler's to place; the kubelet admits it as a bound one).
It is assumed on its node (kube-scheduler's assume cache, so the next cycle counts it before the
watch shows it). A pod that exists already (one an operator before this left unbound after a crash,
or one the view does not show yet, so its create is answered AlreadyExists) is bound through
pods/binding, where a 409 "already assigned" to our node counts as bound and to another node fails
the placement. A create whose reply is lost is never sent again (the fenced gateway sends once): it
fails the placement, which the loop rolls back. Before its first pod, a job
gets its Services (kube_services: the headless one, and an Inference job's serve Service), once
per operator process, sent beside the job's plan (``start_services``).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modeljob.adapters import kube_pods, kube_services, kube_writes, pod_env
from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.cluster_errors import AlreadyExistsError, ClusterError, NotFoundError
from modeljob.adapters.cluster_view import ClusterView
from modeljob.adapters.metrics import BindingResult, OperatorMetrics
from modeljob.core.job_state import Placed
from modeljob.core.node_types import Candidate
from modeljob.core.resources import Resources


class BindingError(Exception):
    """A pod of a placement could not be created or bound; the placement is rolled back."""


class PodRefusedError(BindingError):
    """The API server refused a pod made from the job's template, or one of the job's Services
    (422): the job is at fault. The message is the server's, with each field named as the
    ModelJob's."""


# Services this process has seen exist, as (job uid, name), newest last: by name, not just by job,
# as a spec that gains a port needs its serve Service though the headless one exists. Bounded so
# that an operator running for months does not keep every job it ever placed; one forgotten costs
# a POST answered 409.
_SERVICES_REMEMBERED = 10_000


@dataclass(frozen=True, slots=True)
class PodSettings:
    scheduler_name: str
    product_label: str


class Binder:
    """Creates and binds pods on a pool of its own, so one slow API call does not hold a gang."""

    def __init__(
        self,
        gateway: ClusterGateway,
        view: ClusterView,
        metrics: OperatorMetrics,
        *,
        workers: int,
        pods: PodSettings,
        clock: Callable[[], datetime],
    ) -> None:
        self._gateway = gateway
        self._view = view
        self._metrics = metrics
        self._pods = pods
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bind")
        # Services on their own threads, so one sent beside a plan never queues behind other
        # jobs' pods (their threads start only when needed: most jobs' Services are known).
        self._services_pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="service")
        self._services: dict[tuple[str, str], None] = {}  # (job uid, Service name), insertion-ordered
        self._services_lock = threading.Lock()

    def stop(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._services_pool.shutdown(wait=False, cancel_futures=True)

    def start_services(self, job: Mapping[str, Any]) -> Future[None]:
        """Create the job's Services (unless this process knows they exist) on a thread, so that
        they are sent beside the plan's status write instead of after it: a Service decides nothing
        (no pod is created until both are done), and if the plan's write fails it waits, owned by
        the job, for the next attempt. Pass the future to ``bind_all``, which waits for it."""
        return self._services_pool.submit(self._ensure_services, job)

    def bind_all(
        self,
        job: Mapping[str, Any],
        entries: Sequence[Placed],
        candidate: Candidate,
        *,
        existing: set[str],
        services: Future[None] | None = None,
    ) -> None:
        """Create (unless in ``existing``) and bind every entry's pod, once the job's Services exist
        (``services``, else created now); BindingError names each failure, PodRefusedError if the
        API server refused a pod (or one of the job's Services) as invalid."""
        if services is None:
            self._ensure_services(job)
        else:
            services.result()  # no pod before the job's Services are its own
        futures = [
            self._pool.submit(self._create_and_bind, job, entry, candidate, entry.pod in existing)
            for entry in entries
        ]
        failures = [exc for f in futures if (exc := f.exception()) is not None]
        for failure in failures:
            if not isinstance(failure, Exception):
                raise failure  # SystemExit, KeyboardInterrupt: the process is going away
        refused = [f for f in failures if isinstance(f, PodRefusedError)]
        if refused:
            raise refused[0]
        if failures:
            raise BindingError("; ".join(str(failure) for failure in failures))

    def delete_pods(self, namespace: str, names: Sequence[str], *, grace_zero: bool) -> None:
        for name in names:
            with contextlib.suppress(NotFoundError):
                self._gateway.delete_pod(namespace, name, grace_period_seconds=0 if grace_zero else None)
            self._view.forget((namespace, name))

    def _ensure_services(self, job: Mapping[str, Any]) -> None:
        """Create the job's Services unless this process knows they exist. One that exists
        already counts if this job controls it; one left by a deleted job of the same name (the
        garbage collector has not come by yet) or made by someone else is a BindingError, so the
        placement backs off and tries again."""
        uid = str((job.get("metadata") or {}).get("uid", ""))
        namespace = str((job.get("metadata") or {}).get("namespace"))
        for service in kube_services.job_services(job):
            with self._services_lock:
                if (uid, service.name) in self._services:
                    continue
            try:
                self._gateway.create_service(namespace, service.manifest)
            except AlreadyExistsError:
                self._check_owner(namespace, service.name, uid)
            except ClusterError as exc:
                if exc.refused:
                    raise PodRefusedError(
                        f"{service.field} cannot make the job's Service {service.name}: {exc.detail}"
                    ) from None
                raise BindingError(f"cannot create Service {namespace}/{service.name}: {exc}") from None
            with self._services_lock:
                self._services[(uid, service.name)] = None
                while len(self._services) > _SERVICES_REMEMBERED:
                    del self._services[next(iter(self._services))]

    def _check_owner(self, namespace: str, name: str, uid: str) -> None:
        try:
            owner = kube_services.controller_uid(self._gateway.read_service(namespace, name))
        except ClusterError as exc:
            raise BindingError(f"cannot read Service {namespace}/{name}: {exc}") from None
        if owner != uid:
            whose = f"ModelJob uid {owner}" if owner else "no ModelJob"
            raise BindingError(f"Service {namespace}/{name} exists and belongs to {whose}, not this job")

    def _create_and_bind(
        self, job: Mapping[str, Any], entry: Placed, candidate: Candidate, exists: bool
    ) -> None:
        started = time.perf_counter()
        namespace = str((job.get("metadata") or {}).get("namespace"))
        estimate = candidate.estimate
        manifest = kube_writes.pod_manifest(
            job,
            replica=entry.replica,
            member=entry.member,
            name=entry.pod,
            requests=Resources(
                cpu_milli=estimate.cpu_milli,
                memory_bytes=estimate.memory_bytes,
                ephemeral_storage_bytes=estimate.ephemeral_storage_bytes,
                gpus=estimate.gpus,
            ),
            layout=pod_env.PodLayout.of(estimate),
            accelerator=candidate.node_type.accelerator,
            product=candidate.node_type.product or None,
            scheduler_name=self._pods.scheduler_name,
            product_label=self._pods.product_label,
            node=entry.node,
        )
        facts = kube_pods.pod_facts(manifest)
        self._view.assume(facts, now=self._clock())  # counted on its node before the watch shows it
        # The leader's fence guards the create as it guarded pods/binding: the create binds now.
        if not exists and self._create(namespace, manifest, facts.key):
            self._metrics.record_binding(BindingResult.BOUND, seconds=time.perf_counter() - started)
            return
        try:
            self._gateway.bind_pod(namespace, entry.pod, entry.node)
        except ClusterError as exc:
            if _already_bound_to(exc, entry.node):
                self._metrics.record_binding(
                    BindingResult.ALREADY_BOUND, seconds=time.perf_counter() - started
                )
                return
            self._view.forget(facts.key)
            self._metrics.record_binding(BindingResult.CONFLICT if exc.status == 409 else BindingResult.ERROR)
            raise BindingError(f"cannot bind pod {entry.pod} to {entry.node}: {exc}") from None
        self._metrics.record_binding(BindingResult.BOUND, seconds=time.perf_counter() - started)

    def _create(self, namespace: str, manifest: Mapping[str, Any], key: tuple[str, str]) -> bool:
        """Create the pod on its node: True when created (so bound), False when a pod of that name
        exists already (bound who knows where: the caller binds it, which tells)."""
        try:
            self._view.pods.observe(self._gateway.create_pod(namespace, manifest))
        except ClusterError as exc:
            if exc.reason == "AlreadyExists":
                return False
            self._view.forget(key)
            self._metrics.record_binding(BindingResult.ERROR)
            if exc.refused:
                raise PodRefusedError(kube_writes.refused_pod_message(exc.detail)) from None
            raise BindingError(f"cannot create pod {key[1]}: {exc}") from None
        return True


def _already_bound_to(exc: ClusterError, node: str) -> bool:
    """pods/binding answers 409 `pod x is already assigned to node "y"`: done, if y is our node."""
    return exc.status == 409 and "already assigned" in str(exc) and f'"{node}"' in str(exc)
