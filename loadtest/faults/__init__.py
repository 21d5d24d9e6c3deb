"""Faults injected into a live sale — real gunicorn, Celery worker, Redis and database — and the
invariants checked afterwards by ``manage.py seckill_audit`` in a separate process.

    python -m loadtest.faults                       # every scenario, full size, prints a table
    python -m loadtest.faults --only redis_restart  # one scenario
    python -m loadtest.faults --small               # the CI size (tests/faults run it too)

Each scenario starts its own stack (``loadtest.server.Stack``) on a private Redis
(``devtools.redis_server.RedisServer``) so it may kill, stop or restart anything, and stops every
process it started even when it fails. The database is ``DATABASE_URL`` when set (PostgreSQL
recommended), else a fresh SQLite file under ``--work``. tests/faults/ call the same scenario
functions at the small size against the pytest database.

A scenario returns a :class:`Result`: what it observed (``observed``), the assertions it makes
(``checks``: name -> passed) and the audit's verdict. ``Result.ok`` is all of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from loadtest.faults.buyers import Answer, buy_until_final, crowd, place
from loadtest.faults.leader import leader_killed
from loadtest.faults.order_ids import redis_wipe_with_late_web_processes
from loadtest.faults.redis_outage import (
    redis_restart,
    redis_restart_mid_critical_section,
    redis_restart_under_load,
    redis_unreachable,
)
from loadtest.faults.result import Result
from loadtest.faults.rig import Rig
from loadtest.faults.staff_reset import staff_reset_during_sale
from loadtest.faults.workers import celery_worker_killed, gunicorn_worker_killed

__all__ = [
    "PLANS",
    "SCENARIOS",
    "Answer",
    "Result",
    "Rig",
    "buy_until_final",
    "celery_worker_killed",
    "crowd",
    "gunicorn_worker_killed",
    "leader_killed",
    "place",
    "redis_restart",
    "redis_restart_mid_critical_section",
    "redis_restart_under_load",
    "redis_unreachable",
    "redis_wipe_with_late_web_processes",
    "staff_reset_during_sale",
]

SCENARIOS: dict[str, Callable[..., Result]] = {
    "gunicorn_worker_killed": gunicorn_worker_killed,
    "redis_restart": redis_restart,
    "redis_restart_mid_critical_section": redis_restart_mid_critical_section,
    "redis_restart_under_load": redis_restart_under_load,
    "redis_unreachable": redis_unreachable,
    "celery_worker_killed": celery_worker_killed,
    "leader_killed": leader_killed,
    "redis_wipe_with_late_web_processes": redis_wipe_with_late_web_processes,
    "staff_reset_during_sale": staff_reset_during_sale,
}

# (scenario, kwargs) per size: the CI size finishes in well under a minute each.
PLANS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "small": [
        ("gunicorn_worker_killed", {}),
        ("redis_restart", {"strategy": "lock_fenced"}),
        ("redis_restart_mid_critical_section", {}),
        ("redis_unreachable", {}),
        ("celery_worker_killed", {"buyers": 20, "stock": 20}),
        ("leader_killed", {"rounds": 1}),
        ("redis_wipe_with_late_web_processes", {"buyers": 19, "stock": 16}),
        ("staff_reset_during_sale", {"buyers": 16, "stock": 8, "resets": 1}),
    ],
    "full": [
        ("gunicorn_worker_killed", {"buyers": 30, "stock": 10}),
        *[
            ("redis_restart", {"strategy": s, "buyers": 60, "stock": 40})
            for s in ("lock", "lock_fenced", "db_row_lock", "redis_atomic")
        ],
        ("redis_restart_mid_critical_section", {}),
        *[
            ("redis_restart_under_load", {"strategy": s, "buyers": 80, "stock": 50})
            for s in ("lock", "lock_fenced", "db_row_lock", "redis_atomic")
        ],
        (
            "redis_restart_under_load",
            {"strategy": "redis_atomic", "buyers": 80, "stock": 50, "persistence": True},
        ),
        *[  # the README's persistence figure: a 64-thread crowd, none / everysec / always
            (
                "redis_restart_under_load",
                {"strategy": "redis_atomic", "buyers": 160, "stock": 120, "threads": 64, **aof},
            )
            for aof in (
                {},
                {"persistence": True, "fsync": "everysec"},
                {"persistence": True, "fsync": "always"},
            )
        ],
        *[
            ("redis_unreachable", {"strategy": s, "buyers": 60, "stock": 40})
            for s in ("lock", "redis_atomic")
        ],
        *[
            ("redis_unreachable", {"strategy": s, "buyers": 60, "stock": 40, "frozen": 20.0})
            for s in ("lock", "redis_atomic")
        ],
        ("celery_worker_killed", {"buyers": 200, "stock": 150}),
        ("leader_killed", {"rounds": 3}),
        *[
            ("redis_wipe_with_late_web_processes", {"strategy": s})
            for s in ("lock", "lock_fenced", "db_row_lock", "redis_atomic")
        ],
        *[
            ("staff_reset_during_sale", {"strategy": s, "buyers": 60, "stock": 30, "resets": 3})
            for s in ("lock", "lock_fenced", "db_row_lock", "redis_atomic")
        ],
    ],
}
