"""When a renewal is charged: decided here and nowhere else.

The lead is the larger of what the payment method needs (a card is charged a week ahead;
SEPA must pre-notify the customer and reach the bank in time) and what the kind of service
needs (a domain must be renewed at the registry before its grace period runs out).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from app.core.settings import Settings


def lead_days(settings: Settings, *, kind: str, method_type: str | None) -> int:
    method_lead = (
        settings.renewal_lead_days_sepa
        if method_type == "sepa_debit"
        else settings.renewal_lead_days
    )
    return max(method_lead, settings.renewal_lead_days_by_kind.get(kind, 0))


def next_charge_at(
    settings: Settings, *, expires_at: datetime, kind: str, method_type: str | None
) -> datetime:
    return expires_at - timedelta(days=lead_days(settings, kind=kind, method_type=method_type))


def longest_lead_days(settings: Settings, *, sepa: bool = True) -> int:
    """The earliest any service can be charged before its expiry: how far ahead planning,
    forecasts and warnings must look. `sepa=False` for questions about cards only."""
    leads = [settings.renewal_lead_days, *settings.renewal_lead_days_by_kind.values()]
    if sepa:
        leads.append(settings.renewal_lead_days_sepa)
    return max(leads)
