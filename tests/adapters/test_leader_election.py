"""Leader election through the Lease adapter: replicas against one (fake) API server, on a manual clock."""

from __future__ import annotations

import copy
import itertools
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.cluster_errors import AlreadyExistsError, ClusterError, NotFoundError, NotLeaderError
from modeljob.adapters.cluster_view import ClusterView
from modeljob.adapters.kube_nodes import NodeLabelKeys
from modeljob.adapters.lease import FencedGateway, LeaderElector, lease_manifest, lease_record
from modeljob.adapters.metrics import OperatorMetrics
from modeljob.adapters.scheduling_loop import LoopSettings, SchedulingLoop
from modeljob.core.leadership import MIN_CALL_TIMEOUT_SECONDS, Election, LeaseRecord, LeaseTiming
from modeljob.core.scheduling_cycle import CycleSettings
from modeljob.settings import SchedulingSettings
from tests.adapters.test_operator_scheduling_loop import FakeApiServer
from tests.operator_builders import at, modeljob_dict, node_dict

TIMING = LeaseTiming(duration_seconds=15, renew_deadline_seconds=10, retry_period_seconds=2)
NAMESPACE, NAME = "modeljob-system", "modeljob-operator"


class FakeLeases:
    """Leases as the API server keeps them: a resourceVersion per write, create refused if it exists,
    update refused (409) unless it names the current resourceVersion."""

    def __init__(self, clock: Clock) -> None:
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.versions = itertools.count(1)
        self.writes: list[str] = []  # holderIdentity of each accepted write
        self.before_write: Callable[[], None] | None = None
        self.failing = False  # every call fails as if the API server were unreachable
        # Every call hangs (a dead connection) until the client gives it up at its timeout.
        self.hanging = False
        self.clock = clock
        self.timeouts: list[float] = []  # the timeout each call was sent with

    def _check(self, timeout_seconds: float) -> None:
        self.timeouts.append(timeout_seconds)
        if self.hanging:
            self.clock.seconds += timeout_seconds
            raise ClusterError("cannot reach the API server: read timed out")
        if self.failing:
            raise ClusterError("cannot reach the API server")

    def read_lease(self, namespace: str, name: str, *, timeout_seconds: float) -> dict[str, Any]:
        self._check(timeout_seconds)
        if (namespace, name) not in self.leases:
            raise NotFoundError("not found", status=404)
        return copy.deepcopy(self.leases[(namespace, name)])

    def _store(self, namespace: str, manifest: Mapping[str, Any]) -> dict[str, Any]:
        stored = copy.deepcopy(dict(manifest))
        stored["metadata"]["resourceVersion"] = str(next(self.versions))
        self.leases[(namespace, stored["metadata"]["name"])] = stored
        self.writes.append(stored["spec"]["holderIdentity"])
        return copy.deepcopy(stored)

    def _hook(self) -> None:
        hook, self.before_write = self.before_write, None
        if hook is not None:
            hook()

    def create_lease(
        self, namespace: str, manifest: Mapping[str, Any], *, timeout_seconds: float
    ) -> dict[str, Any]:
        self._check(timeout_seconds)
        self._hook()
        if (namespace, manifest["metadata"]["name"]) in self.leases:
            raise AlreadyExistsError("exists", status=409, reason="AlreadyExists")
        return self._store(namespace, manifest)

    def replace_lease(
        self, namespace: str, manifest: Mapping[str, Any], *, timeout_seconds: float
    ) -> dict[str, Any]:
        self._check(timeout_seconds)
        self._hook()
        current = self.leases.get((namespace, manifest["metadata"]["name"]))
        if current is None:
            raise NotFoundError("not found", status=404)
        if manifest["metadata"].get("resourceVersion") != current["metadata"]["resourceVersion"]:
            raise ClusterError("the object has been modified", status=409, reason="Conflict")
        return self._store(namespace, manifest)

    def holder(self) -> str:
        return str(self.leases[(NAMESPACE, NAME)]["spec"]["holderIdentity"])


class Clock:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


@pytest.fixture
def api(clock: Clock) -> FakeLeases:
    return FakeLeases(clock)


@pytest.fixture
def clock() -> Clock:
    return Clock()


