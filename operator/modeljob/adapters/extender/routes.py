"""The extender's HTTP routes: POST <prefix>/filter, /prioritize, /bind; GET /healthz and /metrics.

Each verb decodes (wire), decides (decisions, on a cache snapshot), encodes. kube-scheduler reads
only the status code of a non-200 reply, so every refusal also carries a JSON body
`{"Error": "<what is wrong>"}` for people and logs:

- 400: the body is not an ExtenderArgs / ExtenderBindingArgs (malformed JSON, no Pod, bad quantity);
- 413: larger than `max_body_bytes`;
- 422: well-formed, but every node it names is unknown to our cache (a wrong cluster, or a watch
  that has not caught up): answering "none pass" would be a lie;
- 503: the first list of nodes and pods has not arrived yet (never answer from an empty cache).

A bind that reaches the API server and fails is not a bad request: it is answered 200 with
ExtenderBindingResult.Error set, which kube-scheduler logs and handles as a failed binding.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web

from modeljob.adapters.cluster_errors import ClusterError
from modeljob.adapters.extender.cache import ClusterCache, Snapshot
from modeljob.adapters.extender.decisions import (
    UNKNOWN_NODE,
    FilterDecision,
    Priorities,
    candidate_rows,
    decide_filter,
    decide_priorities,
    group_size,
    one_of_each_class,
    reach_points,
    refuse_group,
)
from modeljob.adapters.extender.fragmentation_memo import FragmentationMemo
from modeljob.adapters.extender.metrics import ExtenderMetrics
from modeljob.adapters.extender.replies import (
    FilterReply,
    encode_binding_result,
    encode_error,
    encode_priorities,
)
from modeljob.adapters.extender.request_memo import FilterScores, RequestMemo
from modeljob.adapters.extender.settings import ExtenderSettings
from modeljob.adapters.extender.wire import (
    Candidates,
    SchedulingArgs,
    WireError,
    as_sent,
    decode_binding_args,
)
from modeljob.core.fragmentation import compile_workload
from modeljob.core.nodes import IntArray
from modeljob.core.scoring.ranking import ScoringContext
from modeljob.core.scoring.weights import ScoringWeights

logger = logging.getLogger(__name__)

Binder = Callable[[str, str, str], None]  # namespace, pod, node: POST pods/binding (blocking)
PodReader = Callable[[str, str], Mapping[str, Any]]  # namespace, pod -> the Pod (blocking)

JSON = "application/json"


@dataclass(frozen=True, slots=True)
class ExtenderService:
    """What the routes decide with: the cache, the operator's scoring weights, the API calls."""

    cache: ClusterCache
    weights: ScoringWeights
    metrics: ExtenderMetrics
    settings: ExtenderSettings
    bind: Binder
    read_pod: PodReader
    # The blocking client calls run here, not in asyncio's small default pool: a bind that times
    # out keeps its thread until the client gives up, and binds arrive in parallel.
    calls: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(16, "extender-bind"))
    fragmentation: FragmentationMemo = field(default_factory=FragmentationMemo)
    requests: RequestMemo = field(default_factory=RequestMemo)
    # Which of alike nodes the shortlist keeps (decisions.one_of_each_class); requests are answered
    # on the event loop's one thread, so it is never drawn from by two at once.
    rng: np.random.Generator = field(default_factory=np.random.default_rng)


SERVICE = web.AppKey("service", ExtenderService)


class RefusalError(Exception):
    """A request answered with a 4xx/5xx status and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _reply(status: int, body: bytes) -> web.Response:
    return web.Response(status=status, body=body, content_type=JSON)


async def _read(request: web.Request, limit: int) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise RefusalError(413, f"body: larger than the {limit} bytes this extender accepts") from None


def _require_synced(service: ExtenderService) -> None:
    if not service.cache.synced:
        raise RefusalError(503, "the extender has not listed nodes and pods yet; try again shortly")


def _refuse_unknown(args: SchedulingArgs, unknown: tuple[str, ...]) -> None:
    names = args.candidates.names
    if unknown and len(unknown) == len(set(names)):
        shown = ", ".join(unknown[:3]) + (", ..." if len(unknown) > 3 else "")
        raise RefusalError(
            422,
            f"NodeNames: none of the {len(set(names))} nodes is known to the extender ({shown}); "
            "is it watching the same cluster as the scheduler?",
        )


Answer = Callable[[ExtenderService, bytes], Awaitable[bytes]]


def verb(name: str, answer: Answer) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A POST handler: read, answer, time and count it; nothing escapes as a crash."""

    async def handle(request: web.Request) -> web.Response:
        service = request.app[SERVICE]
        started = time.perf_counter()
        code = 200
        try:
            body = await _read(request, service.settings.max_body_bytes)
            response = _reply(200, await answer(service, body))
        except WireError as exc:
            code = 400
            response = _reply(code, encode_error(str(exc)))
        except RefusalError as exc:
            code = exc.status
            response = _reply(code, encode_error(str(exc)))
        except Exception as exc:
            logger.exception("extender %s failed", name)
            code = 500
            response = _reply(
                code, encode_error(f"internal error ({type(exc).__name__}); see the extender's log")
            )
        service.metrics.record_request(name, code=code, seconds=time.perf_counter() - started)
        return response

    return handle


