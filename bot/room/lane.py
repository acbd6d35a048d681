"""What can wait goes out when the room's publishing is quiet.

livekit-ffi publishes a room's packets one after another, from one queue (`data_task`
in livekit-ffi's `server/room.rs`), whoever they are for. A flood is answered message
by message (`rate_limited`, invariant 1): handed over as they come, hundreds of those
answers sit in that queue ahead of every other user's turn. So an outbox holds an
answer outside the run of seqs (seq 0: `rate_limited`, `busy`) until fewer than
`window` of the room's packets are unanswered (`quiet`): another user's packet then
waits behind at most `window` of them. Nothing is dropped or reordered: the outbox
waits with everything behind it (its own recipient's), and each answer still goes out,
as fast as the room's publishing allows when nothing else is waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

Publish = Callable[[str, str, str], "asyncio.Future[None] | None"]

WINDOW = 2


class PublishLane:
    """Counts the room's unanswered publishes; `quiet()` waits for fewer than `window`."""

    def __init__(self, publish: Publish, *, window: int = WINDOW) -> None:
        self._publish = publish  # (identity, topic, payload) -> its answer
        self._window = window
        self._unanswered = 0
        self._calm: asyncio.Future[None] | None = None  # done when it next gets quiet

    @property
    def unanswered(self) -> int:
        return self._unanswered

    def submit(self, identity: str, topic: str, payload: str) -> asyncio.Future[None] | None:
        """Hand the packet over now; its answer (None: this SDK cannot, see
        `RoomTransport.submit`)."""
        answer = self._publish(identity, topic, payload)
        if answer is not None:
            self._unanswered += 1
            answer.add_done_callback(self._answered)
        return answer

    async def quiet(self) -> None:
        """Until fewer than `window` packets are unanswered. Waiting only while some
        are, so an answer always comes to end the wait (livekit-ffi answers each
        publish, also when the room goes); all who wait are woken and look again."""
        while self._unanswered >= self._window:
            if self._calm is None:
                self._calm = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._calm)  # one waiter cancelled cancels no other

    def _answered(self, _: asyncio.Future[None]) -> None:
        self._unanswered -= 1
        calm = self._calm
        if calm is not None and self._unanswered < self._window:
            self._calm = None
            calm.set_result(None)
