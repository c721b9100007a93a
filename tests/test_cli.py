"""The batchgraph command, called as a user would (in-process)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from db.config import load_settings
from db.models import Token
from db.session import Database
from domain.auth.rules import hash_secret
from launcher.cli import main

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
    assert hash_secret(secret) not in out + err  # nothing derived from the secret
    async with db.read_session() as s:
        row = await s.scalar(select(Token).where(Token.owner == "deploy-bot"))
    assert row is not None
    assert row.secret_hash == hash_secret(secret)
    assert row.role == "WRITER"


def test_token_create_refuses_an_unknown_role(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["token", "create", "--role", "root", "--owner", "x"]) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--role'" in err
    assert "Traceback" not in err


def test_the_data_folder_is_the_projects_wherever_a_command_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BATCHGRAPH_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert load_settings().home == REPO / ".batchgraph"
    monkeypatch.setenv("BATCHGRAPH_HOME", "elsewhere")
    assert load_settings().home == tmp_path / "elsewhere"


def test_token_create_never_makes_a_new_empty_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The newcomer's case: run from another folder, there is no database there."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("BATCHGRAPH_HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert main(["token", "create", "--role", "admin", "--owner", "you"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "there is no database in" in err
    assert "batchgraph serve" in err
    assert "Traceback" not in err
    assert not (tmp_path / "home").exists()
    assert not (tmp_path / ".batchgraph").exists()


async def test_token_create_on_an_unmigrated_database_says_what_to_run(
    server_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from tests.conftest import _admin, _with_database

    name = f"batchgraph_unmigrated_{os.getpid()}"
    await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    try:
        monkeypatch.setenv("DATABASE_URL", _with_database(server_url, name))
        code = await asyncio.to_thread(
            main, ["token", "create", "--role", "admin", "--owner", "you"]
        )
        out, err = capsys.readouterr()
        assert code == 2
        assert out == ""
        assert "not up to date" in err
        assert "batchgraph migrate" in err
        assert "Traceback" not in err
    finally:
        await _admin(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_bad_setting_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BATCHGRAPH_PORT", "eighty")
    assert main(["batches"]) == 2
    err = capsys.readouterr().err
    assert "BATCHGRAPH_PORT" in err
    assert "eighty" not in err  # values are not echoed: they may be secrets
    assert "Traceback" not in err
