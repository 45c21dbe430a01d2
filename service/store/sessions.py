"""Sessions, rounds and cached features in Redis (redis-py asyncio).

Guarantees:

- **Ownership**: a session belongs to the user who created it; any other user gets
  ``SessionNotFound``, exactly as for a session that never existed.
- **Idle TTL**: every access refreshes the TTL of all the session's keys.
- **Serialised rounds**: callers hold ``lock(sid)`` while computing a round, and the
  commit is a Lua script that checks the round count it started from (a fencing check).
  So even if a lock expired under a pathologically slow round, a round is never applied
  twice and never overwrites another; the loser is retried by the caller.
- **No resurrection**: writes after a delete or expiry are refused, so a round finishing
  after ``DELETE`` does not bring keys back.

- **Leased lock**: the round lock is a lease of ``lock_lease_s``, renewed while the round
  computes, so a replica that dies or a Redis that pauses mid-round leaves the lock behind
  for at most one lease; a release that failed is retried in the background.

Redis connection failures surface as ``StoreUnavailable`` (503; nothing was written), or as
``RoundOutcomeUnknown`` when the failure came while a round's commit was in flight. The
message names no host or port (that goes to the log).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, LockError, OutOfMemoryError, RedisError, ResponseError

from service.errors import Conflict, RoundOutcomeUnknown, SessionNotFound, StoreUnavailable
from service.store import keys

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

SESSION_ID_BYTES = 16

# KEYS[1] = key set, ARGV[1] = ttl ms. Refreshes every key of the session.
_TOUCH = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
local members = redis.call('SMEMBERS', KEYS[1])
for _, k in ipairs(members) do redis.call('PEXPIRE', k, ARGV[1]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""

# KEYS: meta, rounds, alpha, state, requests, key set
# ARGV: expected round count, record json, alpha bytes, state bytes ('' = none),
#       request id ('' = none), ttl ms, commit token
# The token makes the script idempotent: resent after a timeout (redis-py retries), it
# answers the round the first delivery applied instead of a fencing failure.
_COMMIT_ROUND = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local n = tonumber(redis.call('HGET', KEYS[1], 'rounds'))
if redis.call('HGET', KEYS[1], 'commit') == ARGV[7] then return n end
if n ~= tonumber(ARGV[1]) then return -2 end
local new = n + 1
-- Over maxmemory a script is never cut in half: Redis 6 refuses its first write when that one
-- may grow memory (SET here: nothing is written) and lets the rest follow once one was done;
-- Redis 7 lets a started script finish.
redis.call('SET', KEYS[3], ARGV[3])
redis.call('SADD', KEYS[6], KEYS[3])
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[4], ARGV[4])
  redis.call('SADD', KEYS[6], KEYS[4])
end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('SADD', KEYS[6], KEYS[2])
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[5], ARGV[5], new)
  redis.call('SADD', KEYS[6], KEYS[5])
end
redis.call('HSET', KEYS[1], 'rounds', new, 'commit', ARGV[7])
local members = redis.call('SMEMBERS', KEYS[6])
for _, k in ipairs(members) do redis.call('PEXPIRE', k, ARGV[6]) end
redis.call('PEXPIRE', KEYS[6], ARGV[6])
return new
"""

# KEYS: meta, rounds, requests, key set; ARGV: key prefix for per-round keys ('ms:{sid}:'), undo token
# The token makes it idempotent like _COMMIT_ROUND: resent after a timeout, it answers the
# rounds the first delivery left instead of dropping a second round.
_UNDO = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local n = tonumber(redis.call('HGET', KEYS[1], 'rounds'))
if redis.call('HGET', KEYS[1], 'undo') == ARGV[2] then return n end
if n == 0 then return -2 end
local record = redis.call('RPOP', KEYS[2])
if record then
  local ok, decoded = pcall(cjson.decode, record)
  if ok and decoded['request_id'] and decoded['request_id'] ~= cjson.null then
    redis.call('HDEL', KEYS[3], decoded['request_id'])
  end
