"""Blocking waits (``BLPOP``, or ``ACQUIRE`` + ``BLPOP``) on a connection of their own.

Why not ``client.blpop()``: on a client whose one connection is shared
(``single_connection_client=True``, ``client.client()``), a waiter's BLPOP would occupy that
connection and the holder's ``release()`` and the watchdog's renewals would queue behind it -
long enough for the lease to run out and the waiter to get the lock while its holder still works.
Here every wait borrows a connection from the client's pool, so a holder's commands never wait
for a waiter.

Why not the server's timer alone: Redis checks blocked clients' timeouts on its ``hz`` tick
(10/s by default), so a BLPOP can return up to 100 ms after its timeout. A wait that runs up to
the caller's deadline is read with that deadline as a client-side timeout; if the reply is not
there by then the borrowed connection is dropped (the server forgets the blocked client) and
the caller settles the outcome with ``CANCEL`` - one round trip past its timeout at most.

A Redis Cluster client has no pool of its own (every command takes a node connection anyway):
the sync Lock borrows from the pool of the node serving the lock's slot; the asyncio cluster
client keeps ``client.blpop()``, whose last wait is the server's.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .protocol import AcquireWait, BlockPop, LockCore
from .scripts import ACQUIRE

_monotonic = time.monotonic


class WaitsUnsupportedError(ValueError):
    """The client cannot give a blocking wait a connection of its own."""


def pool_of(client: Any) -> Any | None:
    """The connection pool a wait borrows from; None for clients without one (Cluster).

    Raises :class:`WaitsUnsupportedError` (a ValueError) for a pool that cannot lend a second
    connection: a wait would then hold the only one and starve the holder.
    """
    pool = getattr(client, "connection_pool", None)
    if pool is None or not callable(getattr(pool, "get_connection", None)):
        return None
    limit = getattr(pool, "max_connections", None)
    if isinstance(limit, int) and limit < 2:
        raise WaitsUnsupportedError(
            f"a blocking acquire needs a connection of its own besides the holder's, but this "
            f"client's pool allows {limit}: use max_connections >= 2 (or blocking=False)"
        )
    return pool


def _acquire_wait_commands(op: AcquireWait) -> list[tuple[Any, ...]]:
    return [
        ("EVALSHA", ACQUIRE.sha, len(op.keys), *op.keys, *op.args, 1),
        ("BLPOP", op.wake, *op.also, op.timeout),
    ]


def _read_timeout(deadline: float | None) -> Any:
    # Never 0: that would make the socket non-blocking rather than time the read out.
    return None if deadline is None else max(0.001, deadline - _monotonic())


def _acquire_result(first: Any) -> int | None:
    """ACQUIRE's reply, or None when the server had lost the script (NOSCRIPT)."""
    if isinstance(first, NoScriptError):
        return None
    if isinstance(first, Exception):
        raise first
    return int(first)


def socket_timeout_of(client: Any) -> float | None:
    """The client's socket timeout, if it exposes one (BLPOP must return before it fires)."""
    holders = (getattr(client, "connection_pool", None), getattr(client, "nodes_manager", None))
    for holder in holders:
        kwargs = getattr(holder, "connection_kwargs", None)
        if isinstance(kwargs, dict) and kwargs.get("socket_timeout"):
            return float(kwargs["socket_timeout"])
    return None


def bind_client(lock: LockCore, redis: Any, watchdog: bool) -> None:
    """What a driver keeps of its client: the pool its waits borrow connections from (see
    ``waits``), and a bound on one blocking wait below the client's socket timeout."""
    lock.redis = redis  # type: ignore[attr-defined]
    lock.watchdog = watchdog  # type: ignore[attr-defined]
    try:
        lock._wait_pool = pool_of(redis)  # type: ignore[attr-defined]
    except WaitsUnsupportedError as exc:
        lock._wait_pool, lock._waits_refused = None, exc  # type: ignore[attr-defined]
    socket_timeout = socket_timeout_of(redis)
    if socket_timeout is not None:
        lock._max_block = max(0.01, socket_timeout / 2)


# -- sync ------------------------------------------------------------------------------------


def _read_sync(conn: Any, deadline: float | None) -> Any:
    timeout = _read_timeout(deadline)
    try:
        if timeout is None:
            return conn.read_response()
        return conn.read_response(timeout=timeout)
    except RedisTimeoutError:
        if deadline is None:
            raise  # the socket timeout: the server is not answering
        return None  # our deadline: read_response dropped the connection, and the wait


def _read_reply_sync(conn: Any) -> Any:
    try:
        return conn.read_response()
    except NoScriptError as exc:  # an error reply: the connection is still in step
        return exc


def block_pop_sync(pool: Any, op: BlockPop) -> Any:
    conn = pool.get_connection()
    try:
        conn.send_command("BLPOP", *op.keys, op.timeout)
        return _read_sync(conn, op.deadline)
    finally:
        pool.release(conn)


def acquire_wait_sync(pool: Any, op: AcquireWait) -> tuple[int, Any] | None:
    """(ACQUIRE's result, BLPOP's reply), or None on NOSCRIPT (the caller redoes the step)."""
    conn = pool.get_connection()
    try:
        conn.send_packed_command(conn.pack_commands(_acquire_wait_commands(op)))
        result = _acquire_result(_read_reply_sync(conn))
        popped = _read_sync(conn, op.deadline)
    except BaseException:
        conn.disconnect()  # a reply may still be due: never hand the connection on like that
        raise
    finally:
        pool.release(conn)
    return None if result is None else (result, popped)


# -- asyncio ---------------------------------------------------------------------------------


async def _read_async(conn: Any, deadline: float | None) -> Any:
    timeout = _read_timeout(deadline)
    if timeout is None:
        return await conn.read_response()
    try:
        async with asyncio.timeout(timeout):
            # Cancelled at the deadline, read_response drops the connection (and the wait).
            return await conn.read_response()
    except TimeoutError:
        return None


async def _read_reply_async(conn: Any) -> Any:
    try:
        return await conn.read_response()
    except NoScriptError as exc:
        return exc


async def block_pop_async(pool: Any, op: BlockPop) -> Any:
    conn = await pool.get_connection()
    try:
        await conn.send_command("BLPOP", *op.keys, op.timeout)
        return await _read_async(conn, op.deadline)
    finally:
        await pool.release(conn)


async def acquire_wait_async(pool: Any, op: AcquireWait) -> tuple[int, Any] | None:
    conn = await pool.get_connection()
    try:
        await conn.send_packed_command(conn.pack_commands(_acquire_wait_commands(op)))
        result = _acquire_result(await _read_reply_async(conn))
        popped = await _read_async(conn, op.deadline)
    except BaseException:
        await conn.disconnect(nowait=True)  # a reply may still be due
        raise
    finally:
        await pool.release(conn)
    return None if result is None else (result, popped)
