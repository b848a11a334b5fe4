"""FastAPI dependencies, as `Annotated` aliases so a route's signature says what it needs.

They are `async def` although none awaits: FastAPI runs a plain `def` dependency in its
thread pool, a thread hop per dependency per request that cost measurable throughput
(bench/api.py); these only read app state or check a token, so they run on the loop.

async def get_thing(session: SessionDep, caller: CallerDep, gateway: GatewayDep): ...
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.core.auth import Caller, verify_token
from app.core.clock import Clock
from app.core.errors import Forbidden, Unauthorized
from app.core.settings import Settings
from app.gateways.port import PaymentGateway


async def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the route returns, rolled back if it raises.

    Declared with scope="function" so the commit happens *before* the response is sent: a
    client must never see a 201 for something that then fails to commit.
    """
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# auto_error=False: a missing header must become our 401 problem, not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="JWT; `sub` is the customer id.")


async def get_sessionmaker(request: Request) -> async_sessionmaker[AsyncSession]:
    """For the few routes that run transactions of their own, as a job does (imports)."""
    sessionmaker: async_sessionmaker[AsyncSession] = request.app.state.sessionmaker
    return sessionmaker


async def get_gateway(request: Request) -> PaymentGateway:
    gateway: PaymentGateway = request.app.state.gateway
    return gateway


async def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized("A bearer token is required.", code="missing_token")
    return _identified(request, credentials.credentials)


def _identified(request: Request, token: str) -> Caller:
    caller = verify_token(token, request.app.state.settings)
    # Read by the access log middleware, which never sees the token itself.
    request.state.caller_id = caller.customer_id
    return caller


# For routes that check the bearer themselves (`caller_of`): the OpenAPI operation then
# names the scheme, as a `CallerDep` route's does.
BEARER_SECURITY: dict[str, Any] = {"security": [{"HTTPBearer": []}]}


def caller_of(request: Request) -> Caller:
    """`CallerDep`'s check as a plain call, for the hottest reads: resolving it as two
    dependencies (the scheme, then the caller) cost them measurable time (bench/api.py).
    The header is read as HTTPBearer reads it."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("A bearer token is required.", code="missing_token")
    return _identified(request, token)


async def get_admin(caller: Annotated[Caller, Depends(get_caller)]) -> Caller:
    if not caller.is_admin:
        raise Forbidden("This route needs the billing:admin scope.", code="admin_scope_required")
    return caller


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
ClockDep = Annotated[Clock, Depends(get_clock)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
CallerDep = Annotated[Caller, Depends(get_caller)]
AdminDep = Annotated[Caller, Depends(get_admin)]
GatewayDep = Annotated[PaymentGateway, Depends(get_gateway)]
SessionmakerDep = Annotated[async_sessionmaker[AsyncSession], Depends(get_sessionmaker)]
