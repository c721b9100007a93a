"""Tokens and authentication over HTTP: hashed secrets, roles, disabled/expired tokens."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from db.enums import TokenRole
from db.models import Token
from db.session import Database
from tests.conftest import row_counts
from tests.factories import make_token
from tests.graphql.conftest import Api

CREATE = """
mutation($input: CreateTokenInput!) {
  createToken(input: $input) {
    __typename
    ... on TokenCreated { secret token { id owner role enabled prefix expiresAt } }
    ... on ValidationFailed { code message violations { path message } }
  }
}"""

VIEWER = "{ viewer { authenticated owner role } }"


async def test_admin_creates_token_shown_once_and_stored_hashed(api: Api, db: Database) -> None:
    _, admin = await make_token(db, role=TokenRole.ADMIN)
    data = await api.data(CREATE, {"input": {"owner": "ci-bot", "role": "WRITER"}}, token=admin)
    created = data["createToken"]
    assert created["__typename"] == "TokenCreated"
    secret = created["secret"]
    assert secret.startswith("bg_")
    assert created["token"]["prefix"] == secret[:10]
    async with db.read_session() as s:
        stored = await s.scalar(select(Token).where(Token.owner == "ci-bot"))
    assert stored is not None
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in (stored.secret_hash, stored.prefix)
    # The new secret works, with its role.
    who = await api.data(VIEWER, token=secret)
    assert who["viewer"] == {"authenticated": True, "owner": "ci-bot", "role": "WRITER"}
    # Listing tokens never shows a secret.
    listing = await api.post("{ tokens { edges { node { owner prefix } } } }", token=admin)
    assert secret not in listing.text


async def test_anonymous_viewer(api: Api, db: Database) -> None:
    data = await api.data(VIEWER)
    assert data["viewer"] == {"authenticated": False, "owner": None, "role": None}


@pytest.mark.parametrize("role", [TokenRole.READER, TokenRole.WRITER, TokenRole.WORKER])
async def test_non_admin_cannot_create_tokens(api: Api, db: Database, role: TokenRole) -> None:
    _, secret = await make_token(db, role=role)
    before = await row_counts(db)
    status, errors = await api.errors(
        CREATE, {"input": {"owner": "x", "role": "ADMIN"}}, token=secret
    )
    assert status == 403
    assert errors[0]["extensions"]["code"] == "FORBIDDEN"
    assert await row_counts(db) == before


async def test_anonymous_mutation_is_unauthenticated(api: Api, db: Database) -> None:
    before = await row_counts(db)
    status, errors = await api.errors(CREATE, {"input": {"owner": "x", "role": "ADMIN"}})
    assert status == 401
    assert errors[0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert await row_counts(db) == before


@pytest.mark.parametrize(
    ("owner", "expires", "path"),
    [
        ("   ", None, "$.owner"),
        ("x" * 201, None, "$.owner"),
        ("bob", "2000-01-01T00:00:00+00:00", "$.expiresAt"),
    ],
)
async def test_invalid_token_input_writes_nothing(
    api: Api, db: Database, owner: str, expires: str | None, path: str
) -> None:
    _, admin = await make_token(db)
    before = await row_counts(db)
    data = await api.data(
        CREATE, {"input": {"owner": owner, "role": "READER", "expiresAt": expires}}, token=admin
    )
    payload = data["createToken"]
    assert payload["__typename"] == "ValidationFailed"
    assert payload["code"] == "VALIDATION_FAILED"
    assert [v["path"] for v in payload["violations"]] == [path]
    assert await row_counts(db) == before


async def test_unknown_role_is_a_request_error(api: Api, db: Database) -> None:
    _, admin = await make_token(db)
    before = await row_counts(db)
    status, errors = await api.errors(
        CREATE, {"input": {"owner": "x", "role": "ROOT"}}, token=admin
    )
    assert status == 400
    assert errors[0]["extensions"]["code"] == "BAD_REQUEST"
    assert await row_counts(db) == before


@pytest.mark.parametrize(
    "header",
    ["Bearer bg_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer ", "bg_without_scheme"],
)
async def test_bad_authorization_header_is_401(api: Api, db: Database, header: str) -> None:
    response = await api.post(VIEWER, headers={"authorization": header})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_disabled_token_is_unknown(api: Api, db: Database) -> None:
    _, secret = await make_token(db, role=TokenRole.READER, enabled=False)
    response = await api.post(VIEWER, token=secret)
    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_expired_token_is_unknown(api: Api, db: Database) -> None:
    _, secret = await make_token(
        db, role=TokenRole.READER, expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    response = await api.post(VIEWER, token=secret)
    assert response.status_code == 401


SET_ENABLED = """
mutation($id: ID!, $enabled: Boolean!) {
  setTokenEnabled(id: $id, enabled: $enabled) {
    __typename
    ... on TokenUpdated { token { owner enabled } }
    ... on NotFound { code message }
  }
}"""


async def test_admin_disables_then_enables_a_token(api: Api, db: Database) -> None:
    _, admin = await make_token(db)
    created = (await api.data(CREATE, {"input": {"owner": "w", "role": "READER"}}, token=admin))[
        "createToken"
    ]
    token_id, secret = created["token"]["id"], created["secret"]

    off = await api.data(SET_ENABLED, {"id": token_id, "enabled": False}, token=admin)
    assert off["setTokenEnabled"] == {
        "__typename": "TokenUpdated",
        "token": {"owner": "w", "enabled": False},
    }
    assert (await api.post(VIEWER, token=secret)).status_code == 401

    await api.data(SET_ENABLED, {"id": token_id, "enabled": True}, token=admin)
    assert (await api.data(VIEWER, token=secret))["viewer"]["owner"] == "w"


@pytest.mark.parametrize("bad_id", ["VG9rZW46OTk5OQ==", "V29ya3NwYWNlOjE=", "not-base64!"])
async def test_set_enabled_on_unknown_or_foreign_id_is_not_found(
    api: Api, db: Database, bad_id: str
) -> None:
    # Token:9999, Workspace:1 (another type), and garbage.
    _, admin = await make_token(db)
    before = await row_counts(db)
    response = await api.post(SET_ENABLED, {"id": bad_id, "enabled": False}, token=admin)
    body = response.json()
    if "errors" in body:  # an id that is not even a global id fails to parse
        assert body["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    else:
        assert body["data"]["setTokenEnabled"]["__typename"] == "NotFound"
        assert body["data"]["setTokenEnabled"]["code"] == "NOT_FOUND"
    assert await row_counts(db) == before


async def test_reader_gets_forbidden_even_with_a_malformed_id(api: Api, db: Database) -> None:
    _, reader = await make_token(db, role=TokenRole.READER)
    status, errors = await api.errors(
        SET_ENABLED, {"id": "VG9rZW46OTk5OQ==", "enabled": False}, token=reader
    )
    assert (status, errors[0]["extensions"]["code"]) == (403, "FORBIDDEN")


async def test_last_used_is_recorded(api: Api, db: Database) -> None:
    token, secret = await make_token(db, role=TokenRole.READER)
    assert token.last_used_at is None
    await api.data(VIEWER, token=secret)
    async with db.read_session() as s:
        used = await s.scalar(select(Token.last_used_at).where(Token.id == token.id))
    assert used is not None
    assert datetime.now(UTC) - used < timedelta(minutes=1)
