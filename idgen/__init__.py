"""Order-id generation for any Python service: only ``redis`` and the standard library.

* :class:`Snowflake` -- 64-bit time-ordered ids, explicit or Redis-leased worker ids;
* :class:`DateIncrGenerator` -- ``yyyymmdd`` + daily counter from Redis, optionally in segments;
* :class:`PublicIdCodec` -- a keyed, reversible, non-enumerable public form of any id.
"""

from .date_incr import DateIncrGenerator
from .errors import ClockRollbackError, WorkerLeaseError
from .floor import FileFloorStore, FloorStore, MemoryFloorStore
from .layout import DEFAULT_EPOCH_MS, DEFAULT_LAYOUT, ParsedId, SnowflakeLayout
from .public import PublicIdCodec
from .snowflake import Snowflake
from .worker_lease import WorkerIdLease

__all__ = [
    "DEFAULT_EPOCH_MS",
    "DEFAULT_LAYOUT",
    "ClockRollbackError",
    "DateIncrGenerator",
    "FileFloorStore",
    "FloorStore",
    "MemoryFloorStore",
    "ParsedId",
    "PublicIdCodec",
    "Snowflake",
    "SnowflakeLayout",
    "WorkerIdLease",
    "WorkerLeaseError",
]
