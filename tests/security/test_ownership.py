"""Another customer's ids answer exactly like missing ones: 404, and nothing changes."""

from __future__ import annotations

import json

import httpx
from fastapi import FastAPI

from tests.security.conftest import (
    CUSTOMER_A,
    CUSTOMER_B,
    Auth,
    Operation,
    World,
    operations,
    request_body,
)

# Customer routes that take no id of an existing resource; each is checked another way.
NO_FOREIGN_ID = {
    "POST /v1/iban-checks",  # no stored resource at all
    "POST /v1/payment-methods",  # creates the caller's own
}


def _customer_operations(app: FastAPI) -> list[Operation]:
    return [
        operation
        for operation in operations(app)
        if operation.path.startswith("/v1/")
        and not operation.path.startswith("/v1/admin/")
        and operation.authenticated
    ]


async def test_every_customer_route_hides_another_customers_resources(
    app: FastAPI, client: httpx.AsyncClient, auth: Auth, world: World
) -> None:
    bob, alice = auth(CUSTOMER_B), auth(CUSTOMER_A)
    before = {
        path: (await client.get(path, headers=alice)).json()
        for path in ("/v1/payment-methods", "/v1/services", "/v1/renewals")
    }
    checked = []
    for operation in _customer_operations(app):
        if str(operation) in NO_FOREIGN_ID:
            continue
        unknown = set(operation.parameters) - set(world.ids)
        assert not unknown, f"{operation}: give customer A a resource for {unknown}"
        response = await client.request(
            operation.method,
            operation.url(world.ids),
            json=request_body(operation, world),
            headers=bob,
        )
        if operation.parameters or operation.has_body:
            assert response.status_code == 404, f"{operation}: {response.text}"
        else:
            # A list: Bob's own (empty) view, with none of Alice's ids in it.
            assert response.status_code == 200, f"{operation}: {response.text}"
            for resource_id in world.ids.values():
                assert resource_id not in response.text, f"{operation} shows {resource_id}"
        checked.append(operation)
        # Positive control: the same read as Alice finds the resource.
        if operation.method == "GET" and operation.parameters:
            own = await client.get(operation.url(world.ids), headers=alice)
            assert own.status_code == 200, f"{operation} as the owner: {own.text}"
    assert len(checked) >= 10
    after = {path: (await client.get(path, headers=alice)).json() for path in before}
    assert json.dumps(after, sort_keys=True) == json.dumps(before, sort_keys=True)
