"""What a handler gets: its sender's conversation, shared services, and `reply`."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Settings
from ..llm.tools.grants import Grant, Grants
from ..protocol.outbound import BotEnvelope
from ..turns.engine import TurnEngine
from .conversation import Conversation


@dataclass
class Services:
    """Shared by every sender in one room. `handing_over`: this bot is leaving the
    room to another (its worker drains); it starts no new turn."""

    settings: Settings
    engine: TurnEngine
    grants: Grants
    handing_over: bool = False

    def allowed_tools(self, identity: str) -> frozenset[str]:
        """The bot's tools this participant may use (their signed grants)."""
        return self.grants.allowed(identity, self.engine.tool_names)

    def access(self, identity: str) -> tuple[frozenset[str], Grant | None]:
        """What a turn of this participant may use, and their verified grant (which
        tools acting for them may forward), read once."""
        grant = self.grants.grant_of(identity)
        return self.grants.allowed_by(grant, self.engine.tool_names), grant


@dataclass(frozen=True)
class Context:
    conversation: Conversation
    services: Services
    msg_id: str
    topic: str

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def reply(self, msg: BotEnvelope) -> None:
        """Send the direct answer to the message being handled."""
        self.conversation.outbox.put(msg.model_copy(update={"reply_to": self.msg_id}), self.topic)