end
for _, kind in ipairs({'alpha:', 'state:', 'cutout:'}) do
  local k = ARGV[1] .. kind .. n
  redis.call('DEL', k)
  redis.call('SREM', KEYS[4], k)
end
redis.call('HSET', KEYS[1], 'rounds', n - 1, 'undo', ARGV[2])
return n - 1
"""

# KEYS: key set, meta, lock; ARGV: session id. Deletes everything of the session.
_DELETE = """
local members = redis.call('SMEMBERS', KEYS[1])
for _, k in ipairs(members) do redis.call('DEL', k) end
local existed = redis.call('DEL', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[3])
return existed
"""

# KEYS: meta, alpha key, cutout key, key set; ARGV: cut-out, ttl ms, SHA-1 of the alpha PNG it was
# made from. Stores the cut-out only while that round's alpha is still the one it was made from: an
# undo (and a new round of the same number) between reading the alpha and storing the cut-out
# would otherwise leave the undone round's cut-out under the new round's number.
_PUT_CUTOUT = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local alpha = redis.call('GET', KEYS[2])
if not alpha or redis.sha1hex(alpha) ~= ARGV[3] then return 0 end
redis.call('SET', KEYS[3], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[4], KEYS[3])
return 1
"""

# KEYS: meta, value key, key set; ARGV: value, ttl ms. Stores a value only while the session lives.
_PUT_IF_ALIVE = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2])
redis.call('SADD', KEYS[3], KEYS[2])
return 1
"""


def _guard(func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Turn Redis connection problems into ``StoreUnavailable`` (503)."""

    @wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await func(*args, **kwargs)
        except LockError:
            raise
        except (RedisError, OSError) as exc:
            raise _unavailable(func.__name__, exc) from exc

    return wrapper


def _unavailable(operation: str, exc: BaseException) -> StoreUnavailable:
    """The error for a failed Redis call (nothing was written; ``commit_round`` raises its own
    ``RoundOutcomeUnknown``): the detail (host, port, reason) goes to the log only."""
    log.warning("Redis call %s failed: %r", operation, exc)
    if isinstance(exc, OutOfMemoryError):
        return StoreUnavailable(
            "The session store is full; nothing was changed. Try again later, or delete sessions "
            "you no longer need."
        )
    return StoreUnavailable("The session store is unavailable; nothing was changed. Try again shortly.")


@dataclass(frozen=True)
class SessionMeta:
    """What the service knows of a session without loading its image."""

    session_id: str
    user: str
    width: int
    height: int
    model: str
    created_at: datetime
    rounds: int
    expires_at: datetime


@dataclass
class RoundRecord:
    """One applied round as stored in the session's round list."""

    round: int
    model: str
    prompts: list[dict[str, Any]]
    score: float | None
    timings_ms: dict[str, float]
    created_at: str
    request_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: bytes | str) -> RoundRecord:
        return cls(**json.loads(raw))


def new_session_id() -> str:
    return secrets.token_urlsafe(SESSION_ID_BYTES)


def looks_like_session_id(value: str) -> bool:
    """Cheap shape check, so odd path segments never reach Redis key names."""
    return 8 <= len(value) <= 64 and all(c.isalnum() or c in "-_" for c in value)


