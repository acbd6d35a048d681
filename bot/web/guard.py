"""Who may have a token from `/token`, for which identity (docs/security.md).

- **Host**: only the names this server is reached by (loopback names, BOT_WEB_HOST,
  BOT_WEB_ALLOWED_HOSTS). Another `Host:` is a page on some site that rebound its
  DNS name to this machine: refused, so it can never read a token.
- **Identities that look like agents** (`agent-…`: LiveKit names agents `agent-<job
  id>`, and any prefix in BOT_RESERVED_IDENTITY_PREFIXES) are never issued: a client that took
  the bot's identity would kick it out and receive what users send it.
- **Callers** (BOT_WEB_AUTH): on loopback, nobody is asked who they are, but an
  identity issued to one browser (a cookie) is not issued to another while it is
  bound (BOT_WEB_BINDING_TTL after its last token): somebody else on the page cannot
  take `ann` while ann uses it, nor read her conversation. Beyond loopback the
  operator must say how callers are authenticated: `secret` (a shared secret in
  `Authorization: Bearer …`, for the app's own backend) or `module:function` (a hook
  to the app's login: it gets the request and returns the identity it may have, or
  None). The server refuses to start on another interface without either.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import inspect
import ipaddress
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from ..config import ConfigError, Settings

COOKIE = "lkbot_client"
AGENT_PREFIX = "agent-"  # LiveKit's agent identities: agent-<job id>
MAX_BINDINGS = 100_000
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})

Hook = Callable[[web.Request], "str | Awaitable[str | None] | None"]


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """`Host:` without its port, lower case (`[::1]:8080` -> `::1`)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def load_hook(spec: str) -> Hook:
    module, _, name = spec.partition(":")
    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ConfigError(f"BOT_WEB_AUTH={spec!r}: {name!r} is not a function of {module!r}")
    return fn  # type: ignore[no-any-return]


def check_settings(settings: Settings) -> None:
    """Refuse to serve tokens beyond loopback unless callers are authenticated."""
    auth = settings.web_auth
    if auth == "secret" and not settings.web_auth_secret:
        raise ConfigError("BOT_WEB_AUTH=secret needs BOT_WEB_AUTH_SECRET (the shared secret)")
    if auth not in ("", "secret") and ":" not in auth:
        raise ConfigError(
            f"BOT_WEB_AUTH={auth!r}: use 'secret' or 'module:function' (a hook to your login)"
        )
    if not auth and not is_loopback(settings.web_host):
        raise ConfigError(
            f"BOT_WEB_HOST={settings.web_host} would hand tokens for any identity to anyone "
            "who reaches this machine. Say how callers are authenticated: BOT_WEB_AUTH=secret "
            "with BOT_WEB_AUTH_SECRET (your backend sends 'Authorization: Bearer <secret>'), "
            "or BOT_WEB_AUTH=module:function (a hook to your app's login); see docs/security.md"
        )


class Guard:
    def __init__(self, settings: Settings) -> None:
        check_settings(settings)
        self.settings = settings
        self.hook: Hook | None = None
        if settings.web_auth not in ("", "secret"):
            self.hook = load_hook(settings.web_auth)
        self.hosts = set(LOOPBACK_NAMES) | {h.lower() for h in settings.web_allowed_hosts}
        if settings.web_host not in ("0.0.0.0", "::", ""):
            self.hosts.add(host_name(settings.web_host))
        self.prefixes = tuple(
            dict.fromkeys(p.lower() for p in (AGENT_PREFIX, *settings.reserved_identity_prefixes))
        )
        # binding key -> (hash of the browser's cookie, until monotonic s)
        self._bound: OrderedDict[str, tuple[str, float]] = OrderedDict()

    # -- every request --

    def check_host(self, request: web.Request) -> None:
        name = host_name(request.headers.get("Host", ""))
        if name not in self.hosts:
            raise Refused(
                421,
                f"this server does not serve the host {name!r} "
                "(BOT_WEB_ALLOWED_HOSTS names the hosts it serves)",
            )

    # -- /token --

    def check_identity(self, identity: str) -> None:
        if identity.lower().startswith(self.prefixes):
            raise Refused(
                403,
                f"identities starting with {' or '.join(self.prefixes)} are reserved",
            )

    async def authorize(self, request: web.Request, identity: str) -> str:
        """The identity this caller may have (the one asked for, unless a hook names
        another); raises Refused."""
        auth = self.settings.web_auth
        if auth == "secret":
            given = request.headers.get("Authorization", "")
            want = f"Bearer {self.settings.web_auth_secret.get_secret_value()}"
            if not hmac.compare_digest(given.encode(), want.encode()):
                raise Refused(401, "this token endpoint needs 'Authorization: Bearer <secret>'")
            return identity
        if self.hook is not None:
            result = self.hook(request)
            allowed = await result if inspect.isawaitable(result) else result
            if not allowed:
                raise Refused(401, "not signed in")
            if identity and identity != allowed:
                raise Refused(403, f"you may join only as {allowed!r}")
            return str(allowed)
        return identity

    def bind(self, request: web.Request, key: str) -> str | None:
        """Loopback without authentication: an identity belongs to the browser it was
        first issued to, while its binding lasts. Returns a new cookie to set, if any."""
        if self.settings.web_auth:
            return None
        cookie = request.cookies.get(COOKIE, "")
        fresh = None
        if not cookie:
            cookie = fresh = secrets.token_urlsafe(24)
        mine = hashlib.sha256(cookie.encode()).hexdigest()
        now = time.monotonic()
        held = self._bound.get(key)
        if held is not None and held[1] > now and not hmac.compare_digest(held[0], mine):
            raise Refused(
                409,
                "this identity is in use by another browser; choose another "
                "(a client that asks again for the same identity sends back the "
                f"{COOKIE} cookie it was given)",
            )
        self._bound[key] = (mine, now + self.settings.web_binding_ttl)
        self._bound.move_to_end(key)
        while len(self._bound) > MAX_BINDINGS:
            oldest, (_, until) = next(iter(self._bound.items()))
            if until > now:
                break  # all in use: refuse newcomers rather than free a held one
            del self._bound[oldest]
        if len(self._bound) > MAX_BINDINGS:
            del self._bound[key]
            raise Refused(503, "too many identities in use; try again later")
        return fresh


def cookie_options(request: web.Request) -> dict[str, Any]:
    return {
        "httponly": True,
        "samesite": "Lax",
        "secure": request.secure,
        "path": "/",
        "max_age": 365 * 86400,
    }
