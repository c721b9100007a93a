"""Artifacts through GraphQL, their bytes over HTTP: creation, uploads, downloads."""

from __future__ import annotations

import os

from db.enums import TokenRole
from db.session import Database
from tests.conftest import row_counts
from tests.factories import make_token
from tests.graphql.artifact_helpers import create, sha, upload, upload_all, urls
from tests.graphql.conftest import Api


async def test_create_upload_download(api: Api, db: Database) -> None:
    _, token = await make_token(db, role=TokenRole.WRITER)
    files = {"b/data.bin": os.urandom(300_000), "a.txt": b"hello\n", "empty": b""}
    created = await create(api, token, files, data={"note": "x"})
    assert created["__typename"] == "ArtifactCreated"
    # Sorted; the empty file is complete at once.
    assert created["pathsToUpload"] == ["a.txt", "b/data.bin"]
    assert created["artifact"]["isComplete"] is False
    nodes = {e["node"]["path"]: e["node"] for e in created["artifact"]["files"]["edges"]}
    assert nodes["a.txt"]["contentType"] == "text/plain"
    assert nodes["empty"]["isComplete"] is True
    await upload_all(api, token, created, files)
    # A complete file uploaded again: a no-op success.
    again = await upload(api, token, urls(created)["a.txt"], files["a.txt"])
    assert again.status_code == 200
    assert again.json() == {"path": "a.txt", "size": 6, "received": 6, "complete": True}

    auth = {"authorization": f"Bearer {token}"}
    url = nodes["b/data.bin"]["downloadUrl"]
    whole = await api.client.get(url, headers=auth)
    assert whole.status_code == 200
    assert whole.content == files["b/data.bin"]
    assert whole.headers["etag"] == f'"{sha(files["b/data.bin"])}"'
    assert whole.headers["content-type"] == "application/octet-stream"
    part = await api.client.get(url, headers={**auth, "range": "bytes=10-19"})
    assert part.status_code == 206
    assert part.content == files["b/data.bin"][10:20]
    assert part.headers["content-range"] == "bytes 10-19/300000"
    tail = await api.client.get(url, headers={**auth, "range": "bytes=-5"})
    assert tail.content == files["b/data.bin"][-5:]
    beyond = await api.client.get(url, headers={**auth, "range": "bytes=300000-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == "bytes */300000"
    assert beyond.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    cached = await api.client.get(url, headers={**auth, "if-none-match": whole.headers["etag"]})
    assert cached.status_code == 304
    empty = await api.client.get(nodes["empty"]["downloadUrl"], headers=auth)
    assert (empty.status_code, empty.content) == (200, b"")

    found = await api.data(
        "query($id: ID!) { artifact(id: $id) { isComplete fileCount totalSize data } }",
        {"id": created["artifact"]["id"]},
        token=token,
    )
    assert found["artifact"] == {
        "isComplete": True,
        "fileCount": 3,
        "totalSize": 300_006.0,
        "data": {"note": "x"},
    }


async def test_files_stored_before_are_complete_at_once(api: Api, db: Database) -> None:
    _, token = await make_token(db, role=TokenRole.WRITER)
    files = {"x.txt": b"shared bytes"}
    first = await create(api, token, files)
    await upload_all(api, token, first, files)
    second = await create(api, token, {"other/name.txt": b"shared bytes"})
    assert second["pathsToUpload"] == []
    assert second["artifact"]["isComplete"] is True


async def test_resumable_upload_and_its_refusals(api: Api, db: Database) -> None:
    _, token = await make_token(db, role=TokenRole.WRITER)
    data = os.urandom(1000)
    created = await create(api, token, {"f": data})
    url = urls(created)["f"]
    auth = {"authorization": f"Bearer {token}"}

    async def put(body: bytes, content_range: str) -> tuple[int, dict]:  # type: ignore[type-arg]
        r = await api.client.put(
            url, content=body, headers={**auth, "content-range": content_range}
        )
        return r.status_code, r.json() | (
            {"range": r.headers["range"]} if "range" in r.headers else {}
        )

    assert await put(b"", "bytes */1000") == (
        200,
        {"path": "f", "size": 1000, "received": 0, "complete": False},
    )
    status, body = await put(data[:100], "bytes 0-99/1000")
    assert (status, body["received"], body["range"]) == (200, 100, "bytes=0-99")
    status, body = await put(b"", "bytes */1000")
    assert (body["received"], body["range"]) == (100, "bytes=0-99")

    def refused(found: tuple[int, dict], status: int = 400) -> str:  # type: ignore[type-arg]
        assert found[0] == status, found
        error = found[1]["errors"][0]
        assert error["extensions"]["code"] == ("BAD_REQUEST" if status == 400 else "CONFLICT")
        assert error["extensions"]["requestId"]
        return str(error["message"])

    assert "continue at byte 100" in refused(await put(data[200:300], "bytes 200-299/1000"))  # gap
    assert "overruns" in refused(await put(data[900:] + b"x", "bytes 900-1000/1000"))
    assert "Content-Range must be" in refused(await put(data[100:200], "bytes 100-/1000"))
    assert "Content-Range must be" in refused(await put(data[100:200], "items 100-199/1000"))
    assert "declared as 1000 bytes" in refused(await put(data[100:200], "bytes 100-199/999"))
    assert "holds 100" in refused(await put(data[100:150], "bytes 100-199/1000"))  # short body
    assert "holds 100" in refused(await put(data[100:250], "bytes 100-199/1000"))  # long body
    status, body = await put(b"", "bytes */1000")
    assert body["received"] == 100  # nothing of the refused bodies was kept
    # An overlap (bytes resent) is fine: they are skipped.
    status, body = await put(data[50:600], "bytes 50-599/1000")
    assert (status, body["received"]) == (200, 600)
    status, body = await put(data[600:], "bytes 600-999/1000")
    assert (status, body["complete"]) == (201, True)


async def test_a_wrong_hash_discards_the_upload(api: Api, db: Database) -> None:
    _, token = await make_token(db, role=TokenRole.WRITER)
    data = b"the declared content"
    created = await create(api, token, {"f": data})
    url = urls(created)["f"]
    before = await row_counts(db)
    response = await upload(api, token, url, b"the delivered content"[: len(data)])
    assert response.status_code == 409
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "CONFLICT"
    assert "discarded" in error["message"]
    assert await row_counts(db) == before  # not recorded as stored
    probe = await api.client.put(
        url,
        headers={"authorization": f"Bearer {token}", "content-range": f"bytes */{len(data)}"},
    )
    assert probe.json()["received"] == 0
    found = await api.data(
        "query($id: ID!) { artifact(id: $id) { isComplete } }",
        {"id": created["artifact"]["id"]},
        token=token,
    )
    assert found["artifact"]["isComplete"] is False
    assert (await upload(api, token, url, data)).status_code == 201


async def test_bad_paths_and_duplicates_write_nothing(api: Api, db: Database) -> None:
    _, token = await make_token(db, role=TokenRole.WRITER)
    before = await row_counts(db)
    bad = ["../up", "/abs", "a/../../b", "back\\slash", "a//b", "./a", "dup", "dup"]
    created = await api.data(
        """mutation($input: CreateArtifactInput!) { createArtifact(input: $input) {
        __typename ... on ValidationFailed { violations { path message } } } }""",
        {
            "input": {
                "workspace": "default",
                "category": "text",
                "files": [{"path": p, "size": 1, "sha256": sha(b"x")} for p in bad]
                + [{"path": "ok", "size": -1, "sha256": "ABC"}],
            }
        },
        token=token,
    )
    failed = created["createArtifact"]
    assert failed["__typename"] == "ValidationFailed"
    paths = {v["path"] for v in failed["violations"]}
    assert {f"$.files[{i}].path" for i in range(6)} | {"$.files[7].path"} <= paths
    assert {"$.files[8].size", "$.files[8].sha256"} <= paths
    assert await row_counts(db) == before
    # NUL characters are refused at the door, in any string (the API's JSON policy).
    status, errors = await api.errors(
        """mutation($input: CreateArtifactInput!) {
        createArtifact(input: $input) { __typename } }""",
        {
            "input": {
                "workspace": "default",
                "category": "text",
                "files": [{"path": "nul\u0000x", "size": 1, "sha256": sha(b"x")}],
            }
        },
        token=token,
    )
    assert (status, errors[0]["extensions"]["code"]) == (400, "BAD_REQUEST")
    assert await row_counts(db) == before


async def test_data_against_the_category_schema(api: Api, db: Database) -> None:
    _, token = await make_token(db, role=TokenRole.WRITER)
    declared = await api.data(
        """mutation { createArtifactCategory(input: {workspace: "default", name: "scan",
          dataSchema: {type: "object", required: ["dpi"], properties: {dpi: {type: "integer"}}}})
          { __typename } }""",
        token=token,
    )
    assert declared["createArtifactCategory"]["__typename"] == "ArtifactCategoryCreated"
    before = await row_counts(db)
    bad = await create(api, token, {}, category="scan", data={"dpi": "high"})
    assert bad["__typename"] == "SchemaMismatch"
    assert bad["violations"][0]["path"] == "$.data.dpi"
    assert await row_counts(db) == before
    good = await create(api, token, {}, category="scan", data={"dpi": 300})
    assert good["__typename"] == "ArtifactCreated"
    assert good["artifact"]["isComplete"] is True  # no files: complete


async def test_permissions_are_those_of_graphql(api: Api, db: Database) -> None:
    _, writer = await make_token(db, role=TokenRole.WRITER)
    _, reader = await make_token(db, role=TokenRole.READER, owner="r")
    files = {"f": b"bytes"}
    created = await create(api, writer, files)
    url = urls(created)["f"]
    status, errors = await api.errors(
        """mutation { createArtifact(input: {workspace: "default", category: "x"}) {
        __typename } }""",
        token=reader,
    )
    assert (status, errors[0]["extensions"]["code"]) == (403, "FORBIDDEN")
    refused = await upload(api, reader, url, files["f"])
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    anonymous = await api.client.put(url, content=files["f"])
    assert anonymous.status_code == 404  # a private workspace looks empty without a token
    bad_token = await api.client.put(url, content=b"x", headers={"authorization": "Bearer nope"})
    assert bad_token.status_code == 401
    assert (await upload(api, writer, url, files["f"])).status_code == 201
    assert (await api.client.get(url)).status_code == 404
    readable = await api.client.get(url, headers={"authorization": f"Bearer {reader}"})
    assert readable.content == b"bytes"
    missing = await api.client.get(
        url.replace("/f", "/nope"), headers={"authorization": f"Bearer {reader}"}
    )
    assert missing.status_code == 404
    dotdot = await api.client.get(
        url.replace("/f", "/a/%2E%2E/b"), headers={"authorization": f"Bearer {reader}"}
    )
    assert dotdot.status_code in (400, 404)


async def test_a_declared_size_that_lies(api: Api, db: Database) -> None:
    _, token = await make_token(db, role=TokenRole.WRITER)
    data = b"0123456789"
    created = await create(api, token, {"f": data})
    url = urls(created)["f"]
    for body in (data + b"more", data[:5]):  # more, then fewer bytes than declared
        response = await upload(api, token, url, body)
        assert response.status_code == 400
        error = response.json()["errors"][0]
        assert error["extensions"]["code"] == "BAD_REQUEST"
        assert "continue at byte 0" in error["message"]
    assert (await upload(api, token, url, data)).status_code == 201


RELATE = """mutation($s: ID!, $t: ID!, $k: ArtifactRelationType!) {
  addArtifactRelation(input: {source: $s, target: $t, type: $k}) { __typename
    ... on ArtifactRelationAdded { source { relations { type target { id } } } }
    ... on Error { code message } } }"""


async def test_relations_and_lineage_through_graphql(api: Api, db: Database) -> None:
    _, token = await make_token(db, role=TokenRole.WRITER)
    a = (await create(api, token, {}))["artifact"]["id"]
    b = (await create(api, token, {}))["artifact"]["id"]
    pending = (await create(api, token, {"x": b"x"}))["artifact"]["id"]

    async def relate(s: str, t: str, k: str = "BUILT_USING") -> dict:  # type: ignore[type-arg]
        return (await api.data(RELATE, {"s": s, "t": t, "k": k}, token=token))[
            "addArtifactRelation"
        ]

    added = await relate(a, b)
    assert added["source"]["relations"] == [{"type": "BUILT_USING", "target": {"id": b}}]
    assert (await relate(a, b))["__typename"] == "ArtifactRelationAdded"  # idempotent
    assert (await relate(a, a))["__typename"] == "ValidationFailed"
    assert (await relate(a, pending))["__typename"] == "Conflict"
    missing = await relate(a, "QXJ0aWZhY3Q6OTk5OQ==")
    assert (missing["__typename"], missing["code"]) == ("NotFound", "NOT_FOUND")
    status, errors = await api.errors(RELATE, {"s": a, "t": b, "k": "DEPENDS_ON"}, token=token)
    assert (status, errors[0]["extensions"]["code"]) == (400, "BAD_REQUEST")
    found = await api.data(
        """query($a: ID!, $b: ID!) { a: artifact(id: $a) { lineage { nodes { depth artifact { id } }
          edges { type source target } isTruncated } }
          b: artifact(id: $b) { relatedFrom(types: [BUILT_USING]) { source { id } }
            lineage(direction: DOWNSTREAM, types: [EXTENDS]) { nodes { depth } } } }""",
        {"a": a, "b": b},
        token=token,
    )
    assert found["a"]["lineage"] == {
        "nodes": [{"depth": 0, "artifact": {"id": a}}, {"depth": 1, "artifact": {"id": b}}],
        "edges": [{"type": "BUILT_USING", "source": a, "target": b}],
        "isTruncated": False,
    }
    assert found["b"]["relatedFrom"] == [{"source": {"id": a}}]
    assert found["b"]["lineage"]["nodes"] == [{"depth": 0}]
    status, errors = await api.errors(
        "query($a: ID!) { artifact(id: $a) { lineage(depth: 50) { isTruncated } } }",
        {"a": a},
        token=token,
    )
    assert errors[0]["extensions"]["code"] == "BAD_REQUEST"
    removed = await api.data(
        """mutation($s: ID!, $t: ID!) { removeArtifactRelation(input: {source: $s, target: $t,
        type: BUILT_USING}) { __typename ... on ArtifactRelationRemoved { removed } } }""",
        {"s": a, "t": b},
        token=token,
    )
    assert removed["removeArtifactRelation"] == {
        "__typename": "ArtifactRelationRemoved",
        "removed": True,
    }


async def test_a_workspace_on_an_s3_store(
    api: Api, db: Database, s3_server: dict[str, str]
) -> None:
    _, admin = await make_token(db, role=TokenRole.ADMIN)
    made = await api.data(
        """mutation($c: JSON!) { createFileStore(input: {name: "shared", backend: S3,
        configuration: $c}) { __typename
        ... on FileStoreCreated { fileStore { name backend } } } }""",
        {"c": {**s3_server, "prefix": "wt-test"}},
        token=admin,
    )
    assert made["createFileStore"]["fileStore"] == {"name": "shared", "backend": "S3"}
    bad = await api.data(
        """mutation { createFileStore(input: {name: "broken", backend: S3,
        configuration: {secret: "no"}}) { __typename
        ... on ValidationFailed { violations { path } } } }""",
        token=admin,
    )
    assert {v["path"] for v in bad["createFileStore"]["violations"]} == {
        "$.configuration.secret",
        "$.configuration.bucket",
    }
    await api.data(
        """mutation { createWorkspace(input: {name: "remote"}) { __typename }
        updateWorkspaceStorage(input: {workspace: "remote", fileStore: "shared",
          artifactExpirySeconds: 3600}) { __typename
          ... on WorkspaceStorageUpdated { workspace { fileStore { name }
            artifactExpirySeconds } } } }""",
        token=admin,
    )
    data = os.urandom(2_500_000)
    created = await create(api, admin, {"blob": data}, workspace="remote")
    assert created["artifact"]["isComplete"] is False
    await upload_all(api, admin, created, {"blob": data})
    url = urls(created)["blob"]
    auth = {"authorization": f"Bearer {admin}"}
    assert (await api.client.get(url, headers=auth)).content == data
    part = await api.client.get(url, headers={**auth, "range": "bytes=1000000-1000009"})
    assert part.content == data[1_000_000:1_000_010]
    import boto3

    listed = boto3.client(
        "s3", endpoint_url=s3_server["endpointUrl"], region_name="us-east-1"
    ).list_objects_v2(Bucket=s3_server["bucket"], Prefix="wt-test/")
    assert [o["Key"] for o in listed["Contents"]] == [f"wt-test/{sha(data)[:2]}/{sha(data)[2:]}"]
    found = await api.data(
        "query($id: ID!) { artifact(id: $id) { expireAt isExpired } }",
        {"id": created["artifact"]["id"]},
        token=admin,
    )
    assert found["artifact"]["expireAt"] is not None
    assert found["artifact"]["isExpired"] is False


async def test_a_fully_staged_upload_is_finished_by_the_next_request(
    api: Api, db: Database
) -> None:
    """When storing failed after the last byte arrived (a store outage), the next request
    (a probe included) checks and stores what is staged instead of waiting forever."""
    from db.filestores.factory import Stores
    from graphql_api.settings import ApiSettings

    _, token = await make_token(db, role=TokenRole.WRITER)
    data = b"staged but not stored"
    created = await create(api, token, {"f": data})

    async def body():  # type: ignore[no-untyped-def]
        yield data

    store = Stores(ApiSettings().files_dir).open(1, "LOCAL", {})
    assert await store.receive(sha(data), 0, body(), len(data))
    probe = await api.client.put(
        urls(created)["f"],
        headers={"authorization": f"Bearer {token}", "content-range": f"bytes */{len(data)}"},
    )
    assert (probe.status_code, probe.json()["complete"]) == (201, True)