async def answer_filter(service: ExtenderService, body: bytes) -> bytes:
    args = service.requests.decode(body)
    _require_synced(service)
    # A new attempt for this pod: whatever we chose for it before did not stick.
    service.cache.forget(args.key)
    snapshot = service.cache.snapshot()
    service.metrics.record_cached_nodes(len(snapshot.row_of))
    names = args.candidates.names
    size = group_size(args.pod.labels)
    service.requests.remember_scores(args.key, None)
    if size > 1:
        decision = refuse_group(names, size)
    else:
        rows = service.requests.rows(names, snapshot.row_of)
        decision = decide_filter(snapshot.table, args.request, names, row_of=snapshot.row_of, rows=rows)
        if len(decision.passed) > 1:
            decision = _shortlist(service, snapshot, args, decision)
    _refuse_unknown(args, decision.unknown)
    if len(decision.passed) == 1:
        # kube-scheduler skips scoring when one node is left, so this is where the pod goes.
        service.cache.assume(dataclasses.replace(args.pod, node=decision.passed[0]))
    items = None
    if args.candidates.items is not None:
        passed = set(decision.passed)
        items = [item for item, name in zip(args.candidates.items, names, strict=True) if name in passed]
    passed_json = args.candidates.some_as_json(decision.passed)
    reply = FilterReply(
        passed=decision.passed,
        failed={**decision.failed, **dict.fromkeys(decision.unknown, UNKNOWN_NODE)},
        unresolvable=decision.unresolvable,
        items=items,
        passed_json=passed_json,
    )
    if passed_json is not None and args.pod_json is not None and len(decision.passed) > 1:
        # kube-scheduler's prioritize body for this pod (it skips prioritize for one node).
        service.requests.expect(
            as_sent(args.pod_json, passed_json),
            dataclasses.replace(args, candidates=Candidates(names=decision.passed, names_json=passed_json)),
            rows=decision.passed_rows,
            row_of=snapshot.row_of,
        )
    return reply.to_json()


def _shortlist(
    service: ExtenderService, snapshot: Snapshot, args: SchedulingArgs, decision: FilterDecision
) -> FilterDecision:
    """With `shortlist` on, and kube-scheduler's own scores for the pod independent of which nodes
    it scores (shortlist_rules: by the pod's spec, and by the cluster among the nodes that fit):
    score the nodes that fit and pass only those kube-scheduler could still choose
    (`Priorities.contenders`). It runs its score plugins on each node the filter passes, so where
    our scores tell nodes apart it scores a handful instead of thousands. Of nodes that our scores
    tie and that its own per-node plugins cannot tell apart either (likeness), one is kept, picked
    at random, unless the pod has volumes VolumeBinding scores. The scores are remembered for the
    prioritize to come. Otherwise every node that fits passes and prioritize scores them."""
    settings = service.settings
    if (
        not settings.shortlist
        or args.scoring_reason is not None
        or service.cache.scoring_reason(args.pod, args.tolerations, decision.passed) is not None
    ):
        return decision
    full = _priorities(service, snapshot, args, decision.passed, decision.passed_rows)
    keep = full.contenders(reach_points(settings.plugin_score_range, settings.scheduler_weight))
    if args.alike_reason is None:
        likeness = snapshot.likeness[decision.passed_rows]
        keep = one_of_each_class(keep, full.values, likeness=likeness, rng=service.rng)
    service.requests.remember_scores(
        args.key, FilterScores(fits=tuple(full.hosts), snapshot=snapshot, full=full, kept=full.keeping(keep))
    )
    return decision.keeping(keep)


def _priorities(
    service: ExtenderService,
    snapshot: Snapshot,
    args: SchedulingArgs,
    names: tuple[str, ...],
    rows: IntArray,
) -> Priorities:
    """The core's scores of ``names`` (table ``rows``) for the pod of ``args``."""
    target = service.cache.workload(args.pod)
    workload = compile_workload(target, snapshot.table.products)
    memo, fragmentation = service.fragmentation, service.weights.gpu_fragmentation
    context = ScoringContext(
        workload=workload,
        fragmentation_before=memo.before(snapshot, target, workload) if fragmentation else None,
        fragmentation_after=memo.after(snapshot, target, workload, args.request) if fragmentation else None,
        host_demand=service.cache.host_demand(args.pod) if service.weights.cpu_balance else None,
    )
    return decide_priorities(
        snapshot.table,
        args.request,
        names,
        row_of=snapshot.row_of,
        weights=service.weights,
        context=context,
        rows=rows,
    )


