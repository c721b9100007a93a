"""One typed settings object, documented in one README table; one log format."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from db.config import Settings, SettingsError, env_name, load_settings
from db.logs import configure_logging

README = Path(__file__).resolve().parents[1] / "README.md"


def _configuration_table() -> set[str]:
    text = README.read_text()
    section = text[text.index("## Configuration") :]
    section = section[: section.index("\n## ", 1)]
    return set(re.findall(r"^\| `([A-Z_]+)`", section, flags=re.M))


def test_every_setting_is_in_the_readme_table_and_nothing_else() -> None:
    variables = {env_name(field) for field in Settings.model_fields}
    assert _configuration_table() == variables


def test_settings_are_typed_and_refuse_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHGRAPH_CORS_ORIGINS", "http://a.example, http://b.example")
    monkeypatch.setenv("BATCHGRAPH_INTROSPECTION", "false")
    monkeypatch.setenv("BATCHGRAPH_MAX_DEPTH", "")  # empty: the default
    monkeypatch.setenv("BATCHGRAPH_LOG_LEVEL", "debug")
    found = load_settings()
    assert found.cors_origins == ("http://a.example", "http://b.example")
    assert found.introspection is False
    assert found.max_depth == 12
    assert found.log_level == "DEBUG"
    monkeypatch.setenv("BATCHGRAPH_LOG_FORMAT", "xml")
    monkeypatch.setenv("BATCHGRAPH_BROKER_NAMESPACE", "no spaces allowed")
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert "BATCHGRAPH_LOG_FORMAT" in str(refused.value)
    assert "BATCHGRAPH_BROKER_NAMESPACE" in str(refused.value)


def test_the_token_setting_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHGRAPH_TOKEN", "bg_secret_value")
    found = load_settings()
    assert found.token is not None
    assert found.token.get_secret_value() == "bg_secret_value"
    assert "bg_secret_value" not in repr(found)
    assert "bg_secret_value" not in str(found.model_dump())


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    stream = io.StringIO()
    yield stream
    root.handlers[:] = handlers
    root.setLevel(level)


def _emit(stream: io.StringIO, fmt: str) -> list[str]:
    configure_logging(role="worker", fmt=fmt)  # type: ignore[arg-type]
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]
    log = logging.getLogger("jobs.example")
    log.info("job %s done", 7)
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("job %s failed", 8)
    return stream.getvalue().splitlines()


def test_text_format(captured: io.StringIO) -> None:
    lines = _emit(captured, "text")
    assert re.match(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO +worker:\d+ jobs\.example: job 7 done$", lines[0]
    )
    assert "ERROR" in lines[1]
    assert "ValueError: boom" in lines[-1]


def test_json_format(captured: io.StringIO) -> None:
    first, second = (json.loads(line) for line in _emit(captured, "json"))
    assert first["level"] == "INFO"
    assert first["role"] == "worker"
    assert first["logger"] == "jobs.example"
    assert first["message"] == "job 7 done"
    assert "requestId" not in first
    assert second["level"] == "ERROR"
    assert "ValueError: boom" in second["exc"]


def test_access_lines_are_off_unless_asked_for(captured: io.StringIO) -> None:
    configure_logging(role="api")
    assert not logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
    configure_logging(role="api", access_log=True)
    assert logging.getLogger("uvicorn.access").isEnabledFor(logging.INFO)
