"""redis-py lock tests that fail against our class on purpose: test id -> (reason, symptom).

``symptom`` is a regular expression the failure's message must match, so a listed test failing
for another reason still fails our run. docs/lock.md explains each, with the test of ours that
shows the better behaviour.
"""

from __future__ import annotations

NEVER_EXPIRES = (
    "timeout=None: redis-py sets a key with no TTL, held forever by a holder that crashed; ours "
    "holds a DEFAULT_LEASE renewed by the watchdog while the lock object lives "
    "(tests/lock/test_compat.py::test_lock_without_timeout_frees_when_its_holder_is_killed)",
    r"assert 10 == -1",
)
NO_SLEEPING = (
    "waiters block until the holder hands the lock over (FIFO) instead of sleeping `sleep` s "
    "between tries, so redis-py's count of time.sleep calls stays empty "
    "(tests/lock/test_compat.py::test_waiters_are_handed_the_lock_in_order_without_sleeping)",
    r"assert 0 == 0\.[24]",
)

SYNC, ASYNC = "tests.test_lock.TestLock::", "tests.test_asyncio.test_lock.TestLock::"
DIFFERENCES: dict[str, tuple[str, str]] = {
    **{
        SYNC + name: NEVER_EXPIRES
        for name in ("test_lock", "test_lock_token", "test_lock_token_thread_local_false")
    },
    **{
        f"{ASYNC}{name}[{client}]": NEVER_EXPIRES
        for name in ("test_lock", "test_lock_token", "test_lock_token_thread_local_false")
        for client in ("single", "pool")
    },
    SYNC + "test_blocking_timeout": NO_SLEEPING,
    SYNC + "test_context_manager_blocking_timeout": NO_SLEEPING,
    ASYNC + "test_blocking_timeout[single]": NO_SLEEPING,
    ASYNC + "test_blocking_timeout[pool]": NO_SLEEPING,
}
