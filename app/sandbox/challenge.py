"""The 3-D Secure challenge page that a SetupIntent's `next_action.redirect_to_url` points to.

The customer's browser opens it (no API key: the secret token in the URL is the credential,
as in Stripe's own hosted pages), presses Complete or Fail, and is sent back to the
`return_url` with `setup_intent` and `redirect_status` added, as Stripe does.
"""

from __future__ import annotations

import hmac
from html import escape
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from app.sandbox import ledger
from app.sandbox.app import sandbox_of
from app.sandbox.models import PaymentMethod, SetupIntent

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>3-D Secure — sandbox</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;padding:0 1rem}}
button{{font-size:1rem;padding:.6rem 1.2rem;margin-right:.5rem}}</style></head>
<body><h1>3-D Secure test page</h1>
<p>This is the autorenew sandbox gateway. Authenticate the {brand} card ending in
<strong>{last4}</strong> for future payments?</p>
<form method="post" action="{action}">
<input type="hidden" name="token" value="{token}">
<button type="submit" name="result" value="complete">Complete authentication</button>
<button type="submit" name="result" value="fail">Fail authentication</button>
</form></body></html>
"""

GONE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Not available</title>
</head><body><p>This authentication request is unknown or already answered.</p></body></html>
"""


def _with_query(url: str, **extra: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(extra.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _token_matches(intent: SetupIntent | None, token: str | None) -> bool:
    return (
        intent is not None
        and intent.status == "requires_action"
        and intent.challenge_token is not None
        and token is not None
        and hmac.compare_digest(intent.challenge_token, token)
    )


async def show_challenge(request: Request) -> Response:
    sandbox = sandbox_of(request)
    token = request.query_params.get("token")
    async with sandbox.transaction() as session:
        intent = await session.get(SetupIntent, request.path_params["id"])
        if intent is None or not _token_matches(intent, token):
            return HTMLResponse(GONE, status_code=404)
        method = await session.get_one(PaymentMethod, intent.payment_method_id)
    page = PAGE.format(
        brand=escape(method.brand),
        last4=escape(method.last4),
        action=escape(f"{sandbox.public_url(request)}/3ds/{intent.id}"),
        token=escape(token or ""),
    )
    return HTMLResponse(page)


async def answer_challenge(request: Request) -> Response:
    sandbox = sandbox_of(request)
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    result = form.get("result")
    if result not in ("complete", "fail"):
        return HTMLResponse(GONE, status_code=400)
    async with sandbox.transaction() as session:
        intent = await session.get(SetupIntent, request.path_params["id"])
        if intent is None or not _token_matches(intent, form.get("token")):
            return HTMLResponse(GONE, status_code=404)
        method = await session.get_one(PaymentMethod, intent.payment_method_id)
        if result == "complete":
            ledger.complete_setup(intent, method)
        else:
            ledger.fail_setup_authentication(intent)
        return_url = intent.return_url or sandbox.public_url(request)
        status = "succeeded" if result == "complete" else "failed"
    target = _with_query(return_url, setup_intent=intent.id, redirect_status=status)
    return RedirectResponse(target, status_code=303)


def challenge_routes() -> list[BaseRoute]:
    return [
        Route("/3ds/{id}", show_challenge, methods=["GET"]),
        Route("/3ds/{id}", answer_challenge, methods=["POST"]),
    ]
