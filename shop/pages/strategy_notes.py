"""One sentence per strategy, so a shopper sees what guards the sale they are in."""

from __future__ import annotations

from dataclasses import dataclass

from seckill.models import Strategy

STRATEGY_NOTES: dict[str, str] = {
    Strategy.UNSAFE: "Reads the stock and writes it back with no lock at all, so two buyers at "
    "the same instant can both take the last unit: it oversells on purpose, to show the race.",
    Strategy.NAIVE_LOCK: "Takes a Redis lock with SETNX, then EXPIRE, and frees it with a plain "
    "DEL, as many blog posts do: a holder that outlives its lease lets a second buyer in.",
    Strategy.LOCK: "Buyers take turns under a Redis lease lock that only its owner can release "
    "(a Lua compare-and-delete) and that a watchdog renews while the holder is alive.",
    Strategy.LOCK_FENCED: "The token lock plus a fencing token: each holder gets a larger number "
    "and the database refuses a write carrying an older one, so a stalled holder cannot oversell.",
    Strategy.REDIS_ATOMIC: "One Lua script checks your limit and deducts the stock inside Redis in "
    "a single step; a Celery worker writes the order to the database a moment later.",
    Strategy.DB_ROW_LOCK: "SELECT … FOR UPDATE locks the sale's row, so the database itself makes "
    "buyers take turns: safe, but the database becomes the bottleneck.",
}


@dataclass(frozen=True)
class StrategyInfo:
    name: str
    label: str
    note: str


def strategy_info(name: str) -> StrategyInfo:
    return StrategyInfo(name, Strategy(name).label, STRATEGY_NOTES[name])
