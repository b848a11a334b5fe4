"""All SQL of SEPA collections, batches and returns."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import Select, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, selectinload

from app.payment_methods.models import PaymentMethod
from app.renewals.models import Renewal, RenewalAttempt
from app.sepa.models import (
    OPEN_COLLECTION_STATUSES,
    SepaBatch,
    SepaCollection,
    SepaReturn,
    SepaReturnFile,
)
from app.services.models import Service


def _lock(
    query: Select[tuple[SepaCollection]], session: AsyncSession
) -> Select[tuple[SepaCollection]]:
    # Row locks serialise replicas on PostgreSQL; SQLite has one writer anyway.
    if session.get_bind().dialect.name == "postgresql":
        return query.with_for_update(of=SepaCollection, skip_locked=True)
    return query


async def renewals_to_prenotify(
    session: AsyncSession, *, now: datetime, limit: int
) -> list[tuple[Renewal, Service]]:
    """Scheduled renewals whose service pays by SEPA and whose (next) collection is due to
    be fixed. A renewal with an open collection has no `next_attempt_at`, so it is not here.
    Along ix_renewals_method_due (the renewal keeps its service's method type), so due card
    renewals are not read; the join still checks the service's method as it is now."""
    method = aliased(PaymentMethod)
    query = (
        select(Renewal, Service)
        .join(Service, Service.id == Renewal.service_id)
        .join(method, method.id == Service.payment_method_id)
        .where(
            Renewal.status == "scheduled",
            Renewal.payment_method_type == "sepa_debit",
            Renewal.next_attempt_at <= now,
            method.type == "sepa_debit",
        )
        .order_by(Renewal.next_attempt_at, Renewal.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=Renewal, skip_locked=True)
    return [(row[0], row[1]) for row in (await session.execute(query)).all()]


async def method_with_mandate(session: AsyncSession, method_id: str) -> PaymentMethod | None:
    query = (
        select(PaymentMethod)
        .options(selectinload(PaymentMethod.mandate))
        .where(PaymentMethod.id == method_id)
    )
    return (await session.execute(query)).scalar_one_or_none()


async def last_presented_on(session: AsyncSession, mandate_reference: str) -> date | None:
    """The date of the latest collection presented under a mandate (rejected or returned
    ones count: the 36-month lapse runs from presentation)."""
    query = select(func.max(SepaCollection.collection_date)).where(
        SepaCollection.mandate_reference == mandate_reference,
        SepaCollection.status.in_(("submitted", "settled", "returned")),
    )
    result: date | None = (await session.execute(query)).scalar_one_or_none()
    return result


async def mandate_used_elsewhere(
    session: AsyncSession, mandate_reference: str, except_id: str
) -> bool:
    """Whether another collection under this mandate reached the debtor's bank."""
    query = select(func.count()).where(
        SepaCollection.mandate_reference == mandate_reference,
        SepaCollection.id != except_id,
        SepaCollection.status.in_(("submitted", "settled")),
    )
    return int((await session.execute(query)).scalar_one()) > 0


async def pending_for_date(session: AsyncSession, collection_date: date) -> list[SepaCollection]:
    query = (
        select(SepaCollection)
        .where(
            SepaCollection.status == "pending", SepaCollection.collection_date == collection_date
        )
        .order_by(SepaCollection.id)
    )
    return list((await session.execute(_lock(query, session))).scalars())


async def missed(session: AsyncSession, *, today: date, limit: int) -> list[SepaCollection]:
    """Pending collections whose file can no longer reach the bank in time."""
    query = (
        select(SepaCollection)
        .where(SepaCollection.status == "pending", SepaCollection.submission_deadline < today)
        .order_by(SepaCollection.id)
        .limit(limit)
    )
    return list((await session.execute(_lock(query, session))).scalars())


async def submitted_collected_by(
    session: AsyncSession, *, collected_by: date, limit: int
) -> list[SepaCollection]:
    query = (
        select(SepaCollection)
        .where(SepaCollection.status == "submitted", SepaCollection.collection_date <= collected_by)
        .order_by(SepaCollection.id)
        .limit(limit)
    )
    return list((await session.execute(_lock(query, session))).scalars())


async def of_batch(session: AsyncSession, batch_id: str) -> list[SepaCollection]:
    query = (
        select(SepaCollection)
        .where(SepaCollection.batch_id == batch_id)
        .order_by(SepaCollection.id)
        .with_for_update()
    )
    return list((await session.execute(query)).scalars())


async def batches_to_settle(session: AsyncSession, *, collected_by: date) -> list[SepaBatch]:
    """Submitted batches past their return window, none of whose collections is still open."""
    still_open = (
        select(SepaCollection.id)
        .where(
            SepaCollection.batch_id == SepaBatch.id,
            SepaCollection.status.in_(OPEN_COLLECTION_STATUSES),
        )
        .exists()
    )
    query = select(SepaBatch).where(
        SepaBatch.status == "submitted", SepaBatch.collection_date <= collected_by, ~still_open
    )
    return list((await session.execute(query)).scalars())


async def get_batch(
    session: AsyncSession, batch_id: str, *, for_update: bool = False
) -> SepaBatch | None:
    query = select(SepaBatch).where(SepaBatch.id == batch_id)
    if for_update:
        query = query.with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def batch_by_message_id(session: AsyncSession, message_id: str) -> SepaBatch | None:
    query = select(SepaBatch).where(SepaBatch.message_id == message_id)
    return (await session.execute(query)).scalar_one_or_none()


def batches_query(
    *, status: str | None = None, collection_date: date | None = None
) -> Select[tuple[SepaBatch]]:
    query = select(SepaBatch)
    if status is not None:
        query = query.where(SepaBatch.status == status)
    if collection_date is not None:
        query = query.where(SepaBatch.collection_date == collection_date)
    return query


def collections_query(
    *,
    status: str | None = None,
    collection_date: date | None = None,
    renewal_id: str | None = None,
    batch_id: str | None = None,
) -> Select[tuple[SepaCollection]]:
    query = select(SepaCollection)
    filters = {
        SepaCollection.status: status,
        SepaCollection.collection_date: collection_date,
        SepaCollection.renewal_id: renewal_id,
        SepaCollection.batch_id: batch_id,
    }
    conditions = [column == value for column, value in filters.items() if value is not None]
    return query.where(and_(*conditions)) if conditions else query


async def collections_by_e2e(
    session: AsyncSession, end_to_end_ids: Sequence[str]
) -> dict[str, SepaCollection]:
    if not end_to_end_ids:
        return {}
    query = (
        select(SepaCollection)
        .where(SepaCollection.end_to_end_id.in_(set(end_to_end_ids)))
        .with_for_update()
    )
    return {c.end_to_end_id: c for c in (await session.execute(query)).scalars()}


async def return_file_by_hash(session: AsyncSession, sha256: str) -> SepaReturnFile | None:
    query = select(SepaReturnFile).where(SepaReturnFile.sha256 == sha256)
    return (await session.execute(query)).scalar_one_or_none()


async def known_returns(
    session: AsyncSession, end_to_end_ids: Sequence[str]
) -> set[tuple[str, str, date]]:
    """(end-to-end id, reason, date) of the returns already imported for these ids."""
    if not end_to_end_ids:
        return set()
    query = select(SepaReturn.end_to_end_id, SepaReturn.reason_code, SepaReturn.return_date).where(
        SepaReturn.end_to_end_id.in_(set(end_to_end_ids))
    )
    return {(row[0], row[1], row[2]) for row in (await session.execute(query)).all()}


def return_files_query() -> Select[tuple[SepaReturnFile]]:
    return select(SepaReturnFile)


async def returns_of_file(session: AsyncSession, file_id: str) -> list[SepaReturn]:
    query = select(SepaReturn).where(SepaReturn.file_id == file_id).order_by(SepaReturn.id)
    return list((await session.execute(query)).scalars())


def attempt_key(collection: SepaCollection) -> str:
    """The renewal attempt that records a collection in the renewal's history."""
    return f"sepa:{collection.end_to_end_id}"


async def attempt_of(session: AsyncSession, collection: SepaCollection) -> RenewalAttempt | None:
    query = select(RenewalAttempt).where(RenewalAttempt.idempotency_key == attempt_key(collection))
    return (await session.execute(query)).scalar_one_or_none()


async def lock_renewal_and_service(
    session: AsyncSession, renewal_id: str
) -> tuple[Renewal, Service]:
    renewal = (
        await session.execute(select(Renewal).where(Renewal.id == renewal_id).with_for_update())
    ).scalar_one()
    service = (
        await session.execute(
            select(Service).where(Service.id == renewal.service_id).with_for_update()
        )
    ).scalar_one()
    return renewal, service


async def open_collection_of(session: AsyncSession, renewal_id: str) -> SepaCollection | None:
    """The renewal's collection still on its way (pending, in a file, at the bank)."""
    query = select(SepaCollection).where(
        SepaCollection.renewal_id == renewal_id,
        SepaCollection.status.in_(OPEN_COLLECTION_STATUSES),
    )
    return (await session.execute(query.limit(1))).scalar_one_or_none()