class SessionStore:
    """Async access to sessions in one Redis (``redis.asyncio.Redis`` without decoding)."""

    def __init__(self, client: aioredis.Redis, *, ttl_s: int, lock_lease_s: float = 15.0) -> None:
        self.client = client
        self.ttl_s = ttl_s
        self.lock_lease_s = lock_lease_s
        self._pending_releases: set[asyncio.Task[None]] = set()
        self._touch = client.register_script(_TOUCH)
        self._commit = client.register_script(_COMMIT_ROUND)
        self._undo = client.register_script(_UNDO)
        self._delete = client.register_script(_DELETE)
        self._put_if_alive = client.register_script(_PUT_IF_ALIVE)
        self._put_cutout = client.register_script(_PUT_CUTOUT)

    @property
    def _ttl_ms(self) -> int:
        return self.ttl_s * 1000

    async def health(self) -> str:
        """``ok``, or why Redis cannot serve, for /readyz: a wrong password or database number
        is a misconfiguration that waiting will not cure, unlike ``unavailable``."""
        try:
            await self.client.ping()
        except AuthenticationError:
            return "authentication failed: check the password in MATTESERVE_REDIS_URL"
        except ResponseError as exc:  # e.g. "DB index is out of range", "NOAUTH ..."
            log.warning("Redis refused the readiness ping: %r", exc)
            return f"refused: {str(exc).splitlines()[0][:120]}"
        except (RedisError, OSError) as exc:
            log.warning("Redis call ping failed: %r", exc)
            return "unavailable"
        return "ok"

    @_guard
    async def create(self, *, user: str, image: bytes, width: int, height: int, model: str) -> SessionMeta:
        """Create a session holding ``image`` (the uploaded bytes) for ``user``."""
        sid = new_session_id()
        now = time.time()
        mapping = {
            "user": user,
            "width": width,
            "height": height,
            "model": model,
            "created_at": f"{now:.6f}",
            "rounds": 0,
        }
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(keys.meta(sid), mapping=mapping)
            pipe.set(keys.image(sid), image)
            pipe.sadd(keys.key_set(sid), keys.meta(sid), keys.image(sid))
            for key in (keys.meta(sid), keys.image(sid), keys.key_set(sid)):
                pipe.pexpire(key, self._ttl_ms)
            pipe.zadd(keys.SESSIONS_INDEX, {sid: now + self.ttl_s})
            await pipe.execute()
        return self._meta(sid, mapping, now)

    def _meta(self, sid: str, raw: dict[Any, Any], now: float) -> SessionMeta:
        def text(name: str) -> str:
            value = raw.get(name, raw.get(name.encode()))
            return value.decode() if isinstance(value, bytes) else str(value)

        return SessionMeta(
            session_id=sid,
            user=text("user"),
            width=int(text("width")),
            height=int(text("height")),
            model=text("model"),
            created_at=datetime.fromtimestamp(float(text("created_at")), UTC),
            rounds=int(text("rounds")),
            expires_at=datetime.fromtimestamp(now + self.ttl_s, UTC),
        )

    @_guard
    async def get(self, sid: str, user: str) -> SessionMeta:
        """Load a session's metadata and refresh its TTL. Another user's session, an expired
        one and a malformed id all raise ``SessionNotFound``."""
        if not looks_like_session_id(sid):
            raise SessionNotFound(sid)
        raw = await self.client.hgetall(keys.meta(sid))
        if not raw or raw.get(b"user", b"").decode() != user:
            raise SessionNotFound(sid)
        await self.touch(sid)
        return self._meta(sid, raw, time.time())

    @_guard
    async def touch(self, sid: str) -> None:
        """Refresh the idle TTL of every key of the session."""
        alive = await self._touch(keys=[keys.key_set(sid), keys.meta(sid)], args=[self._ttl_ms])
        if alive:
            try:
                await self.client.zadd(keys.SESSIONS_INDEX, {sid: time.time() + self.ttl_s})
            except OutOfMemoryError:
                # A full Redis (noeviction) still serves reads and deletes, which free memory; the
                # index entry (for the session count) is refreshed on a later touch.
                log.warning("Redis is full: the session index was not refreshed")

    @_guard
    async def image(self, sid: str) -> bytes:
        data = await self.client.get(keys.image(sid))
        if data is None:
            raise SessionNotFound(sid)
        return data

    @_guard
    async def rounds(self, sid: str) -> list[RoundRecord]:
        return [RoundRecord.from_json(raw) for raw in await self.client.lrange(keys.rounds(sid), 0, -1)]

    @_guard
    async def round(self, sid: str, n: int) -> RoundRecord | None:
        if n < 1:
            return None
        raw = await self.client.lindex(keys.rounds(sid), n - 1)
        return RoundRecord.from_json(raw) if raw is not None else None

    @_guard
    async def alpha(self, sid: str, n: int) -> bytes | None:
        return await self.client.get(keys.alpha(sid, n)) if n >= 1 else None

    @_guard
    async def state(self, sid: str, n: int) -> bytes | None:
        return await self.client.get(keys.state(sid, n)) if n >= 1 else None

    @_guard
    async def round_count(self, sid: str) -> int:
        value = await self.client.hget(keys.meta(sid), "rounds")
        if value is None:
            raise SessionNotFound(sid)
        return int(value)

    @_guard
    async def round_for_request(self, sid: str, request_id: str) -> int | None:
        value = await self.client.hget(keys.requests(sid), request_id)
        return int(value) if value is not None else None

    @_guard
    async def commit_round(
        self,
        sid: str,
        *,
        expected_rounds: int,
        record: RoundRecord,
        alpha_png: bytes,
        state: bytes | None,
    ) -> int:
        """Append round ``expected_rounds + 1`` atomically. Raises ``SessionNotFound`` if the
        session is gone and ``Conflict`` (code ``round_conflict``) if another round was
        committed since ``expected_rounds`` was read. A Redis failure here raises
        ``RoundOutcomeUnknown``: the script may have run."""
        n = expected_rounds + 1
        try:
            result = await self._commit(
                keys=[
                    keys.meta(sid),
                    keys.rounds(sid),
                    keys.alpha(sid, n),
                    keys.state(sid, n),
                    keys.requests(sid),
                    keys.key_set(sid),
                ],
                args=[
                    expected_rounds,
                    record.to_json(),
                    alpha_png,
                    state or b"",
                    record.request_id or "",
                    self._ttl_ms,
                    secrets.token_hex(12),
                ],
            )
        except OutOfMemoryError as exc:
            # Refused at the script's first write, before anything was stored (and a resent
            # delivery of an applied commit answers from its token without writing).
            raise _unavailable("commit_round", exc) from exc
        except (RedisError, OSError) as exc:
            log.warning("Redis call commit_round failed: %r", exc)
            raise RoundOutcomeUnknown(
                "The session store (Redis) failed while this round was being saved: it may or may "
                "not have been applied. Retry with the same request_id to get it exactly once."
            ) from exc
        if result == -1:
            raise SessionNotFound(sid)
        if result == -2:
            raise Conflict("Another round was applied to this session meanwhile.", code="round_conflict")
        return int(result)

    @_guard
    async def undo(self, sid: str) -> int:
        """Drop the last round; return the number of rounds left."""
        result = await self._undo(
            keys=[keys.meta(sid), keys.rounds(sid), keys.requests(sid), keys.key_set(sid)],
            args=[keys.meta(sid)[: -len("meta")], secrets.token_hex(12)],
        )
        if result == -1:
            raise SessionNotFound(sid)
        if result == -2:
            raise Conflict("The session has no round to undo.", code="nothing_to_undo")
        return int(result)

    @_guard
    async def delete(self, sid: str) -> bool:
        """Delete every key of the session; True if it existed."""
        existed = await self._delete(keys=[keys.key_set(sid), keys.meta(sid), keys.lock(sid)], args=[sid])
        await self.client.zrem(keys.SESSIONS_INDEX, sid)
        return bool(existed)

    async def _put(self, sid: str, key: str, value: bytes) -> bool:
        return bool(
            await self._put_if_alive(
                keys=[keys.meta(sid), key, keys.key_set(sid)], args=[value, self._ttl_ms]
            )
        )

    @_guard
    async def features(self, sid: str, name: str) -> bytes | None:
        return await self.client.get(keys.features(sid, name))

    @_guard
    async def put_features(self, sid: str, name: str, data: bytes) -> bool:
        return await self._put(sid, keys.features(sid, name), data)

    @_guard
    async def cutout(self, sid: str, n: int) -> bytes | None:
        return await self.client.get(keys.cutout(sid, n))

    @_guard
    async def put_cutout(self, sid: str, n: int, data: bytes, alpha_png: bytes) -> bool:
        """Keep round ``n``'s cut-out ``data``, made from ``alpha_png``, if that is still round
        ``n``'s alpha (not undone, not replaced by a new round ``n``); True if stored."""
        return bool(
            await self._put_cutout(
                keys=[keys.meta(sid), keys.alpha(sid, n), keys.cutout(sid, n), keys.key_set(sid)],
                args=[data, self._ttl_ms, hashlib.sha1(alpha_png).hexdigest()],
            )
        )

    @asynccontextmanager
    async def lock(self, sid: str, *, wait_s: float) -> AsyncIterator[None]:
        """Hold the session's round lock; raises ``Conflict`` (``session_busy``) after ``wait_s``.

        The lock is a lease renewed every third of ``lock_lease_s`` while the body runs."""
        lock = self.client.lock(
            keys.lock(sid), timeout=self.lock_lease_s, blocking=True, blocking_timeout=wait_s
        )
        try:
            acquired = await lock.acquire()
        except (RedisError, OSError) as exc:
            raise _unavailable("lock", exc) from exc
        if not acquired:
            raise Conflict(
                "The session is busy with another round; try again.",
                code="session_busy",
                retry_after_s=1,
            )
        renewal = asyncio.create_task(self._renew(lock))
        try:
            yield
        finally:
            renewal.cancel()
            try:
                await lock.release()
            except LockError:
                pass  # the lease ran out or the session was deleted; the fencing check holds
            except (RedisError, OSError):
                self._release_later(lock)

    async def _renew(self, lock: Any) -> None:
        while True:
            await asyncio.sleep(self.lock_lease_s / 3)
            try:
                await lock.reacquire()
            except LockError:
                return
            except (RedisError, OSError):
                continue

    def _release_later(self, lock: Any) -> None:
        """Retry a failed release (Redis paused or restarting) for up to one lease, so the
        session is not busy until the lease runs out once Redis answers again."""

        async def release() -> None:
            deadline = time.monotonic() + self.lock_lease_s
            while time.monotonic() < deadline:
                try:
                    await lock.release()
                    return
                except LockError:
                    return
                except (RedisError, OSError):
                    await asyncio.sleep(0.2)

        task = asyncio.create_task(release())
        self._pending_releases.add(task)
        task.add_done_callback(self._pending_releases.discard)

    @_guard
    async def active_sessions(self) -> int:
        now = time.time()
        await self.client.zremrangebyscore(keys.SESSIONS_INDEX, "-inf", now)
        return int(await self.client.zcard(keys.SESSIONS_INDEX))

    @_guard
    async def session_keys(self, sid: str) -> list[str]:
        """Every Redis key of the session that exists (for tests and tooling)."""
        return [k.decode() async for k in self.client.scan_iter(match=keys.session_pattern(sid), count=1000)]

    @_guard
    async def session_bytes(self, sid: str) -> int:
        """Total bytes the session's keys take in Redis (``MEMORY USAGE``)."""
        total = 0
        for key in await self.session_keys(sid):
            total += int(await self.client.memory_usage(key, samples=0) or 0)
        return total

    @_guard
    async def hit_rate_limit(self, user: str, limit_per_minute: int) -> bool:
        """Count a request for ``user`` in the current minute; True if over the limit.

        A fixed-window counter (INCR + EXPIRE) is all this needs; a token-bucket library
        would add a dependency for no difference at per-minute granularity."""
        if limit_per_minute <= 0:
            return False
        key = keys.rate(user, int(time.time() // 60))
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = await pipe.execute()
        return int(count) > limit_per_minute
