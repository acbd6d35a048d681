"""Redis: one conversation store for many workers on many machines (`BOT_STORE=redis://…`).

A conversation is five keys sharing one hash tag (`lkbot:{room/identity}:…`, so a Redis
Cluster keeps them on one shard): `meta` (hash: seq, updated_ms, fence, owner),
`history`, `sent` and `seen` (lists, trimmed to their bounds) and `lease` (hash: turn
→ lease). `claim` and `apply` are Lua scripts, so each is atomic and one round trip:
`apply` checks the writer's fencing token against `meta.fence` and writes nothing when
another writer claimed the conversation since (`Stale`). A claim's token is the larger
of the previous token + 1 and the Redis server's clock in µs, so a conversation that
expired or was deleted never gives an old token again. With a TTL, every write renews
EXPIRE on all five keys."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from .model import (
    DEFAULT_BOUNDS,
    FORGET_MS,
    Bounds,
    Changes,
    Claim,
    ConversationKey,
    ConversationState,
    Stale,
    dumps,
    lease_from,
    now_ms,
    seen_from,
    sent_from,
    sent_size,
)

PARTS = ("meta", "history", "sent", "seen", "lease")

# KEYS: the five parts; ARGV: owner, ttl seconds (0: none), now ms
CLAIM = """
local t = redis.call('TIME')
local clock = tonumber(t[1]) * 1000000 + tonumber(t[2])
local prev = tonumber(redis.call('HGET', KEYS[1], 'fence') or '0')
local fence = string.format('%.0f', math.max(prev + 1, clock))
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], 'seq', '0', 'updated_ms', ARGV[3])
  if ARGV[2] ~= '0' then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
end
redis.call('HSET', KEYS[1], 'fence', fence, 'owner', ARGV[1])
return fence
"""

# KEYS: the five parts; ARGV: fence ('' for an operator's write), the batch as JSON
APPLY = """
if ARGV[1] ~= '' and redis.call('HGET', KEYS[1], 'fence') ~= ARGV[1] then
  return redis.error_reply('STALE another writer claimed this conversation')
end
local c = cjson.decode(ARGV[2])
redis.call('HSET', KEYS[1], 'updated_ms', c.updated_ms)
if c.seq then
  local cur = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')
  if tonumber(c.seq) > cur then redis.call('HSET', KEYS[1], 'seq', c.seq) end
end
if c.cleared then redis.call('DEL', KEYS[2]) end
if c.sent_cleared then
  redis.call('DEL', KEYS[3])
  redis.call('HSET', KEYS[1], 'sent_bytes', '0')
end
if c.ids_forgotten then
  local seen = redis.call('LRANGE', KEYS[4], 0, -1)
  for i, item in ipairs(seen) do
    local s = cjson.decode(item)
    s.print = ''
    redis.call('LSET', KEYS[4], i - 1, cjson.encode(s))
  end
end
for i, part in ipairs({'history', 'sent', 'seen'}) do
  local items = c[part]
  if items and #items > 0 then
    for _, item in ipairs(items) do redis.call('RPUSH', KEYS[i + 1], item) end
    if part ~= 'sent' then redis.call('LTRIM', KEYS[i + 1], -c.keep[i], -1) end
  end
end
if c.sent and #c.sent > 0 then
  -- the newest within both bounds: count, and bytes of the messages' JSON
  local bytes = tonumber(redis.call('HGET', KEYS[1], 'sent_bytes') or '0') + c.sent_bytes
  local n = redis.call('LLEN', KEYS[3])
  while n > 0 and (n > c.keep[2] or bytes > c.keep_bytes) do
    local old = cjson.decode(redis.call('LPOP', KEYS[3]))
    bytes = bytes - #old.text
    n = n - 1
  end
  redis.call('HSET', KEYS[1], 'sent_bytes', string.format('%.0f', bytes))
end
if c.leases then
  for turn, lease in pairs(c.leases) do redis.call('HSET', KEYS[5], turn, lease) end
end
if c.ended then
  for _, turn in ipairs(c.ended) do redis.call('HDEL', KEYS[5], turn) end
end
if c.ttl then
  for i = 1, 5 do redis.call('EXPIRE', KEYS[i], c.ttl) end
end
return 1
"""

# KEYS: the workers hash; ARGV: worker, ttl ms, forget after ms. The store's clock.
BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], string.format('%.0f', now + tonumber(ARGV[2])))
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local left = tonumber(all[i + 1]) - now
  if left < -tonumber(ARGV[3]) then
    redis.call('HDEL', KEYS[1], all[i])
  else
    table.insert(out, all[i])
    table.insert(out, string.format('%.0f', left))
  end
end
return out
"""

# KEYS: the role's key; ARGV: owner, ttl ms
LEAD = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""


