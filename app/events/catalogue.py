"""Every event type the service emits, with its payload schema and version.

The catalogue is the single source for three things: what `emit` accepts (an unknown type
or a payload of the wrong shape is a bug and raises), the endpoints' type filters, and the
OpenAPI 3.1 `webhooks` section that receivers code against.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from fastapi import FastAPI, Response
from pydantic import BaseModel, Field, create_model

from app.core.errors import Unprocessable
from app.events import payloads as p


class EventEnvelope(BaseModel):
    """What every webhook body and every history entry looks like."""

    id: str = Field(description="Stable across retries; the same as the `webhook-id` header.")
    type: str
    schema_version: int = Field(description="Version of `data`'s schema for this type.")
    created_at: datetime
    customer_id: str | None = Field(description="The customer concerned, if any.")
    resource_type: str
    resource_id: str
    sequence: int = Field(
        description="Increases by one with each event about this resource; an event with a "
        "lower sequence than one already processed is stale and can be dropped."
    )
    data: dict[str, Any]


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    payload: type[p.Payload]
    resource_type: str
    description: str

    @property
    def envelope(self) -> type[EventEnvelope]:
        return _ENVELOPES[self.name]


def _types() -> list[EventType]:
    pm, ren = "payment_method", "renewal"
    entries: list[tuple[str, type[p.Payload], str, str]] = [
        (f"{pm}.created", p.PaymentMethodData, pm, "A payment method was registered."),
        (f"{pm}.validated", p.PaymentMethodData, pm, "A payment method can now be charged."),
        (f"{pm}.failed", p.PaymentMethodData, pm, "Validation of a payment method failed."),
        (f"{pm}.expiring", p.PaymentMethodData, pm, "A card expires before its next use."),
        (f"{pm}.expired", p.PaymentMethodData, pm, "A card is past its expiry date."),
        (f"{pm}.revoked", p.PaymentMethodData, pm, "A payment method was removed or revoked."),
        (
            f"{pm}.updated",
            p.PaymentMethodData,
            pm,
            "A card's details changed at the gateway (card updater: new expiry or last 4).",
        ),
        ("mandate.accepted", p.MandateAcceptedData, pm, "A SEPA mandate was signed."),
        (
            "service.payment_method_changed",
            p.ServicePaymentMethodChangedData,
            "service",
            "A service now renews with another payment method.",
        ),
        (
            "service.auto_renew_changed",
            p.ServiceAutoRenewChangedData,
            "service",
            "Automatic renewal was switched on or off.",
        ),
        (
            f"{ren}.upcoming",
            p.RenewalUpcomingData,
            ren,
            "The notice before a renewal is charged: amount, date, method, how to stop it.",
        ),
        (f"{ren}.succeeded", p.RenewalData, ren, "A renewal was paid."),
        (
            f"{ren}.retry_scheduled",
            p.RenewalData,
            ren,
            "A charge attempt failed; the renewal is tried again at `next_attempt_at`.",
        ),
        (f"{ren}.failed", p.RenewalData, ren, "A renewal failed for good."),
        (
            f"{ren}.requires_action",
            p.RenewalData,
            ren,
            "The customer must act (3-D Secure) before the renewal can be paid.",
        ),
        (f"{ren}.canceled", p.RenewalData, ren, "A renewal will not be charged."),
        (f"{ren}.refunded", p.RenewalData, ren, "A paid renewal was refunded or returned."),
        (
            f"{ren}.disputed",
            p.RenewalDisputedData,
            ren,
            "The customer disputed a renewal's charge with their bank, or the dispute was "
            "decided; nothing is reversed here: provisioning decides.",
        ),
        ("service.renewed", p.ServiceRenewedData, "service", "A service's expiry moved forward."),
        (
            "service.expiring",
            p.ServiceExpiringData,
            "service",
            "A reminder that a service expires soon (or just did), and whether it renews.",
        ),
        (
            "service.lapsed",
            p.ServiceLapsedData,
            "service",
            "A service expired and will not be renewed.",
        ),
        (
            "service.renewal_reversed",
            p.ServiceRenewalReversedData,
            "service",
            "A renewal was undone (refund, SEPA return); the expiry moved back.",
        ),
        (
            "sepa.batch.created",
            p.SepaBatchCreatedData,
            "sepa_batch",
            "A pain.008 collection file was produced.",
        ),
    ]
    return [EventType(name, 1, model, res, desc) for name, model, res, desc in entries]


CATALOGUE: dict[str, EventType] = {entry.name: entry for entry in _types()}
EVENT_TYPES: tuple[str, ...] = tuple(CATALOGUE)


def _envelope_name(event_type: str) -> str:
    words = event_type.replace(".", "_").split("_")
    return "".join(word.capitalize() for word in words) + "Event"


_ENVELOPES: dict[str, type[EventEnvelope]] = {
    entry.name: create_model(
        _envelope_name(entry.name),
        __base__=EventEnvelope,
        __doc__=entry.description,
        type=(Literal[entry.name], ...),  # type: ignore[arg-type]
        schema_version=(Literal[entry.version], ...),  # type: ignore[arg-type]
        data=(entry.payload, ...),
    )
    for entry in CATALOGUE.values()
}


def check_event_types(event_types: Sequence[str], *, where: tuple[str, ...]) -> list[str]:
    """The distinct types asked for, sorted; 422 `unknown_event_type` naming the known ones
    when one is not in the catalogue (a misspelt filter would otherwise match nothing).
    `where` is the input's location (`("query", "type")`), for the errors' `loc`."""
    unknown = [(index, name) for index, name in enumerate(event_types) if name not in CATALOGUE]
    if unknown:
        names = sorted({name for _, name in unknown})
        raise Unprocessable(
            f"Unknown event types: {', '.join(names)}. Known types: {', '.join(EVENT_TYPES)}.",
            code="unknown_event_type",
            extra={
                "unknown": names,
                "known": list(EVENT_TYPES),
                "errors": [
                    {
                        "loc": [*where, str(index)],
                        "message": f"{name!r} is not an event type of this service.",
                        "type": "unknown_event_type",
                    }
                    for index, name in unknown
                ],
            },
        )
    return sorted(set(event_types))


def lookup(event_type: str) -> EventType:
    try:
        return CATALOGUE[event_type]
    except KeyError:
        raise ValueError(f"unknown event type {event_type!r}; add it to the catalogue") from None


WEBHOOK_HEADERS = (
    "Sent as `POST` with a JSON body, signed per Standard Webhooks "
    "(https://www.standardwebhooks.com/): `webhook-id` is the event id, stable across "
    "retries (use it to drop duplicates); `webhook-timestamp` is the attempt's Unix time in "
    "seconds; `webhook-signature` is `v1,<base64 HMAC-SHA256 of {id}.{timestamp}.{body}>`, "
    "space-separated: during a secret rotation's overlap a second signature made with the "
    "previous secret follows. Answer 2xx within the timeout; anything else is retried with "
    "exponential backoff for about three days. Compare `sequence` per resource to drop "
    "stale events."
)


def document_webhooks(app: FastAPI) -> None:
    """Describe every event type as an OpenAPI 3.1 webhook (documentation only)."""
    for entry in CATALOGUE.values():

        async def receiver(event: EventEnvelope) -> None:  # pragma: no cover - docs only
            return None

        # The body type differs per event; FastAPI reads it from the signature.
        receiver.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [
                inspect.Parameter(
                    "event", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=entry.envelope
                )
            ],
            return_annotation=None,
        )
        app.webhooks.add_api_route(
            entry.name,
            receiver,
            methods=["POST"],
            summary=entry.description,
            description=WEBHOOK_HEADERS,
            operation_id=f"webhook_{entry.name.replace('.', '_')}",
            tags=["webhooks"],
            status_code=200,
            response_class=Response,
            responses={
                200: {"description": "Received; any 2xx stops the retries."},
                "default": {
                    "description": "Any other answer, or none within the timeout: retried "
                    "with exponential backoff, then dead-lettered."
                },
            },
        )
