"""The extender's HTTP server (aiohttp), in the caller's event loop or in a thread of its own.

Why aiohttp: it already comes with kopf (no new dependency in the image), it is asyncio-native
(kopf's loop can host it in `modeljob run`), it is maintained by the aio-libs organisation with
regular releases, it caps request bodies while reading them (`client_max_size`: a 10 MB body is
refused without being buffered whole), and it ships a test server and client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from modeljob.adapters.cluster import ClusterGateway
from modeljob.adapters.extender.cache import ClusterCache
from modeljob.adapters.extender.cache_feed import ClusterFeed
from modeljob.adapters.extender.metrics import ExtenderMetrics
from modeljob.adapters.extender.routes import ExtenderService, build_app
from modeljob.adapters.extender.settings import ExtenderSettings
from modeljob.adapters.kube_nodes import NodeLabelKeys
from modeljob.core.scoring.weights import ScoringWeights

logger = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 30.0


class ExtenderServer:
    """One aiohttp site on host:port (port 0: any free port, see ``port`` once started)."""

    def __init__(self, app: web.Application, *, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = port

    async def start(self) -> None:
        # keepalive: kube-scheduler reuses one connection for all its calls (Go's default transport).
        runner = web.AppRunner(self._app, access_log=None, keepalive_timeout=75)
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._requested_port, reuse_address=True)
        await site.start()
        self._runner = runner
        sockets = [address for address in runner.addresses if isinstance(address, tuple)]
        if sockets:
            self.port = int(sockets[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- in a thread of its own (tests, and `modeljob run` next to kopf) -------------------------

    def start_in_thread(self) -> None:
        """Serve from a daemon thread with its own event loop; returns once listening."""
        started = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(self.start())
            except BaseException as exc:
                failure.append(exc)
                started.set()
                loop.close()
                return
            started.set()
            loop.run_forever()
            loop.run_until_complete(self.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="extender-http", daemon=True)
        self._thread.start()
        if not started.wait(START_TIMEOUT_SECONDS):
            raise RuntimeError(f"the extender did not start listening within {START_TIMEOUT_SECONDS:g} s")
        if failure:
            raise failure[0]

    def stop_thread(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._thread = None
        self._loop = None


def build_service(
    gateway: ClusterGateway,
    cache: ClusterCache,
    *,
    weights: ScoringWeights,
    settings: ExtenderSettings,
    metrics: ExtenderMetrics,
) -> ExtenderService:
    return ExtenderService(
        cache=cache,
        weights=weights,
        metrics=metrics,
        settings=settings,
        bind=gateway.bind_pod,
        read_pod=gateway.read_pod,
        calls=ThreadPoolExecutor(settings.bind_workers, thread_name_prefix="extender-bind"),
    )


def serve(
    gateway: ClusterGateway,
    *,
    weights: ScoringWeights,
    labels: NodeLabelKeys,
    settings: ExtenderSettings,
    on_listening: Callable[[int], None] | None = None,
) -> int:
    """`modeljob extender`: watch nodes and pods, serve until SIGTERM/SIGINT. Returns the exit code."""
    cache = ClusterCache(assume_seconds=settings.assume_seconds)
    feed = ClusterFeed(gateway, cache, labels=labels)
    metrics = ExtenderMetrics()
    service = build_service(gateway, cache, weights=weights, settings=settings, metrics=metrics)
    server = ExtenderServer(build_app(service), host=settings.host, port=settings.port)
    feed.start()
    if feed.wait_synced(settings.sync_timeout_seconds):
        logger.info("listed %d nodes from %s", len(cache), gateway.server)
    else:
        # Serve anyway: /healthz and the verbs answer 503 until the lists arrive.
        logger.warning(
            "no list of nodes and pods from %s within %g s", gateway.server, settings.sync_timeout_seconds
        )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):  # not on every platform
                loop.add_signal_handler(signum, stop.set)
        await server.start()
        logger.info(
            "scheduler extender listening on http://%s:%d%s (filter, prioritize, bind)",
            settings.host,
            server.port,
            settings.path_prefix,
        )
        if on_listening is not None:
            on_listening(server.port)
        await stop.wait()
        await server.stop()

    try:
        asyncio.run(main())
    finally:
        feed.stop()
    return 0