def replica(api: FakeLeases, clock: Clock, identity: str, changes: list[bool] | None = None) -> LeaderElector:
    return LeaderElector(
        api,
        namespace=NAMESPACE,
        name=NAME,
        identity=identity,
        timing=TIMING,
        on_change=(changes.append if changes is not None else lambda _: None),
        clock=clock,
        wall=lambda: at(clock.seconds),
    )


def every_retry_period(clock: Clock, electors: list[LeaderElector], *, for_seconds: float) -> None:
    end = clock.seconds + for_seconds
    while clock.seconds < end:
        clock.seconds += TIMING.retry_period_seconds
        for elector in electors:
            elector.try_once()


def test_of_two_replicas_the_first_leads_and_the_second_stands_by(api: FakeLeases, clock: Clock) -> None:
    changes_a: list[bool] = []
    changes_b: list[bool] = []
    a, b = replica(api, clock, "a", changes_a), replica(api, clock, "b", changes_b)
    a.try_once()
    b.try_once()
    every_retry_period(clock, [a, b], for_seconds=60)
    assert (a.leads(), b.leads()) == (True, False)
    assert api.holder() == "a"
    assert (changes_a, changes_b) == ([True], [])
    assert b.holder() == "a"
    assert "b" not in api.writes


def test_when_the_leader_dies_the_standby_takes_over_within_duration_plus_retry(
    api: FakeLeases, clock: Clock
) -> None:
    a, b = replica(api, clock, "a"), replica(api, clock, "b")
    a.try_once()
    every_retry_period(clock, [a, b], for_seconds=10)
    died = clock.seconds  # a is SIGKILLed: it renews no more
    while not b.leads():
        clock.seconds += TIMING.retry_period_seconds
        b.try_once()
    took = clock.seconds - died
    assert TIMING.duration_seconds <= took <= TIMING.duration_seconds + TIMING.retry_period_seconds
    assert api.holder() == "b"
    assert api.leases[(NAMESPACE, NAME)]["spec"]["leaseTransitions"] == 1
    assert not a.leads()  # its proof ran out long before b acted


@pytest.mark.parametrize("standby_starts_seconds", [0.0, 0.3, 1.1, 1.9], ids=lambda s: f"standby-at-{s}")
def test_a_standby_reading_when_it_says_takes_a_dead_leaders_lease_within_the_duration_and_a_quarter_period(
    api: FakeLeases, clock: Clock, standby_starts_seconds: float
) -> None:
    """The leader renews each retry period; the standby reads when it says it will (its thread's
    waits), so it first sees each renewal within 0.5 s and takes over that soon after the
    duration, counted from the last renewal the leader sent before it died."""
    a, b = replica(api, clock, "a"), replica(api, clock, "b")
    a.try_once()
    next_a, next_b = clock.seconds + TIMING.retry_period_seconds, clock.seconds + standby_starts_seconds
    last_renewal, dies = clock.seconds, clock.seconds + 21.0
    while not b.leads():
        if next_a < dies and next_a <= next_b:
            clock.seconds = next_a
            a.try_once()
            last_renewal, next_a = clock.seconds, clock.seconds + TIMING.retry_period_seconds
        else:
            clock.seconds = next_b
            b.try_once()
            next_b = clock.seconds + b.next_try_seconds()
    took = clock.seconds - last_renewal
    assert TIMING.duration_seconds <= took <= TIMING.duration_seconds + TIMING.retry_period_seconds / 4 + 1e-9
    assert api.holder() == "b"


def test_of_two_standbys_racing_for_an_expired_lease_exactly_one_wins(api: FakeLeases, clock: Clock) -> None:
    a, b, c = replica(api, clock, "a"), replica(api, clock, "b"), replica(api, clock, "c")
    a.try_once()
    b.try_once()
    c.try_once()
    clock.seconds += TIMING.duration_seconds + 1  # a died; b and c both see the Lease expired
    api.before_write = c.try_once  # c reads, decides and writes between b's read and b's write
    b.try_once()
    assert [b.leads(), c.leads()] == [False, True]
    assert api.holder() == "c"
    b.try_once()  # the next read shows c holding it: b stands by
    assert not b.leads()
    assert api.holder() == "c"


