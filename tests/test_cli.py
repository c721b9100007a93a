"""The batchgraph command, called as a user would (in-process)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from db.models import Token
from db.session import Database
from domain.auth.rules import hash_secret
from graphql_api.cli import main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() installs its log handler on stderr; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_export_schema_reproduces_the_committed_file(tmp_path: Path) -> None:
    out = tmp_path / "schema.graphql"
    assert main(["export-schema", "--output", str(out)]) == 0
    assert out.read_text() == (REPO / "schema.graphql").read_text()


async def test_token_create_prints_a_working_secret_once(
    db: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("BROKER_URL", "redis://127.0.0.1:1/0")  # not used by this command
    import asyncio

    code = await asyncio.to_thread(
        main, ["token", "create", "--role", "writer", "--owner", "deploy-bot"]
    )
    assert code == 0
    out, err = capsys.readouterr()
    secret = out.strip()
    assert secret.startswith("bg_")
    assert "shown only once" in err
    assert secret not in err
    async with db.read_session() as s:
        row = await s.scalar(select(Token).where(Token.owner == "deploy-bot"))
    assert row is not None
    assert row.secret_hash == hash_secret(secret)
    assert row.role == "WRITER"


def test_token_create_refuses_an_unknown_role(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["token", "create", "--role", "root", "--owner", "x"])
    assert exited.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
