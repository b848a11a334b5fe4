"""The pieces that keep an import's memory flat: the line reader and the sealed spool."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core.errors import PayloadTooLarge
from app.imports.lines import LineLimits, RawLine, chunks_of, read_lines
from app.imports.schemas import RefusedLine
from app.imports.spool import Spool


async def lines_of(blocks: list[bytes], limits: LineLimits) -> list[RawLine]:
    return [line async for line in read_lines(chunks_of(blocks), limits)]


@given(st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b), max_size=20), st.data())
async def test_lines_come_out_whatever_the_chunking(
    lines: list[bytes], data: st.DataObject
) -> None:
    body = b"\n".join(lines)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=10)))
    blocks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    got = await lines_of(blocks, LineLimits(max_line_bytes=1000))
    expected = [
        RawLine(number, line.rstrip(b"\r"))
        for number, line in enumerate(lines, start=1)
        if line.rstrip(b"\r").strip()
    ]
    assert got == expected


async def test_a_line_over_the_limit_is_dropped_not_kept() -> None:
    blocks = [b"short\n", b"x" * 700, b"x" * 700, b"\nafter\n", b"y" * 2000]
    got = await lines_of(blocks, LineLimits(max_line_bytes=1000))
    assert got == [RawLine(1, b"short"), RawLine(2, None), RawLine(3, b"after"), RawLine(4, None)]


async def test_stream_limits() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        await lines_of([b"a\n"] * 4, LineLimits(max_line_bytes=10, max_lines=3))
    assert caught.value.code == "import_too_many_lines"
    assert len(await lines_of([b"a\n\n\n"] * 3, LineLimits(max_line_bytes=10, max_lines=3))) == 3
    with pytest.raises(PayloadTooLarge) as caught:
        await lines_of([b"a" * 6] * 2, LineLimits(max_line_bytes=100, max_bytes=10))
    assert caught.value.code == "import_too_large"


def test_the_spool_keeps_records_sealed_and_gives_them_back_in_order() -> None:
    secret = "ES9121000418450200051332"
    with Spool(RefusedLine) as spool:
        for number in range(3000):  # past the in-memory part: rolled over to a file
            spool.append(RefusedLine(line=number, code="c", detail=secret))
        assert spool.count == 3000
        raw = spool._file  # the bytes as they sit in memory or on disk
        raw.seek(0)
        content = raw.read()
        assert secret.encode() not in content and b"detail" not in content
        assert [record.line for record in spool] == list(range(3000))
        assert [record.line for record in spool][:2] == [0, 1]  # readable again