def test_a_leader_that_cannot_renew_stops_acting_at_the_renew_deadline(api: FakeLeases, clock: Clock) -> None:
    changes: list[bool] = []
    a = replica(api, clock, "a", changes)
    a.try_once()
    renewed = clock.seconds
    api.failing = True
    every_retry_period(clock, [a], for_seconds=8)
    assert a.leads()
    every_retry_period(clock, [a], for_seconds=2)
    assert clock.seconds == renewed + TIMING.renew_deadline_seconds
    assert not a.leads()
    assert changes == [True, False]
    api.failing = False
    a.try_once()  # the Lease is still its own: renewing it proves leadership again
    assert a.leads()
    assert changes == [True, False, True]


def test_a_leader_whose_renewal_hangs_gives_it_up_and_stops_leading_by_the_renew_deadline(
    api: FakeLeases, clock: Clock
) -> None:
    """A connection that never answers must not hold the election past the proof: each Lease
    call is given up by the moment the leader's proof runs out, counts as a failed renewal, and
    the replica says it stopped leading then (its gauge, the loop's wake-up); then it campaigns
    again with the renew deadline as the timeout, and wins back its own Lease once answered."""
    changes: list[bool] = []
    a = replica(api, clock, "a", changes)
    a.try_once()
    renewed = clock.seconds
    clock.seconds += TIMING.retry_period_seconds
    api.hanging = True
    a.try_once()  # the read hangs: given up when the proof runs out
    assert clock.seconds <= renewed + TIMING.renew_deadline_seconds + MIN_CALL_TIMEOUT_SECONDS
    assert not a.leads()
    assert changes == [True, False]
    assert api.timeouts[-1] == TIMING.renew_deadline_seconds - TIMING.retry_period_seconds
    a.try_once()  # no longer leading: its calls are bounded by the renew deadline
    assert api.timeouts[-1] == TIMING.renew_deadline_seconds
    api.hanging = False
    a.try_once()
    assert a.leads()
    assert changes == [True, False, True]


def test_a_conflicting_renewal_proves_nothing_and_the_next_read_says_who_holds_it(
    api: FakeLeases, clock: Clock
) -> None:
    a = replica(api, clock, "a")
    a.try_once()
    lease = api.leases[(NAMESPACE, NAME)]
    lease["spec"]["holderIdentity"] = "intruder"  # someone wrote the Lease behind a's back
    lease["metadata"]["resourceVersion"] = "999"
    clock.seconds += TIMING.retry_period_seconds
    a.try_once()
    assert not a.leads()
    assert api.holder() == "intruder"


def test_a_leader_that_stops_gives_the_lease_up_and_the_standby_takes_it_at_once(
    api: FakeLeases, clock: Clock
) -> None:
    a, b = replica(api, clock, "a"), replica(api, clock, "b")
    a.try_once()
    b.try_once()
    a.stop()
    assert not a.leads()
    assert api.leases[(NAMESPACE, NAME)]["spec"]["holderIdentity"] == ""
    clock.seconds += TIMING.retry_period_seconds
    b.try_once()
    assert b.leads()


def test_a_standby_that_stops_leaves_the_lease_alone(api: FakeLeases, clock: Clock) -> None:
    a, b = replica(api, clock, "a"), replica(api, clock, "b")
    a.try_once()
    b.try_once()
    writes = list(api.writes)
    b.stop()
    assert api.writes == writes


def test_the_lease_is_written_as_client_go_writes_it() -> None:
    record = LeaseRecord("a", 15, acquired=at(1.5), renewed=at(2), transitions=3)
    manifest = lease_manifest(NAMESPACE, NAME, record, version="42")
    assert manifest["spec"] == {
        "holderIdentity": "a",
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-01-01T00:00:01.500000Z",
        "renewTime": "2026-01-01T00:00:02.000000Z",
        "leaseTransitions": 3,
    }
    assert manifest["metadata"] == {"name": NAME, "namespace": NAMESPACE, "resourceVersion": "42"}
    assert lease_record(manifest) == record


# --- fencing --------------------------------------------------------------------------------------

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: a write that is sent fails to connect


def _fenced(leads: bool) -> FencedGateway:
    configuration = client.Configuration()
    configuration.host = UNREACHABLE
    configuration.retries = False
    return FencedGateway(ClusterGateway(client.ApiClient(configuration)), leads=lambda: leads)


