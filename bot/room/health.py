"""The worker's HTTP port (BOT_HTTP_PORT): `GET /` answers 200 while the worker runs
(for a load balancer or an orchestrator's liveness probe), `GET /worker` its rooms,
`GET /metrics` Prometheus metrics (`core/metrics.py`, docs/operations.md)."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..core import metrics


class Rooms(Protocol):
    def status(self) -> tuple[float, int, bool]: ...


class HealthServer:
    def __init__(self, rooms: Rooms) -> None:
        self._rooms = rooms
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _health(self, _request: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def _worker(self, _request: web.Request) -> web.Response:
        load, rooms, full = self._rooms.status()
        return web.json_response({"rooms": rooms, "load": load, "full": full})

    async def _metrics(self, _request: web.Request) -> web.Response:
        body = generate_latest(metrics.REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def start(self, host: str, port: int) -> None:
        app = web.Application()
        app.router.add_get("/", self._health)
        app.router.add_get("/worker", self._worker)
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
