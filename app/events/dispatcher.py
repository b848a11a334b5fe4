"""Sends committed events to their endpoints: claim → sign → POST → record.

At least once: a delivery is leased and committed *before* it is sent; if the process dies
while sending, the lease runs out and another pass sends it again with the same
`webhook-id` (the event id), which receivers use to drop duplicates. Every attempt is
written down with its status code, latency, the start of the response and the error.
Failures are retried with exponential backoff and jitter until the retry window (about
three days) is over; then the delivery is dead-lettered until someone redelivers it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from prometheus_client import Counter
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from standardwebhooks import Webhook

from app import __version__
from app.core.clock import Clock
from app.core.database import transaction
from app.core.ids import new_id
from app.core.scheduler import JobContext
from app.core.settings import Settings
from app.events import destinations
from app.events import repository as repo
from app.events.models import Event, WebhookAttempt, WebhookEndpoint
from app.events.secrets import unseal

log = logging.getLogger("autorenew.webhooks")

WEBHOOK_ATTEMPTS = Counter(
    "autorenew_webhook_attempts_total",
    "Webhook delivery attempts, by outcome (succeeded, failed, dead).",
    ["outcome"],
)


@dataclass
class DispatchSummary:
    claimed: int = 0
    succeeded: int = 0
    retrying: int = 0
    dead: int = 0
    lost_lease: int = 0


@dataclass(frozen=True)
class SendResult:
    status_code: int | None
    latency_ms: int
    response_body: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def event_body(event: Event) -> bytes:
    envelope = {
        "id": event.id,
        "type": event.type,
        "schema_version": event.schema_version,
        "created_at": event.created_at.isoformat().replace("+00:00", "Z"),
        "customer_id": event.customer_id,
        "resource_type": event.resource_type,
        "resource_id": event.resource_id,
        "sequence": event.sequence,
        "data": event.data,
    }
    return json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def signing_secrets(endpoint: WebhookEndpoint, settings: Settings, now: datetime) -> list[str]:
    secrets = [unseal(settings, endpoint.secret_ciphertext)]
    expires = endpoint.previous_secret_expires_at
    if endpoint.previous_secret_ciphertext and expires is not None and now < expires:
        secrets.append(unseal(settings, endpoint.previous_secret_ciphertext))
    return secrets


def signed_headers(event_id: str, body: bytes, secrets: list[str], now: datetime) -> dict[str, str]:
    text = body.decode("utf-8")
    signatures = " ".join(Webhook(secret).sign(event_id, now, text) for secret in secrets)
    return {
        "content-type": "application/json",
        "user-agent": f"autorenew-webhooks/{__version__}",
        "webhook-id": event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signatures,
    }


def backoff(attempt: int, settings: Settings, rng: random.Random) -> timedelta:
    """Delay after the `attempt`-th failure: base·2^(n-1), capped, with equal jitter so a
    recovering receiver is not hit by every replica's retries at the same second."""
    ceiling = min(
        settings.webhook_retry_max_interval_seconds,
        settings.webhook_retry_base_seconds * 2 ** min(attempt - 1, 30),
    )
    return timedelta(seconds=ceiling / 2 + rng.uniform(0, ceiling / 2))


