"""Task implementations the fleet runs, by the name in a task type's `implementation`.

Built-ins are here; packages add their own through the entry point group
``batchgraph.implementations`` (name = callable). A callable takes the job's
parameters (a dict) and returns the result (a dict), sync or async; it raises
TaskFailure to fail with a code and a category.

One that also takes a second argument receives a ``JobContext``: the job's input
artifacts with a local path for each file (``context.inputs``), a scratch folder
(removed after the run) and ``context.output(...)`` to make output artifacts with
files. Outputs are stored while the job runs and recorded when it completes.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from db.enums import RelationType
from domain.jobs.execution import TaskFailure

Implementation = Callable[..., dict[str, Any] | Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class InputFile:
    path: str
    size: int
    sha256: str
    content_type: str
    local_path: Path  # read-only: the store's own file, or a copy in the scratch folder


@dataclass(frozen=True, slots=True)
class InputArtifact:
    id: int
    category: str
    data: dict[str, Any]
    files: list[InputFile]


@dataclass(frozen=True, slots=True)
class DeclaredOutput:
    category: str
    data: dict[str, Any]
    files: dict[str, Path]
    relations: tuple[tuple[RelationType, int], ...]


@dataclass
class JobContext:
    """What an implementation that asks for it gets besides its parameters."""

    job_id: int
    inputs: list[InputArtifact]
    scratch: Path
    outputs: list[DeclaredOutput] = field(default_factory=list)

    def output(
        self,
        category: str,
        *,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, Path | bytes] | None = None,
        built_using: Sequence[InputArtifact | int] = (),
        relations: Sequence[tuple[RelationType, int]] = (),
    ) -> None:
        """Make an output artifact: ``files`` maps its paths to local files (or bytes);
        ``built_using`` adds BUILT_USING relations to those artifacts."""
        placed: dict[str, Path] = {}
        for i, (path, content) in enumerate((files or {}).items()):
            if isinstance(content, bytes):
                target = self.scratch / f"output-{len(self.outputs)}-{i}"
                target.write_bytes(content)
                content = target
            placed[path] = content
        links = [
            (RelationType.BUILT_USING, a.id if isinstance(a, InputArtifact) else int(a))
            for a in built_using
        ]
        self.outputs.append(
            DeclaredOutput(category, dict(data or {}), placed, (*links, *relations))
        )


def wants_context(implementation: Implementation) -> bool:
    """Whether it takes a second argument (the JobContext)."""
    try:
        parameters = list(inspect.signature(implementation).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [
        p
        for p in parameters
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return len(positional) >= 2 or any(p.kind is p.VAR_POSITIONAL for p in positional)


ENTRY_POINT_GROUP = "batchgraph.implementations"


def echo(parameters: dict[str, Any]) -> dict[str, Any]:
    """Returns its parameters: the no-op of benchmarks and smoke tests."""
    return dict(parameters)


async def sleep(parameters: dict[str, Any]) -> dict[str, Any]:
    """Sleeps ``seconds`` (default 1): for time limits and cancellation."""
    seconds = float(parameters.get("seconds", 1))
    await asyncio.sleep(seconds)
    return {"slept": seconds}


def fail(parameters: dict[str, Any]) -> dict[str, Any]:
    """Fails with ``code`` and ``category`` (DOMAIN by default; INFRASTRUCTURE retries)."""
    raise TaskFailure(
        code=str(parameters.get("code", "FAILED_ON_PURPOSE")),
        message=str(parameters.get("message", "builtin.fail was asked to fail")),
        category=str(parameters.get("category", "DOMAIN")),
    )


MAX_SIMULATE_SECONDS = 60.0


async def simulate(parameters: dict[str, Any]) -> dict[str, Any]:
    """A stand-in for real work you can watch: waits ``seconds`` (default 1, at most 60)
    and returns its parameters; with ``failWith: {code, message, category}`` it fails
    that way instead (after the wait)."""
    try:
        seconds = min(max(float(parameters.get("seconds", 1)), 0.0), MAX_SIMULATE_SECONDS)
    except (TypeError, ValueError):
        raise TaskFailure("PARAMETERS_INVALID", "seconds must be a number") from None
    await asyncio.sleep(seconds)
    failure = parameters.get("failWith")
    if isinstance(failure, dict):
        raise TaskFailure(
            code=str(failure.get("code", "SIMULATED_FAILURE")),
            message=str(failure.get("message", "builtin.simulate was asked to fail")),
            category=str(failure.get("category", "DOMAIN")),
        )
    return dict(parameters)


def checksum(parameters: dict[str, Any], context: JobContext) -> dict[str, Any]:
    """Real work on files: checks every input file against its sha256 and counts its
    lines and words; writes SHA256SUMS (as ``sha256sum`` does) in an output artifact of
    category ``checksums``, related BUILT_USING its inputs."""
    lines: list[str] = []
    report: list[dict[str, Any]] = []
    for artifact in context.inputs:
        for f in artifact.files:
            digest = hashlib.sha256()
            words = newlines = 0
            with open(f.local_path, "rb") as handle:
                while block := handle.read(1 << 20):
                    digest.update(block)
                    newlines += block.count(b"\n")
                    words += len(block.split())  # approximate across block boundaries
            if digest.hexdigest() != f.sha256:
                raise TaskFailure(
                    "CHECKSUM_MISMATCH", f"artifact {artifact.id} {f.path}: bytes differ", "DOMAIN"
                )
            lines.append(f"{f.sha256}  {artifact.id}/{f.path}")
            report.append(
                {
                    "path": f"{artifact.id}/{f.path}",
                    "bytes": f.size,
                    "lines": newlines,
                    "words": words,
                }
            )
    total = {
        "files": len(report),
        "bytes": sum(r["bytes"] for r in report),
        "words": sum(r["words"] for r in report),
    }
    context.output(
        str(parameters.get("category") or "checksums"),
        data={**total, "perFile": report[:1000]},
        files={"SHA256SUMS": ("\n".join(lines) + "\n").encode() if lines else b""},
        built_using=context.inputs,
    )
    return total


BUILTINS: dict[str, Implementation] = {
    "builtin.checksum": checksum,
    "builtin.echo": echo,
    "builtin.simulate": simulate,
    "builtin.sleep": sleep,
    "builtin.fail": fail,
}


@cache
def registry() -> dict[str, Implementation]:
    found = dict(BUILTINS)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found[point.name] = point.load()
    return found
