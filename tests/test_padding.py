"""Padme with a 64 KiB floor: the only size information the server ever sees."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portal import envelope
from portal.envelope import chunk_count, padded_size, padme

FLOOR = envelope.PAD_FLOOR
PREFIX = envelope.LENGTH_PREFIX_SIZE


def reference_padme(x: int) -> int:
    """Padme as the PURBs paper writes it, with logarithms spelled out as loops."""
    if x < 2:
        return x
    e = 0
    while (1 << (e + 1)) <= x:
        e += 1  # e = floor(log2 x)
    s = 0
    while (1 << (s + 1)) <= e:
        s += 1
    s += 1  # s = floor(log2 e) + 1
    last_bits = e - s
    mask = (1 << last_bits) - 1
    return (x + mask) & ~mask


# (content size, padded size, chunk count), worked out by hand and in docs/FORMAT.md §8.1.
KNOWN = [
    (0, 65536, 1),
    (1, 65536, 1),
    (65527, 65536, 1),
    (65528, 65536, 1),
    (65529, 67584, 2),
    (65536, 67584, 2),
    (100_000, 100_352, 2),
    (131_064, 131_072, 2),
    (131_065, 135_168, 3),
    (204_803, 208_896, 4),
    (1_048_576, 1_081_344, 17),
    (10_485_760, 10_747_904, 164),
]


@pytest.mark.parametrize(("content", "padded", "chunks"), KNOWN)
def test_known_padded_sizes(content: int, padded: int, chunks: int) -> None:
    assert padded_size(content) == padded
    assert chunk_count(padded) == chunks


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        (0, 0),
        (1, 1),
        (2, 2),
        (3, 3),
        (9, 10),
        (17, 18),
        (100, 104),
        (1000, 1024),
        (100_008, 100_352),
    ],
)
def test_known_padme_values(x: int, expected: int) -> None:
    assert padme(x) == expected == reference_padme(x)


def test_every_short_report_has_the_same_size() -> None:
    assert {padded_size(n) for n in range(FLOOR - PREFIX + 1)} == {FLOOR}
    assert padded_size(FLOOR - PREFIX + 1) > FLOOR


def test_padme_matches_the_reference_on_a_dense_range() -> None:
    for x in range(0, 70_000):
        assert padme(x) == reference_padme(x)


def test_few_distinct_sizes_per_power_of_two() -> None:
    # Padme's point: lengths in [2^16, 2^17) collapse onto 2^(S) = 32 sizes (plus 2^17).
    sizes = {padme(x) for x in range(1 << 16, 1 << 17)}
    assert len(sizes) <= 33


@settings(max_examples=300, deadline=None)
@given(st.integers(0, (1 << 40) - PREFIX))
def test_padding_properties(content: int) -> None:
    padded = padded_size(content)
    assert padded >= content + PREFIX
    assert padded >= FLOOR
    assert padme(padded) == padded  # idempotent: every output is a valid header value
    assert padded == reference_padme(max(content + PREFIX, FLOOR))
    if content + PREFIX > FLOOR:
        # docs/FORMAT.md promises under 1/32 above the floor; the brief asks for at most ~12 %.
        overhead = padded - (content + PREFIX)
        assert overhead * 32 < content + PREFIX
        assert overhead <= 0.12 * (content + PREFIX)
    assert chunk_count(padded) == -(-padded // envelope.CHUNK_SIZE)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 1 << 41), st.integers(0, 1 << 41))
def test_padme_is_monotonic(a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert padme(low) <= padme(high)


def test_largest_content() -> None:
    assert padded_size((1 << 40) - PREFIX) == envelope.MAX_PADDED_SIZE
    assert padded_size((1 << 40) - PREFIX + 1) > envelope.MAX_PADDED_SIZE
    assert chunk_count(envelope.MAX_PADDED_SIZE) == 1 << 24
