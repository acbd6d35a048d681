"""Everything the bot keeps for one sender in one room."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..config import Settings
from ..llm.tools.grants import Grant
from ..protocol.chunking import Reassembler
from ..protocol.codec import peek
from ..protocol.codes import ErrorCode
from ..protocol.errors import BotError, Busy
from ..protocol.outbound import Error, ErrorInfo, TurnEnd
from ..state.history import History
from ..state.journal import Journal
from ..state.outbox import Outbox
from ..store import ConversationKey, Lease, MemoryStore, Store
from ..store.model import now_ms
from ..transport import Packet, Transport
from ..turns.client_tools import ClientTools
from ..turns.emitter import TurnEmitter
from ..turns.engine import Decision, TurnEngine, await_approval
from ..turns.pending import Pending
from ..turns.queue import TurnQueue
from ..turns.suspension import Suspension
from ..turns.turn import Turn
from .idempotency import IdempotencyWindow
from .ratelimit import TokenBucket

log = logging.getLogger(__name__)

# turn.end.reason of a turn whose worker died while running it (status failed)
INTERRUPTED = "interrupted"


class Conversation:
    def __init__(
        self,
        identity: str,
        settings: Settings,
        transport: Transport,
        engine: TurnEngine,
        *,
        key: ConversationKey | None = None,
        store: Store | None = None,
        on_stale: Callable[[Conversation], None] = lambda _c: None,
        access: Callable[[], tuple[frozenset[str] | None, Grant | None]] = lambda: (None, None),
    ) -> None:
        self.identity = identity
        self._access = access  # the bot's tools this sender may use, and their grant
        self.key = key or ConversationKey("", identity)
        self.journal = Journal(
            store or MemoryStore(),
            self.key,
            publish_wait_s=settings.store_publish_wait,
            on_stale=lambda: on_stale(self),
        )
        self.outbox = Outbox(
            transport,
            identity,
            max_packet=settings.max_packet,
            window=settings.resume_window,
            window_bytes=settings.resume_window_bytes,
            journal=self.journal,
        )
        self.history = History(settings.history_max_items, self.journal)
        self.ids = IdempotencyWindow(settings.dedupe_window, self.journal)
        self.bucket = TokenBucket(burst=settings.rate_burst, per_second=settings.rate_per_second)
        self.chunks = Reassembler(max_bytes=settings.max_message_bytes)
        self.client_tools = ClientTools(
            max_tools=settings.max_client_tools,
            max_schema_bytes=settings.max_tool_schema_bytes,
            max_result_bytes=settings.max_tool_result_bytes,
        )
        self.approvals: Pending[Decision] = Pending()  # calls waiting for tool.approve
        self.turns = TurnQueue(
            engine,
            self.outbox,
            self.history,
            self.journal,
            client_tools=self.client_tools,
            approvals=self.approvals,
        )
        self.inbox: asyncio.Queue[Packet] = asyncio.Queue()
        self.reader: asyncio.Task[None] | None = None
        self.restored = False
        self.closing = False

    async def restore(self) -> None:
        """Claim the conversation in the store and continue what it holds: seq, resume
        window, history, remembered ids. Turns it records as running were left by a
        writer that can no longer write (the claim fenced it off): each is ended for
        the client at once, except one that waits for the sender's approval, which goes
        on waiting here (invariant 9). A store that cannot be read raises (the
        dispatcher answers `busy`, retryable): a conversation is never started over what
        is stored."""
        if self.restored:
            return
        state = await self.journal.claim()
        self.restored = True
        self.outbox.restore(state.seq, state.sent)
        self.history.restore(state.history)
        self.ids.restore(state.ids)
        for lease in state.leases:
            suspension = Suspension.from_json(lease.suspended) if lease.suspended else None
            if suspension is None:
                self._interrupted(lease)
                continue
            self._continue(lease, suspension)

    def _continue(self, lease: Lease, suspension: Suspension) -> None:
        """A turn that waits for approval, as the store kept it: it waits here now."""
        log.info("turn %s waits for approval: continued here", lease.turn)
        allowed, grant = self._access()
        turn = Turn(
            request_id=lease.request_id,
            text="",
            topic=lease.topic,
            allowed=allowed,
            grant=grant,
            id=lease.turn,
            resumed=suspension,
        )
        self.turns.submit(turn)
        if suspension.expires_at <= now_ms():
            return  # it goes on at once, the call settled `expired`
        # it waits from now on: an answer in the packets read next is taken, and a
        # client starting over is asked again
        waiting = suspension.function_calls()[0]
        await_approval(
            self.approvals, TurnEmitter(self.outbox, turn), waiting, suspension.expires_at
        )

    def _interrupted(self, lease: Lease) -> None:
        log.warning("turn %s was left running by a bot that stopped; ending it", lease.turn)
        self.outbox.put(
            TurnEnd(
                turn=lease.turn,
                reply_to=lease.request_id,
                status="failed",
                reason=INTERRUPTED,
                error=ErrorInfo(
                    code=ErrorCode.INTERNAL_ERROR,
                    message="the worker running this turn stopped; send the message again",
                    retryable=True,
                ),
            ),
            lease.topic,
        )
        self.journal.lease_end(lease.turn)

    def send_error(self, error: BotError, *, reply_to: str | None, topic: str) -> None:
        """Answer with `error`. A `rate_limited` one is outside the run of seqs (seq 0):
        never kept for a resume nor stored, so that a flood can neither push a turn's
        messages out of the resume window nor make the store write per packet."""
        if error.code == ErrorCode.RATE_LIMITED and not error.details:
            # one per packet of a flood: its JSON without a model (a flood's profile
            # had the model's copy and dump at a third of each refusal)
            fields: dict[str, object] = {
                "reply_to": reply_to,
                "type": "error",
                "code": error.code.value,
                "message": error.message,
                "retryable": error.retryable,
            }
            if error.retry_after_ms is not None:
                fields["retry_after_ms"] = error.retry_after_ms
            self.outbox.put_fields(fields, topic)
            return
        sequenced = self.restored and error.code != ErrorCode.RATE_LIMITED
        self.outbox.put(
            Error(
                code=error.code,
                message=error.message,
                retryable=error.retryable,
                details=error.details,
                retry_after_ms=error.retry_after_ms,
                reply_to=reply_to,
            ),
            topic,
            sequenced=sequenced,  # before the store was read there is no counter
        )

    def refuse(self, packet: Packet, error: BotError) -> None:
        """Answer a packet that will not be decoded (a flood, a shutdown) with `error`.
        A chunk frame refuses its whole message, once."""
        seen = peek(packet.data)
        reply_to = seen.id
        if seen.of is not None:
            if self.chunks.in_progress(seen.of) and seen.of not in self.chunks.pending:
                return  # that message was already refused
            self.chunks.refuse(seen.of)
            reply_to = seen.of
        self.send_error(error, reply_to=reply_to, topic=packet.topic)

    async def aclose(self, *, reason: str, notify: bool, timeout: float = 5.0) -> None:
        """End every turn; with `notify`, the sender still gets each `turn.end`, and
        every packet still waiting to be read is answered `busy`."""
        self.closing = True
        if not notify:
            self.outbox.detach()  # still recorded: a resume after a rejoin replays it
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        if notify:
            while not self.inbox.empty():
                self.refuse(self.inbox.get_nowait(), Busy("the bot is restarting; send it again"))
        self.turns.cancel_all(reason)
        await self.turns.wait_idle(timeout)
        if notify:
            await self.outbox.flush(timeout)
        await self.outbox.aclose()
        await self.journal.aclose(timeout)
