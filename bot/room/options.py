"""How a data-only participant joins: no media subscriptions, two peer connections.

livekit 1.1.x negotiates a single peer connection for both directions at join time when
`single_peer_connection` is left unset. Two connections, the other setting, are each
negotiated when first needed, and data packets work the same. Measured with
`bench/burst.py` on the 2-core box (50 rooms at once, a client and our bot in each,
joins of the bot 4 at a time), CPU seconds per burst on each side and join p50/p99:

| `single_peer_connection` | worker CPU | clients CPU | join p50 / p99 |
|---|---|---|---|
| unset | 10.7–16.9 s | 12.7–19.1 s | 11.5–13.6 s / 14.1–21.0 s |
| `True` | 9.2–22.1 s | 11.0–25.1 s | 10.6–20.7 s / 12.9–26.8 s |
| `False` | 6.2–8.1 s | 7.1–8.2 s | 5.3–6.9 s / 8.8–9.7 s |

50 bare connects at once in one process (no other participant, nothing sent): unset
p50 3.4–4.4 s and 5–20 s of CPU; `False` p50 1.0–1.2 s and 1.1–2.0 s of CPU.

Those runs still forwarded native logs to Python (`native_logs.py`). Measured again
without (3 bursts of 50 each): `True` p50 6.2–7.3 s, worker CPU 4.7–6.0 s; unset
p50 4.6–6.6 s, 3.7–4.7 s; `False` p50 2.6–5.4 s, 2.2–2.9 s. `False` it stays.
"""

from __future__ import annotations

import asyncio
import logging

from livekit import rtc

log = logging.getLogger("bot")

WARM_UP_TOPIC = "lkbot.warm-up"
# How long an attribute update waits for the server's answer. The Rust SDK listens for
# that answer only after it has sent the update (`set_attributes` in livekit/rust-sdks
# local_participant.rs awaits `send_request`, then `get_response` registers): an answer
# that comes back first is dropped, and the call waits out the SDK's 5 s timeout
# although the server applied the update. On loopback, 2 of ~50 runs of
# tests/e2e/test_lk_chat.py lost one; the answer otherwise takes a few ms.
ATTRIBUTES_ANSWER_S = 0.5


def data_only(*, max_stream_bytes: int | None = None) -> rtc.RoomOptions:
    """`max_stream_bytes`: the SDK's cap on one incoming data stream, decompressed (a
    stream sent compressed can be a few kB on the wire and many MB in memory); an SDK
    without the setting keeps its own default."""
    options = rtc.RoomOptions(auto_subscribe=False, single_peer_connection=False)
    stream_options = getattr(rtc, "DataStreamOptions", None)
    if max_stream_bytes is not None and stream_options is not None:
        options.data_stream = stream_options(max_payload_byte_length=max_stream_bytes)
    return options


async def set_attributes(participant: rtc.LocalParticipant, attributes: dict[str, str]) -> bool:
    """Update our attributes; wait for the server's answer at most ATTRIBUTES_ANSWER_S.
    False: no answer by then (the update is sent all the same; see above)."""
    try:
        await asyncio.wait_for(participant.set_attributes(attributes), ATTRIBUTES_ANSWER_S)
    except TimeoutError:
        log.debug("no answer to an attribute update within %gs", ATTRIBUTES_ANSWER_S)
        return False
    return True


async def open_sending(room: rtc.Room) -> None:
    """Negotiate the connection this participant sends data on, now rather than at its
    first packet.

    With two peer connections the SDK negotiates the sending one on the first publish
    (the Rust SDK's `ensure_publisher_connected`, which then polls every 50 ms). A
    client's first packet, its `session.hello`, waited for that: on an idle box the
    handshake took 0.21–0.26 s from the moment the client saw the bot, and 0.01–0.04 s
    with this run while the client waits for the bot. (The bot's own first answer showed
    no such wait: the worker does not call this.) A packet addressed to ourselves starts
    the negotiation: livekit-server forwards a packet only to its destinations and never
    back to its sender (`room.go`, `BroadcastDataPacketForRoom`), so nobody receives
    it. Never raises."""
    lp = room.local_participant
    try:
        await lp.publish_data(
            b"\0", reliable=True, destination_identities=[lp.identity], topic=WARM_UP_TOPIC
        )
    except Exception as e:  # the room left meanwhile: the first real packet will try again
        log.debug("could not open the sending connection early: %s", e)
