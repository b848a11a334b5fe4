"""What the webhook route answers the gateway (which only looks at the status; the body
helps whoever reads the delivery log in the gateway's dashboard or `stripe listen`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Outcome = Literal["applied", "unchanged", "not_ours", "unhandled"]


class GatewayEventReceipt(BaseModel):
    id: str = Field(description="The gateway's event id.")
    type: str
    outcome: Outcome = Field(
        description="applied: our records changed; unchanged: nothing to change (already so, "
        "or left alone by rule); not_ours: it names nothing of ours; unhandled: a type this "
        "service does not act on."
    )
    replayed: bool = Field(
        description="The event was received before; `outcome` is what it did then."
    )
