"""Helpers for artifact tests: create through GraphQL, upload over HTTP like a client."""

from __future__ import annotations

import hashlib
from typing import Any

from tests.graphql.conftest import Api

CREATE = """mutation Create($input: CreateArtifactInput!) { createArtifact(input: $input) {
  __typename
  ... on ArtifactCreated { pathsToUpload artifact { id isComplete category data
    files { edges { node { path size sha256 contentType isComplete uploadUrl downloadUrl } } } } }
  ... on ValidationFailed { code message violations { path message } }
  ... on SchemaMismatch { code message violations { path message } }
  ... on Error { code message } } }"""


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_input(path: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"path": path, "size": len(data), "sha256": sha(data), **extra}


async def create(
    api: Api,
    token: str,
    files: dict[str, bytes],
    *,
    category: str = "text",
    workspace: str | None = "default",
    **extra: Any,
) -> dict[str, Any]:
    found = await api.data(
        CREATE,
        {
            "input": {
                "category": category,
                "workspace": workspace,
                "files": [file_input(p, d) for p, d in files.items()],
                **extra,
            }
        },
        token=token,
    )
    return found["createArtifact"]  # type: ignore[no-any-return]


def urls(created: dict[str, Any]) -> dict[str, str]:
    return {
        e["node"]["path"]: e["node"]["uploadUrl"] for e in created["artifact"]["files"]["edges"]
    }


async def upload(api: Api, token: str, url: str, data: bytes) -> Any:
    return await api.client.put(url, content=data, headers={"authorization": f"Bearer {token}"})


async def upload_all(
    api: Api, token: str, created: dict[str, Any], files: dict[str, bytes]
) -> None:
    found = urls(created)
    for path in created["pathsToUpload"]:
        response = await upload(api, token, found[path], files[path])
        assert response.status_code == 201, response.text
