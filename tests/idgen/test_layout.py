"""Bit layout: fields round-trip, configurable widths, bad layouts rejected."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from idgen import DEFAULT_LAYOUT, SnowflakeLayout

L = DEFAULT_LAYOUT


@given(
    ts=st.integers(L.epoch_ms, L.max_timestamp_ms),
    worker=st.integers(0, L.max_worker_id),
    seq=st.integers(0, L.max_sequence),
)
def test_compose_parse_round_trip(ts: int, worker: int, seq: int) -> None:
    i = L.compose(ts, worker, seq)
    assert 0 <= i < 2**63
    p = L.parse(i)
    assert (p.timestamp_ms, p.worker_id, p.sequence) == (ts, worker, seq)
    assert p.datetime == datetime.fromtimestamp(ts // 1000, UTC).replace(
        microsecond=ts % 1000 * 1000
    )


def test_default_layout_is_41_10_12() -> None:
    assert (L.timestamp_bits, L.worker_bits, L.sequence_bits) == (41, 10, 12)
    assert L.max_worker_id == 1023 and L.max_sequence == 4095
    assert L.compose(L.epoch_ms + 1, 1, 1) == (1 << 22) | (1 << 12) | 1


def test_custom_layout() -> None:
    layout = SnowflakeLayout(epoch_ms=0, timestamp_bits=42, worker_bits=5, sequence_bits=16)
    i = layout.compose(1_700_000_000_123, 31, 65_535)
    assert layout.parse(i)[2:] == (31, 65_535)
    with pytest.raises(ValueError):
        layout.compose(1_700_000_000_123, 32, 0)


@pytest.mark.parametrize("kwargs", [{"timestamp_bits": 42}, {"worker_bits": 0}, {"epoch_ms": -1}])
def test_bad_layouts_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SnowflakeLayout(**kwargs)


def test_parse_rejects_out_of_range() -> None:
    with pytest.raises(ValueError):
        L.parse(-1)
    with pytest.raises(ValueError):
        L.parse(2**63)
