"""Bearer tokens: who is calling, and may they use the admin API.

The service keeps no passwords. A caller is the `sub` of a JWT signed by the customer area
(HS256 with a shared secret) or by an identity provider (RS256, public key configured).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeGuard

import jwt

from app.core.errors import Unauthorized
from app.core.settings import Settings

ADMIN_SCOPE = "billing:admin"
# Far above any real token (a few hundred bytes); a larger one is refused unread.
MAX_TOKEN_BYTES = 8192
MAX_SUBJECT_CHARACTERS = 128


@dataclass(frozen=True)
class Caller:
    customer_id: str
    scopes: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_admin(self) -> bool:
        return ADMIN_SCOPE in self.scopes


def _verification_key(settings: Settings) -> tuple[str, list[str]]:
    if settings.jwt_public_key:
        return settings.jwt_public_key, ["RS256"]
    return settings.jwt_secret.get_secret_value(), ["HS256"]


def _usable_subject(subject: object) -> TypeGuard[str]:
    """A printable id of at most 128 characters: a NUL or a lone surrogate in it would reach
    the database (which refuses it) and every log line."""
    if not isinstance(subject, str) or not subject.strip():
        return False
    if len(subject) > MAX_SUBJECT_CHARACTERS or not subject.isprintable():
        return False
    try:
        subject.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True


def verify_token(token: str, settings: Settings) -> Caller:
    if len(token) > MAX_TOKEN_BYTES:
        raise Unauthorized("The token is too large.", code="invalid_token")
    key, algorithms = _verification_key(settings)
    # Only the one configured algorithm is accepted: `alg=none` and HS/RS confusion fail.
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=algorithms,
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_seconds,
            options={"require": ["exp", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("The token has expired.", code="token_expired") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("The token is not valid.", code="invalid_token") from exc
    subject = claims.get("sub")
    if not _usable_subject(subject):
        raise Unauthorized("The token has no usable subject.", code="invalid_token")
    scope = claims.get("scope", "")
    # RFC 6749 §3.3: scopes are separated by ASCII spaces only. str.split() would also
    # split on U+00A0 and the like, so "x\u00a0billing:admin" would grant admin.
    scopes = frozenset(scope.split(" ")) - {""} if isinstance(scope, str) else frozenset()
    return Caller(customer_id=subject, scopes=scopes)


def mint_token(
    settings: Settings,
    *,
    subject: str,
    admin: bool = False,
    ttl: timedelta | None = None,
    now: datetime,
) -> str:
    """Sign a token with the configured HS256 secret (for local use and tests)."""
    if settings.jwt_public_key:
        raise RuntimeError("tokens are minted by the identity provider when RS256 is configured")
    lifetime = ttl or timedelta(seconds=settings.token_default_ttl_seconds)
    claims: dict[str, Any] = {
        "sub": subject,
        "iat": int(now.timestamp()),
        "exp": int((now + lifetime).timestamp()),
    }
    if admin:
        claims["scope"] = ADMIN_SCOPE
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")