class RedisStore:
    def __init__(self, url: str, bounds: Bounds = DEFAULT_BOUNDS, *, prefix: str = "lkbot") -> None:
        self.url = url
        self.bounds = bounds
        self.prefix = prefix
        self._redis: Redis = Redis.from_url(url, decode_responses=True)
        self._claim = self._redis.register_script(CLAIM)
        self._apply = self._redis.register_script(APPLY)
        self._beat = self._redis.register_script(BEAT)
        self._lead = self._redis.register_script(LEAD)

    def _k(self, key: ConversationKey, part: str) -> str:
        return f"{self.prefix}:{{{key.encoded()}}}:{part}"

    def _parts(self, key: ConversationKey) -> list[str]:
        return [self._k(key, part) for part in PARTS]

    async def load(self, key: ConversationKey) -> ConversationState:
        async with self._redis.pipeline(transaction=True) as p:
            self._read(p, key)
            return self._state(*await p.execute())

    async def claim(self, key: ConversationKey, owner: str) -> Claim:
        ttl = str(max(1, round(self.bounds.ttl_s))) if self.bounds.ttl_s else "0"
        async with self._redis.pipeline(transaction=True) as p:
            await self._claim(keys=self._parts(key), args=[owner, ttl, now_ms()], client=p)
            self._read(p, key)
            fence, *state = await p.execute()
        if self.bounds.max_conversations:
            await self._evict(key, int(fence))
        return Claim(int(fence), self._state(*state))

    async def _evict(self, key: ConversationKey, fence: int) -> None:
        """Over the cap: delete the least recently claimed conversations (a sorted set
        of claims, scored by fencing token; outside the conversation's own slot)."""
        claimed = f"{self.prefix}:claimed"
        async with self._redis.pipeline(transaction=False) as p:
            p.zadd(claimed, {key.encoded(): fence})
            p.zcard(claimed)
            _, count = await p.execute()
        over = int(count) - self.bounds.max_conversations
        if over > 0:
            for entry in await self._redis.zpopmin(claimed, over):
                name = entry[0] if isinstance(entry, (list, tuple)) else entry
                await self.delete(ConversationKey.decode(str(name)))

    def _read(self, p: Any, key: ConversationKey) -> None:
        p.hgetall(self._k(key, "meta"))
        p.lrange(self._k(key, "history"), 0, -1)
        p.lrange(self._k(key, "sent"), 0, -1)
        p.lrange(self._k(key, "seen"), 0, -1)
        p.hgetall(self._k(key, "lease"))

    @staticmethod
    def _state(
        meta: dict[str, str],
        history: list[str],
        sent: list[str],
        seen: list[str],
        leases: dict[str, str],
    ) -> ConversationState:
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
        batch: dict[str, Any] = {
            "updated_ms": str(now_ms()),
            "keep": [b.history_max, b.sent_max, b.ids_max],
            "keep_bytes": b.sent_max_bytes,
            "history": [dumps(h) for h in c.history],
            "sent": [dumps(s) for s in c.sent],
            "sent_bytes": sum(sent_size(s) for s in c.sent),
            "seen": [dumps(s) for s in c.ids],
        }
        if c.sent_cleared:
            batch["sent_cleared"] = True
        if c.ids_forgotten:
            batch["ids_forgotten"] = True
        if c.seq is not None:
            batch["seq"] = str(c.seq)
        if c.history_cleared:
            batch["cleared"] = True
        if c.leases:
            batch["leases"] = {t: dumps(x) for t, x in c.leases.items()}
        if c.ended:
            batch["ended"] = sorted(c.ended)
        if b.ttl_s:
            batch["ttl"] = max(1, round(b.ttl_s))
        fence = "" if c.fence is None else str(c.fence)
        try:
            await self._apply(
                keys=self._parts(key), args=[fence, json.dumps(batch, ensure_ascii=False)]
            )
        except ResponseError as e:
            if str(e).startswith("STALE"):
                raise Stale(f"conversation {key} was claimed by another writer") from None
            raise

    async def beat(self, worker: str, ttl_ms: int) -> dict[str, int]:
        keys = [f"{self.prefix}:workers"]
        flat = await self._beat(keys=keys, args=[worker, ttl_ms, FORGET_MS])
        return {str(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    async def lead(self, role: str, owner: str, ttl_ms: int) -> bool:
        return bool(await self._lead(keys=[f"{self.prefix}:lead:{role}"], args=[owner, ttl_ms]))

    def _served(self, worker: str) -> str:
        return f"{self.prefix}:served:{worker}"

    async def serve_room(self, room: str, worker: str) -> None:
        await self._redis.sadd(self._served(worker), room)

    async def left_room(self, room: str, worker: str) -> None:
        await self._redis.srem(self._served(worker), room)

    async def rooms_of(self, worker: str) -> list[str]:
        members = await self._redis.smembers(self._served(worker))
        return sorted(str(m) for m in members)

    async def forget_rooms(self, worker: str) -> None:
        await self._redis.delete(self._served(worker))

    async def delete(self, key: ConversationKey) -> bool:
        await self._redis.zrem(f"{self.prefix}:claimed", key.encoded())
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
