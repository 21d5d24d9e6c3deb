"""Redis key names of a sale.

Every key of one sale carries the hash tag ``{sale:<id>}`` so the sale's Lua scripts touch a
single Redis Cluster slot and run unchanged on a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SaleKeys:
    sale_id: int

    @property
    def prefix(self) -> str:
        return f"seckill:{{sale:{self.sale_id}}}"

    @property
    def stock(self) -> str:
        """Units left, mirrored from the database (an integer string)."""
        return f"{self.prefix}:stock"

    @property
    def lock(self) -> str:
        """The per-item lock; the lock library derives ``…:lock:fence`` and friends from it."""
        return f"{self.prefix}:lock"

    @property
    def naive_lock(self) -> str:
        """The tutorial lock's key, apart from the safe one so the two never interfere."""
        return f"{self.prefix}:naive_lock"

    @property
    def fence(self) -> str:
        """The lock library's fencing counter for :attr:`lock`."""
        return f"{self.lock}:fence"

    @property
    def buyers(self) -> str:
        """Hash: buyer id -> units in live orders (pending or paid)."""
        return f"{self.prefix}:buyers"

    @property
    def soldout(self) -> str:
        """Present once stock reaches zero: requests stop here without taking the lock."""
        return f"{self.prefix}:soldout"

    @property
    def idempotency(self) -> str:
        """Hash: ``<buyer>:<Idempotency-Key>`` -> order id (strategy redis_atomic)."""
        return f"{self.prefix}:idem"

    @property
    def queued(self) -> str:
        """Hash: order id -> JSON of an accepted order not yet in the database (redis_atomic)."""
        return f"{self.prefix}:queued"

    @property
    def drain(self) -> str:
        """Present while a drain of :attr:`queued` is scheduled: the accepted order that finds it
        missing sets it and asks Celery for one, so a crowd costs one task per batch, not one
        per order (redis_atomic)."""
        return f"{self.prefix}:drain"

    @property
    def drain_lock(self) -> str:
        """Serializes the drains of one sale, so two workers do not write the same batch."""
        return f"{self.prefix}:drain_lock"

    @property
    def requests(self) -> str:
        """List: JSON requests of buyers waiting for the item lock's holder to decide them
        (group commit, strategies lock and lock_fenced)."""
        return f"{self.prefix}:requests"

    @property
    def inflight(self) -> str:
        """List: the requests the current holder took and has not answered yet (lock_fenced:
        the next holder decides them again if that holder's lease ran out)."""
        return f"{self.prefix}:inflight"

    def reply(self, request_id: int) -> str:
        """List: the answer to one queued request (its id is the order id it would get); its
        waiter's BLPOP pops it."""
        return f"{self.prefix}:reply:{request_id}"

    def answer(self, request_id: int) -> str:
        """The same answer, kept: a BLPOP cut off at its deadline may pop a reply it never
        reads, so a waiter that missed its reply reads it here."""
        return f"{self.prefix}:answer:{request_id}"

    def all(self) -> list[str]:
        """Every key a sale creates (for TTLs and for deleting a sale's state)."""
        return [
            self.stock,
            self.lock,
            self.naive_lock,
            self.fence,
            self.buyers,
            self.soldout,
            self.idempotency,
            self.queued,
            self.drain,
            self.drain_lock,
            self.requests,
            self.inflight,
        ]


def sale_keys(sale_id: int) -> SaleKeys:
    return SaleKeys(int(sale_id))
