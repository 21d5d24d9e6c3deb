"""Bit layout of a snowflake id and its inverse (parse).

Default: 1 unused sign bit | 41 bits of milliseconds since a custom epoch | 10 bits of worker id |
12 bits of sequence. 41 bits of milliseconds last 69.7 years from the epoch; 10 bits give 1,024
concurrent workers; 12 bits give 4,096 ids per worker per millisecond (4,096,000 ids/s).
The fields can be resized (e.g. fewer worker bits, more sequence bits) as long as the total
fits in 63 bits, so ids stay positive in a signed BIGINT column.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

#: 2024-01-01T00:00:00Z. A recent epoch leaves most of the 41-bit range for the future.
DEFAULT_EPOCH_MS = 1_704_067_200_000
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ParsedId(NamedTuple):
    """The fields of a snowflake id; ``timestamp_ms`` is Unix time, not relative to the epoch."""

    timestamp_ms: int
    datetime: datetime
    worker_id: int
    sequence: int


@dataclass(frozen=True, slots=True)
class SnowflakeLayout:
    """Field widths and epoch of snowflake ids; frozen: ids minted under it must stay parseable."""

    epoch_ms: int = DEFAULT_EPOCH_MS
    timestamp_bits: int = 41
    worker_bits: int = 10
    sequence_bits: int = 12

    def __post_init__(self) -> None:
        if min(self.timestamp_bits, self.worker_bits, self.sequence_bits) < 1:
            raise ValueError("every field needs at least one bit")
        total = self.timestamp_bits + self.worker_bits + self.sequence_bits
        if total > 63:
            raise ValueError(f"layout uses {total} bits; at most 63 keep ids positive in int64")
        if self.epoch_ms < 0:
            raise ValueError("epoch_ms must be >= 0")

    @property
    def worker_shift(self) -> int:
        return self.sequence_bits

    @property
    def timestamp_shift(self) -> int:
        return self.sequence_bits + self.worker_bits

    @property
    def max_worker_id(self) -> int:
        return (1 << self.worker_bits) - 1

    @property
    def max_sequence(self) -> int:
        return (1 << self.sequence_bits) - 1

    @property
    def max_timestamp_ms(self) -> int:
        """Last Unix millisecond this layout can encode."""
        return self.epoch_ms + (1 << self.timestamp_bits) - 1

    def check_worker_id(self, worker_id: int) -> int:
        if not 0 <= worker_id <= self.max_worker_id:
            raise ValueError(f"worker_id must be in 0..{self.max_worker_id}, got {worker_id}")
        return worker_id

    def compose(self, timestamp_ms: int, worker_id: int, sequence: int) -> int:
        """Build an id from its fields (Unix milliseconds); the generator inlines the same sum."""
        if not self.epoch_ms <= timestamp_ms <= self.max_timestamp_ms:
            raise ValueError(f"timestamp {timestamp_ms} outside this layout's range")
        if not 0 <= sequence <= self.max_sequence:
            raise ValueError(f"sequence must be in 0..{self.max_sequence}")
        self.check_worker_id(worker_id)
        return (
            (timestamp_ms - self.epoch_ms) << self.timestamp_shift
            | worker_id << self.worker_shift
            | sequence
        )

    def parse(self, snowflake_id: int) -> ParsedId:
        """Split an id into Unix time, worker and sequence."""
        if not 0 <= snowflake_id < 1 << (self.timestamp_shift + self.timestamp_bits):
            raise ValueError(f"{snowflake_id} is not an id of this layout")
        ts = (snowflake_id >> self.timestamp_shift) + self.epoch_ms
        return ParsedId(
            timestamp_ms=ts,
            datetime=_UNIX_EPOCH + timedelta(milliseconds=ts),  # exact, unlike float seconds
            worker_id=(snowflake_id >> self.worker_shift) & self.max_worker_id,
            sequence=snowflake_id & self.max_sequence,
        )


DEFAULT_LAYOUT = SnowflakeLayout()
