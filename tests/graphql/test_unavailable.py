"""An exhausted database pool: a bounded wait, then 503 UNAVAILABLE with Retry-After."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from db.session import connect
from graphql_api.app import create_app
from jobs.broker import build_broker
from jobs.dispatch import DramatiqDispatcher
from tests.graphql.conftest import SETTINGS


@pytest.mark.parametrize("authenticated", [False, True])
async def test_pool_exhaustion_answers_503_with_retry_after(
    database_url: str, authenticated: bool
) -> None:
    settings = replace(SETTINGS, db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=0.2)
    db = connect(database_url, **settings.pool_options())
    app = create_app(
        settings=settings,
        db=db,
        dispatcher=DramatiqDispatcher(build_broker("redis://127.0.0.1:1/0")),
    )
    headers = {"authorization": "Bearer bg_whatever"} if authenticated else {}
    try:
        async with db.engine.connect() as held:  # the pool's only connection
            assert held is not None
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://t"
            ) as client:
                response = await client.post(
                    "/graphql", json={"query": "{ workspaces { totalCount } }"}, headers=headers
                )
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "UNAVAILABLE"
        assert "Internal" not in error["message"]
    finally:
        await db.dispose()
