"""``derive_seed`` as the source of sub-streams: statistical checks beside test_derive.py.

``test_derive.py`` pins golden values, the encoding, and stability across
processes. These check what sub-streams need: derived seeds that look uniform
and independent, and generators seeded from neighbouring keys that do not
track each other. Every check is deterministic (fixed keys), with bounds of
about 5 standard deviations, so none is flaky.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from seedscope import derive_seed

N = 20_000


def _seeds(root: int, keys: range) -> np.ndarray:
    return np.array([derive_seed(root, "stream", key) for key in keys], dtype=np.uint64)


def test_every_bit_of_a_derived_seed_is_set_half_the_time() -> None:
    seeds = _seeds(7, range(N))
    bits = (seeds[:, None] >> np.arange(32, dtype=np.uint64)) & np.uint64(1)
    frequency = bits.mean(axis=0)
    sigma = math.sqrt(0.25 / N)
    assert np.all(np.abs(frequency - 0.5) < 5 * sigma)


def test_derived_seeds_are_uniform_over_the_range() -> None:
    seeds = _seeds(7, range(N))
    counts = np.bincount((seeds >> np.uint64(24)).astype(np.int64), minlength=256)
    expected = N / 256
    chi_square = float(((counts - expected) ** 2 / expected).sum())
    # 255 degrees of freedom: mean 255, standard deviation about 22.6.
    assert chi_square < 255 + 5 * 22.6


def test_neighbouring_keys_differ_in_about_half_their_bits() -> None:
    seeds = _seeds(3, range(N + 1))
    flipped = np.array([bin(int(a ^ b)).count("1") for a, b in itertools.pairwise(seeds)])
    # Independent 32-bit values differ in 16 bits on average (variance 8).
    assert abs(flipped.mean() - 16) < 5 * math.sqrt(8 / N)
    # and consecutive derived seeds are uncorrelated
    values = seeds.astype(np.float64)
    correlation = np.corrcoef(values[:-1], values[1:])[0, 1]
    assert abs(correlation) < 5 / math.sqrt(N)


def test_streams_seeded_from_neighbouring_keys_do_not_track_each_other() -> None:
    draws = 2_000
    streams = [
        np.random.RandomState(derive_seed(11, "worker", key)).rand(draws) for key in range(8)
    ]
    for a, b in itertools.pairwise(streams):
        assert abs(np.corrcoef(a, b)[0, 1]) < 5 / math.sqrt(draws)


def test_roots_and_key_orders_give_unrelated_seeds() -> None:
    by_root = {derive_seed(root, "x") for root in range(N)}
    assert len(by_root) >= N - 1  # 32-bit values: one collision in 20000 is possible, not two
    assert derive_seed(0, "a", "b") != derive_seed(0, "b", "a")
    assert derive_seed(0, 1, 2) != derive_seed(0, 2, 1)
