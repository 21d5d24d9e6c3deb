"""``AsyncLock``: the same protocol and Lua scripts over ``redis.asyncio`` clients.

Only the driver differs from :class:`seckill.lock.Lock` (``await`` instead of a call, the
same waits on a borrowed connection); the watchdog is an asyncio task stopped by an
``asyncio.Event``. The task holds only a weak reference to its lock (a dropped lock stops
being renewed), and reports the lease lost when it ends with a renewal still unanswered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

from redis.exceptions import NoScriptError

from .errors import LockTimeout, LockUnavailableError
from .keys import LockKeys
from .lock import UNREACHABLE, unavailable
from .protocol import AcquireWait, BlockPop, Eval, LockCore, Op, Steps
from .scripts import ACQUIRE, Script
from .waits import acquire_wait_async, bind_client, block_pop_async
from .watchdog import renewal_verdict

_monotonic = time.monotonic
# Watchdog tasks, kept alive here (the loop holds tasks weakly) while their lock may not be.
_WATCHDOGS: set[asyncio.Task[None]] = set()

log = logging.getLogger(__name__)


async def run_script_async(
    client: Any, script: Script, keys: tuple[str, ...], args: tuple[Any, ...]
) -> Any:
    """EVALSHA, and EVAL once on NOSCRIPT (async twin of ``lock.run_script``)."""
    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return await client.eval(script.source, len(keys), *keys, *args)


class AsyncLock(LockCore):
    """Asyncio lock; same arguments and semantics as :class:`seckill.lock.Lock`."""

    def __init__(
        self,
        redis: Any,
        name: str,
        ttl: float = 10.0,
        watchdog: bool = False,
        *,
        reentrant: bool = False,
        fair: bool = True,
        blocking_timeout: float | None = None,
        poll_interval: float = 1.0,
        on_lost: Callable[[AsyncLock], None] | None = None,
        keys: LockKeys | None = None,
    ) -> None:
        super().__init__(
            name,
            ttl=ttl,
            reentrant=reentrant,
            fair=fair,
            blocking_timeout=blocking_timeout,
            poll_interval=poll_interval,
            on_lost=on_lost,
            keys=keys,
        )
        self._watchdog_task: asyncio.Task[None] | None = None
        self._watchdog_stop: asyncio.Event | None = None
        bind_client(self, redis, watchdog)

    async def _execute(self, op: Op) -> Any:
        self._sent_at = _monotonic()
        if type(op) is Eval:
            return await run_script_async(self.redis, op.script, op.keys, op.args)
        if type(op) is AcquireWait:
            return await self._acquire_wait(op)
        if type(op) is BlockPop:
            return await self._block_pop(op)
        return await self.redis.get(op.key)

    async def _block_pop(self, op: BlockPop) -> Any:
        if self._wait_pool is not None:
            return await block_pop_async(self._wait_pool, op)
        return await self.redis.blpop(list(op.keys), op.timeout)

    async def _acquire_wait(self, op: AcquireWait) -> tuple[int, Any]:
        if self._wait_pool is not None:
            replies = await acquire_wait_async(self._wait_pool, op)
            if replies is not None:
                return replies
        result = await run_script_async(self.redis, ACQUIRE, op.keys, (*op.args, 0))
        if result > 0:
            return result, None
        return result, await self._block_pop(op.block_pop())

    async def _drive(self, steps: Steps) -> Any:
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                op = steps.send(value) if error is None else steps.throw(error)
            except StopIteration as done:
                return done.value
            error = None
            try:
                value = await self._execute(op)
            except UNREACHABLE as exc:
                error = unavailable(self.name, op, exc)
            except BaseException as exc:  # incl. cancellation: the steps may need to clean up
                error = exc

    async def acquire(
        self,
        blocking: bool = True,
        timeout: float | None = None,
        *,
        token: str | None = None,
        wake_on: tuple[str, ...] = (),
    ) -> bool:
        """As :meth:`Lock.acquire` (``wake_on`` included)."""
        fresh = self.token is None
        acquired = await self._drive(self._acquire_steps(blocking, timeout, token, tuple(wake_on)))
        if acquired and fresh and self.watchdog:
            self._start_watchdog()
        return acquired

    async def release(self) -> None:
        if self.depth <= 1:
            await self._stop_watchdog()
        await self._drive(self._release_steps())

    async def extend(self, additional: float | None = None, *, replace_ttl: bool = False) -> bool:
        return await self._drive(self._extend_steps(additional, replace_ttl))

    async def owned(self) -> bool:
        return await self._drive(self._owned_steps())

    async def locked(self) -> bool:
        return await self._drive(self._locked_steps())

    async def __aenter__(self) -> AsyncLock:
        if not await self.acquire(blocking=True, timeout=self.blocking_timeout):
            raise LockTimeout.waiting_for(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()

    # -- watchdog task -------------------------------------------------------------------------

    def _start_watchdog(self) -> None:
        token = self.token
        assert token is not None
        self._watchdog_stop = stop = asyncio.Event()
        task = asyncio.create_task(_watch(weakref.ref(self), token, stop, self.leased_at))
        _WATCHDOGS.add(task)
        task.add_done_callback(_WATCHDOGS.discard)
        self._watchdog_task = task

    async def _stop_watchdog(self) -> None:
        task, stop = self._watchdog_task, self._watchdog_stop
        self._watchdog_task = self._watchdog_stop = None
        if task is not None and stop is not None:
            stop.set()
            if task is not asyncio.current_task():
                await task


def _retrieve(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()  # a late renewal's error is not news: the lease was reported lost


async def _watch(
    ref: weakref.ref[AsyncLock], token: Any, stop: asyncio.Event, since: float
) -> None:
    """Renew every ttl/3 while the lock lives and holds ``token``; report the loss when a
    renewal says so, or when the lease ends (``since`` + ttl) with a renewal unanswered."""
    lock = ref()
    if lock is None:
        return
    ttl, name = lock.ttl, lock.name
    last_ok, valid_until = since, since + ttl
    del lock
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), ttl / 3)
        lock = ref()
        if stop.is_set() or lock is None:
            return  # released, or dropped without release: its lease runs out by TTL
        sent_at = _monotonic()
        renewal = asyncio.ensure_future(lock._drive(lock._renew_steps(token)))
        del lock
        try:
            renewed: bool | None = await asyncio.wait_for(
                asyncio.shield(renewal), max(0.0, valid_until - _monotonic())
            )
        except TimeoutError:  # unanswered when the lease ends: lost, whatever comes later
            renewal.add_done_callback(_retrieve)
            renewed = False
        except LockUnavailableError as exc:
            log.warning("lock watchdog: renewal failed, will retry: %s", exc)
            renewed = None
        except Exception:  # e.g. READONLY/OOM replies: unknown, like unreachable
            log.exception("lock watchdog: renewal failed, will retry")
            renewed = None
        if stop.is_set():
            return
        if renewed:
            last_ok, valid_until = sent_at, sent_at + ttl
        elif renewal_verdict(renewed, last_ok, ttl, _monotonic()):
            log.warning("lock watchdog: lease of %r lost, stopping renewal", name)
            lock = ref()
            if lock is not None:
                try:
                    lock._lost()
                except Exception:
                    log.exception("lock watchdog: on_lost callback failed")
            return
