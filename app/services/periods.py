"""Billing-period arithmetic. A period is a whole number of months from the last expiry."""

from __future__ import annotations

import calendar
from datetime import datetime


def add_months(moment: datetime, months: int, *, anchor_day: int | None = None) -> datetime:
    """`moment` moved `months` calendar months, on `anchor_day` or the month's last day.

    The anchor keeps a service that started on the 31st on the last day of every month
    (31 Jan → 28/29 Feb → 31 Mar) instead of drifting to the 28th for ever.
    """
    day = anchor_day or moment.day
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    last_day = calendar.monthrange(year, month)[1]
    return moment.replace(year=year, month=month, day=min(day, last_day))
