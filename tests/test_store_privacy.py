"""What the store keeps of a conversation is bounded in bytes, and a `history.reset`
leaves none of the user's texts anywhere the bot keeps them: read straight from the
SQLite file and from the Redis keys, not through the store's own API."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from redis.asyncio import Redis

from bot.core.idempotency import fingerprint
from bot.protocol.inbound import ChatMessage
from bot.protocol.outbound import Ack, Error, HistoryPage
from bot.store import Store, open_store
from bot.store.redis import RedisStore

from .conftest import MakeBot
from .harness import Harness, chat, direct_answers, msg

SECRET = "my pin is 4711"


@dataclass
class Raw:
    """A store, and a way to read every byte it holds for the test's conversations."""

    store: Store
    dump: Callable[[], AsyncIterator[str]]


@pytest.fixture(params=["sqlite", "redis"])
async def raw(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Raw]:
    if request.param == "sqlite":
        path = tmp_path / "c.db"
        store = open_store(f"sqlite://{path}")

        async def dump_sqlite() -> AsyncIterator[str]:
            db = sqlite3.connect(path)
            try:
                tables = [
                    r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")
                ]
                for table in tables:
                    for row in db.execute(f"SELECT * FROM {table}"):
                        yield " ".join(map(str, row))
            finally:
                db.close()

        yield Raw(store, dump_sqlite)
        await store.aclose()
        return
    url = request.getfixturevalue("redis_url")
    store = open_store(url)
    assert isinstance(store, RedisStore)
    store.prefix = prefix = f"v{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(url, decode_responses=True)

    async def dump_redis() -> AsyncIterator[str]:
        async for name in redis.scan_iter(match=f"{prefix}:*"):
            kind = await redis.type(name)
            if kind == "list":
                for item in await redis.lrange(name, 0, -1):
                    yield item
            elif kind == "hash":
                yield json.dumps(await redis.hgetall(name))
            elif kind == "zset":
                yield json.dumps(await redis.zrange(name, 0, -1))
            else:
                yield str(await redis.get(name))

    yield Raw(store, dump_redis)
    await redis.aclose()
    await store.aclose()


async def flushed(bot: Harness) -> None:
    for conv in bot.dispatcher.conversations.values():
        assert await conv.journal.flush()


async def everything(raw: Raw) -> str:
    return "\n".join([row async for row in raw.dump()])


async def test_a_reset_leaves_no_text_of_the_user_in_the_store(make_bot: MakeBot, raw: Raw) -> None:
    bot = await make_bot(store=raw.store, room="r")
    said = [chat(f"{SECRET} ({i})", id=f"s{i}") for i in range(3)]
    for m in said:
        bot.send("alice", m)
    await bot.turn_ends("alice", 3)
    bot.send("alice", msg("history.get", id="h1"))
    assert isinstance(await bot.answer("alice", "h1"), HistoryPage)
    await flushed(bot)
    before_reset = await everything(raw)
    assert SECRET in before_reset  # the test reads what the store holds

    bot.send("alice", msg("history.reset", id="reset"))
    await bot.answer("alice", "reset")
    await flushed(bot)
    held = await everything(raw)
    assert SECRET not in held
    prints = [
        fingerprint(ChatMessage.model_validate(m).model_dump(mode="json", exclude={"id"}))
        for m in said
    ]
    assert prints[0] in before_reset
    assert not any(p in held for p in prints), "a print of a message confirms a guessed text"

    # nothing to replay either: a resume from the start is a gap, in this bot's memory too
    bot.send("alice", msg("session.hello", id="again", resume={"last_seq": 0}))
    gap = await bot.answer("alice", "again")
    assert isinstance(gap, Error) and gap.code == "resume_gap"
    # and a retried id still starts nothing (it is taken for the retry it may be)
    bot.send("alice", said[0])
    msgs = await bot.until("alice", lambda ms: len(direct_answers(ms, "s0")) == 2)
    again = direct_answers(msgs, "s0")[1]
    assert isinstance(again, Ack) and again.status == "duplicate"


async def test_history_pages_are_not_stored_and_metadata_is_capped(
    make_bot: MakeBot, raw: Raw
) -> None:
    bot = await make_bot(store=raw.store, room="r")
    big = {"blob": "m" * 5000}
    bot.send("alice", chat("hello", id="meta", metadata=big))
    refused = await bot.answer("alice", "meta")
    assert isinstance(refused, Error) and refused.code == "payload_too_large"
    bot.send("alice", chat(SECRET, id="m1", metadata={"small": "ok"}))
    await bot.turn_ends("alice")
    await flushed(bot)
    before = len((await everything(raw)).encode())
    for i in range(5):
        bot.send("alice", msg("history.get", id=f"g{i}"))
        page = await bot.answer("alice", f"g{i}")
        assert isinstance(page, HistoryPage) and page.items[0].text == SECRET
    await flushed(bot)
    held = await everything(raw)
    # each page is kept as a small resume_gap, never as the page
    assert '"history.page"' not in held
    assert len(held.encode()) - before < 5 * 400
    # a resume that crosses a page gets, in its place, a resume_gap answering the get
    first = bot.messages("alice")[0].seq  # type: ignore[union-attr]
    bot.send("alice", msg("session.hello", id="back", resume={"last_seq": first - 1}))
    await bot.answer("alice", "back")
    replayed = [m for m in bot.messages("alice") if getattr(m, "reply_to", None) == "g0"]
    assert [m.type for m in replayed] == ["history.page", "error"]
