"""Request and response bodies of the events and webhook-endpoint routes."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from app.core.errors import BadRequest
from app.events.catalogue import EventEnvelope
from app.events.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint


def event_out(event: Event) -> EventEnvelope:
    return EventEnvelope(
        id=event.id,
        type=event.type,
        schema_version=event.schema_version,
        created_at=event.created_at,
        customer_id=event.customer_id,
        resource_type=event.resource_type,
        resource_id=event.resource_id,
        sequence=event.sequence,
        data=event.data,
    )


class EventPage(BaseModel):
    data: list[EventEnvelope]
    next_cursor: str | None = Field(
        description="Pass as `cursor` to get the next (older) page; null on the last page."
    )


def encode_cursor(event: Event) -> str:
    raw = f"{event.created_at.isoformat()}|{event.id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment, event_id = raw.split("|", 1)
        created_at = datetime.fromisoformat(moment)
        if created_at.tzinfo is None:
            raise ValueError("naive")
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest("The cursor is not one this API gave out.", code="invalid_cursor") from exc
    return created_at, event_id


def event_page(events: list[Event], limit: int) -> EventPage:
    # The repository is asked for limit + 1 rows: the extra one only says "there is more".
    shown = events[:limit]
    more = len(events) > limit
    return EventPage(
        data=[event_out(event) for event in shown],
        next_cursor=encode_cursor(shown[-1]) if more and shown else None,
    )


class WebhookEndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048, examples=["https://provisioning.internal.example/hooks"])
    description: str | None = Field(default=None, max_length=500)
    event_types: list[str] = Field(
        default_factory=list,
        max_length=100,
        description="Event types to receive; empty means every type.",
    )
    enabled: StrictBool = True


class WebhookEndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, max_length=2048)
    description: str | None = Field(default=None, max_length=500)
    event_types: list[str] | None = Field(default=None, max_length=100)
    enabled: StrictBool | None = None


class WebhookEndpointOut(BaseModel):
    id: str
    url: str
    description: str | None
    event_types: list[str]
    enabled: bool
    secret_rotation_overlap_until: datetime | None = Field(
        description="Until then deliveries also carry a signature made with the old secret."
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> WebhookEndpointOut:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            description=endpoint.description,
            event_types=list(endpoint.event_types),
            enabled=endpoint.enabled,
            secret_rotation_overlap_until=endpoint.previous_secret_expires_at,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class WebhookEndpointWithSecret(WebhookEndpointOut):
    secret: str = Field(
        description="The signing secret (Standard Webhooks `whsec_…`). Shown only in this "
        "response; store it now."
    )


class WebhookEndpointList(BaseModel):
    data: list[WebhookEndpointOut]


class RotateSecretIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overlap_seconds: StrictInt | None = Field(
        default=None,
        ge=0,
        le=7 * 24 * 3600,
        description="How long the old secret keeps signing too (default: the configured "
        "overlap, 24 h).",
    )


class RedeliverIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint_id: str | None = Field(
        default=None, description="Only this endpoint; default: every endpoint owed the event."
    )


class WebhookAttemptOut(BaseModel):
    attempted_at: datetime
    succeeded: bool
    status_code: int | None
    latency_ms: int
    response_body: str | None = Field(description="The start of the response, truncated.")
    error: str | None

    @classmethod
    def of(cls, attempt: WebhookAttempt) -> WebhookAttemptOut:
        return cls.model_validate(attempt, from_attributes=True)


class DeliveryOut(BaseModel):
    id: str
    event_id: str
    endpoint_id: str
    status: str = Field(description="pending | succeeded | dead")
    attempt_count: int
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    attempts: list[WebhookAttemptOut]

    @classmethod
    def of(cls, delivery: WebhookDelivery, attempts: list[WebhookAttempt]) -> DeliveryOut:
        return cls(
            id=delivery.id,
            event_id=delivery.event_id,
            endpoint_id=delivery.endpoint_id,
            status=delivery.status,
            attempt_count=delivery.attempt_count,
            next_attempt_at=delivery.next_attempt_at if delivery.status == "pending" else None,
            delivered_at=delivery.delivered_at,
            last_status_code=delivery.last_status_code,
            last_error=delivery.last_error,
            attempts=[WebhookAttemptOut.of(attempt) for attempt in attempts],
        )


class EventDetail(EventEnvelope):
    deliveries: list[DeliveryOut]


class DeliveryList(BaseModel):
    data: list[DeliveryOut]


class RedeliveredOut(BaseModel):
    redelivered: int


class DispatchSummaryOut(BaseModel):
    claimed: int
    succeeded: int
    retrying: int
    dead: int
    lost_lease: int
