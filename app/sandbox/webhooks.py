"""Sending the ledger's events to the configured URL, signed as Stripe signs them.

`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed with the whole
whsec_… secret>`: what `stripe.Webhook.construct_event` (and any Stripe receiver) verifies.

The request that changed something only writes the event (outbox, `events.py`); this sender,
a task of the sandbox process, posts it afterwards, so no API call ever waits for a webhook.
Each event is tried `webhook_max_attempts` times in all (2 s, 4 s, 8 s apart by default),
then left `failed` (still readable at GET /v1/events/{id}). Sandbox processes sharing a
ledger claim each event before sending it, so one of them sends it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import timedelta

import httpx
from sqlalchemy import or_, select, update

from app.sandbox.models import Event
from app.sandbox.runtime import SandboxRuntime

log = logging.getLogger("autorenew.sandbox.webhooks")

BATCH = 50


def signature_header(payload: bytes, secret: str, timestamp: int) -> str:
    signed = str(timestamp).encode() + b"." + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


@dataclass
class DeliveryPass:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0


class WebhookSender:
    def __init__(
        self, runtime: SandboxRuntime, transport: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                transport=self._transport,
                timeout=self.config.webhook_timeout_seconds,
                headers={"User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"},
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _claim_due(self) -> list[Event]:
        now = self.runtime.clock.now()
        lease = now + timedelta(seconds=self.config.webhook_timeout_seconds * 2)
        claimed: list[Event] = []
        async with self.runtime.transaction() as session:
            due = await session.scalars(
                select(Event)
                .where(
                    Event.delivery == "pending",
                    Event.next_attempt_at <= now,
                    or_(Event.claimed_until.is_(None), Event.claimed_until < now),
                )
                .order_by(Event.seq)
                .limit(BATCH)
            )
            for event in due.all():
                taken = await session.execute(
                    update(Event)
                    .where(
                        Event.seq == event.seq,
                        or_(Event.claimed_until.is_(None), Event.claimed_until < now),
                    )
                    .values(claimed_until=lease)
                    .execution_options(synchronize_session=False)
                )
                if getattr(taken, "rowcount", 0) == 1:
                    claimed.append(event)
        return claimed

    async def _send(self, event: Event) -> str | None:
        """None when the receiver took it (2xx), else why not."""
        url = self.config.webhook_url
        if url is None:
            return "no webhook URL"
        payload = event.body.encode()
        timestamp = int(self.runtime.clock.now().timestamp())
        try:
            response = await self.client.post(
                url,
                content=payload,
                headers={
                    "Content-Type": "application/json; charset=utf-8",
                    "Stripe-Signature": signature_header(
                        payload, self.config.webhook_secret, timestamp
                    ),
                },
            )
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return None if response.is_success else f"HTTP {response.status_code}"

    async def deliver_due(self) -> DeliveryPass:
        """One pass: send every due event once, record each outcome."""
        result = DeliveryPass()
        for event in await self._claim_due():
            error = await self._send(event)
            attempts = event.attempts + 1
            now = self.runtime.clock.now()
            values: dict[str, object] = {"attempts": attempts, "claimed_until": None}
            if error is None:
                values["delivery"] = "delivered"
                result.delivered += 1
            elif attempts >= self.config.webhook_max_attempts:
                values.update(delivery="failed", last_error=error[:300])
                result.failed += 1
            else:
                wait = self.config.webhook_retry_seconds * 2 ** (attempts - 1)
                values.update(last_error=error[:300], next_attempt_at=now + timedelta(seconds=wait))
                result.retrying += 1
            async with self.runtime.transaction() as session:
                await session.execute(update(Event).where(Event.seq == event.seq).values(values))
            if error is not None:
                log.warning(
                    "sandbox webhook not delivered",
                    extra={"event": event.id, "attempt": attempts, "error": error},
                )
        return result

    async def run(self) -> None:
        """Send due events until cancelled: woken by new events, else every poll interval."""
        written = self.runtime.events_written
        while True:
            written.clear()
            try:
                await self.deliver_due()
            except Exception:
                # A broken ledger connection must not end the sender for good.
                log.exception("sandbox webhook pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(written.wait(), self.config.webhook_poll_seconds)
