"""Leader election against the API server: the Lease read (and the leader's renewed), and fencing.

The decisions are core/leadership.py's; this module reads the Lease, writes what was decided
(create, or update conditional on the resourceVersion read, so two candidates cannot both take
one record), and remembers the outcome. Every replica runs it; `leads()` is the cheap check the
scheduling loop makes before each cycle and, through `FencedGateway`, before every write it sends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.cluster_errors import AlreadyExistsError, ClusterError, NotFoundError, NotLeaderError
from modeljob.adapters.kube_values import parse_time
from modeljob.core import leadership
from modeljob.core.leadership import Action, Decision, Election, LeaseRecord, LeaseTiming

logger = logging.getLogger(__name__)

JsonObject = dict[str, Any]


class LeaseApi(Protocol):
    """The three calls an election makes (ClusterGateway's; a fake in tests). Each is given up
    after ``timeout_seconds`` with a ClusterError, as any call the server did not answer."""

    def read_lease(self, namespace: str, name: str, *, timeout_seconds: float) -> JsonObject: ...
    def create_lease(
        self, namespace: str, manifest: Mapping[str, Any], *, timeout_seconds: float
    ) -> JsonObject: ...
    def replace_lease(
        self, namespace: str, manifest: Mapping[str, Any], *, timeout_seconds: float
    ) -> JsonObject: ...


# --- translation ----------------------------------------------------------------------------------


def _micro_time(value: datetime | None) -> str | None:
    """A MicroTime as the API server writes it: `2026-01-01T00:00:00.000000Z`."""
    return None if value is None else value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_record(lease: Mapping[str, Any]) -> LeaseRecord:
    spec = lease.get("spec") or {}
    return LeaseRecord(
        holder=str(spec.get("holderIdentity") or ""),
        duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
        acquired=parse_time(spec.get("acquireTime")),
        renewed=parse_time(spec.get("renewTime")),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def lease_manifest(namespace: str, name: str, record: LeaseRecord, *, version: str | None) -> JsonObject:
    metadata: JsonObject = {"name": name, "namespace": namespace}
    if version is not None:
        metadata["resourceVersion"] = version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": record.holder,
            "leaseDurationSeconds": record.duration_seconds,
            "acquireTime": _micro_time(record.acquired),
            "renewTime": _micro_time(record.renewed),
            "leaseTransitions": record.transitions,
        },
    }


def _version(lease: Mapping[str, Any]) -> str:
    return str((lease.get("metadata") or {}).get("resourceVersion", ""))


# --- the election ---------------------------------------------------------------------------------


class LeaderElector:
    """One replica's candidacy: a thread that reads the Lease when the core says (the leader each
    retry period, a standby four times as often) and writes what the core decides;
    ``on_change(leads)`` is called (from that thread) when leadership starts or ends."""

    def __init__(
        self,
        leases: LeaseApi,
        *,
        namespace: str,
        name: str,
        identity: str,
        timing: LeaseTiming,
        on_change: Callable[[bool], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._leases = leases
        self._namespace = namespace
        self._name = name
        self._timing = timing
        self._on_change = on_change
        self._clock = clock
        self._wall = wall
        # Replaced whole (it is frozen) by the election thread; read by any thread.
        self._election = Election(identity)
        self._lock = threading.Lock()  # one read-decide-write at a time (the thread, or release)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._leading = False  # as last reported through on_change

    @property
    def identity(self) -> str:
        return self._election.identity

    def leads(self) -> bool:
        """Whether this replica may write now: its last renewal was sent within the renew deadline."""
        return self._election.leads(self._clock())

    def write_budget_seconds(self) -> float | None:
        """How long a write sent now may take before another replica could act (None: not leading)."""
        return self._election.write_budget_seconds(self._clock(), self._timing)

    def holder(self) -> str:
        """Who holds the Lease as last read ("" if free or not read yet)."""
        observed = self._election.observed
        return observed.record.holder if observed is not None else ""

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def stop(self, *, release: bool = True) -> None:
        """Stop campaigning; the leader steps down first, then (``release``) empties the Lease so a
        standby takes over without waiting out its duration."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._timing.retry_period_seconds + 10)
        with self._lock:
            leading = self._election.leads(self._clock())
            self._election = leadership.stepped_down(self._election)
            decision = leadership.released(self._election, wall=self._wall()) if release and leading else None
            if decision is not None:
                self._send(decision)  # proves nothing: this replica has stepped down already
        self._report()

    def try_once(self) -> None:
        """Read the Lease, decide, write: one read period's work (tests call it directly)."""
        with self._lock:
            try:
                self._read()
            except ClusterError as exc:
                # Nothing proven this period: a leader's proof runs out at its renew deadline.
                logger.warning("cannot read the leader Lease %s/%s: %s", self._namespace, self._name, exc)
            else:
                decision = leadership.decide(
                    self._election, timing=self._timing, now_seconds=self._clock(), wall=self._wall()
                )
                if decision.action is not Action.STAND_BY:
                    self._write(decision)
        self._report()

    def next_try_seconds(self) -> float:
        """How long the thread waits before its next ``try_once``: a retry period while leading, a
        quarter of one standing by, less when the Lease it sees expires sooner (the core decides)."""
        return leadership.next_try_seconds(self._election, timing=self._timing, now_seconds=self._clock())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.try_once()
            except Exception:
                logger.exception("leader election failed; trying again")
            self._stop.wait(self.next_try_seconds())

    def _read(self) -> None:
        try:
            lease = self._leases.read_lease(self._namespace, self._name, timeout_seconds=self._call_timeout())
        except NotFoundError:
            self._election = leadership.observe(self._election, None, version="", now_seconds=self._clock())
            return
        self._election = leadership.observe(
            self._election, lease_record(lease), version=_version(lease), now_seconds=self._clock()
        )

    def _write(self, decision: Decision) -> None:
        """Send ``decision``; on success leadership is proven from the moment it was sent."""
        sent = self._clock()
        reply = self._send(decision)
        if reply is not None:
            self._election = leadership.written(
                self._election, decision, version=_version(reply), sent_seconds=sent, timing=self._timing
            )

    def _send(self, decision: Decision) -> JsonObject | None:
        """The Lease as written, or None if the write was refused: another replica wrote first (409)
        or the server could not be reached or did not answer in time; the next read says who holds
        it."""
        assert decision.record is not None
        manifest = lease_manifest(self._namespace, self._name, decision.record, version=decision.version)
        timeout = self._call_timeout()
        try:
            if decision.action is Action.CREATE:
                reply = self._leases.create_lease(self._namespace, manifest, timeout_seconds=timeout)
            else:
                reply = self._leases.replace_lease(self._namespace, manifest, timeout_seconds=timeout)
        except (AlreadyExistsError, NotFoundError):
            return None  # created or deleted by another meanwhile: read it again next period
        except ClusterError as exc:
            level = logging.INFO if exc.status == 409 else logging.WARNING
            logger.log(level, "cannot %s the leader Lease: %s", decision.action.value, exc)
            return None
        return reply

    def _call_timeout(self) -> float:
        """A Lease call hung on a dead connection must not hold this thread (and the election's
        lock) past the leader's proof: it fails then, as a refused renewal does."""
        return self._election.call_timeout_seconds(self._clock(), self._timing)

    def _report(self) -> None:
        leading = self.leads()
        if leading == self._leading:
            return
        self._leading = leading
        if leading:
            logger.info("%s leads: it holds Lease %s/%s", self.identity, self._namespace, self._name)
        else:
            logger.info(
                "%s stands by: it cannot prove it holds the Lease (holder %r)", self.identity, self.holder()
            )
        self._on_change(leading)


