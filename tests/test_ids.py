"""Public identifiers: prefix, length, alphabet, and no repeats."""

from __future__ import annotations

import re

from app.core.ids import new_id


def test_ids_carry_their_prefix_and_a_random_lowercase_body() -> None:
    ids = [new_id("ren") for _ in range(10_000)]
    assert all(re.fullmatch(r"ren_[0-9a-z]{24}", i) for i in ids)
    assert len(set(ids)) == len(ids)
    # Every position takes every character: the body is not a padded small number.
    assert all(len({i[4 + position] for i in ids}) == 36 for position in range(24))
    assert re.fullmatch(r"pm_[0-9a-z]{8}", new_id("pm", length=8))
