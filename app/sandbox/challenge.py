"""The 3-D Secure page that an intent's `next_action.redirect_to_url` points to: for a
SetupIntent (save the card) or a PaymentIntent (an on-session payment).

The customer's browser opens it (no API key: the secret token in the URL is the credential,
as in Stripe's own hosted pages), presses Complete or Fail, and is sent back to the
`return_url` with Stripe's parameters added: `setup_intent` / `payment_intent`, its
`…_client_secret`, and `redirect_status` (`succeeded` or `failed`).
"""

from __future__ import annotations

import hmac
from html import escape
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from app.sandbox import payments, setups
from app.sandbox.models import PaymentIntent, PaymentMethod, SetupIntent
from app.sandbox.runtime import runtime_of

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>3-D Secure — sandbox</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.6rem 1.2rem;margin-right:.5rem}}</style></head>
<body><h1>3-D Secure test page</h1>
<p>This is the autorenew sandbox gateway. {question}</p>
<form method="post" action="{action}">
<input type="hidden" name="token" value="{token}">
<button type="submit" name="result" value="complete">Complete authentication</button>
<button type="submit" name="result" value="fail">Fail authentication</button>
</form></body></html>
"""

GONE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not available</title>
</head><body><p>This authentication request is unknown or already answered.</p></body></html>
"""

# Currencies without minor units, for showing the amount on the page.
_ZERO_DECIMAL = frozenset({"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf"})

Intent = SetupIntent | PaymentIntent


def _with_query(url: str, **extra: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(extra.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _waiting_intent(
    session: AsyncSession, intent_id: str, token: str | None
) -> Intent | None:
    """The intent this page is for, if it still waits for this token's answer."""
    model = SetupIntent if intent_id.startswith("seti_") else PaymentIntent
    intent: Intent | None = await session.get(model, intent_id)
    if (
        intent is None
        or intent.status != "requires_action"
        or intent.challenge_token is None
        or token is None
        or not hmac.compare_digest(intent.challenge_token.encode(), token.encode())
    ):
        return None
    return intent


def _question(intent: Intent, method: PaymentMethod) -> str:
    card = f"{escape(method.brand)} card ending in <strong>{escape(method.last4)}</strong>"
    if isinstance(intent, SetupIntent):
        return f"Authenticate the {card} for future payments?"
    currency = intent.currency
    amount = (
        str(intent.amount)
        if currency in _ZERO_DECIMAL
        else f"{intent.amount // 100}.{intent.amount % 100:02d}"
    )
    return f"Authenticate a payment of {escape(amount)} {escape(currency.upper())} with the {card}?"


async def show_challenge(request: Request) -> Response:
    runtime = runtime_of(request)
    token = request.query_params.get("token")
    async with runtime.transaction() as session:
        intent = await _waiting_intent(session, request.path_params["id"], token)
        if intent is None:
            return HTMLResponse(GONE, status_code=404)
        method = await session.get_one(PaymentMethod, intent.payment_method_id)
    page = PAGE.format(
        question=_question(intent, method),
        action=escape(f"{runtime.public_url(request)}/3ds/{intent.id}"),
        token=escape(token or ""),
    )
    return HTMLResponse(page)


async def answer_challenge(request: Request) -> Response:
    runtime = runtime_of(request)
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    result = form.get("result")
    if result not in ("complete", "fail"):
        return HTMLResponse(GONE, status_code=400)
    passed = result == "complete"
    ctx = runtime.context(request)
    async with runtime.transaction() as session:
        intent = await _waiting_intent(session, request.path_params["id"], form.get("token"))
        if intent is None:
            return HTMLResponse(GONE, status_code=404)
        if isinstance(intent, SetupIntent):
            method = await session.get_one(PaymentMethod, intent.payment_method_id)
            if passed:
                setups.complete_setup(session, ctx, intent, method)
            else:
                setups.fail_setup_authentication(session, ctx, intent)
            succeeded, kind = passed, "setup_intent"
        else:
            succeeded = await payments.finish_authentication(session, ctx, intent, passed=passed)
            kind = "payment_intent"
        return_url = intent.return_url or runtime.public_url(request)
        params = {
            kind: intent.id,
            f"{kind}_client_secret": intent.client_secret,
            "redirect_status": "succeeded" if succeeded else "failed",
        }
    runtime.events_written.set()
    return RedirectResponse(_with_query(return_url, **params), status_code=303)


def challenge_routes() -> list[BaseRoute]:
    return [
        Route("/3ds/{id}", show_challenge, methods=["GET"]),
        Route("/3ds/{id}", answer_challenge, methods=["POST"]),
    ]
