"""Public identifiers: prefix, length, alphabet, and no repeats."""

from __future__ import annotations

import re
from collections import Counter

from app.core.ids import new_id


def test_ids_carry_their_prefix_and_a_random_lowercase_body() -> None:
    ids = [new_id("ren") for _ in range(10_000)]
    assert all(re.fullmatch(r"ren_[0-9a-z]{24}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    # Every position takes every character: the body is not a padded small number.
    assert all(len({i[4 + position] for i in ids}) == 36 for position in range(24))
    assert re.fullmatch(r"pm_[0-9a-z]{8}", new_id("pm", length=8))


def test_every_character_is_equally_likely() -> None:
    # 256 bytes do not split evenly into 36 characters: without dropping the top four
    # bytes, the first four characters would come up 8/7 as often as the others.
    counts = Counter("".join(new_id("x")[2:] for _ in range(20_000)))
    expected = 20_000 * 24 / 36  # about 13,333 each; one standard deviation is about 114
    assert all(abs(count - expected) < 800 for count in counts.values()), counts
