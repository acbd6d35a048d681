from __future__ import annotations

import json

from ..core.context import Context
from ..core.idempotency import fingerprint
from ..protocol.errors import Busy, PayloadTooLarge
from ..protocol.inbound import ChatCancel, ChatMessage
from ..protocol.outbound import Ack, AckStatus
from ..turns.turn import Turn


async def handle_message(msg: ChatMessage, ctx: Context) -> None:
    conv = ctx.conversation
    print_ = fingerprint(msg.model_dump(mode="json", exclude={"id"}))
    seen = conv.ids.check(msg.id, print_)
    if seen is not None:
        ctx.reply(Ack(status="duplicate", turn=seen.turn))
        return
    if ctx.services.handing_over:  # not remembered: the retry goes to the next bot
        raise Busy(
            "this bot is handing the room over to another; send it again", retry_after_ms=500
        )
    if len(msg.text) > ctx.settings.max_text_chars:
        raise PayloadTooLarge(
            f"text is {len(msg.text)} characters; the limit is {ctx.settings.max_text_chars}"
        )
    if msg.metadata is not None:
        size = len(json.dumps(msg.metadata, ensure_ascii=False, separators=(",", ":")).encode())
        if size > ctx.settings.max_metadata_bytes:
            raise PayloadTooLarge(
                f"metadata is {size} bytes of JSON; the limit is {ctx.settings.max_metadata_bytes}"
            )
    turns = conv.turns
    status: AckStatus = "accepted"
    if turns.busy:
        if msg.on_busy == "reject":
            raise Busy("a turn is already running for you; retry when it ends")
        if msg.on_busy == "interrupt":
            turns.cancel_all("interrupted")
        elif turns.queued >= ctx.settings.max_queue:
            raise Busy(f"you already have {turns.queued} turns waiting; retry when one ends")
        else:
            status = "queued"
    allowed, grant = ctx.services.access(conv.identity)
    turn = Turn(
        request_id=msg.id,
        text=msg.text,
        topic=ctx.topic,
        metadata=msg.metadata,
        allowed=allowed,
        grant=grant,
    )
    conv.ids.remember(msg.id, print_, turn.id)
    ctx.reply(Ack(status=status, turn=turn.id))  # the ack precedes every event of the turn
    turns.submit(turn)


async def handle_cancel(msg: ChatCancel, ctx: Context) -> None:
    turns = ctx.conversation.turns
    if msg.turn is not None:
        found = turns.cancel(msg.turn, "cancelled")
    else:
        found = turns.cancel_all("cancelled")
    ctx.reply(Ack(status="cancelled" if found else "noop", turn=msg.turn))
