"""Lease renewal in a daemon thread: renew only while still the owner, stop via an Event.

Why not the usual tutorial watchdog: it renews with a plain EXPIRE (keeping alive a lock that
someone else now holds) and is stopped by killing the thread. Here every renewal is the
compare-and-extend script, a failed comparison ends the watchdog and reports the loss, and
stopping is ``Event.set()`` (never killing the thread).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .errors import LockUnavailableError

log = logging.getLogger(__name__)


def renewal_verdict(renewed: bool | None, last_ok: float, lease: float, now: float) -> bool:
    """True when the lease must be considered lost.

    ``renewed`` is True (extended), False (not the owner any more) or None (Redis unreachable).
    While Redis is unreachable the lease may still be valid; after a whole ``lease`` without a
    successful renewal it certainly is not.
    """
    if renewed is False:
        return True
    return renewed is None and now - last_ok >= lease


class Watchdog:
    """Calls ``renew()`` every ``interval`` seconds until stopped or the lease is lost."""

    def __init__(
        self,
        renew: Callable[[], bool],
        *,
        interval: float,
        lease: float,
        on_lost: Callable[[], None],
        name: str = "lock-watchdog",
    ) -> None:
        self._renew = renew
        self._interval = interval
        self._lease = lease
        self._on_lost = on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Watchdog:
        self._thread.start()
        return self

    def stop(self, wait: bool = False, timeout: float | None = 5.0) -> None:
        """Ask the thread to stop; with ``wait``, also wait for it to finish.

        Not waiting is safe and keeps a release fast (joining a thread costs a scheduler
        round, several milliseconds on a busy machine, inside the holder's critical path): a
        renewal still in flight is the compare-and-extend script, which Redis runs before or
        after the release - before, it extends a lease about to be deleted; after, it finds
        the token gone and the thread, seeing the stop flag, exits without reporting a loss.
        """
        self._stop.set()
        if wait and self._thread is not threading.current_thread() and self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        last_ok = time.monotonic()
        while not self._stop.wait(self._interval):
            try:
                renewed: bool | None = bool(self._renew())
            except LockUnavailableError as exc:
                log.warning("lock watchdog: renewal failed, will retry: %s", exc)
                renewed = None
            except Exception:  # e.g. READONLY/OOM replies: unknown, like unreachable
                log.exception("lock watchdog: renewal failed, will retry")
                renewed = None
            if self._stop.is_set():
                return
            if renewed:
                last_ok = time.monotonic()
            elif renewal_verdict(renewed, last_ok, self._lease, time.monotonic()):
                log.warning("lock watchdog: lease lost, stopping renewal")
                try:
                    self._on_lost()
                except Exception:  # the holder's callback must not kill silently
                    log.exception("lock watchdog: on_lost callback failed")
                return
