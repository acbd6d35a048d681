"""Redis: one conversation store for many workers on many machines (`BOT_STORE=redis://…`).

A conversation is five keys sharing one hash tag (`lkbot:{room/identity}:…`, so a Redis
Cluster keeps them on one shard): `meta` (hash: seq, updated_ms), `history`, `sent`
and `seen` (lists, trimmed to their bounds) and `lease` (hash: turn → lease). Each
`apply` is one MULTI/EXEC pipeline: one round trip, all or nothing. With a TTL, every
write renews EXPIRE on all five keys."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from .model import (
    DEFAULT_BOUNDS,
    Bounds,
    Changes,
    ConversationKey,
    ConversationState,
    Lease,
    dumps,
    lease_from,
    now_ms,
    seen_from,
    sent_from,
)

PARTS = ("meta", "history", "sent", "seen", "lease")


class RedisStore:
    def __init__(self, url: str, bounds: Bounds = DEFAULT_BOUNDS, *, prefix: str = "lkbot") -> None:
        self.url = url
        self.bounds = bounds
        self.prefix = prefix
        self._redis: Redis = Redis.from_url(url, decode_responses=True)

    def _k(self, key: ConversationKey, part: str) -> str:
        return f"{self.prefix}:{{{key.encoded()}}}:{part}"

    async def load(self, key: ConversationKey) -> ConversationState:
        async with self._redis.pipeline(transaction=True) as p:
            p.hgetall(self._k(key, "meta"))
            p.lrange(self._k(key, "history"), 0, -1)
            p.lrange(self._k(key, "sent"), 0, -1)
            p.lrange(self._k(key, "seen"), 0, -1)
            p.hgetall(self._k(key, "lease"))
            meta, history, sent, seen, leases = await p.execute()
        if not meta:
            return ConversationState()
        return ConversationState(
            seq=int(meta.get("seq", 0)),
            updated_ms=int(meta.get("updated_ms", 0)),
            history=[json.loads(h) for h in history],
            sent=[sent_from(s) for s in sent],
            ids=[seen_from(s) for s in seen],
            leases=sorted((lease_from(v) for v in leases.values()), key=lambda x: x.turn),
        )

    async def apply(self, key: ConversationKey, c: Changes) -> None:
        b = self.bounds
        meta = self._k(key, "meta")
        # seq: its one writer (the conversation's bot) only ever sends a higher one
        async with self._redis.pipeline(transaction=True) as p:
            fields: dict[str, int] = {"updated_ms": now_ms()}
            if c.seq is not None:
                fields["seq"] = c.seq
            p.hset(meta, mapping=fields)  # type: ignore[arg-type]
            if c.history_cleared:
                p.delete(self._k(key, "history"))
            for part, items, keep in (
                ("history", [dumps(h) for h in c.history], b.history_max),
                ("sent", [dumps(s) for s in c.sent], b.sent_max),
                ("seen", [dumps(s) for s in c.ids], b.ids_max),
            ):
                if items:
                    p.rpush(self._k(key, part), *items)
                    p.ltrim(self._k(key, part), -keep, -1)
            if c.leases:
                p.hset(
                    self._k(key, "lease"),
                    mapping={t: dumps(x) for t, x in c.leases.items()},
                )
            if c.ended:
                p.hdel(self._k(key, "lease"), *c.ended)
            if b.ttl_s:
                for part in PARTS:
                    p.expire(self._k(key, part), max(1, round(b.ttl_s)))
            await p.execute()

    async def lease(self, key: ConversationKey, turn: str) -> Lease | None:
        raw = await self._redis.hget(self._k(key, "lease"), turn)
        return lease_from(str(raw)) if raw else None

    async def delete(self, key: ConversationKey) -> bool:
        return bool(await self._redis.delete(*(self._k(key, part) for part in PARTS)))

    async def keys(self) -> list[ConversationKey]:
        found: list[ConversationKey] = []
        head, tail = f"{self.prefix}:{{", "}:meta"
        async for name in self._redis.scan_iter(match=f"{self.prefix}:*:meta", count=500):
            if name.startswith(head) and name.endswith(tail):
                found.append(ConversationKey.decode(name[len(head) : -len(tail)]))
        return sorted(found, key=str)

    async def purge_expired(self) -> int:
        return 0  # Redis expires keys itself (EXPIRE on every write)

    async def aclose(self) -> None:
        await self._redis.aclose()
