"""The chat page and a token endpoint, on one HTTP port (BOT_WEB_PORT, 127.0.0.1).

`POST /token` takes the body LiveKit's token endpoints take (`TokenSource.endpoint()`
of livekit-client, the agent starters' `/api/token`):
`{"room_name": "demo", "participant_identity": "ann", "participant_name": "Ann"}` and
answers `{"server_url": ..., "participant_token": ...}`; `GET /token?room=demo&identity=ann`
does the same for curl. The token has the grants a chat client needs and nothing more
(bot/room/tokens.py), lives BOT_TOKEN_TTL seconds, and requests the bot when
BOT_AGENT_NAME is set. Empty or over-long room names and identities are refused (400).
Browsers on another origin may call it only if BOT_WEB_CORS_ORIGIN names that origin.

Who may have which identity is bot/web/guard.py: only the Host names it serves, never
an agent-like identity, an identity bound to the browser it was first issued to, and
beyond loopback only with BOT_WEB_AUTH (a shared secret, or a hook to your login).
In production, mint tokens in your own backend, after your own authentication
(docs/security.md).

`GET /` is the chat page (web/index.html, bundled from web/chat.ts with the TypeScript
client), `GET /react` the same chat built on LiveKit's stock React components.
"""

from __future__ import annotations

import json
import logging
import unicodedata
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from ..config import Settings
from ..room.tokens import mint_token
from .guard import COOKIE, Guard, Refused, cookie_options

log = logging.getLogger("bot.web")
WEB_ROOT = Path(__file__).resolve().parents[2] / "web"
MAX_NAME = 128  # room names, identities and display names
MAX_BODY = 16 * 1024


class BadRequest(Exception):
    pass


def _field(value: Any, what: str, *, required: bool = True) -> str:
    if value is None or value == "":
        if required:
            raise BadRequest(f"{what} is required")
        return ""
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be a string")
    if not value.strip():
        raise BadRequest(f"{what} must not be blank")
    if len(value) > MAX_NAME:
        raise BadRequest(f"{what} is longer than {MAX_NAME} characters")
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs") for c in value):
        raise BadRequest(f"{what} contains control characters")
    return value


class WebServer:
    def __init__(self, settings: Settings, *, root: Path = WEB_ROOT) -> None:
        self.settings = settings
        self.guard = Guard(settings)  # raises on settings that would open a token mint
        self.root = root
        self.port = 0
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.web_host}:{self.port}/"

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._host, self._cors])
        app.router.add_post("/token", self._token)
        app.router.add_get("/token", self._token)
        app.router.add_route("OPTIONS", "/token", self._preflight)
        app.router.add_get("/", self._page("index.html"))
        app.router.add_get("/react", self._page("react.html"))
        app.router.add_get("/style.css", self._page("style.css"))
        if (self.root / "dist").is_dir():
            app.router.add_static("/dist", self.root / "dist")
        return app

    async def start(self) -> str:
        """Serve on BOT_WEB_PORT; if it is taken, on a free port (with a warning)."""
        self._runner = web.AppRunner(self.app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        host, port = self.settings.web_host, self.settings.web_port
        try:
            await web.TCPSite(self._runner, host, port).start()
        except OSError as e:
            if port == 0:
                raise
            log.warning("port %d is taken (%s): serving the chat page on a free port", port, e)
            await web.TCPSite(self._runner, host, 0).start()
        self.port = int(self._runner.addresses[-1][1])
        if not (self.root / "dist" / "chat.js").is_file():
            log.warning("the chat page is not built: run scripts/build-web.sh (needs Node.js)")
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the token endpoint --

    async def _token(self, request: web.Request) -> web.Response:
        try:
            if request.method == "POST":
                try:
                    body = await request.json()
                except (json.JSONDecodeError, UnicodeDecodeError) as e:
                    raise BadRequest(f"the body is not JSON: {e}") from None
                if not isinstance(body, dict):
                    raise BadRequest("the body must be a JSON object")
                room = body.get("room_name")
                identity = body.get("participant_identity")
                name = body.get("participant_name")
            else:
                room = request.query.get("room")
                identity = request.query.get("identity")
                name = request.query.get("name")
            room = _field(room, "room_name")
            identity = _field(identity, "participant_identity", required=self.guard.hook is None)
            name = _field(name, "participant_name", required=False)
            identity = await self.guard.authorize(request, identity)
            self.guard.check_identity(identity)
            scope = "" if self.settings.conversation_scope == "identity" else room
            cookie = self.guard.bind(request, f"{scope}\x00{identity}")
        except BadRequest as e:
            return web.json_response({"error": str(e)}, status=400)
        except Refused as e:
            return web.json_response({"error": e.message}, status=e.status)
        except web.HTTPRequestEntityTooLarge:
            return web.json_response({"error": "the body is too large"}, status=413)
        token = mint_token(
            self.settings,
            room=room,
            identity=identity,
            name=name,
            ttl=timedelta(seconds=self.settings.token_ttl),
            can_update_metadata=self.settings.token_can_update_metadata,
        )
        response = web.json_response(
            {
                "server_url": self.settings.livekit_url,
                "participant_token": token,
                "room_name": room,
                "participant_identity": identity,
            },
            headers={"Cache-Control": "no-store"},
        )
        if cookie is not None:
            response.set_cookie(COOKIE, cookie, **cookie_options(request))
        return response

    def _allowed_origin(self, origin: str | None) -> str | None:
        allowed = self.settings.web_cors_origin
        if not origin or not allowed:
            return None
        if allowed == "*" or origin == allowed.rstrip("/"):
            return origin
        return None

    async def _preflight(self, request: web.Request) -> web.Response:
        if self._allowed_origin(request.headers.get("Origin")) is None:
            return web.Response(status=403, text="origin not allowed")
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, Authorization",
                "Access-Control-Max-Age": "600",
            },
        )

    @web.middleware
    async def _host(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Only the Host names this server serves: another is DNS rebinding."""
        try:
            self.guard.check_host(request)
        except Refused as e:
            return web.json_response({"error": e.message}, status=e.status)
        response: web.StreamResponse = await handler(request)
        return response

    @web.middleware
    async def _cors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        origin = self._allowed_origin(request.headers.get("Origin"))
        if origin is not None and request.path == "/token":
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            if self.settings.web_cors_origin != "*":
                # a named origin may send the cookie back (fetch credentials: "include")
                response.headers["Access-Control-Allow-Credentials"] = "true"
        return response

    # -- the pages --

    def _page(self, name: str) -> Any:
        async def serve(_request: web.Request) -> web.StreamResponse:
            path = self.root / name
            if not path.is_file():
                raise web.HTTPNotFound(text=f"{name} is missing")
            return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

        return serve