async def answer_prioritize(service: ExtenderService, body: bytes) -> bytes:
    args = service.requests.decode(body)
    _require_synced(service)
    snapshot = service.cache.snapshot()
    priorities = _remembered(service, snapshot, args)
    if priorities is None:  # the filter scored nothing (no shortlist) or other nodes: score these
        names = args.candidates.names
        priorities = _priorities(
            service, snapshot, args, names, service.requests.rows(names, snapshot.row_of)
        )
    _refuse_unknown(args, priorities.unknown)
    if priorities.chosen is not None:
        # Our top score makes this kube-scheduler's choice; count it now, before its bind (async) arrives.
        service.cache.assume(dataclasses.replace(args.pod, node=priorities.chosen))
    hosts, scores = priorities.above_zero()
    return encode_priorities(hosts, scores, plain=args.candidates.names_json is not None)


def _remembered(service: ExtenderService, snapshot: Snapshot, args: SchedulingArgs) -> Priorities | None:
    """The scores of the candidates as the filter took them, over every node that fit: scoring the
    shortlist alone would stretch the differences between its nodes (min-max over fewer nodes).
    Scored again over every node that fit if the cluster changed since. None: the filter did not
    score this pod, or passed other nodes."""
    scores = service.requests.scores_of(args.key)
    names = args.candidates.names
    if scores is None:
        return None
    if scores.snapshot is snapshot and tuple(scores.kept.hosts) == names:
        return scores.kept
    position = {name: i for i, name in enumerate(scores.fits)}
    if not all(name in position for name in names):
        return None
    full = scores.full
    if scores.snapshot is not snapshot:
        rows = candidate_rows(scores.fits, snapshot.row_of)
        full = _priorities(service, snapshot, args, scores.fits, rows)
    return full.keeping(np.array([position[name] for name in names], dtype=np.int64))


async def answer_bind(service: ExtenderService, body: bytes) -> bytes:
    args = decode_binding_args(body)
    _require_synced(service)
    key = (args.pod_namespace, args.pod_name)
    if not service.cache.has_node(args.node):
        raise RefusalError(422, f"Node: {args.node} is not known to the extender")
    watched = service.cache.pod(key)
    if watched is not None and args.pod_uid and watched.uid and watched.uid != args.pod_uid:
        service.metrics.record_binding("error")
        return encode_binding_result(
            f"pod {args.pod_namespace}/{args.pod_name} was recreated (uid {watched.uid}, not {args.pod_uid})"
        )
    template = service.cache.assumed(key) or watched
    if template is not None:
        service.cache.assume(dataclasses.replace(template, node=args.node))
    timeout = service.settings.bind_timeout_seconds
    try:
        await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(
                service.calls, service.bind, args.pod_namespace, args.pod_name, args.node
            ),
            timeout,
        )
    except TimeoutError:
        # The call may still succeed: keep counting the pod there until the watch says otherwise.
        service.metrics.record_binding("error")
        return encode_binding_result(f"pods/binding did not answer within {timeout:g} s")
    except ClusterError as exc:
        if exc.status == 409 and await _bound_to(service, key, args.node):
            service.metrics.record_binding("already_bound")
            return encode_binding_result()
        service.cache.forget(key)
        service.metrics.record_binding("error")
        return encode_binding_result(str(exc))
    service.metrics.record_binding("bound")
    return encode_binding_result()


async def _bound_to(service: ExtenderService, key: tuple[str, str], node: str) -> bool:
    """After a 409: is the pod already on ``node`` (a retried bind that had worked)?"""
    try:
        pod = await asyncio.get_running_loop().run_in_executor(service.calls, service.read_pod, *key)
    except ClusterError:
        return False
    return bool((pod.get("spec") or {}).get("nodeName") == node)


async def healthz(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    if not service.cache.synced:
        return web.Response(status=503, text="waiting for the first list of nodes and pods\n")
    service.metrics.record_cached_nodes(len(service.cache))
    return web.Response(text="ok\n")


async def metrics(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    return web.Response(body=service.metrics.exposition(), content_type="text/plain", charset="utf-8")


def build_app(service: ExtenderService) -> web.Application:
    """The aiohttp application; `client_max_size` makes aiohttp refuse large bodies as it reads."""
    app = web.Application(client_max_size=service.settings.max_body_bytes)
    app[SERVICE] = service
    prefix = service.settings.path_prefix
    app.router.add_post(f"{prefix}/filter", verb("filter", answer_filter))
    app.router.add_post(f"{prefix}/prioritize", verb("prioritize", answer_prioritize))
    app.router.add_post(f"{prefix}/bind", verb("bind", answer_bind))
    app.router.add_get("/healthz", healthz)
    if prefix:
        app.router.add_get(f"{prefix}/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app
