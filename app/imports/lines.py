"""Newline-delimited records out of a byte stream, one at a time, within limits.

The stream is read chunk by chunk and never held whole: only the line being assembled is in
memory, and a line longer than `max_line_bytes` is not kept at all (it is skipped to its
end and reported as too long), so a file without newlines cannot grow the buffer either.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable
from dataclasses import dataclass

from app.core.errors import PayloadTooLarge


@dataclass(frozen=True)
class RawLine:
    number: int  # 1-based, counting blank lines too: what an editor shows
    content: bytes | None  # None: longer than the limit, dropped unread


@dataclass(frozen=True)
class LineLimits:
    max_line_bytes: int
    max_lines: int | None = None  # records, not counting blank lines
    max_bytes: int | None = None


async def read_lines(chunks: AsyncIterable[bytes], limits: LineLimits) -> AsyncIterator[RawLine]:
    """The non-blank lines of the stream. Raises PayloadTooLarge (`import_too_large`,
    `import_too_many_lines`) as soon as the stream goes past a limit."""
    buffer = bytearray()
    too_long = False
    number = 0
    records = 0
    received = 0

    def finish() -> RawLine | None:
        nonlocal buffer, too_long, records
        line = RawLine(number, None if too_long else bytes(buffer).rstrip(b"\r"))
        buffer = bytearray()
        too_long = False
        if line.content is not None and not line.content.strip():
            return None
        records += 1
        if limits.max_lines is not None and records > limits.max_lines:
            raise PayloadTooLarge(
                f"The file has more than {limits.max_lines} records; split it.",
                code="import_too_many_lines",
            )
        return line

    async for chunk in chunks:
        received += len(chunk)
        if limits.max_bytes is not None and received > limits.max_bytes:
            raise PayloadTooLarge(
                f"The file is larger than {limits.max_bytes} bytes; split it, or import it "
                "with `autorenew import payment-methods`.",
                code="import_too_large",
            )
        start = 0
        while True:
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            if not too_long:
                if len(buffer) + len(piece) > limits.max_line_bytes:
                    too_long = True
                    buffer = bytearray()
                else:
                    buffer += piece
            if end < 0:
                break
            number += 1
            line = finish()
            if line is not None:
                yield line
            start = end + 1
    if buffer or too_long:
        number += 1
        line = finish()
        if line is not None:
            yield line


async def chunks_of(blocks: Iterable[bytes]) -> AsyncIterator[bytes]:
    """An async stream over plain byte blocks (a file read in pieces, a test's bytes)."""
    for block in blocks:
        yield block
