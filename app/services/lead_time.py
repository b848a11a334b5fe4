"""When a renewal is charged: decided here and nowhere else.

The lead is the larger of what the payment method needs (a card is charged a week ahead;
SEPA must pre-notify the customer and reach the bank in time) and what the kind of service
needs (a domain must be renewed at the registry before its grace period runs out).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, SQLColumnExpression, and_, or_, true

from app.core.settings import Settings


def lead_days(settings: Settings, *, kind: str | None, method_type: str | None) -> int:
    """`kind=None`: any kind without a lead of its own."""
    method_lead = (
        settings.renewal_lead_days_sepa
        if method_type == "sepa_debit"
        else settings.renewal_lead_days
    )
    kind_lead = settings.renewal_lead_days_by_kind.get(kind, 0) if kind is not None else 0
    return max(method_lead, kind_lead)


def next_charge_at(
    settings: Settings, *, expires_at: datetime, kind: str, method_type: str | None
) -> datetime:
    return expires_at - timedelta(days=lead_days(settings, kind=kind, method_type=method_type))


def charge_date_reached(
    settings: Settings,
    now: datetime,
    *,
    expires_at: SQLColumnExpression[datetime],
    kind: SQLColumnExpression[str],
    method_type: SQLColumnExpression[str],
) -> ColumnElement[bool]:
    """SQL for `next_charge_at(...) <= now`, so a query returns due rows only: one branch
    per kind with a lead of its own (and one for all other kinds) and per method type."""
    kinds = list(settings.renewal_lead_days_by_kind)
    kind_cases: list[tuple[ColumnElement[bool], str | None]] = [
        (kind == name, name) for name in kinds
    ]
    kind_cases.append((kind.not_in(kinds) if kinds else true(), None))
    branches = [
        and_(
            is_method,
            is_kind,
            expires_at <= now + timedelta(days=lead_days(settings, kind=name, method_type=method)),
        )
        for is_method, method in (
            (method_type == "sepa_debit", "sepa_debit"),
            (method_type != "sepa_debit", None),
        )
        for is_kind, name in kind_cases
    ]
    return or_(*branches)


def longest_lead_days(settings: Settings, *, sepa: bool = True) -> int:
    """The earliest any service can be charged before its expiry: how far ahead planning,
    forecasts and warnings must look. `sepa=False` for questions about cards only."""
    leads = [settings.renewal_lead_days, *settings.renewal_lead_days_by_kind.values()]
    if sepa:
        leads.append(settings.renewal_lead_days_sepa)
    return max(leads)