# --- fencing --------------------------------------------------------------------------------------


class FencedGateway(ClusterGateway):
    """The gateway the scheduling loop writes through: each write that places, binds, evicts or
    records a decision first checks, in memory, that this replica still proves it holds the Lease,
    and is not sent otherwise. Reads pass through; so do Events, which decide nothing. Every write
    stays conditional on the resourceVersion its caller read, as with the plain gateway. Its calls
    go on a client that never repeats one (ClusterGateway.unretried_client): a pod deletion
    repeated after its timeout could land long after the proof and the fencing margin ran out."""

    def __init__(
        self,
        gateway: ClusterGateway,
        *,
        leads: Callable[[], bool],
        write_budget: Callable[[], float | None] | None = None,
    ) -> None:
        super().__init__(gateway.unretried_client())
        self._leads = leads
        self._write_budget = write_budget
        # The deadline of the fenced write this thread is sending (the loop's workers send in
        # parallel), passed to the HTTP client as its timeout: a write that could land after
        # another replica may act is abandoned instead (core/leadership.py, the fencing margin).
        self._sending = threading.local()

    def _fence(self, action: str) -> None:
        if not self._leads():
            raise NotLeaderError(f"{action}: not sent, this replica is not the leader")
        budget = self._write_budget() if self._write_budget is not None else None
        if self._write_budget is not None and budget is None:
            raise NotLeaderError(f"{action}: not sent, this replica is not the leader")
        self._sending.timeout = budget

    def _call(self, action: str, method: Any, *args: Any, **kwargs: Any) -> JsonObject:
        timeout = getattr(self._sending, "timeout", None)
        self._sending.timeout = None  # one fence, one write
        if timeout is not None:
            kwargs.setdefault("_request_timeout", max(timeout, 0.1))
        return super()._call(action, method, *args, **kwargs)

    def patch_modeljob_status(self, namespace: str, name: str, patch: Mapping[str, Any]) -> JsonObject:
        self._fence(f"patch modeljob {namespace}/{name} status")
        return super().patch_modeljob_status(namespace, name, patch)

    def bind_pod(self, namespace: str, name: str, node: str) -> None:
        self._fence(f"bind pod {namespace}/{name}")
        super().bind_pod(namespace, name, node)

    def create_pod(self, namespace: str, manifest: Mapping[str, Any]) -> JsonObject:
        self._fence(f"create pod in {namespace}")
        return super().create_pod(namespace, manifest)

    def delete_pod(self, namespace: str, name: str, *, grace_period_seconds: int | None = None) -> None:
        self._fence(f"delete pod {namespace}/{name}")
        super().delete_pod(namespace, name, grace_period_seconds=grace_period_seconds)

    def create_service(self, namespace: str, manifest: Mapping[str, Any]) -> JsonObject:
        self._fence(f"create service in {namespace}")
        return super().create_service(namespace, manifest)

    def patch_queue_status(self, name: str, patch: Mapping[str, Any]) -> JsonObject:
        self._fence(f"patch queue {name} status")
        return super().patch_queue_status(name, patch)
