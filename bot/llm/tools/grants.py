"""Which tools a participant may use: from claims the app's backend signed, never from
the payload (protocol v1.1, invariant 10; docs/tools.md).

The backend puts a JWT in the participant's `lkbot.grants` attribute when it mints
their LiveKit token (`AccessToken(...).with_attributes({"lkbot.grants": jwt})`), signed
with BOT_GRANTS_SECRET (HS256):

    {"sub": "<the participant identity>", "exp": <unix time>, "tools": ["refund", "*"]}

A tool named in BOT_GRANTED_TOOLS (`*`: every tool of the bot) is offered only to
participants whose valid claims grant it; every other tool is offered to everyone.
Claims that are missing, expired, badly signed or made for another identity grant
nothing (the default set), and are logged without their contents. A participant may
change their own attributes (if their token allows): they can remove their grants, or
put another's there, whose `sub` is not theirs; forging one takes the secret.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import jwt

from ...config import Settings
from ...transport import Peer

log = logging.getLogger(__name__)

GRANTS_ATTRIBUTE = "lkbot.grants"


@dataclass(frozen=True)
class Grant:
    """A participant's verified grant: what a tool acting for them may rely on.
    `token`, the signed JWT itself, is what is forwarded (an MCP server configured with
    `forward_grants` gets it in each call's `_meta`): the app's backend verifies it
    with its own secret rather than trusting the bot's word."""

    identity: str  # the participant (the claims' `sub`)
    tools: frozenset[str]  # granted tool names; "*" grants every tool
    claims: dict[str, object]  # the verified claims
    token: str


class Grants:
    def __init__(self, settings: Settings, peer: Callable[[str], Peer | None]) -> None:
        self._secret = settings.grants_secret.get_secret_value()
        self._gated = frozenset(settings.granted_tools)
        self._peer = peer  # a participant of the room by identity

    def grant_of(self, identity: str) -> Grant | None:
        """The participant's verified grant, or None."""
        peer = self._peer(identity)  # one lookup: every chat.message asks, in any room size
        token = peer.attributes.get(GRANTS_ATTRIBUTE) if peer is not None else None
        if not token or not self._secret:
            return None
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=["HS256"], options={"require": ["sub", "exp"]}
            )
        except jwt.ExpiredSignatureError:
            log.warning("the tool grants of a participant have expired: default tools")
            return None
        except jwt.PyJWTError as e:
            log.warning(
                "the tool grants of a participant are invalid (%s): default tools", type(e).__name__
            )
            return None
        if claims.get("sub") != identity:
            log.warning("tool grants made for another identity were presented: default tools")
            return None
        tools = claims.get("tools", [])
        if not isinstance(tools, list) or not all(isinstance(t, str) for t in tools):
            log.warning("tool grants with a malformed tools claim: default tools")
            return None
        return Grant(identity, frozenset(tools), claims, token)

    def allowed(self, identity: str, names: Iterable[str]) -> frozenset[str]:
        """Of the bot's tools `names`, those this participant may use."""
        names = frozenset(names)
        if not self._gated_of(names):
            return names
        return self.allowed_by(self.grant_of(identity), names)

    def allowed_by(self, grant: Grant | None, names: Iterable[str]) -> frozenset[str]:
        """Of the bot's tools `names`, those `grant` (a participant's, or None) allows."""
        names = frozenset(names)
        gated = self._gated_of(names)
        granted = frozenset() if grant is None else grant.tools
        return (names - gated) | (gated if "*" in granted else gated & granted)

    def _gated_of(self, names: frozenset[str]) -> frozenset[str]:
        return names if "*" in self._gated else names & self._gated
