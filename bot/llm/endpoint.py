"""The LLM client: livekit-plugins-openai against any OpenAI-compatible endpoint.

Every room's `openai.LLM` shares one HTTP client (and its connection pool) per event
loop, as every room's direct LLM stream shares one aiohttp session (`shared_session`),
and every HTTP client shares one SSL context per process. Building an SSL context
costs 40–300 ms of CPU on a busy box; done once per room it blocked each new room's
event loop that long, which under a burst of new rooms starved livekit's FFI (it
panics when a room does not answer its connect callback in time) and slowed every join.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import weakref
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx2 as httpx  # what livekit-plugins-openai builds its clients with
import openai as openai_sdk
from aiohttp.helpers import get_env_proxy_for_url
from livekit.agents import NOT_GIVEN
from livekit.agents.inference.llm import drop_unsupported_params
from livekit.plugins import openai
from yarl import URL

from ..config import ConfigError, Settings

_lock = threading.Lock()
_ssl_context: ssl.SSLContext | None = None
# one client per (event loop, endpoint): the thread executor runs a loop per room, and
# an HTTP connection belongs to the loop that opened it
_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str | None, str], _Shared]
] = weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class Endpoint:
    """What `build_llm` made a model with: where `stream.DirectStep` sends its requests."""

    base_url: str | None
    api_key: str
    model: str
    extra: dict[str, Any]  # more request fields (temperature)


# the models build_llm made
_endpoints: weakref.WeakKeyDictionary[openai.LLM, Endpoint] = weakref.WeakKeyDictionary()


def endpoint_of(model: object) -> Endpoint | None:
    """What `build_llm` made `model` with; None for a model made elsewhere."""
    try:
        found: Endpoint | None = _endpoints.get(model)  # type: ignore[call-overload]
        return found
    except TypeError:  # not weakly referable: not ours
        return None


def shared_ssl_context() -> ssl.SSLContext:
    """The process's one SSL context (thread-safe; built on first use)."""
    global _ssl_context
    with _lock:
        if _ssl_context is None:
            _ssl_context = ssl.create_default_context()
        return _ssl_context


@dataclass(frozen=True)
class _Shared:
    client: openai_sdk.AsyncClient
    url: str  # its chat completions endpoint
    headers: dict[str, str]  # what the client sends with a request


def _shared(base_url: str | None, api_key: str) -> _Shared:
    loop = asyncio.get_running_loop()
    with _lock:
        per_loop = _clients.setdefault(loop, {})
        shared = per_loop.get((base_url, api_key))
    if shared is not None and not shared.client.is_closed():
        return shared
    http = httpx.AsyncClient(
        verify=shared_ssl_context(),
        # the request timeout comes from the engine's APIConnectOptions (BOT_LLM_TIMEOUT)
        timeout=httpx.Timeout(connect=15.0, read=5.0, write=5.0, pool=5.0),
        follow_redirects=True,
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
    )
    client = openai_sdk.AsyncClient(
        api_key=api_key,
        base_url=base_url,
        max_retries=0,  # retries are the engine's (BOT_LLM_RETRIES)
        http_client=http,
    )
    headers = {k: v for k, v in client.default_headers.items() if isinstance(v, str)}
    headers["Authorization"] = f"Bearer {api_key}"
    url = str(client.base_url).rstrip("/") + "/chat/completions"
    shared = _Shared(client, url, headers)
    with _lock:
        per_loop[(base_url, api_key)] = shared
    return shared


def shared_client(base_url: str | None, api_key: str) -> openai_sdk.AsyncClient:
    """The running loop's OpenAI client for this endpoint, made on first use."""
    return _shared(base_url, api_key).client


@dataclass(frozen=True)
class Session:
    """What `stream.DirectStep` sends with: an aiohttp session (its own connection
    pool), the OpenAI client's chat completions URL and headers."""

    http: aiohttp.ClientSession
    url: str
    headers: dict[str, str]
    closer: AsyncGenerator[None, None]  # closes `http` when the loop shuts down
    proxy: URL | None  # the environment's proxy for `url` (HTTPS_PROXY, NO_PROXY...)
    proxy_auth: aiohttp.BasicAuth | None


# one per (event loop, endpoint), as the OpenAI clients
_sessions: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str | None, str], Session]
] = weakref.WeakKeyDictionary()


async def shared_session(base_url: str | None, api_key: str) -> Session:
    """The running loop's session for this endpoint, made on first use.

    aiohttp, not the OpenAI client's httpx pool: httpx looks at every idle connection
    (a socket poll and a getpeername each) on each request and at each response's end,
    and spends about 2.5x aiohttp's CPU per streamed request besides (bench: 1.15 vs
    0.45 ms on this box); in a room of 100 users the httpx client was 43% of the
    worker's event loop. Same URL, headers, SSL context and proxy (the environment's,
    as httpx's `trust_env`)."""
    loop = asyncio.get_running_loop()
    found = _sessions.get(loop, {}).get((base_url, api_key))
    if found is not None and not found.http.closed:
        return found
    shared = _shared(base_url, api_key)
    # the proxy is looked up once: aiohttp's trust_env looks it (and ~/.netrc) up in a
    # thread on every request, two thread hops per turn
    try:
        proxy, proxy_auth = get_env_proxy_for_url(URL(shared.url))
    except LookupError:
        proxy, proxy_auth = None, None
    http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=shared_ssl_context(), limit=200, limit_per_host=0)
    )
    closer = _close_at_shutdown(http)
    await closer.__anext__()  # suspended: the loop's shutdown_asyncgens() ends it
    session = Session(http, shared.url, shared.headers, closer, proxy, proxy_auth)
    with _lock:
        _sessions.setdefault(loop, {})[(base_url, api_key)] = session
    return session


async def _close_at_shutdown(http: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """An async generator left suspended: `asyncio.run` (and any Runner) closes the
    loop's unfinished ones as it shuts down, and with this one the session."""
    try:
        yield
    finally:
        await http.close()


def api_key(settings: Settings) -> str:
    """The key to send, or a ConfigError that says what to set."""
    key = settings.openai_api_key
    if not key and settings.openai_base_url:
        key = "not-needed"  # local OpenAI-compatible servers accept any key
    if not key:
        raise ConfigError(
            "OPENAI_API_KEY: not set (BOT_LLM_MODE=openai). Set it, and optionally "
            "OPENAI_BASE_URL and BOT_MODEL, or use BOT_LLM_MODE=auto for the local model"
        )
    return key


def build_llm(settings: Settings) -> openai.LLM:
    """An `openai.LLM`. Inside a running loop it uses the loop's shared client (its
    `aclose()` leaves that open for the other rooms); outside, a client of its own."""
    key = api_key(settings)
    try:
        client: openai_sdk.AsyncClient | None = shared_client(settings.openai_base_url, key)
    except RuntimeError:  # no running loop
        client = None
    model = openai.LLM(
        model=settings.model,
        api_key=key,
        base_url=settings.openai_base_url or NOT_GIVEN,
        temperature=settings.temperature if settings.temperature is not None else NOT_GIVEN,
        max_retries=0,  # retries are the engine's (BOT_LLM_RETRIES)
        client=client,
    )
    extra = {} if settings.temperature is None else {"temperature": settings.temperature}
    # what livekit-plugins-openai would leave out for this model (e.g. a reasoning
    # model's temperature)
    extra = drop_unsupported_params(settings.model, extra)
    _endpoints[model] = Endpoint(settings.openai_base_url, key, settings.model, extra)
    return model
