"""Client tokens with exactly the grants a chat client needs."""

from __future__ import annotations

from datetime import timedelta

from livekit import api

from ..config import Settings


def mint_token(
    settings: Settings,
    *,
    room: str,
    identity: str,
    name: str = "",
    ttl: timedelta = timedelta(hours=6),
    can_update_metadata: bool = True,
    attributes: dict[str, str] | None = None,
) -> str:
    """Join `room`, publish data, subscribe; no media publishing, no admin rights.

    When the bot runs with an agent name (explicit dispatch), the token also asks
    LiveKit to dispatch it to the room when this client joins. `attributes`: the
    participant's initial attributes (e.g. `lkbot.grants`, the tool grants your
    backend signed for this identity: docs/tools.md)."""
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=False,
        can_publish_data=True,
        can_subscribe=True,
        # lets the client announce itself at once by setting an attribute: the
        # server batches join announcements of non-publishers for up to 3 s
        can_update_own_metadata=can_update_metadata,
    )
    token = (
        api.AccessToken(settings.livekit_api_key, settings.livekit_api_secret)
        .with_identity(identity)
        .with_name(name or identity)
        .with_grants(grants)
        .with_ttl(ttl)
    )
    if attributes:
        token = token.with_attributes(attributes)
    if settings.agent_name:
        token = token.with_room_config(
            api.RoomConfiguration(agents=[api.RoomAgentDispatch(agent_name=settings.agent_name)])
        )
    return token.to_jwt()
