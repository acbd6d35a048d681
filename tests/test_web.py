"""The token endpoint and page server (bot/web/server.py), over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import ConfigError, Settings
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
@given(
    identity=st.text(max_size=140)
    | st.tuples(
        st.sampled_from(["agent-", "Agent-", "AGENT-", "agent", "bot-"]), st.text(max_size=8)
    ).map("".join),
    host=st.sampled_from(
        ["", "127.0.0.1", "localhost", "[::1]", "evil.example", "127.0.0.1.nip.io", "LOCALHOST"]
    ),
    port=st.sampled_from(["", ":8080", ":1"]),
)
async def test_any_request_is_refused_or_yields_exactly_the_identity_it_asked_for(
    make: Make, identity: str, host: str, port: str
) -> None:
    client = await make(reserved_identity_prefixes="bot-")
    headers = {"Host": f"{host}{port}"} if host else {}
    r = await client.post(
        "/token", json={"room_name": "demo", "participant_identity": identity}, headers=headers
    )
    if r.status == 200:
        sub = _claims((await r.json())["participant_token"])["sub"]
        assert sub == identity
        assert not sub.lower().startswith(("agent-", "bot-"))
        assert identity.strip() and len(identity) <= MAX_NAME
        assert not host or host.lower() in ("127.0.0.1", "localhost", "[::1]")
    else:
        assert r.status in (400, 403, 421), r.status


async def test_a_foreign_host_is_refused_everywhere(make: Make) -> None:
    """DNS rebinding: a page on another site whose name now points here."""
    client = await make()
    for path in ("/", "/token?room=demo&identity=ann", "/react"):
        r = await client.get(path, headers={"Host": "attacker.example:8080"})
        assert r.status == 421, path
    r = await client.get("/token?room=demo&identity=ann", headers={"Host": "localhost:8080"})
    assert r.status == 200
    named = await make(web_allowed_hosts="chat.example.com")
    r = await named.get("/token?room=demo&identity=ann", headers={"Host": "chat.example.com"})
    assert r.status == 200


async def test_agent_like_identities_are_never_issued(make: Make) -> None:
    client = await make(reserved_identity_prefixes="svc-, admin")
    for identity in ("agent-AJ_x7", "Agent-x", "svc-billing", "ADMINISTRATOR"):
        r = await client.post(
            "/token", json={"room_name": "demo", "participant_identity": identity}
        )
        assert r.status == 403, identity
        assert "reserved" in (await r.json())["error"]


async def test_an_identity_belongs_to_the_browser_it_was_issued_to(make: Make) -> None:
    ann = await make()
    body = {"room_name": "demo", "participant_identity": "ann"}
    first = await ann.post("/token", json=body)
    assert first.status == 200 and "lkbot_client" in first.cookies
    again = await ann.post("/token", json=body)  # the same browser (its cookie) refreshes
    assert again.status == 200
    # another browser (no cookie, or another one) cannot take ann in that room
    r = await ann.post("/token", json=body, cookies={"lkbot_client": "someone-else"})
    assert r.status == 409
    ann.session.cookie_jar.clear()
    r = await ann.post("/token", json=body)
    assert r.status == 409 and "another browser" in (await r.json())["error"]
    # ann in another room is another participant
    r = await ann.post("/token", json={"room_name": "elsewhere", "participant_identity": "ann"})
    assert r.status == 200


async def test_beyond_loopback_callers_must_be_authenticated(make: Make) -> None:
    with pytest.raises(ConfigError, match="BOT_WEB_AUTH"):
        WebServer(_settings(web_host="0.0.0.0"))
    with pytest.raises(ConfigError, match="BOT_WEB_AUTH_SECRET"):
        WebServer(_settings(web_host="0.0.0.0", web_auth="secret"))
    client = await make(web_host="0.0.0.0", web_auth="secret", web_auth_secret="sesame")
    body = {"room_name": "demo", "participant_identity": "ann"}
    assert (await client.post("/token", json=body)).status == 401
    bad = {"Authorization": "Bearer nope"}
    assert (await client.post("/token", json=body, headers=bad)).status == 401
    good = {"Authorization": "Bearer sesame"}
    r = await client.post("/token", json=body, headers=good)
    assert r.status == 200 and "lkbot_client" not in r.cookies
    # the backend that holds the secret mints for its users: again for ann, no cookie
    assert (await client.post("/token", json=body, headers=good)).status == 200
    body["participant_identity"] = "agent-1"
    assert (await client.post("/token", json=body, headers=good)).status == 403


async def test_a_login_hook_names_the_identity(make: Make) -> None:
    client = await make(web_host="0.0.0.0", web_auth="tests.test_web:login")
    r = await client.post("/token", json={"room_name": "demo"}, headers={"X-User": "bob"})
    assert r.status == 200
    assert _claims((await r.json())["participant_token"])["sub"] == "bob"
    r = await client.post(
        "/token",
        json={"room_name": "demo", "participant_identity": "ann"},
        headers={"X-User": "bob"},
    )
    assert r.status == 403
    assert (await client.post("/token", json={"room_name": "demo"})).status == 401


async def login(request: web.Request) -> str | None:
    """A stand-in for an app's login (a session cookie, an OAuth token...)."""
    return request.headers.get("X-User")
