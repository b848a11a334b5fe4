"""A card that will have expired by its service's next charge is announced once, ahead."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.clock import FrozenClock
from app.core.settings import Settings
from app.events.models import Event
from app.services.expiry_watch import announce_expiring_cards
from tests import factories


async def expiring_events(session: AsyncSession) -> list[str]:
    query = select(Event.resource_id).where(Event.type == "payment_method.expiring")
    return list((await session.execute(query)).scalars())


async def test_a_card_expiring_before_the_charge_is_announced_once(
    session: AsyncSession, clock: FrozenClock, settings: Settings
) -> None:
    # Clock: 2026-11-24. The service expires in 40 days (3 January) and is charged 7 days
    # before (27 December); the card is valid to the end of November.
    short = await factories.card_method(session, "cus_1", now=clock.now(), exp=(11, 2026))
    await factories.service(
        session, "cus_1", now=clock.now(), expires_in=timedelta(days=40), method=short
    )
    long = await factories.card_method(session, "cus_2", now=clock.now(), exp=(12, 2030))
    await factories.service(
        session, "cus_2", now=clock.now(), expires_in=timedelta(days=40), method=long
    )
    await session.commit()

    assert await announce_expiring_cards(session, now=clock.now(), settings=settings) == 1
    await session.commit()
    assert await expiring_events(session) == [short.id]

    clock.advance(timedelta(days=1))
    assert await announce_expiring_cards(session, now=clock.now(), settings=settings) == 0
    await session.commit()
    assert await expiring_events(session) == [short.id]


async def test_services_without_auto_renew_or_far_away_are_left_alone(
    session: AsyncSession, clock: FrozenClock, settings: Settings
) -> None:
    card = await factories.card_method(session, "cus_1", now=clock.now(), exp=(11, 2026))
    await factories.service(
        session, "cus_1", now=clock.now(), expires_in=timedelta(days=40), method=card,
        auto_renew=False,
    )  # fmt: skip
    await factories.service(
        session, "cus_1", now=clock.now(), expires_in=timedelta(days=200), method=card
    )
    await session.commit()
    assert await announce_expiring_cards(session, now=clock.now(), settings=settings) == 0
