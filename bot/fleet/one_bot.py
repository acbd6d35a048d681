"""One bot per room: when two of ours meet, the younger leaves; a bot handing the room
over (its worker drains) waits for a successor instead.

After a livekit-server restart the server has forgotten the room: the first
participant to reconnect makes it anew, and LiveKit dispatches a new bot to it while
the old bot (which holds the conversations) is still reconnecting. Two dispatch
watchdogs may also, rarely, dispatch the same room at once. Each bot carries the time
it joined (`lkbot.since`); whenever it sees another live bot of ours with the same
agent name that joined earlier, it leaves. A bot of a worker known to be dead does
not count (the dispatch watchdog removes it), nor does one handing the room over
(`lkbot.handing_over`): the bot that joins to take over stays.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from livekit import rtc

from ..protocol.attributes import (
    HANDING_OVER_ATTRIBUTE,
    SINCE_ATTRIBUTE,
    WORKER_ATTRIBUTE,
    is_bot,
)
from .leases import Liveness

log = logging.getLogger(__name__)


def _peer(p: rtc.RemoteParticipant, agent_name: str, liveness: Callable[[str], Liveness]) -> bool:
    """A live bot of ours that stays (not handing the room over)."""
    attrs = p.attributes
    return (
        p.kind == rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
        and is_bot(attrs, agent_name)
        and liveness(attrs.get(WORKER_ATTRIBUTE, "")) != "dead"
        and attrs.get(HANDING_OVER_ATTRIBUTE) != "1"
    )


def elder(
    me: tuple[int, str],
    others: list[rtc.RemoteParticipant],
    *,
    agent_name: str,
    liveness: Callable[[str], Liveness],
) -> str | None:
    """The identity of a live bot of ours that joined before `me` (since_ns, identity)."""
    for p in others:
        attrs = p.attributes
        if not _peer(p, agent_name, liveness):
            continue
        try:
            since = int(attrs.get(SINCE_ATTRIBUTE, ""))
        except ValueError:
            continue  # attributes not in yet: checked again when they are
        if (since, p.identity) < me:
            return p.identity
    return None


class OneBotPerRoom:
    def __init__(
        self,
        room: rtc.Room,
        *,
        since_ns: int,
        agent_name: str,
        liveness: Callable[[str], Liveness],
        leave: Callable[[], None],
    ) -> None:
        self._room = room
        self._since = since_ns
        self._agent_name = agent_name
        self._liveness = liveness
        self._leave = leave
        self._left = False
        self.successor = asyncio.Event()  # another bot of ours that stays is here
        room.on("participant_connected", lambda _p: self.check())
        room.on("participant_attributes_changed", lambda _changed, _p: self.check())
        room.on("reconnected", self.check)
        room.on("participant_disconnected", lambda _p: self.check())

    def check(self) -> None:
        if self._left:
            return
        others = list(self._room.remote_participants.values())
        if any(_peer(p, self._agent_name, self._liveness) for p in others):
            self.successor.set()
        else:
            self.successor.clear()
        if self._room.local_participant.attributes.get(HANDING_OVER_ATTRIBUTE) == "1":
            return  # leaving anyway, once the successor is here
        me = (self._since, self._room.local_participant.identity)
        other = elder(
            me,
            others,
            agent_name=self._agent_name,
            liveness=self._liveness,
        )
        if other is not None:
            self._left = True
            log.info("another bot of ours was in this room first; leaving it to that one")
            self._leave()
