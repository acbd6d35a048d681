"""The handler table: one entry per client message type. Where does X go? Look here."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ..core.context import Context
from ..protocol.inbound import (
    ChatCancel,
    ChatMessage,
    HistoryGet,
    HistoryReset,
    Ping,
    SessionHello,
    ToolApprove,
    ToolResult,
)
from . import chat, history, ping, session, tools

Handler = Callable[[Any, Context], Awaitable[None]]

HANDLERS: dict[type, Handler] = {
    SessionHello: session.handle_hello,
    ChatMessage: chat.handle_message,
    ChatCancel: chat.handle_cancel,
    HistoryGet: history.handle_get,
    HistoryReset: history.handle_reset,
    Ping: ping.handle_ping,
    ToolResult: tools.handle_result,
    ToolApprove: tools.handle_approve,
}