WRITES: list[tuple[str, Callable[[FencedGateway], object]]] = [
    ("plan", lambda g: g.patch_modeljob_status("ml", "job", {"status": {}})),
    ("bind", lambda g: g.bind_pod("ml", "job-0", "node-0")),
    ("create-pod", lambda g: g.create_pod("ml", {"metadata": {"name": "job-0"}})),
    ("delete-pod", lambda g: g.delete_pod("ml", "job-0")),
    ("service", lambda g: g.create_service("ml", {"metadata": {"name": "job"}})),
    ("queue-status", lambda g: g.patch_queue_status("team-a", {"status": {}})),
]


@pytest.mark.parametrize("write", [w for _, w in WRITES], ids=[name for name, _ in WRITES])
def test_a_replica_that_cannot_prove_the_lease_sends_no_write(
    write: Callable[[FencedGateway], object],
) -> None:
    gateway = _fenced(leads=False)
    with pytest.raises(NotLeaderError, match="not the leader"):
        write(gateway)


@pytest.mark.parametrize("write", [w for _, w in WRITES], ids=[name for name, _ in WRITES])
def test_the_leader_sends_its_writes(write: Callable[[FencedGateway], object]) -> None:
    gateway = _fenced(leads=True)
    with pytest.raises(ClusterError) as raised:
        write(gateway)
    assert not isinstance(raised.value, NotLeaderError)
    assert "cannot reach the API server" in str(raised.value)  # it was sent


def test_a_fenced_write_is_abandoned_before_another_replica_could_act() -> None:
    """The HTTP timeout of each fenced write is what is left of the proof plus the fencing margin,
    so a write the leader sent cannot land after a standby may have taken over."""
    sent: list[dict[str, Any]] = []

    def create_namespaced_pod(*args: Any, **kwargs: Any) -> Any:
        sent.append(kwargs)
        raise ApiException(status=503, reason="unavailable")

    gateway = FencedGateway(_fenced(leads=True), leads=lambda: True, write_budget=lambda: 7.5)
    gateway._core.create_namespaced_pod = create_namespaced_pod  # type: ignore[method-assign]
    with pytest.raises(ClusterError):
        gateway.create_pod("ml", {"metadata": {"name": "job-0"}})
    assert sent[0]["_request_timeout"] == 7.5
    gateway._core.read_namespaced_pod = create_namespaced_pod  # type: ignore[method-assign]
    with pytest.raises(ClusterError):
        gateway.read_pod("ml", "job-0")  # a read is not fenced and keeps the client's own timeout
    assert "_request_timeout" not in sent[1]


def test_a_replica_whose_proof_ran_out_between_checks_sends_nothing() -> None:
    gateway = FencedGateway(_fenced(leads=True), leads=lambda: True, write_budget=lambda: None)
    with pytest.raises(NotLeaderError):
        gateway.bind_pod("ml", "job-0", "node-0")


def test_the_write_budget_is_the_rest_of_the_proof_plus_the_fencing_margin() -> None:
    leader = Election("me", proven_until_seconds=108.0)
    assert leader.write_budget_seconds(100.0, TIMING) == 8.0 + 5.0
    assert leader.write_budget_seconds(108.0, TIMING) is None  # the proof has run out
    assert Election("me").write_budget_seconds(100.0, TIMING) is None


# --- the gateway's Lease calls ----------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """An API server that accepts connections and never answers: each one waits in the backlog."""
    with socket.create_server(("127.0.0.1", 0), backlog=16) as server:
        yield server


def _connections(server: socket.socket) -> int:
    """How many connections the client opened (each call, and each repetition of one, opens one)."""
    server.setblocking(False)
    opened = 0
    while True:
        try:
            connection, _ = server.accept()
        except BlockingIOError:
            return opened
        connection.close()
        opened += 1


def _gateway_to(server: socket.socket) -> ClusterGateway:
    configuration = client.Configuration()
    configuration.host = f"http://127.0.0.1:{server.getsockname()[1]}"
    return ClusterGateway(client.ApiClient(configuration))


