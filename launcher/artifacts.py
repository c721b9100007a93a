"""``batchgraph artifact upload|download``: files in and out of artifacts, with progress.

Uploads are resumable: each file's upload asks the server how much it holds and sends
the rest; a failed piece is retried from where the server says. An upload the
command could not finish is continued by running it again with ``--artifact ID``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from launcher import console, transfer
from launcher.client import ClientError
from launcher.remote import Token, Url, _client

artifact_app = typer.Typer(help="Upload and download artifacts' files.", no_args_is_help=True)

CREATE = """mutation Upload($input: CreateArtifactInput!) { createArtifact(input: $input) {
  __typename
  ... on ArtifactCreated { pathsToUpload artifact { id } }
  ... on ValidationFailed { message violations { path message } }
  ... on SchemaMismatch { message violations { path message } }
  ... on Error { code message } } }"""
FILES = """query Files($id: ID!, $after: String) { artifact(id: $id) { id category isComplete
  files(first: 100, after: $after) { pageInfo { hasNextPage endCursor }
    edges { node { path size sha256 isComplete downloadUrl } } } } }"""


def _files_of(paths: list[Path]) -> dict[str, Path]:
    """Artifact path → local file: a file by its name; a folder's files under its name."""
    found: dict[str, Path] = {}
    for given in paths:
        if given.is_dir():
            entries = [
                (p.relative_to(given.parent).as_posix(), p) for p in sorted(given.rglob("*"))
            ]
            entries = [(name, p) for name, p in entries if p.is_file()]
        elif given.is_file():
            entries = [(given.name, given)]
        else:
            raise ClientError(f"{given}: no such file or folder")
        for name, p in entries:
            if name in found:
                raise ClientError(f"two files would both be {name!r} in the artifact")
            found[name] = p
    return found


def _db_id(global_id: str) -> int:
    kind, _, number = base64.b64decode(global_id).decode().partition(":")
    if kind != "Artifact" or not number.isdigit():
        raise ClientError(f"{global_id!r} is not an artifact id")
    return int(number)


def _root(graphql_url: str) -> str:
    return graphql_url.rsplit("/graphql", 1)[0]


def _bars() -> Progress:
    return Progress(
        TextColumn("{task.description}", justify="left"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console.out,
    )


@artifact_app.command("upload")
def upload(
    paths: Annotated[list[Path], typer.Argument(help="files, or folders (uploaded whole)")],
    category: Annotated[str, typer.Option(help="the artifact's category")] = "files",
    workspace: Annotated[str, typer.Option(help="where the artifact goes")] = "default",
    data: Annotated[str | None, typer.Option(help="its data, a JSON object")] = None,
    expire_after: Annotated[
        int | None, typer.Option(help="seconds until it expires (0: never)")
    ] = None,
    artifact: Annotated[
        str | None, typer.Option(help="continue uploading into this artifact (its id)")
    ] = None,
    url: Url = None,
    token: Token = None,
) -> int:
    """Create an artifact from files and upload them, resumably, with progress."""
    api = _client(url, token)
    files = _files_of(paths)
    digests = {name: transfer.digest(p) for name, p in files.items()}
    if artifact is None:
        try:
            parsed = json.loads(data) if data is not None else {}
        except ValueError as exc:
            raise ClientError(f"--data is not JSON: {exc}") from None
        created = api.call(
            CREATE,
            {
                "input": {
                    "workspace": workspace,
                    "category": category,
                    "data": parsed,
                    "expireAfterSeconds": expire_after,
                    "files": [
                        {"path": name, "size": size, "sha256": sha}
                        for name, (sha, size) in digests.items()
                    ],
                }
            },
        )["createArtifact"]
        if created["__typename"] != "ArtifactCreated":
            problems = created.get("violations") or []
            raise ClientError(
                f"{created.get('code', created['__typename'])}: {created.get('message', '')}"
                + "".join(f"\n  {p['path']}: {p['message']}" for p in problems[:10])
            )
        artifact = created["artifact"]["id"]
        missing = list(created["pathsToUpload"])
    else:
        known = _remote_files(api, artifact)
        missing = sorted(p for p, f in known.items() if not f["isComplete"] and p in files)
    assert artifact is not None
    console.out.print(
        f"artifact {artifact}: {len(files)} files, {len(missing)} to upload",
        markup=False,
        soft_wrap=True,
    )
    root = f"{_root(api.url)}/artifacts/{_db_id(artifact)}/files/"
    try:
        with _bars() as bars:
            for name in missing:
                _, size = digests[name]
                task = bars.add_task(console.shown(name), total=size)

                def resumed(at: int, name: str = name) -> None:
                    if at:
                        bars.console.print(
                            f"{console.shown(name, markup=False)}: the server holds {at:,} bytes;"
                            " resuming there",
                            markup=False,
                        )

                transfer.upload(
                    root + quote(name),
                    api.token,
                    files[name],
                    size,
                    _updater(bars, task),
                    on_resume=resumed,
                )
    except (transfer.TransferError, OSError, KeyboardInterrupt) as exc:
        console.error(
            f"the upload stopped ({type(exc).__name__}: {exc}); continue it with:"
            f" batchgraph artifact upload {' '.join(str(p) for p in paths)} --artifact {artifact}"
        )
        return 130 if isinstance(exc, KeyboardInterrupt) else 2
    console.out.print(f"artifact {artifact} is complete", markup=False, soft_wrap=True)
    return 0


def _updater(bars: Progress, task: TaskID) -> transfer.Progress:
    def update(done: int) -> None:
        bars.update(task, completed=done)

    return update


def _remote_files(api: Any, artifact: str) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    after = None
    while True:
        page = api.call(FILES, {"id": artifact, "after": after})["artifact"]
        if page is None:
            raise ClientError(f"NOT_FOUND: no artifact {artifact!r} you may read")
        for edge in page["files"]["edges"]:
            found[edge["node"]["path"]] = edge["node"]
        info = page["files"]["pageInfo"]
        if not info["hasNextPage"]:
            return found
        after = info["endCursor"]


@artifact_app.command("download")
def download(
    id: Annotated[str, typer.Argument(help="the artifact's id")],
    target: Annotated[
        Path | None, typer.Argument(help="a folder [default: ./ARTIFACT-NUMBER]")
    ] = None,
    url: Url = None,
    token: Token = None,
) -> int:
    """Download an artifact's files (resuming partial ones), checking each sha256."""
    api = _client(url, token)
    files = _remote_files(api, id)
    folder = target or Path(str(_db_id(id)))
    incomplete = sorted(p for p, f in files.items() if not f["isComplete"])
    if incomplete:
        raise ClientError(f"not uploaded yet: {', '.join(incomplete[:5])}")
    fetched = 0
    with _bars() as bars:
        for path, f in sorted(files.items()):
            local = folder / path
            if folder.resolve() not in local.resolve().parents:
                raise ClientError(f"refusing to write outside {folder}: {path!r}")
            task = bars.add_task(console.shown(path), total=int(f["size"]))
            if transfer.download(
                f["downloadUrl"],
                api.token,
                local,
                int(f["size"]),
                f["sha256"],
                _updater(bars, task),
            ):
                fetched += 1
    console.out.print(
        f"{len(files)} files in {folder} ({fetched} downloaded, {len(files) - fetched} there"
        " already)",
        markup=False,
        soft_wrap=True,
    )
    return 0
