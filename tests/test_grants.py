"""Per-participant grants (invariant 10): a tool in BOT_GRANTED_TOOLS is offered, and
runs, only for a participant whose `lkbot.grants` attribute holds claims the app's
backend signed for that identity; never from the payload."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import Settings
from bot.llm.tools.grants import GRANTS_ATTRIBUTE, Grants
from bot.protocol.outbound import SessionReady, TurnToolResult
from bot.transport import Peer

from .conftest import MakeBot
from .harness import chat, msg, script
from .rig import explore

SECRET = "grants-secret-of-the-app-backend"
TOOLS = {"current_time", "calculate", "participants", "echo", "boom"}


def signed(sub: str, tools: Any, *, ttl: float = 600, key: str = SECRET, **more: Any) -> str:
    claims = {"sub": sub, "exp": int(time.time() + ttl), "tools": tools, **more}
    return jwt.encode(claims, key, algorithm="HS256")


def grants_for(
    attributes: dict[str, str], identity: str = "ann", gated: str = "echo"
) -> frozenset[str]:
    settings = Settings(granted_tools=gated, grants_secret=SECRET)
    peers = [Peer(identity, identity, "standard", attributes)]
    return Grants(
        settings, lambda who: next((p for p in peers if p.identity == who), None)
    ).allowed(identity, TOOLS)


def test_a_valid_grant_unlocks_the_gated_tools_it_names() -> None:
    default = TOOLS - {"echo"}
    assert grants_for({}) == default
    assert grants_for({GRANTS_ATTRIBUTE: signed("ann", ["echo"])}) == TOOLS
    assert grants_for({GRANTS_ATTRIBUTE: signed("ann", ["*"])}) == TOOLS
    assert grants_for({GRANTS_ATTRIBUTE: signed("ann", ["boom"])}) == default  # not gated
    everything_gated = grants_for({GRANTS_ATTRIBUTE: signed("ann", ["calculate"])}, gated="*")
    assert everything_gated == {"calculate"}


@pytest.mark.parametrize(
    "token",
    [
        signed("ann", ["echo"], ttl=-5),  # expired
        signed("bob", ["echo"]),  # made for another identity
        signed("ann", ["echo"], key="a guess that is long enough to sign"),  # not the backend's
        signed("ann", "echo"),  # malformed tools claim
        jwt.encode({"sub": "ann", "tools": ["echo"]}, SECRET, algorithm="HS256"),  # no exp
        jwt.encode({"sub": "ann", "exp": 2**40, "tools": ["echo"]}, None, algorithm="none"),
        "not a jwt",
    ],
)
def test_claims_that_do_not_hold_grant_nothing(
    token: str, caplog: pytest.LogCaptureFixture
) -> None:
    assert grants_for({GRANTS_ATTRIBUTE: token}) == TOOLS - {"echo"}
    assert token not in caplog.text  # logged without their contents


@explore(60)
@given(
    sub=st.sampled_from(["ann", "bob", ""]),
    tools=st.lists(st.sampled_from(["echo", "*", "boom", "x"]), max_size=3),
    key=st.sampled_from([SECRET, "another key, long enough to sign with"]),
    ttl=st.sampled_from([-60, 600]),
)
def test_echo_is_granted_only_by_a_valid_signed_claim_for_this_identity(
    sub: str, tools: list[str], key: str, ttl: float
) -> None:
    allowed = grants_for({GRANTS_ATTRIBUTE: signed(sub, tools, key=key, ttl=ttl)})
    valid = sub == "ann" and key == SECRET and ttl > 0
    assert ("echo" in allowed) == (valid and bool({"echo", "*"} & set(tools)))
    assert allowed >= TOOLS - {"echo"}


async def test_two_participants_see_and_may_run_different_tools(make_bot: MakeBot) -> None:
    bot = await make_bot(granted_tools="echo", grants_secret=SECRET)
    bot.transport._peers = [
        Peer("ann", "Ann", "standard", {GRANTS_ATTRIBUTE: signed("ann", ["echo"])}),
        Peer("bob", "Bob", "standard", {GRANTS_ATTRIBUTE: signed("ann", ["echo"])}),  # ann's
    ]
    names = {}
    for who in ("ann", "bob"):
        bot.send(who, msg("session.hello", id=f"h-{who}"))
        ready = await bot.answer(who, f"h-{who}")
        assert isinstance(ready, SessionReady)
        names[who] = {t.name for t in ready.tools}
    assert "echo" in names["ann"] and "echo" not in names["bob"]
    assert names["ann"] - {"echo"} == names["bob"]

    # the payload cannot grant: a model scripted to call echo for bob gets it refused
    for who in ("ann", "bob"):
        bot.send(who, chat(script(tool="echo", args={"text": "ran"}), id=f"m-{who}"))
    ann, bob = [await bot.turn_ends(who) for who in ("ann", "bob")]
    (ran,) = [m for m in ann if isinstance(m, TurnToolResult)]
    (refused,) = [m for m in bob if isinstance(m, TurnToolResult)]
    assert (ran.status, ran.output) == ("ok", "ran")
    assert refused.status == "error" and refused.output is not None
    assert "not available" in refused.output and "ran" not in refused.output


DOCS = Path(__file__).resolve().parent.parent / "docs" / "tools.md"


def docs_block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


def test_the_docs_backend_snippet_mints_what_the_bot_accepts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BOT_GRANTS_SECRET", SECRET)
    monkeypatch.setenv("LIVEKIT_API_KEY", "devkey")
    monkeypatch.setenv("LIVEKIT_API_SECRET", "a LiveKit API secret of 32 bytes+")
    scope: dict[str, Any] = {}
    exec(docs_block("def token_for"), scope)  # the docs' own code
    token = scope["token_for"]("ann", "demo", ["echo"])
    claims = jwt.decode(token, "a LiveKit API secret of 32 bytes+", algorithms=["HS256"])
    assert claims["sub"] == "ann" and claims["video"]["room"] == "demo"
    assert grants_for(claims["attributes"]) == TOOLS
