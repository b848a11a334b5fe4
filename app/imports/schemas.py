"""What an import file's lines are, and the report an import answers with."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
)

from app.core.clock import CalendarDay, Instant
from app.services.schemas import ServiceId

# Ids from the previous panel end up in queries and in our rows: printable, no controls
# (PostgreSQL text cannot hold NUL, and a newline inside an id would only hide mistakes).
CustomerId = Annotated[
    str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00-\x1f\x7f]+$")
]
GatewayId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_]{1,255}$")]
MAX_SERVICES_PER_METHOD = 200


class _Line(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId
    services: list[ServiceId] | None = Field(
        default=None,
        max_length=MAX_SERVICES_PER_METHOD,
        description="Services this method renews: assigned to it, auto-renew on.",
    )


class MandateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: str = Field(max_length=35, description="The Unique Mandate Reference, kept as is.")
    # A date (read as midnight UTC) or a timestamp with its offset.
    signed_at: Instant | CalendarDay
    signer_name: (
        Annotated[str, StringConstraints(max_length=140, pattern=r"^[^\x00-\x1f\x7f]*$")] | None
    ) = None
    last_collected_at: CalendarDay | None = Field(
        default=None, description="The last collection the previous panel made; null: never."
    )


class SepaDebitLine(_Line):
    type: Literal["sepa_debit"]
    iban: Annotated[str, StringConstraints(max_length=64)]
    account_holder_name: Annotated[str, StringConstraints(max_length=200)]
    mandate: MandateIn


class CardLine(_Line):
    type: Literal["card"]
    gateway_customer_id: GatewayId
    gateway_payment_method_id: GatewayId


ImportLine = Annotated[SepaDebitLine | CardLine, Field(discriminator="type")]
IMPORT_LINE: TypeAdapter[SepaDebitLine | CardLine] = TypeAdapter(ImportLine)


def services_of(line: SepaDebitLine | CardLine) -> list[str]:
    """The line's services, each once, in the order given."""
    return list(dict.fromkeys(line.services or []))


def signed_at_utc(value: datetime | date) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)


# --- the report ----------------------------------------------------------------------------


class RefusedLine(BaseModel):
    line: int = Field(description="1-based line number in the file.")
    code: str = Field(description="Stable reason code, e.g. invalid_iban, card_expired.")
    detail: str
    customer_id: str | None = None
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="For a line that is not a valid record: each bad field."
    )


class LapsedMandate(BaseModel):
    line: int
    payment_method_id: str
    mandate_reference: str
    lapsed_on: date
    reason: str
    services_not_assigned: list[str] = Field(
        default_factory=list, description="A lapsed mandate cannot renew anything."
    )


class ImportReport(BaseModel):
    """What an import did, line by line in summary. Nothing was saved unless `committed`."""

    id: str = Field(description="This run's id; audit entries name it.")
    dry_run: bool
    partial: bool
    committed: bool = Field(
        description="False for a dry run, and when a refused line stopped an all-or-nothing "
        "import: then `imported` counts what would have been imported."
    )
    lines: int = Field(description="Records read (blank lines are not counted).")
    imported: int
    already_present: int = Field(
        description="Skipped: the same mandate reference or gateway payment method is here."
    )
    refused: int
    imported_by_type: dict[str, int]
    lapsed: int = Field(description="Imported SEPA mandates unused for 36 months.")
    services_assigned: int
    refusals: list[RefusedLine]
    lapsed_mandates: list[LapsedMandate]
    seconds: dict[str, float] = Field(
        description="Time spent checking (gateway included) and importing."
    )
