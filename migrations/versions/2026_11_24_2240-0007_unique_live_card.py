"""unique live card: one registration of a card per customer, guaranteed by the database

Card registration checks for a live card with the same gateway fingerprint first (to answer
409 with the existing id); two concurrent registrations could both pass that check. This
index is the guarantee, as uq_payment_methods_customer_iban_live is for bank accounts.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 22:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_CARD = sa.text("type = 'card' AND status IN ('validated', 'requires_action')")


def upgrade() -> None:
    # Duplicates registered before this index cannot be resolved here without choosing
    # which of a customer's methods pays their services: stop and say so instead.
    duplicates = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT customer_id, card_fingerprint, count(*) FROM payment_methods "
                f"WHERE {LIVE_CARD.text} AND card_fingerprint IS NOT NULL "
                "GROUP BY customer_id, card_fingerprint HAVING count(*) > 1"
            )
        )
        .all()
    )
    if duplicates:
        raise RuntimeError(
            f"{len(duplicates)} customers hold the same card twice (live card methods with "
            "one fingerprint); revoke the extra methods (DELETE /v1/payment-methods/{id}) and "
            "migrate again"
        )
    op.create_index(
        "uq_payment_methods_customer_card_live",
        "payment_methods",
        ["customer_id", "card_fingerprint"],
        unique=True,
        sqlite_where=LIVE_CARD,
        postgresql_where=LIVE_CARD,
    )


def downgrade() -> None:
    op.drop_index("uq_payment_methods_customer_card_live", table_name="payment_methods")
