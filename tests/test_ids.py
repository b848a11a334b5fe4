"""Public identifiers: prefix, length, alphabet, and no repeats."""

from __future__ import annotations

import os
import re
import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from app.core import ids
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


def test_a_forked_child_makes_ids_of_its_own() -> None:
    """Characters are drawn ahead: a child must not hand out what its parent drew."""
    new_id("x")  # the parent has characters drawn and not used yet
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        os.write(writer, new_id("x").encode())
        os._exit(0)
    os.close(writer)
    os.waitpid(child, 0)
    from_child = os.read(reader, 100).decode()
    os.close(reader)
    assert re.fullmatch(r"x_[0-9a-z]{24}", from_child)
    assert from_child != new_id("x")


def test_threads_never_share_an_id() -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda _: new_id("t"), range(20_000)))
    assert len(set(ids)) == len(ids)


def test_a_child_forked_while_another_thread_makes_an_id_can_make_ids() -> None:
    """The lock is held at the fork (a thread is inside new_id): the child must not wait for
    a thread it does not have."""
    reader, writer = os.pipe()
    with ids._characters._lock:  # as if another thread were making an id at the fork
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child
            signal.alarm(5)  # a deadlock ends the child instead of the test run
            os.write(writer, new_id("x").encode())
            os._exit(0)
    os.close(writer)
    _, status = os.waitpid(child, 0)
    from_child = os.read(reader, 100).decode()
    os.close(reader)
    assert os.WIFEXITED(status) and re.fullmatch(r"x_[0-9a-z]{24}", from_child)
