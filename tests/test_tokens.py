from __future__ import annotations

from datetime import timedelta

import jwt

from bot.config import Settings
from bot.room.tokens import mint_token


def _claims(agent_name: str = "") -> dict[str, object]:
    s = Settings(livekit_api_key="key", livekit_api_secret="s" * 32, agent_name=agent_name)
    token = mint_token(s, room="lobby", identity="ann", ttl=timedelta(minutes=30))
    return jwt.decode(token, "s" * 32, algorithms=["HS256"])  # type: ignore[no-any-return]


def test_token_grants_exactly_what_a_chat_client_needs() -> None:
    claims = _claims()
    assert claims["sub"] == "ann" and claims["iss"] == "key"
    video = claims["video"]
    assert video == {
        "roomJoin": True,
        "room": "lobby",
        "canPublish": False,
        "canPublishData": True,
        "canSubscribe": True,
        "canUpdateOwnMetadata": True,
    }
    assert int(claims["exp"]) - int(claims["nbf"]) == 30 * 60  # type: ignore[call-overload]
    assert "roomConfig" not in claims


def test_token_dispatches_a_named_bot() -> None:
    claims = _claims(agent_name="helpdesk")
    assert claims["roomConfig"] == {"agents": [{"agentName": "helpdesk"}]}
