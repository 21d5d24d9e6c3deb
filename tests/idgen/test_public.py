"""Public order numbers: reversible with the key, not enumerable, garbage rejected."""

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from idgen import PublicIdCodec

CODEC = PublicIdCodec(b"test-secret-key")
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@given(st.integers(0, 2**64 - 1))
def test_round_trip(value: int) -> None:
    s = CODEC.encode(value)
    assert len(s) == 16 and set(s) <= set(ALPHABET)
    assert CODEC.decode(s) == value


def test_decode_forgives_case_hyphens_and_misreadings() -> None:
    s = CODEC.encode(384386390097424384)
    grouped = "-".join(s[i : i + 4] for i in range(0, 16, 4)).lower()
    assert CODEC.decode(f"  {grouped} ") == 384386390097424384
    zero_one = s.replace("0", "O").replace("1", "I")
    assert CODEC.decode(zero_one) == 384386390097424384


def test_consecutive_ids_do_not_look_consecutive() -> None:
    encoded = [CODEC.encode(20261124000000000 + i) for i in range(1000)]
    assert len(set(encoded)) == 1000
    assert encoded != sorted(encoded)
    # no shared prefix beyond chance: the first characters are spread over the alphabet
    assert len({e[0] for e in encoded}) > 25


def test_key_matters() -> None:
    other = PublicIdCodec("another key")
    assert other.encode(42) != CODEC.encode(42)
    with pytest.raises(ValueError):  # a foreign code fails the check bits (p = 1 - 2**-16)
        CODEC.decode(other.encode(42))


@pytest.mark.parametrize("bad", ["", "ABC", "0" * 17, "UUUUUUUUUUUUUUUU", "!" * 16, None, 123])
def test_garbage_raises_value_error(bad: object) -> None:
    with pytest.raises(ValueError):
        CODEC.decode(bad)  # type: ignore[arg-type]


def test_random_strings_are_almost_all_rejected() -> None:
    rng = random.Random(7)
    accepted = 0
    for _ in range(5000):
        try:
            CODEC.decode("".join(rng.choice(ALPHABET) for _ in range(16)))
            accepted += 1
        except ValueError:
            pass
    assert accepted <= 3  # expected 5000 / 65536 < 0.1


@pytest.mark.parametrize("bad", [-1, 2**64])
def test_encode_range(bad: int) -> None:
    with pytest.raises(ValueError):
        CODEC.encode(bad)


def test_empty_key_rejected() -> None:
    with pytest.raises(ValueError):
        PublicIdCodec(b"")