LEASE_CALLS: list[tuple[str, Callable[[ClusterGateway], object]]] = [
    ("get", lambda g: g.read_lease(NAMESPACE, NAME, timeout_seconds=0.2)),
    ("create", lambda g: g.create_lease(NAMESPACE, {"metadata": {"name": NAME}}, timeout_seconds=0.2)),
    ("update", lambda g: g.replace_lease(NAMESPACE, {"metadata": {"name": NAME}}, timeout_seconds=0.2)),
]


@pytest.mark.parametrize("call", [c for _, c in LEASE_CALLS], ids=[name for name, _ in LEASE_CALLS])
def test_a_lease_call_the_server_does_not_answer_is_given_up_once_at_its_timeout(
    silent_server: socket.socket, call: Callable[[ClusterGateway], object]
) -> None:
    """Sent once, not repeated: the HTTP client's retries would give a GET or PUT its whole
    timeout again three more times, past the leader's proof."""
    with (
        _gateway_to(silent_server) as gateway,
        pytest.raises(ClusterError, match="cannot reach the API server"),
    ):
        call(gateway)
    assert _connections(silent_server) == 1


@pytest.mark.parametrize("write", [w for _, w in WRITES], ids=[name for name, _ in WRITES])
def test_a_fenced_write_the_server_does_not_answer_is_sent_once(
    silent_server: socket.socket, write: Callable[[FencedGateway], object]
) -> None:
    """Given up at its write budget and never sent again: a pod deletion repeated after its
    timeout (urllib3's retries) could land after a standby may have acted."""
    gateway = FencedGateway(_gateway_to(silent_server), leads=lambda: True, write_budget=lambda: 0.2)
    with pytest.raises(ClusterError, match="cannot reach the API server"):
        write(gateway)
    assert _connections(silent_server) == 1


class _CountingApiServer(ThreadingHTTPServer):
    """Answers every call `{}` on keep-alive connections, counting the connections opened."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _AnswerEmpty)
        self.opened = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        self.opened += 1
        super().process_request(request, client_address)


class _AnswerEmpty(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_GET(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def log_message(self, *_: object) -> None:
        pass


def test_a_new_leaders_first_write_goes_on_the_connection_its_lease_reads_kept_open() -> None:
    """No new connection (a TLS handshake in a cluster) on the failover's path: the fenced writes
    and the Lease calls share the one client that never repeats a call."""
    server = _CountingApiServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{server.server_address[1]}"
        gateway = ClusterGateway(client.ApiClient(configuration))
        fenced = FencedGateway(gateway, leads=lambda: True, write_budget=lambda: 5.0)
        for _ in range(3):  # standing by
            gateway.read_lease(NAMESPACE, NAME, timeout_seconds=5)
        fenced.patch_modeljob_status("ml", "job", {"status": {}})  # leading
        gateway.read_lease(NAMESPACE, NAME, timeout_seconds=5)
        assert server.opened == 1
    finally:
        server.shutdown()
        server.server_close()


# --- taking over ----------------------------------------------------------------------------------


def test_a_replica_that_takes_the_lease_over_plans_at_once_without_the_debounce() -> None:
    """The standby's view is whole already: waiting out the debounce (10 s here) would only be
    added to the failover. A leader keeps debouncing changes."""
    server = FakeApiServer()
    view = ClusterView(server, labels=NodeLabelKeys())  # type: ignore[arg-type]
    for index in (0, 1):  # as the standby's watches show them
        view.nodes.observe(server.put("nodes", node_dict(index)))
    view.jobs.observe(server.put("modeljobs", modeljob_dict("llama-2-13b-training-zero3")))
    leads = threading.Event()
    planned = threading.Event()
    server.before["patch"] = lambda _: planned.set()
    loop = SchedulingLoop(
        gateway=server,  # type: ignore[arg-type]
        view=view,
        metrics=OperatorMetrics(),
        settings=LoopSettings(
            scheduling=SchedulingSettings(debounce_seconds=10, resync_seconds=60),
            product_label="nvidia.com/gpu.product",
            cycle=CycleSettings(node_lost_after_seconds=30),
        ),
        identity="b",
        acts=leads.is_set,
    )
    view.changed.clear()  # the standby has nothing new to look at
    loop.start()
    try:
        leads.set()  # as LeaderElector's on_change does, through wiring
        view.changed.set()
        assert planned.wait(timeout=5), "the new leader waited before planning"
    finally:
        loop.stop()
