"""Customer-facing order numbers that do not reveal volume or allow guessing neighbours.

Snowflake and date ids leak information (time, worker, daily order count) and are enumerable:
id + 1 is probably someone else's order. :class:`PublicIdCodec` maps each id through a keyed
pseudo-random permutation -- an 8-round Feistel network over 80 bits whose round function is
keyed BLAKE2b -- and prints the result as 16 Crockford base-32 characters. The 80-bit block holds
the 64-bit id plus 16 zero bits, so a mistyped or made-up string is rejected (ValueError) with
probability 1 - 2^-16 instead of decoding to some other customer's order.

It is obfuscation with a real key, not authentication: access checks still belong in the views.
"""

from __future__ import annotations

import hashlib

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford: no I, L, O, U
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
_DECODE.update({"O": 0, "I": 1, "L": 1})  # the usual misreadings
_HALF_BITS = 40
_HALF_MASK = (1 << _HALF_BITS) - 1
_CHECK_BITS = 16
_LENGTH = 16  # 80 bits / 5 bits per character
_ROUNDS = 8


class PublicIdCodec:
    """Keyed, reversible encoding of 64-bit ids as 16 characters, e.g. ``NHVEFZVC5SEMN6DF``."""

    def __init__(self, secret_key: bytes | str) -> None:
        key = secret_key.encode() if isinstance(secret_key, str) else bytes(secret_key)
        if not key:
            raise ValueError("secret_key must not be empty")
        subkey = hashlib.blake2b(key, digest_size=32, person=b"idgen-public-v1").digest()
        self._rounds = [
            hashlib.blake2b(key=subkey, digest_size=_HALF_BITS // 8, salt=bytes([r]) * 16)
            for r in range(_ROUNDS)
        ]

    def _f(self, r: int, half: int) -> int:
        h = self._rounds[r].copy()
        h.update(half.to_bytes(_HALF_BITS // 8, "big"))
        return int.from_bytes(h.digest(), "big")

    def encode(self, value: int) -> str:
        """The public string for ``value`` (0 <= value < 2**64)."""
        if not 0 <= value < 1 << 64:
            raise ValueError("value must be an unsigned 64-bit integer")
        block = value << _CHECK_BITS
        left, right = block >> _HALF_BITS, block & _HALF_MASK
        for r in range(_ROUNDS):
            left, right = right, left ^ self._f(r, right)
        block = left << _HALF_BITS | right
        chars = []
        for _ in range(_LENGTH):
            block, digit = divmod(block, 32)
            chars.append(_ALPHABET[digit])
        return "".join(reversed(chars))

    def decode(self, public_id: str) -> int:
        """The id behind ``public_id``; ValueError for anything :meth:`encode` did not produce.

        Case, hyphens and spaces are ignored, and O/I/L read as 0/1, so ids read out over the
        phone still decode.
        """
        if not isinstance(public_id, str):
            raise ValueError("public id must be a string")
        text = public_id.strip().replace("-", "").replace(" ", "").upper()
        if len(text) != _LENGTH:
            raise ValueError(f"public id must have {_LENGTH} characters")
        block = 0
        for ch in text:
            try:
                block = block << 5 | _DECODE[ch]
            except KeyError:
                raise ValueError(f"invalid character {ch!r} in public id") from None
        left, right = block >> _HALF_BITS, block & _HALF_MASK
        for r in reversed(range(_ROUNDS)):
            left, right = right ^ self._f(r, left), left
        block = left << _HALF_BITS | right
        if block & ((1 << _CHECK_BITS) - 1):
            raise ValueError("not a valid public id (check bits do not match)")
        return block >> _CHECK_BITS
