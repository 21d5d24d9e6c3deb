"""Group commit under the item lock (flat combining): its holder decides every waiting buyer.

Under ``lock`` and ``lock_fenced`` a buyer publishes its request to the sale's request queue (a
Redis list, hash-tagged like every sale key) and then waits, in one BLPOP, for whichever comes
first: its answer, or the item lock (``Lock.acquire(wake_on=...)``). The holder is the
*combiner*: it takes up to ``SECKILL_LOCK_BATCH`` requests in arrival order, its own among them,
has them decided in one database transaction (``decide``: the strategies' read-modify-write for
a batch), answers each on its reply list and releases. One commit then serves a whole queue of
buyers instead of one; placement is still serialized per item by the lock.

Failure paths, each logged and each its own answer:

- the wait runs out with the request still queued: it is withdrawn, 429 ``busy``;
- the wait runs out (or the lock is won) after a combiner took the request: the buyer waits for
  that answer up to two leases more, then 503 ``unavailable`` (the combiner died). A retry with
  its Idempotency-Key finds the order if that batch committed, else is placed afresh;
- ``lock_fenced``: taken requests stay in the sale's ``inflight`` list until answered, and the
  next holder decides them again first. A combiner that stalled past its lease then has its
  write refused by the fence (it answers nothing: the next holder does); one killed after COMMIT
  left orders whose ids are the requests' ids, so those are answered from the database, never
  written twice. ``lock`` cannot tell a stalled holder from a dead one and decides nothing again;
- ``decide`` fails (database or Redis): every other request in the batch gets 503, the
  combiner's own error goes up to the caller.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis

from seckill import probes
from seckill.errors import Busy, LimitReached, SeckillError, SoldOut, StaleFence, Unavailable
from seckill.infrastructure.lua import registered_script
from seckill.infrastructure.redis_client import get_redis, is_cluster
from seckill.keys import SaleKeys, sale_keys
from seckill.lock import Lock, LockNotOwnedError

log = logging.getLogger(__name__)

REPLY_TTL_MS = 30_000  # an answer nobody collected (its buyer gave up) does not linger
QUEUE_TTL_MS = 3_600_000  # a sale's request queue and inflight list, from their last use

# Take a batch: only while ``token`` holds the lease (a holder whose lease ran out takes nothing).
# KEYS: requests, inflight, lease. ARGV: token, max, mine, recover (1: lock_fenced), ttl ms.
# Returns false, or {mine found, requests taken earlier and never answered, requests taken now}.
TAKE = """
if redis.call('GET', KEYS[3]) ~= ARGV[1] then return false end
local prior = {}
if ARGV[4] == '1' then prior = redis.call('LRANGE', KEYS[2], 0, -1) end
local taken = redis.call('LPOP', KEYS[1], ARGV[2]) or {}
local found = 0
for _, r in ipairs(prior) do if r == ARGV[3] then found = 1 end end
for _, r in ipairs(taken) do if r == ARGV[3] then found = 1 end end
if found == 0 and redis.call('LREM', KEYS[1], 1, ARGV[3]) == 1 then
  taken[#taken + 1] = ARGV[3]
  found = 1
end
if ARGV[4] == '1' and #taken > 0 then
  redis.call('RPUSH', KEYS[2], unpack(taken))
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return {found, prior, taken}
"""

# Answer a batch, and forget it as inflight if we still hold the lease (else the next holder
# has taken it over). KEYS: inflight, lease, then reply list and kept answer of each request.
# ARGV: token, ttl ms, then each request's answer.
ANSWER = """
for i = 3, #ARGV do
  local reply, kept = KEYS[2 * i - 3], KEYS[2 * i - 2]
  redis.call('RPUSH', reply, ARGV[i])
  redis.call('PEXPIRE', reply, ARGV[2])
  redis.call('SET', kept, ARGV[i], 'PX', ARGV[2])
end
if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 1
"""

ERRORS: dict[str, type[SeckillError]] = {
    cls.code: cls for cls in (SoldOut, LimitReached, Busy, Unavailable)
}


@dataclass(frozen=True)
class Request:
    """One buyer's order request. ``id`` is the id its order gets if it is placed: a combiner
    that takes over an unanswered batch finds by it whether that batch committed."""

    id: int
    buyer: int
    quantity: int
    key: str

    def encode(self) -> str:
        fields = {"id": self.id, "buyer": self.buyer, "quantity": self.quantity, "key": self.key}
        return json.dumps(fields, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: bytes | str) -> Request:
        data = json.loads(raw)
        return cls(int(data["id"]), int(data["buyer"]), int(data["quantity"]), str(data["key"]))


@dataclass(frozen=True)
class Batch:
    """What one lock hold decides: ``requests`` in order, the first ``recovered`` of them taken
    over from an earlier holder that never answered them."""

    requests: list[Request]
    fence: int
    lock_wait_ms: float
    recovered: int = 0


@dataclass(frozen=True)
class Outcome:
    """A decided request: its order (new, or the earlier one of a replayed key) or a refusal.

    ``record``: the committed order as JSON-able columns (``decide`` fills it in for the orders
    it wrote), carried in the answer so that its waiter renders the order without reading it
    back from the database; without one the waiter reads it by ``order_id``."""

    order_id: int | None = None
    created: bool = False
    error: SeckillError | None = None
    order: object | None = field(default=None, compare=False)  # the combiner's own, in memory
    record: dict | None = field(default=None, compare=False)

    def encode(self) -> str:
        if self.error is not None:
            return json.dumps({"error": self.error.code, "message": self.error.message})
        answer = {"order": self.order_id, "created": self.created}
        if self.record is not None:
            answer["record"] = self.record
        return json.dumps(answer, separators=(",", ":"))

    @classmethod
    def decode(cls, raw: bytes | str) -> Outcome:
        data = json.loads(raw)
        if "error" in data:
            error_class = ERRORS.get(data["error"], Unavailable)
            return cls(error=error_class(data.get("message") or None))
        return cls(
            order_id=int(data["order"]), created=bool(data["created"]), record=data.get("record")
        )


Decide = Callable[[Batch], list[Outcome]]


def place(
    lock: Lock, sale_id: int, request: Request, *, batch_size: int, recover: bool, decide: Decide
) -> tuple[Outcome, float]:
    """Publish ``request``, then get its answer from a combiner or be the combiner.

    Returns the outcome and how long this buyer waited for the lock or its answer (ms).
    """
    keys, client, raw = sale_keys(sale_id), get_redis(), request.encode()
    reply = keys.reply(request.id)
    with client.pipeline(transaction=False) as pipe:
        pipe.rpush(keys.requests, raw).pexpire(keys.requests, QUEUE_TTL_MS).execute()
    started = time.perf_counter()
    try:
        held = lock.acquire(
            blocking=True, timeout=probes.setting("SECKILL_LOCK_WAIT"), wake_on=(reply,)
        )
    except BaseException:
        with contextlib.suppress(redis.RedisError):  # nothing may place it after we failed
            client.lrem(keys.requests, 1, raw)
        raise
    waited_ms = (time.perf_counter() - started) * 1000
    mine = None if lock.woken_by is None else Outcome.decode(lock.woken_by[1])
    if not held:
        if mine is not None:
            return mine, waited_ms
        if client.lrem(keys.requests, 1, raw):
            raise Busy(retry_after=1)
        log.info("sale %s: request %s was taken as the wait ran out", sale_id, request.id)
        return _awaited(client, keys, request.id), waited_ms
    probes.point("entered", fence=lock.fence, lock_wait_ms=waited_ms)
    try:
        decided = _combine(lock, keys, raw, batch_size, recover, decide, waited_ms)
    finally:
        probes.point("released")  # before: the release hands the lock to the next waiter
        try:
            lock.release()
        except LockNotOwnedError:
            log.warning("sale %s: item lock lease lost before release", sale_id)
    mine = mine or decided
    if mine is None:
        mine = _awaited(client, keys, request.id)
    return mine, waited_ms


def _combine(
    lock: Lock,
    keys: SaleKeys,
    mine: str,
    batch_size: int,
    recover: bool,
    decide: Decide,
    waited_ms: float,
) -> Outcome | None:
    """Take a batch, decide it, answer it; the outcome of ``mine`` if this batch decided it."""
    sale_id = keys.sale_id
    took = registered_script(TAKE)(
        keys=[keys.requests, keys.inflight, lock.key],
        args=[lock.token, batch_size, mine, int(recover), QUEUE_TTL_MS],
    )
    if not took:
        log.warning("sale %s: fence %s lost its lease before taking a batch", sale_id, lock.fence)
        return None
    _, prior, taken = took
    raws = [_text(raw) for raw in (*prior, *taken)]
    requests = [Request.decode(raw) for raw in raws]
    if not requests:  # ours was taken (and is being answered) by an earlier holder
        return None
    if prior:
        log.warning(
            "sale %s: fence %s decides again %d requests an earlier holder took and never answered",
            sale_id,
            lock.fence,
            len(prior),
        )
    batch = Batch(requests, int(lock.fence), waited_ms, recovered=len(prior))
    mine_at = raws.index(mine) if mine in raws else None
    try:
        outcomes = decide(batch)
    except StaleFence:
        # A newer holder wrote: it has taken this batch over (inflight) and answers it.
        probes.point("refused")
        log.warning(
            "sale %s: fence %s's batch of %d refused (stale fence); the next holder decides it",
            sale_id,
            lock.fence,
            len(requests),
        )
        return None
    except Exception as exc:
        log.warning(
            "sale %s: batch of %d at fence %s failed (%r); answering 503",
            sale_id,
            len(requests),
            lock.fence,
            exc,
        )
        failed = Outcome(error=Unavailable("the order could not be decided; retry"))
        with contextlib.suppress(redis.RedisError):
            _answer(lock, keys, requests, [failed] * len(requests), skip=mine_at)
        if mine_at is not None:
            raise
        return None
    _answer(lock, keys, requests, outcomes, skip=mine_at)
    return None if mine_at is None else outcomes[mine_at]


def _answer(
    lock: Lock,
    keys: SaleKeys,
    requests: list[Request],
    outcomes: list[Outcome],
    *,
    skip: int | None,
) -> None:
    """Push every answer but our own (one round trip), and clear the inflight list."""
    answered = [
        (r, o) for i, (r, o) in enumerate(zip(requests, outcomes, strict=True)) if i != skip
    ]
    replies = [key for r, _ in answered for key in (keys.reply(r.id), keys.answer(r.id))]
    registered_script(ANSWER)(
        keys=[keys.inflight, lock.key, *replies],
        args=[lock.token, REPLY_TTL_MS, *(o.encode() for _, o in answered)],
    )


def _awaited(client: redis.Redis, keys: SaleKeys, request_id: int) -> Outcome:
    """The answer of a combiner that has our request; 503 if none comes within two leases (a
    stalled lock_fenced combiner's batch is decided again once its lease runs out)."""
    reply, kept = keys.reply(request_id), keys.answer(request_id)
    deadline = time.monotonic() + 2 * probes.setting("SECKILL_LOCK_TTL") + 1
    chunk = max(0.1, min(1.0, _socket_timeout(client) / 2))
    while True:
        answer = client.get(kept)  # an earlier wait may have popped the reply unread
        if answer is not None:
            client.delete(reply)
            return Outcome.decode(answer)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        popped = client.blpop([reply], timeout=max(0.01, min(chunk, left)))
        if popped is not None:
            return Outcome.decode(popped[1])
    log.warning("sale %s: no answer came for request %s (503)", keys.sale_id, request_id)
    raise Unavailable("the order's batch was not answered; retry with the same Idempotency-Key")


def _socket_timeout(client: redis.Redis) -> float:
    """The client's read timeout, which a blocking wait must stay under (a Redis Cluster client
    has no pool of its own: its nodes' connections share these settings)."""
    if is_cluster(client):
        kwargs = client.get_connection_kwargs()
    else:
        kwargs = client.connection_pool.connection_kwargs
    return float(kwargs.get("socket_timeout") or 2.0)


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw
