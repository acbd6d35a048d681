"""The token endpoint and page server (bot/web/server.py), over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import Settings
from bot.web.server import MAX_NAME, WebServer

SECRET = "s" * 32
Make = Callable[..., Any]


def _settings(**over: Any) -> Settings:
    base: dict[str, Any] = {
        "livekit_url": "ws://127.0.0.1:7880",
        "livekit_api_key": "key",
        "livekit_api_secret": SECRET,
    }
    return Settings(**{**base, **over})


@pytest.fixture
async def make() -> AsyncIterator[Make]:
    clients: list[TestClient[Any, Any]] = []

    async def _make(**over: Any) -> TestClient[Any, Any]:
        client: TestClient[Any, Any] = TestClient(TestServer(WebServer(_settings(**over)).app()))
        await client.start_server()
        clients.append(client)
        return client

    yield _make
    for c in clients:
        await c.close()


def _claims(token: str) -> dict[str, Any]:
    return jwt.decode(token, SECRET, algorithms=["HS256"])  # type: ignore[no-any-return]


async def test_post_in_livekit_format(make: Make) -> None:
    client = await make(token_ttl=600)
    r = await client.post(
        "/token",
        json={"room_name": "demo", "participant_identity": "ann", "participant_name": "Ann"},
    )
    assert r.status == 200
    body = await r.json()
    assert body["server_url"] == "ws://127.0.0.1:7880"
    claims = _claims(body["participant_token"])
    assert claims["sub"] == "ann" and claims["name"] == "Ann"
    assert claims["video"]["room"] == "demo" and claims["video"]["canPublish"] is False
    assert claims["exp"] - claims["nbf"] == 600
    assert r.headers["Cache-Control"] == "no-store"


async def test_get_and_options(make: Make) -> None:
    client = await make(agent_name="helpdesk", token_can_update_metadata=False)
    r = await client.get("/token", params={"room": "demo", "identity": "bob"})
    claims = _claims((await r.json())["participant_token"])
    assert claims["roomConfig"] == {"agents": [{"agentName": "helpdesk"}]}
    assert claims["video"]["canUpdateOwnMetadata"] is False


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"room_name": "demo"}, "participant_identity is required"),
        ({"room_name": "demo", "participant_identity": ""}, "required"),
        ({"room_name": "demo", "participant_identity": "   "}, "blank"),
        ({"room_name": "demo", "participant_identity": "a" * (MAX_NAME + 1)}, "longer"),
        ({"room_name": "demo", "participant_identity": "a\x00b"}, "control"),
        ({"room_name": "demo", "participant_identity": 5}, "string"),
        ({"participant_identity": "ann"}, "room_name is required"),
        ([1, 2], "JSON object"),
    ],
)
async def test_refusals(make: Make, body: Any, why: str) -> None:
    client = await make()
    r = await client.post("/token", json=body)
    assert r.status == 400
    assert why in (await r.json())["error"]


async def test_not_json_and_too_large(make: Make) -> None:
    client = await make()
    r = await client.post("/token", data=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status == 400
    r = await client.post("/token", data=b"x" * 100_000)
    assert r.status == 413


async def test_cors_only_for_the_configured_origin(make: Make) -> None:
    body = {"room_name": "demo", "participant_identity": "ann"}
    closed = await make()
    r = await closed.post("/token", json=body, headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in r.headers
    r = await closed.options("/token", headers={"Origin": "http://evil.example"})
    assert r.status == 403
    open_ = await make(web_cors_origin="http://localhost:5173")
    r = await open_.options("/token", headers={"Origin": "http://localhost:5173"})
    assert r.status == 204 and "POST" in r.headers["Access-Control-Allow-Methods"]
    assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    r = await open_.post("/token", json=body, headers={"Origin": "http://localhost:5173"})
    assert r.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"
    r = await open_.post("/token", json=body, headers={"Origin": "http://other.example"})
    assert "Access-Control-Allow-Origin" not in r.headers


async def test_pages(make: Make) -> None:
    client = await make()
    r = await client.get("/")
    assert r.status == 200 and "dist/chat.js" in await r.text()
    r = await client.get("/react")
    assert r.status == 200 and "dist/react.js" in await r.text()
    assert (await client.get("/dist/../../bot/config.py")).status == 404


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(identity=st.text(max_size=140))
async def test_any_identity_is_refused_or_exactly_in_the_token(make: Make, identity: str) -> None:
    client = await make()
    r = await client.post("/token", json={"room_name": "demo", "participant_identity": identity})
    if r.status == 200:
        token = (await r.json())["participant_token"]
        assert _claims(token)["sub"] == identity
        assert identity.strip() and len(identity) <= MAX_NAME
    else:
        assert r.status == 400
