"""What a handler gets: its sender's session, shared services, and `reply`."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Settings
from .engine import TurnEngine
from .protocol.server import ServerEnvelope
from .session import SenderSession


@dataclass(frozen=True)
class Services:
    """Shared by every sender in one room."""

    settings: Settings
    engine: TurnEngine


@dataclass(frozen=True)
class Context:
    session: SenderSession
    services: Services
    msg_id: str
    topic: str

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def reply(self, msg: ServerEnvelope) -> None:
        """Send the direct answer to the message being handled."""
        self.session.outbox.put(msg.model_copy(update={"reply_to": self.msg_id}), self.topic)
