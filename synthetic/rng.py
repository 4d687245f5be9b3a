"""Per-entity random streams.

Every random choice in the world draws from a generator derived from ``(seed, entity...)``, never from a
shared sequence: adding patients must not reshuffle facilities, and patient *i* must come out the same
whatever the patient count. blake2b of the key gives a 64-bit seed for :class:`random.Random`, which is
stable across Python versions and platforms (unlike ``hash()``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from itertools import accumulate
from typing import Generic, TypeVar

T = TypeVar("T")


def stream(seed: int, *key: object) -> random.Random:
    """A generator owned by one entity: ``stream(seed, "patient", 17)``."""
    text = "\x1f".join([str(seed), *map(str, key)])
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def stable_int(*key: object, bits: int = 63) -> int:
    """A stable integer hash of ``key`` (for permutations and codes that must not depend on order)."""
    text = "\x1f".join(map(str, key))
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
    return int.from_bytes(digest, "big") >> (128 - bits)


class Weighted(Generic[T]):
    """A frozen weighted choice with precomputed cumulative weights (``random.choices`` recomputes them)."""

    __slots__ = ("_cum", "_items", "_total")

    def __init__(self, items: Sequence[T], weights: Sequence[float]) -> None:
        if not items or len(items) != len(weights):
            raise ValueError("Weighted needs as many weights as items, and at least one item")
        self._items = list(items)
        self._cum = list(accumulate(float(w) for w in weights))
        self._total = self._cum[-1]
        if self._total <= 0:
            raise ValueError("Weighted needs a positive total weight")

    def pick(self, rng: random.Random) -> T:
        return rng.choices(self._items, cum_weights=self._cum, k=1)[0]

    @property
    def items(self) -> list[T]:
        return self._items

    def __len__(self) -> int:
        return len(self._items)


def triangular_int(rng: random.Random, low: float, mode: float, high: float) -> int:
    """A triangular draw rounded to an integer (durations in days, intervals)."""
    if high <= low:
        return round(low)
    return round(rng.triangular(low, high, mode))
