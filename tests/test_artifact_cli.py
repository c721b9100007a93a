"""`batchgraph artifact upload|download` against a real server: progress, resumption."""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from db.enums import TokenRole
from db.session import Database
from launcher import transfer
from launcher.cli import main
from tests.factories import make_token


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
async def cli_env(live_server: str, db: Database, monkeypatch: pytest.MonkeyPatch) -> str:
    _, token = await make_token(db, role=TokenRole.WRITER, owner="cli")
    monkeypatch.setenv("BATCHGRAPH_URL", f"{live_server}/graphql")
    monkeypatch.setenv("BATCHGRAPH_TOKEN", token)
    monkeypatch.setenv("COLUMNS", "100")
    return token


async def run(*args: str) -> int:
    return await asyncio.to_thread(main, list(args))


def artifact_id(out: str) -> str:
    found = re.search(r"artifact (\S+): ", out)
    assert found, out
    return found.group(1)


async def test_upload_then_download(
    cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "notes.txt").write_text("some words here\n")
    folder = tmp_path / "pages"
    (folder / "sub").mkdir(parents=True)
    (folder / "one.txt").write_text("one")
    (folder / "sub" / "two.bin").write_bytes(os.urandom(200_000))
    assert (
        await run(
            "artifact",
            "upload",
            str(tmp_path / "notes.txt"),
            str(folder),
            "--category",
            "text",
            "--data",
            '{"source": "cli"}',
        )
        == 0
    )
    out = capsys.readouterr().out
    artifact = artifact_id(out)
    assert "3 files, 3 to upload" in out
    assert "is complete" in out
    target = tmp_path / "back"
    assert await run("artifact", "download", artifact, str(target)) == 0
    assert (target / "notes.txt").read_text() == "some words here\n"
    assert (target / "pages/sub/two.bin").read_bytes() == (folder / "sub/two.bin").read_bytes()
    assert "3 downloaded" in capsys.readouterr().out
    # A partial local file continues with a Range request; complete ones are kept.
    os.truncate(target / "pages/sub/two.bin", 1000)
    assert await run("artifact", "download", artifact, str(target)) == 0
    assert "1 downloaded, 2 there already" in capsys.readouterr().out
    assert (target / "pages/sub/two.bin").read_bytes() == (folder / "sub/two.bin").read_bytes()


async def test_an_interrupted_upload_resumes_where_the_server_says(
    cli_env: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = os.urandom(6 * 1024 * 1024)
    big = tmp_path / "big.bin"
    big.write_bytes(data)
    original = transfer._Slice.read
    calls = {"n": 0}

    def flaky(self: transfer._Slice, size: int = -1) -> bytes:
        calls["n"] += 1
        if calls["n"] == 4:  # the connection drops after 3 MiB went out
            raise ConnectionResetError("the network went away")
        return original(self, size)

    monkeypatch.setattr(transfer._Slice, "read", flaky)
    assert await run("artifact", "upload", str(big)) == 0
    out = capsys.readouterr().out
    assert calls["n"] > 4  # it went on after the failure
    assert "is complete" in out
    target = tmp_path / "back"
    assert await run("artifact", "download", artifact_id(out), str(target)) == 0
    assert (target / "big.bin").read_bytes() == data


async def test_a_stopped_upload_continues_into_the_same_artifact(
    cli_env: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("first")
    b.write_bytes(os.urandom(3 * 1024 * 1024))
    original = transfer.upload

    def stop_at_b(url: str, token: str, path: Path, size: int, progress, **kwargs):  # type: ignore[no-untyped-def]
        def interrupted(done: int) -> None:
            progress(done)
            if done >= 2 * 1024 * 1024:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the third piece

        if url.endswith("/b.txt"):
            kwargs["piece"] = 1024 * 1024
            return original(url, token, path, size, interrupted, **kwargs)
        return original(url, token, path, size, progress, **kwargs)

    monkeypatch.setattr("launcher.artifacts.transfer.upload", stop_at_b)
    assert await run("artifact", "upload", str(a), str(b)) == 130
    captured = capsys.readouterr()
    assert "continue it with" in captured.err
    artifact = artifact_id(captured.out)
    monkeypatch.setattr("launcher.artifacts.transfer.upload", original)
    assert await run("artifact", "upload", str(a), str(b), "--artifact", artifact) == 0
    out = capsys.readouterr().out
    assert "2 files, 1 to upload" in out
    held = re.search(r"b\.txt: the server holds ([\d,]+) bytes; resuming there", out)
    assert held, out
    assert int(held.group(1).replace(",", "")) >= 1024 * 1024  # what arrived was kept
    target = tmp_path / "back"
    assert await run("artifact", "download", artifact, str(target)) == 0
    assert (target / "b.txt").read_bytes() == b.read_bytes()
