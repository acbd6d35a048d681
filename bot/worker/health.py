"""The worker's HTTP port (BOT_HTTP_PORT): `GET /` answers 200 while the worker runs
(an orchestrator's liveness probe), `GET /ready` 200 while it is registered with
LiveKit (503 once it has been unregistered for `READY_GRACE_S`: a readiness probe),
`GET /worker` its rooms, `GET /metrics` Prometheus metrics (`metrics.py`,
docs/operations.md), `POST /webhook` LiveKit's webhooks (the dispatch watchdog looks at
the rooms they name)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import metrics

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve_http(
    routes: Mapping[str, Handler], host: str, port: int, *, method: str = "GET"
) -> tuple[web.AppRunner, int]:
    """`routes` (for `method`, or the method a key names: `"POST /webhook"`) on
    host:port (0: a free port); the runner, and the port bound."""
    app = web.Application()
    for route, handler in routes.items():
        verb, _, path = route.rpartition(" ")
        app.router.add_route(verb or method, path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sockets = getattr(site._server, "sockets", None) or []
    return runner, sockets[0].getsockname()[1] if sockets else port


class Rooms(Protocol):
    def status(self) -> tuple[float, int, bool]: ...


class HealthServer:
    def __init__(
        self,
        rooms: Rooms,
        ready: Callable[[], bool] = lambda: True,
        webhook: Callable[[str, str], bool] | None = None,
    ) -> None:
        """`webhook(body, authorization)`: a LiveKit webhook, POSTed to `/webhook`;
        False when its signature does not check out."""
        self._rooms = rooms
        self._ready = ready
        self._webhook = webhook
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _health(self, _request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def _readiness(self, _request: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ready")
        return web.Response(status=503, text="not registered with livekit-server")

    async def _hook(self, request: web.Request) -> web.Response:
        if self._webhook is None:
            return web.Response(status=404)
        body = await request.text()
        if not self._webhook(body, request.headers.get("Authorization", "")):
            return web.Response(status=401, text="bad signature")
        return web.Response(text="ok")

    async def _worker(self, _request: web.Request) -> web.Response:
        load, rooms, full = self._rooms.status()
        return web.json_response({"rooms": rooms, "load": load, "full": full})

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self, host: str, port: int) -> None:
        self._runner, self.port = await serve_http(
            {
                "/": self._health,
                "/ready": self._readiness,
                "/worker": self._worker,
                "/metrics": self._metrics,
                "POST /webhook": self._hook,
            },
            host,
            port,
        )

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
