from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from db.session import Database
from graphql_api.app import create_app
from graphql_api.settings import ApiSettings
from jobs.broker import build_broker
from jobs.dispatch import DramatiqDispatcher

# Periodic tasks off: tests run them themselves, when they mean to.
SETTINGS = ApiSettings(cors_origins=("http://allowed.example",), periodic=False)


class Api:
    """Sends literal GraphQL documents through the ASGI app, as a client would."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def post(
        self,
        query: str,
        variables: dict[str, Any] | None = None,
        *,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["authorization"] = f"Bearer {token}"
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        return await self.client.post("/graphql", json=body, headers=all_headers)

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        response = await self.post(query, variables, token=token)
        body = response.json()
        assert "errors" not in body, body
        assert response.status_code == 200, body
        return body["data"]  # type: ignore[no-any-return]

    async def errors(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> tuple[int, list[dict[str, Any]]]:
        response = await self.post(query, variables, token=token)
        body = response.json()
        assert body.get("errors"), body
        return response.status_code, body["errors"]


@pytest.fixture(scope="session")
def broker(redis_url: str) -> Any:
    return build_broker(redis_url)


@pytest.fixture(scope="session")
def dispatcher(broker: Any) -> DramatiqDispatcher:
    return DramatiqDispatcher(broker)


@pytest.fixture
async def client(
    db: Database, dispatcher: DramatiqDispatcher, broker: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings=SETTINGS, db=db, dispatcher=dispatcher)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
    broker.flush_all()  # no worker runs here: drop what the test sent


@pytest.fixture
def api(client: httpx.AsyncClient) -> Api:
    return Api(client)


@pytest.fixture
async def resolver_api(
    db: Database, dispatcher: DramatiqDispatcher, broker: Any
) -> AsyncIterator[Api]:
    """The same API with the compiled read path switched off: every field by its resolver."""
    settings = dataclasses.replace(SETTINGS, compiled_reads=False)
    app = create_app(settings=settings, db=db, dispatcher=dispatcher)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield Api(c)
    broker.flush_all()
