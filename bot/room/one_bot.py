"""One bot per room: when two of ours meet, the younger leaves.

After a livekit-server restart the server has forgotten the room: the first
participant to reconnect makes it anew, and LiveKit dispatches a new bot to it while
the old bot (which holds the conversations) is still reconnecting. Two dispatch
watchdogs may also, rarely, dispatch the same room at once. Each bot carries the time
it joined (`lkbot.since`); whenever it sees another live bot of ours with the same
agent name that joined earlier, it leaves. A bot of a worker known to be dead does
not count (the dispatch watchdog removes it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from livekit import rtc

from ..protocol.attributes import SINCE_ATTRIBUTE, WORKER_ATTRIBUTE, is_bot
from .liveness import Liveness

log = logging.getLogger(__name__)


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
        if (
            p.kind != rtc.ParticipantKind.PARTICIPANT_KIND_AGENT
            or not is_bot(attrs, agent_name)
            or liveness(attrs.get(WORKER_ATTRIBUTE, "")) == "dead"
        ):
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
        room.on("participant_connected", lambda _p: self.check())
        room.on("participant_attributes_changed", lambda _changed, _p: self.check())
        room.on("reconnected", self.check)

    def check(self) -> None:
        if self._left:
            return
        me = (self._since, self._room.local_participant.identity)
        other = elder(
            me,
            list(self._room.remote_participants.values()),
            agent_name=self._agent_name,
            liveness=self._liveness,
        )
        if other is not None:
            self._left = True
            log.info("another bot of ours was in this room first; leaving it to that one")
            self._leave()