class Dispatcher:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        clock: Clock,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.clock = clock
        self.transport = transport
        self.rng = rng or random.Random()  # noqa: S311 - jitter, not a secret

    async def run_once(self) -> DispatchSummary:
        """One pass: claim a batch of due deliveries, send them, record the outcomes."""
        summary = DispatchSummary()
        now = self.clock.now()
        token = new_id("lease", 16)
        async with transaction(self.sessionmaker) as session:
            claimed = await repo.claim_due_deliveries(
                session,
                now=now,
                limit=self.settings.webhook_dispatch_batch_size,
                lease_until=now + timedelta(seconds=self.settings.webhook_lease_seconds),
                token=token,
            )
        summary.claimed = len(claimed)
        if not claimed:
            return summary
        timeout = httpx.Timeout(self.settings.webhook_timeout_seconds)
        limit = asyncio.Semaphore(self.settings.webhook_dispatch_concurrency)
        # Redirects are not followed: a 3xx is a failure, and cannot bounce us inward.
        async with httpx.AsyncClient(
            timeout=timeout, transport=self.transport, follow_redirects=False
        ) as client:

            async def deliver(item: repo.ClaimedDelivery) -> None:
                async with limit:
                    result = await self._send(client, item)
                await self._record(item, result, summary)

            outcomes = await asyncio.gather(
                *(deliver(item) for item in claimed), return_exceptions=True
            )
        for outcome in outcomes:
            # One broken delivery must not stop the others; its lease brings it back.
            if isinstance(outcome, BaseException):
                log.error("webhook delivery failed to record", exc_info=outcome)
        return summary

    async def _send(self, client: httpx.AsyncClient, item: repo.ClaimedDelivery) -> SendResult:
        now = self.clock.now()
        body = event_body(item.event)
        try:
            secrets = signing_secrets(item.endpoint, self.settings, now)
        except Exception as exc:
            # E.g. the encryption key changed under a sealed secret: an attempt on record
            # that an operator can see, rather than a pass that crashes every time.
            return SendResult(None, 0, None, f"cannot sign: {type(exc).__name__}")
        headers = signed_headers(item.event.id, body, secrets, now)
        started = time.perf_counter()

        def elapsed() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            # httpx's timeout bounds each network step; this bounds the whole attempt, so a
            # receiver dribbling bytes cannot hold the delivery past its lease.
            async with asyncio.timeout(self.settings.webhook_timeout_seconds):
                # Checked again now (a name may resolve elsewhere than at registration), and
                # the connection goes to the very address checked: no second resolution.
                target = await destinations.pinned(item.endpoint.url, self.settings)
                async with client.stream(
                    "POST",
                    target.url,
                    content=body,
                    headers={**headers, "Host": target.host_header},
                    extensions={"sni_hostname": target.sni_hostname} if target.sni_hostname else {},
                ) as response:
                    limit = self.settings.webhook_response_body_limit
                    captured = await _read_some(response, limit)
                    return SendResult(response.status_code, elapsed(), captured, None)
        except TimeoutError:
            return SendResult(None, elapsed(), None, "timeout: the attempt took too long")
        except httpx.TimeoutException as exc:
            return SendResult(None, elapsed(), None, f"timeout: {type(exc).__name__}")
        except (httpx.HTTPError, OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}".replace("\x00", "")
            return SendResult(None, elapsed(), None, error[:500])

    async def _record(
        self, item: repo.ClaimedDelivery, result: SendResult, summary: DispatchSummary
    ) -> None:
        now = self.clock.now()
        attempts = item.attempt_count + 1
        values: dict[str, object] = {
            "attempt_count": attempts,
            "last_status_code": result.status_code,
            "last_error": result.error,
            "updated_at": now,
        }
        if result.ok:
            outcome = "succeeded"
            values.update(status="succeeded", delivered_at=now, next_attempt_at=now)
        else:
            retry_at = now + backoff(attempts, self.settings, self.rng)
            window_end = item.retry_from + timedelta(hours=self.settings.webhook_retry_window_hours)
            outcome = "dead" if retry_at > window_end else "failed"
            values.update(
                status="dead" if outcome == "dead" else "pending", next_attempt_at=retry_at
            )
        try:
            async with transaction(self.sessionmaker) as session:
                kept = await self._write(session, item, result, values, now)
        except IntegrityError:
            # The endpoint (and its deliveries) was deleted while we were sending.
            kept = False
        WEBHOOK_ATTEMPTS.labels(outcome).inc()
        if not kept:
            summary.lost_lease += 1
        elif outcome == "succeeded":
            summary.succeeded += 1
        elif outcome == "dead":
            summary.dead += 1
            log.warning(
                "webhook dead-lettered",
                extra={"delivery_id": item.delivery_id, "event_id": item.event.id},
            )
        else:
            summary.retrying += 1

    async def _write(
        self,
        session: AsyncSession,
        item: repo.ClaimedDelivery,
        result: SendResult,
        values: dict[str, object],
        now: datetime,
    ) -> bool:
        kept = await repo.settle_delivery(session, item.delivery_id, item.lease_token, values)
        session.add(
            WebhookAttempt(
                id=new_id("wha"),
                delivery_id=item.delivery_id,
                attempted_at=now,
                succeeded=result.ok,
                status_code=result.status_code,
                latency_ms=result.latency_ms,
                response_body=result.response_body,
                error=result.error,
            )
        )
        await session.flush()
        return kept


async def _read_some(response: httpx.Response, limit: int) -> str | None:
    """The start of the response, for the attempt log; never the whole of a huge body."""
    if limit == 0:
        return None
    chunks = bytearray()
    async for chunk in response.aiter_bytes():
        chunks.extend(chunk)
        if len(chunks) >= limit:
            break
    # PostgreSQL text cannot hold NUL; a receiver's bytes must not break the attempt log.
    return bytes(chunks[:limit]).decode("utf-8", errors="replace").replace("\x00", "\ufffd")


async def dispatch_events(context: JobContext) -> DispatchSummary:
    """The scheduled job (and the manual pass): one dispatch pass."""
    transport = context.extras.get("webhook_transport")
    dispatcher = Dispatcher(
        context.sessionmaker, context.settings, context.clock, transport=transport
    )
    return await dispatcher.run_once()
