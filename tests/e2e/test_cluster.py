"""A fleet on LiveKit's own multi-node cluster: two livekit-server nodes sharing a real
redis-server (LiveKit's distributed mode), and two worker "machines" (own home, temp
and data dirs; nothing shared but the LiveKit API and the Redis store), each
registered through its own node. Users join through either node.

- kill -9 of one machine's worker mid-turn: every room it served has a bot again, the
  running turns end for their clients (after their resume), per recipient `seq` has
  no repeat and no gap, history is intact;
- kill -9 of a livekit-server node: the clients of its rooms join again through the
  other node, a bot comes back, the conversation continues from the store;
- a rolling restart of every worker while users chat: no accepted message without a
  terminal answer, no `seq` repeat or gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from livekit import api

from bot.client.bot_client import BotClient
from bot.dev import livekit_server, redis_server
from bot.dev.livekit_server import DevServer
from bot.dev.redis_server import RedisServer
from bot.protocol.attributes import WORKER_ATTRIBUTE
from bot.protocol.outbound import Ack, HistoryPage, TurnEnd
from bot.room.tokens import mint_token

from .conftest import settings_for
from .procs import Proc, machine, start_worker

BOUND = 120.0  # bounds the test; what is under test is printed (recovery times)
STALL = '!{"stall": true}'


@dataclass
class Cluster:
    redis: RedisServer
    nodes: list[DevServer]

    @property
    def store(self) -> str:
        """The bots' store: the same redis-server as LiveKit's, a database of its own."""
        return f"redis://127.0.0.1:{self.redis.port}/1"

    def worker(self, node: int, name: str, llm_url: str, **settings: str) -> Proc:
        return start_worker(
            self.nodes[node],
            llm_url,
            env=machine(name),
            **{"store": self.store, "watchdog_interval": "1", "drain_timeout": "60", **settings},
        )

    async def room(self, node: int) -> str:
        """A new room, placed on `node` (automatic dispatch sends it to a worker)."""
        name = f"cl-{uuid.uuid4().hex[:6]}"
        lk = self.nodes[node]
        async with api.LiveKitAPI(lk.url, lk.api_key, lk.api_secret) as lkapi:
            await lkapi.room.create_room(
                api.CreateRoomRequest(name=name, node_id=lk.node_id, empty_timeout=300)
            )
        return name


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    redis = redis_server.start()
    try:
        nodes = livekit_server.start_cluster(redis.url)
    except BaseException:
        redis.stop()
        raise
    yield Cluster(redis, nodes)
    for node in nodes:
        node.stop()
    redis.stop()


def worker_id(proc: Proc) -> str:
    found = re.findall(r"registered with \S+ as (\S+)", proc.text())
    assert found, proc.text()[-2000:]
    return str(found[-1])


async def _user(
    cluster: Cluster, node: int, room: str, identity: str, made: list[BotClient]
) -> BotClient:
    lk = cluster.nodes[node]
    client = BotClient()
    made.append(client)
    await client.join(lk.url, mint_token(settings_for(lk), room=room, identity=identity))
    return client


def _served_by(user: BotClient) -> str:
    return user.room.remote_participants[user.agent].attributes.get(WORKER_ATTRIBUTE, "")


def _check_conversation(user: BotClient) -> None:
    seqs = [m.seq for m in user.messages if m.seq]
    assert seqs == list(range(1, len(seqs) + 1)), f"{user.identity}: {seqs}"
    assert user.gaps == []


async def _history(user: BotClient) -> list[str]:
    page = await user.request("history.get", timeout=BOUND)
    assert isinstance(page, HistoryPage)
    return [i.text for i in page.items]


@pytest.mark.timeout(600)
async def test_kill_9_of_one_machines_worker_mid_turn(
    cluster: Cluster, llm_url: str, clients: list[BotClient]
) -> None:
    machines = [cluster.worker(0, "m1", llm_url), cluster.worker(1, "m2", llm_url)]
    try:
        ids = [worker_id(m) for m in machines]
        users: list[BotClient] = []
        for r in range(4):  # rooms on both nodes; users through both nodes
            room = await cluster.room(r % 2)
            for u in range(2):
                users.append(await _user(cluster, (r + u) % 2, room, f"u{r}{u}", clients))
        bots = await asyncio.gather(*(u.wait_bot(timeout=BOUND) for u in users))
        for u in users:
            assert (await u.chat(f"hi from {u.identity}", BOUND)).reply == (
                f"You said: hi from {u.identity}"
            )
        turns: list[str] = []
        for u in users:
            answer = await u.request("chat.message", BOUND, text=STALL)
            assert isinstance(answer, Ack) and answer.turn
            turns.append(answer.turn)
        for u, turn in zip(users, turns, strict=True):
            await u.wait_for(
                lambda _, u=u, t=turn: any(e.type == "turn.delta" for e in u.turn_events(t)), BOUND
            )

        served = [_served_by(u) for u in users]
        victim = max(range(2), key=lambda i: served.count(ids[i]))
        orphaned = [s == ids[victim] for s in served]
        assert any(orphaned)
        machines[victim].process.send_signal(signal.SIGKILL)  # mid-turn
        machines[victim].process.wait(30)
        killed_at = time.monotonic()

        async def back(u: BotClient, old: str) -> float:
            await u.wait_bot(exclude=old, timeout=BOUND)
            return time.monotonic() - killed_at

        took = await asyncio.gather(
            *(back(u, b) for u, b, o in zip(users, bots, orphaned, strict=True) if o)
        )
        print(f"\nkill -9 of a worker: its rooms' users had a new bot after {sorted(took)} s")

        for u, turn, o in zip(users, turns, orphaned, strict=True):
            if not o:  # its bot lives on: the client cancels the stalled turn
                await u.request("chat.cancel", BOUND, turn=turn)
            await u.wait_for(
                lambda _, u=u, t=turn: any(e.type == "turn.end" for e in u.turn_events(t)), BOUND
            )
            ends = [e for e in u.turn_events(turn) if isinstance(e, TurnEnd)]
            want = ("failed", "interrupted") if o else ("cancelled", "cancelled")
            assert [(e.status, e.reason) for e in ends] == [want], u.identity
        for u in users:
            assert (await u.chat("after", BOUND)).reply == "You said: after"
            history = await _history(u)
            assert history[:3] == [
                f"hi from {u.identity}",
                f"You said: hi from {u.identity}",
                STALL,
            ]
            _check_conversation(u)
    finally:
        for m in machines:
            m.stop()


@pytest.mark.timeout(600)
async def test_kill_9_of_a_livekit_node(
    cluster: Cluster, llm_url: str, clients: list[BotClient]
) -> None:
    """The rooms live on node 0, which dies: their clients join again through node 1
    (where the room is made anew), a bot comes back, and each conversation continues
    from the store with its seqs. Node 0 is started again afterwards."""
    lost, survivor = cluster.nodes
    machines = [cluster.worker(1, "m1", llm_url), cluster.worker(1, "m2", llm_url)]
    try:
        users: list[BotClient] = []
        tokens: list[str] = []
        for r in range(3):
            room = await cluster.room(0)
            for u in range(2):  # one user through each node; the room is on node 0
                node = cluster.nodes[(r + u) % 2]
                user = await _user(cluster, (r + u) % 2, room, f"n{r}{u}", clients)
                users.append(user)
                tokens.append(mint_token(settings_for(node), room=room, identity=user.identity))
        await asyncio.gather(*(u.wait_bot(timeout=BOUND) for u in users))
        for u in users:
            assert (
                await u.chat(f"before {u.identity}", BOUND)
            ).reply == f"You said: before {u.identity}"

        lost.kill()
        killed_at = time.monotonic()

        async def back(u: BotClient, token: str) -> float:
            # a client whose server died joins again through another (a load balancer's
            # job in production); LiveKit frees the dead node's rooms within 5 s
            async with asyncio.timeout(BOUND):
                while True:
                    try:
                        await u.rejoin(survivor.url, token, timeout=BOUND)
                        return time.monotonic() - killed_at
                    except Exception as e:  # the room is still assigned to the dead node
                        print(f"{u.identity}: rejoin failed ({e}); again")
                        await asyncio.sleep(1)

        took = await asyncio.gather(*(back(u, t) for u, t in zip(users, tokens, strict=True)))
        print(f"\nkill -9 of a node: users had a bot again after {sorted(took)} s")
        for u in users:
            assert (await u.chat("after", BOUND)).reply == "You said: after"
            history = await _history(u)
            assert history[:2] == [f"before {u.identity}", f"You said: before {u.identity}"]
            _check_conversation(u)
    finally:
        for m in machines:
            m.stop()
        lost.restart()


@pytest.mark.timeout(900)
async def test_a_rolling_restart_while_users_chat(
    cluster: Cluster, llm_url: str, clients: list[BotClient]
) -> None:
    """SIGTERM to one machine's worker, then start it again; then the other. Users send
    a message every ~2 s throughout (the same id again until it is answered, as the
    protocol says). Every accepted message gets its turn.end, no seq repeats or
    skips, and no room is ever left without a bot: each is handed over first."""
    machines = [cluster.worker(0, "m1", llm_url), cluster.worker(1, "m2", llm_url)]
    users: list[BotClient] = []
    botless: list[str] = []  # rooms seen without a bot of ours, by whom
    try:
        for r in range(3):
            room = await cluster.room(r % 2)
            for u in range(2):
                users.append(await _user(cluster, (r + u) % 2, room, f"r{r}{u}", clients))
        await asyncio.gather(*(u.wait_bot(timeout=BOUND) for u in users))

        def watch(u: BotClient) -> None:
            def left(p: object) -> None:
                if u._agent() is None:
                    botless.append(u.identity)

            u.room.on("participant_disconnected", left)

        for u in users:
            watch(u)
        stop = asyncio.Event()
        accepted: dict[str, set[str]] = {u.identity: set() for u in users}
        progress = asyncio.Event()  # set at every accepted turn

        async def chatter(u: BotClient) -> None:
            n = 0
            while not stop.is_set():
                n += 1
                turn = await _send_until_answered(u, f"{u.identity} says {n}")
                if turn is not None:
                    accepted[u.identity].add(turn)
                    progress.set()
                    await u.wait_for(
                        lambda _, t=turn: any(e.type == "turn.end" for e in u.turn_events(t)),
                        BOUND,
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2)  # a user's pace, not a wait

        async def turns_go_on(more: int) -> None:
            """Until every user has had `more` more turns accepted."""
            want = {k: len(v) + more for k, v in accepted.items()}
            async with asyncio.timeout(BOUND):
                while any(len(accepted[k]) < n for k, n in want.items()):
                    progress.clear()
                    await progress.wait()

        chatting = [asyncio.create_task(chatter(u)) for u in users]
        await turns_go_on(1)
        for i in range(2):
            old = machines[i]
            # SIGTERM: the worker drains, handing its rooms over, while users chat
            assert await asyncio.to_thread(old.stop, 120) == 0
            assert "draining: handing" in old.text()
            machines[i] = await asyncio.to_thread(cluster.worker, i, f"m{i + 1}b", llm_url)
            await turns_go_on(1)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*chatting), BOUND)

        for u in users:
            for turn in accepted[u.identity]:
                ends = [e for e in u.turn_events(turn) if e.type == "turn.end"]
                assert len(ends) == 1, (u.identity, turn, ends)
            _check_conversation(u)
        assert botless == []
        print(f"\nrolling restart: {sum(map(len, accepted.values()))} turns, all ended")
    finally:
        for m in machines:
            m.stop()


async def _send_until_answered(u: BotClient, text: str) -> str | None:
    """One chat.message, sent again with the same id until the bot answers it other
    than `busy`; the turn it started (None: refused for good)."""
    msg_id = u.new_id()
    async with asyncio.timeout(BOUND):
        while True:
            answers = len(_answers(u, msg_id))
            try:
                await u.send({"type": "chat.message", "id": msg_id, "text": text})
                await u.wait_for(lambda _, n=answers: len(_answers(u, msg_id)) > n, 5)
            except (RuntimeError, TimeoutError):
                await u.wait_bot(timeout=BOUND)  # no bot, or it left: find the next one
                continue
            answer = _answers(u, msg_id)[-1]
            if isinstance(answer, Ack):
                return answer.turn
            retry_ms = getattr(answer, "retry_after_ms", None)
            if getattr(answer, "code", "") not in ("busy", "rate_limited"):
                print(f"{u.identity}: refused {answer}")
                return None
            await asyncio.sleep((retry_ms or 500) / 1000)


def _answers(u: BotClient, msg_id: str) -> list[object]:
    return [
        m
        for m in u.messages
        if getattr(m, "reply_to", None) == msg_id and m.type in ("ack", "error")
    ]
