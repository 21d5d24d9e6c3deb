"""``AsyncLock``: the same protocol and Lua scripts over ``redis.asyncio`` clients.

Only the driver differs from :class:`seckill.lock.Lock` (``await`` instead of a call, the
same ACQUIRE+BLPOP pipelining); the watchdog is an asyncio task stopped by an
``asyncio.Event``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import NoScriptError

from .errors import LockTimeout, LockUnavailableError
from .lock import UNREACHABLE, acquire_wait_replies, fill_acquire_wait, unavailable
from .protocol import AcquireWait, BlockPop, Eval, LockCore, Op, Steps, bind_client
from .scripts import ACQUIRE, Script
from .watchdog import renewal_verdict

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
    ) -> None:
        super().__init__(
            name,
            ttl=ttl,
            reentrant=reentrant,
            fair=fair,
            blocking_timeout=blocking_timeout,
            poll_interval=poll_interval,
            on_lost=on_lost,
        )
        self._watchdog_task: asyncio.Task[None] | None = None
        self._watchdog_stop: asyncio.Event | None = None
        bind_client(self, redis, watchdog, pipelined=isinstance(redis, AsyncRedis))

    async def _execute(self, op: Op) -> Any:
        if type(op) is Eval:
            return await run_script_async(self.redis, op.script, op.keys, op.args)
        if type(op) is AcquireWait:
            return await self._acquire_wait(op)
        if type(op) is BlockPop:
            return await self.redis.blpop([op.key], op.timeout)
        return await self.redis.get(op.key)

    async def _acquire_wait(self, op: AcquireWait) -> tuple[int, Any]:
        if self._pipeline:
            pipe = fill_acquire_wait(self.redis.pipeline(transaction=False), op)
            replies = acquire_wait_replies(await pipe.execute(raise_on_error=False))
            if replies is not None:
                return replies
        result = await run_script_async(self.redis, ACQUIRE, op.keys, (*op.args, 0))
        if result > 0:
            return result, None
        return result, await self.redis.blpop([op.wake], op.timeout)

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

    async def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        fresh = self.token is None
        acquired = await self._drive(self._acquire_steps(blocking, timeout))
        if acquired and fresh and self.watchdog:
            self._start_watchdog()
        return acquired

    async def release(self) -> None:
        if self.depth <= 1:
            await self._stop_watchdog()
        await self._drive(self._release_steps())

    async def extend(self, additional: float | None = None) -> bool:
        return await self._drive(self._extend_steps(additional))

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
        self._watchdog_stop = asyncio.Event()
        self._watchdog_task = asyncio.create_task(self._watch(token, self._watchdog_stop))

    async def _stop_watchdog(self) -> None:
        task, stop = self._watchdog_task, self._watchdog_stop
        self._watchdog_task = self._watchdog_stop = None
        if task is not None and stop is not None:
            stop.set()
            if task is not asyncio.current_task():
                await task

    async def _watch(self, token: str, stop: asyncio.Event) -> None:
        last_ok = time.monotonic()
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.ttl / 3)
            if stop.is_set():
                return
            try:
                renewed: bool | None = await self._drive(self._renew_steps(token))
            except LockUnavailableError as exc:
                log.warning("lock watchdog: renewal failed, will retry: %s", exc)
                renewed = None
            except Exception:  # e.g. READONLY/OOM replies: unknown, like unreachable
                log.exception("lock watchdog: renewal failed, will retry")
                renewed = None
            if stop.is_set():
                return
            if renewed:
                last_ok = time.monotonic()
            elif renewal_verdict(renewed, last_ok, self.ttl, time.monotonic()):
                log.warning("lock watchdog: lease of %r lost, stopping renewal", self.name)
                try:
                    self._lost()
                except Exception:
                    log.exception("lock watchdog: on_lost callback failed")
                return
