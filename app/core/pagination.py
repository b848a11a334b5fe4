"""Cursor pagination for every list: `?limit=&cursor=` → `{"data": [...], "next_cursor": …}`.

Rows are ordered by (created_at, id), oldest first; the cursor is the opaque position of
the last row returned. Unlike offsets, a cursor neither skips nor repeats rows when others
are inserted between two pages.

    @router.get("/things", response_model=Page[ThingOut])
    async def list_things(session: SessionDep, page: PageDep) -> Page[ThingOut]:
        rows, next_cursor = await paginate(
            session, repository.things_of(...), page, created_at=Thing.created_at, row_id=Thing.id
        )
        return Page(data=[ThingOut.of(row) for row in rows], next_cursor=next_cursor)
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel, Field
from sqlalchemy import BindParameter, Select, and_, bindparam, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.core.errors import BadRequest

DEFAULT_LIMIT = 20
MAX_LIMIT = 100


T = TypeVar("T")
M = TypeVar("M")
R = TypeVar("R")


class Page(BaseModel, Generic[T]):
    data: list[T]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next page; null on the last page."
    )


@dataclass(frozen=True)
class PageParams:
    limit: int = DEFAULT_LIMIT
    cursor: str | None = None


# The two query parameters of every list; a hot read may take them itself instead of
# `PageDep` (a dependency FastAPI resolves costs it measurable time).
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page.")]
CursorQuery = Annotated[
    str | None, Query(max_length=200, description="`next_cursor` of the previous page.")
]


# `async def`: FastAPI would run a plain `def` in its thread pool (see app/core/deps.py).
async def page_params(limit: LimitQuery = DEFAULT_LIMIT, cursor: CursorQuery = None) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


PageDep = Annotated[PageParams, Depends(page_params)]


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, row_id = json.loads(raw)
        created_at = datetime.fromisoformat(moment)
        if created_at.tzinfo is None or not isinstance(row_id, str):
            raise ValueError("bad cursor")
    except (binascii.Error, ValueError, TypeError) as exc:
        raise BadRequest("The cursor is not one this API gave out.", code="invalid_cursor") from exc
    return created_at, row_id


def page_query(
    query: Select[Any],
    *,
    after: bool,
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[str],
) -> Select[Any]:
    """`query` ordered for pages and cut one row past a page, the page's position and size as
    bind parameters (`page_values`): one statement, compiled once, serves every page.
    `after`: a later page (a cursor was given)."""
    if after:
        after_time: BindParameter[datetime] = bindparam("after_time")
        query = query.where(
            or_(
                created_at > after_time,
                and_(created_at == after_time, row_id > bindparam("after_id")),
            )
        )
    return query.order_by(created_at, row_id).limit(bindparam("limit"))


def page_values(page: PageParams) -> dict[str, Any]:
    """What `page_query`'s parameters are bound to for `page` (a bad cursor is a 400)."""
    values: dict[str, Any] = {"limit": page.limit + 1}
    if page.cursor is not None:
        values["after_time"], values["after_id"] = decode_cursor(page.cursor)
    return values


def cut_page(
    rows: list[R],
    page: PageParams,
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[str],
) -> tuple[list[R], str | None]:
    """The page's rows of `page_query`'s, and the cursor of the next page (None on the last)."""
    if len(rows) <= page.limit:
        return rows, None
    rows = rows[: page.limit]
    last: Any = rows[-1]
    return rows, encode_cursor(getattr(last, created_at.key), getattr(last, row_id.key))


async def paginate(
    session: AsyncSession,
    query: Select[tuple[M]],
    page: PageParams,
    *,
    created_at: InstrumentedAttribute[datetime],
    row_id: InstrumentedAttribute[str],
) -> tuple[Sequence[M], str | None]:
    """One page of `query`'s rows and the cursor of the next page (None on the last).

    `created_at` and `row_id` are the model's columns to order by; index them together
    with the list's filter column (e.g. customer_id, created_at, id).
    """
    values = page_values(page)
    query = page_query(query, after=page.cursor is not None, created_at=created_at, row_id=row_id)
    return cut_page(list((await session.scalars(query, values)).all()), page, created_at, row_id)
