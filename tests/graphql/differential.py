"""The differential oracle: the same request through the compiled read path and through the
resolvers (the reference), compared as JSON — status, ``data`` and ``errors``.

``seed`` makes varied data through the API and the domain, like users and workers would:
public and private workspaces, task types with revisions, batches with chains and odd
titles, jobs in every status with events, errors and durations, workers connected or not.
"""

from __future__ import annotations

import ast
import base64
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import graphql
from graphql import OperationType, parse

from db.enums import JobStatus, TokenRole
from db.session import Database
from db.uow import UnitOfWork
from domain.jobs import moves
from domain.jobs.moves import Move
from domain.jobs.rules import Initiator
from domain.workers import service as workers
from graphql_api.compiled.planner import Planner
from graphql_api.prepared import PreparedReads
from graphql_api.schema import build_schema
from graphql_api.settings import Limits
from tests.factories import RESIZE_SCHEMA, make_token, move_job, run_creation
from tests.graphql.conftest import Api

ROLES: tuple[TokenRole | None, ...] = (
    None,
    TokenRole.READER,
    TokenRole.WRITER,
    TokenRole.WORKER,
    TokenRole.ADMIN,
)
TESTS = Path(__file__).resolve().parents[1]
README = TESTS.parent / "README.md"
TITLES = ["Alpha", "beta", "Ünïcode ✓", 'quote\'s "and" back\\slash', "𝄞 clef", "50% _off_"]


def gid(kind: str, pk: int) -> str:
    return base64.b64encode(f"{kind}:{pk}".encode()).decode()


@dataclass
class Seed:
    tokens: dict[TokenRole | None, str | None] = field(default_factory=dict)
    ids: dict[str, list[str]] = field(default_factory=dict)  # type name → global ids
    names: dict[str, list[str]] = field(default_factory=dict)  # workspace/taskType/worker

    def all_ids(self) -> list[str]:
        return [i for ids in self.ids.values() for i in ids]


def _pk(global_id: str) -> int:
    return int(base64.b64decode(global_id).decode().split(":")[1])


async def seed(api: Api, db: Database) -> Seed:
    found = Seed()
    found.tokens[None] = None
    for role in ROLES[1:]:
        assert role is not None
        found.tokens[role] = (await make_token(db, role=role, owner=f"diff-{role.lower()}"))[1]
    admin = found.tokens[TokenRole.ADMIN]

    async def call(query: str, **variables: Any) -> dict[str, Any]:
        return await api.data(query, variables or None, token=admin)

    for name, public in (("pub", True), ("priv", False)):
        await call(
            "mutation($n: String!, $p: Boolean) { createWorkspace(input: {name: $n, public: $p})"
            " { __typename } }",
            n=name,
            p=public,
        )
    task_types: dict[str, str] = {}
    for workspace in ("default", "pub", "priv"):
        for name, schema in (("resize", RESIZE_SCHEMA), ("thumb", {"type": "object"})):
            made = await call(
                """mutation($w: String!, $n: String!, $s: JSON) { createTaskType(input: {
                workspace: $w, name: $n, parametersSchema: $s, maxAttempts: 2}) {
                ... on TaskTypeCreated { taskType { id } } } }""",
                w=workspace,
                n=name,
                s=schema,
            )
            task_types[f"{workspace}/{name}"] = made["createTaskType"]["taskType"]["id"]
    await call(
        """mutation($t: ID!) { createTaskTypeRevision(input: {taskType: $t,
        description: "second"}) { __typename } }""",
        t=task_types["pub/resize"],
    )
    await call(
        "mutation($t: ID!) { checkInTaskType(taskType: $t) { __typename } }",
        t=task_types["pub/thumb"],
    )
    definition = {
        "recipe": {
            "nodes": [
                {"name": "resize", "taskType": "resize"},
                {
                    "name": "thumb",
                    "taskType": "thumb",
                    "dependsOn": ["resize"],
                    "parameters": {"source": "{{item.url}}", "size": 64},
                },
            ]
        },
        "inputs": [{"url": f"https://x/{i}.png", "width": 10 + i} for i in range(4)],
    }
    batches: list[str] = []
    for i, title in enumerate(TITLES):
        workspace = ("default", "pub", "priv")[i % 3]
        made = await call(
            """mutation($w: String!, $t: String!, $d: JSON!, $p: Int) { createBatch(input: {
            workspace: $w, title: $t, definition: $d, priority: $p}) {
            ... on BatchCreated { batch { id } } } }""",
            w=workspace,
            t=title,
            d=definition,
            p=i,
        )
        batch = made["createBatch"]["batch"]["id"]
        await run_creation(db, _pk(batch))
        batches.append(batch)
    await _move_jobs(db, [_pk(b) for b in batches])
    for root in batches[:2]:  # chains: re-process twice
        for rerun in ("FAILED", "ALL"):
            made = await call(
                """mutation($r: ID!, $m: RerunMode!) { reprocessBatch(input: {rootBatch: $r,
                rerun: $m}) { ... on BatchCreated { batch { id } } } }""",
                r=root,
                m=rerun,
            )
            new = made["reprocessBatch"]["batch"]["id"]
            await run_creation(db, _pk(new))
            batches.append(new)
    await call(
        'mutation($b: ID!) { cancelBatch(id: $b, reason: "enough") { __typename } }', b=batches[-1]
    )
    async with UnitOfWork(db.write_session) as uow:
        up = await workers.register_fleet(
            uow, host="gpu1.lab", concurrency=4, dynamic_metadata={"load": [0.5], "os": "x"}
        )
        gone = await workers.register_fleet(uow, host="old.lab", concurrency=1, dynamic_metadata={})
        gone.connected_at = None
        up.static_metadata = {"os": "linux", "zone": "b"}
        await uow.commit()
    found.ids = await _global_ids(api, admin)
    found.names = {
        "workspace": ["default", "pub", "priv", "nope"],
        "taskType": ["resize", "thumb", "nope"],
        "worker": ["gpu1-lab", "old-lab", "nope"],
    }
    return found


async def _move_jobs(db: Database, batch_ids: list[int]) -> None:
    """Jobs in every status: running, completed, failed (with an error), canceled,
    retried; the rest stay queued or blocked."""
    from sqlalchemy import select

    from db.models import Job

    async with db.read_session() as s:
        rows = list(
            await s.execute(
                select(Job.id, Job.batch_id, Job.node)
                .where(Job.batch_id.in_(batch_ids), Job.node == "resize")
                .order_by(Job.id)
            )
        )
    for n, (job_id, _, _) in enumerate(rows):
        plan = n % 5
        async with UnitOfWork(db.write_session) as uow:
            if plan in (0, 1, 2):
                await move_job(uow, job_id, JobStatus.RUNNING, Initiator.WORKER, worker="gpu1-lab")
            if plan == 0:
                await moves.apply(
                    uow,
                    [
                        Move(
                            job_id,
                            JobStatus.COMPLETED,
                            Initiator.WORKER,
                            worker="gpu1-lab",
                            result={"url": f"out/{job_id}", "n": n / 3},
                        )
                    ],
                )
            elif plan == 1:
                await move_job(
                    uow,
                    job_id,
                    JobStatus.FAILED,
                    Initiator.WORKER,
                    worker="gpu1-lab",
                    error=("E_BAD", f"it's broken \\ {n}", "DOMAIN"),
                )
            elif plan == 3:
                await moves.apply(
                    uow, [Move(job_id, JobStatus.CANCELED, Initiator.USER, reason="not needed ✓")]
                )
            await uow.commit()


async def _global_ids(api: Api, admin: str | None) -> dict[str, list[str]]:
    data = await api.data(
        """{ batches(first: 100) { edges { node { id workspace { id }
          recipes(first: 3) { edges { node { id } } }
          jobs(first: 4) { edges { node { id taskTypeRevision { id } } } } } } }
          taskTypes(first: 100) { edges { node { id } } }
          workers { edges { node { id } } } tokens { edges { node { id } } } }""",
        token=admin,
    )
    ids: dict[str, set[str]] = {}

    def add(kind: str, value: str) -> None:
        ids.setdefault(kind, set()).add(value)

    for edge in data["batches"]["edges"]:
        node = edge["node"]
        add("Batch", node["id"])
        add("Workspace", node["workspace"]["id"])
        for r in node["recipes"]["edges"]:
            add("Recipe", r["node"]["id"])
        for j in node["jobs"]["edges"]:
            add("Job", j["node"]["id"])
            add("TaskTypeRevision", j["node"]["taskTypeRevision"]["id"])
    for kind, key in (("TaskType", "taskTypes"), ("Worker", "workers"), ("Token", "tokens")):
        for edge in data[key]["edges"]:
            add(kind, edge["node"]["id"])
    add("Other", gid("Batch", 999_999))
    add("Other", gid("Nope", 1))
    add("Other", gid("Viewer", 1))
    add("Other", "not base64!")
    return {k: sorted(v) for k, v in ids.items()}


# --- comparing -------------------------------------------------------------------------


def normalized(body: Any) -> Any:
    """``data`` and ``errors`` as the client reads them. The answer's cost extension is
    left out: its remaining points belong to each app's own budget. A batch: each."""
    if isinstance(body, list):
        return [normalized(item) for item in body]
    cost = (body.get("extensions") or {}).pop("cost", None)
    if cost is not None:
        cost.pop("pointsRemaining", None)
        body["extensions"]["cost"] = cost
    for error in body.get("errors") or []:
        (error.get("extensions") or {}).pop("requestId", None)
        if "request id" in error.get("message", ""):
            error["message"] = re.sub(r"request id \w+", "request id -", error["message"])
    return body


async def both(
    compiled: Api,
    reference: Api,
    query: str,
    variables: dict[str, Any] | None,
    token: str | None,
) -> tuple[tuple[int, Any], tuple[int, Any]]:
    a = await compiled.post(query, variables, token=token)
    b = await reference.post(query, variables, token=token)
    return (a.status_code, normalized(a.json())), (b.status_code, normalized(b.json()))


def first_difference(a: Any, b: Any, path: str = "") -> str | None:
    if type(a) is not type(b) and not (isinstance(a, int | float) and isinstance(b, int | float)):
        return f"{path}: {a!r} != {b!r}"
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{path}: keys {list(a)} != {list(b)}"
        for k in a:
            found = first_difference(a[k], b[k], f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


# --- documents ---------------------------------------------------------------------------


def suite_documents(schema: graphql.GraphQLSchema) -> list[str]:
    """Every query document written in the test suite (string literals that parse as
    GraphQL with only query operations and validate against the schema)."""
    found: dict[str, None] = {}
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                continue
            text = node.value
            if "{" not in text or not re.match(r"\s*(query\b|\{)", text):
                continue
            try:
                document = parse(text)
            except graphql.GraphQLError:
                continue
            operations = [
                d for d in document.definitions if isinstance(d, graphql.OperationDefinitionNode)
            ]
            queries = operations and all(o.operation is OperationType.QUERY for o in operations)
            if queries and not graphql.validate(schema, document):
                found[text] = None
    return list(found)


def readme_documents() -> list[str]:
    blocks = re.findall(r"```graphql\n(.*?)```", README.read_text(), flags=re.S)
    return [b for b in blocks if re.match(r"\s*query\b", b)]


def variable_sets(
    schema: graphql.GraphQLSchema, query: str, seed: Seed, rng: random.Random, count: int
) -> Iterator[dict[str, Any]]:
    definitions = [
        d for d in parse(query).definitions if isinstance(d, graphql.OperationDefinitionNode)
    ]
    variables = [v for d in definitions for v in d.variable_definitions or ()]
    for _ in range(count):
        values: dict[str, Any] = {}
        for v in variables:
            required = isinstance(v.type, graphql.NonNullTypeNode)
            named = graphql.type_from_ast(schema, v.type)
            value = _value_for(graphql.get_named_type(named).name, v.variable.name.value, seed, rng)
            if value is None and required:
                value = _value_for(
                    graphql.get_named_type(named).name,
                    v.variable.name.value,
                    seed,
                    rng,
                    required=True,
                )
            values[v.variable.name.value] = value
        yield values


def _value_for(
    type_name: str, name: str, seed: Seed, rng: random.Random, *, required: bool = False
) -> Any:
    options: list[Any]
    if type_name == "ID":
        kinds = {
            "batch": "Batch",
            "job": "Job",
            "taskType": "TaskType",
            "root": "Batch",
            "b": "Batch",
            "id": None,
        }
        kind = kinds.get(name)
        pool = seed.ids.get(kind, []) if kind else seed.all_ids()
        options = pool + seed.ids.get("Other", [])
    elif type_name == "Int":
        options = [0, 1, 2, 3, 5, 20, 101, -1]
    elif type_name == "String":
        options = ["default", "pub", "resize", "WzFd", "WzJd", "%%%", "gpu1-lab", "nope"]
    elif type_name == "Boolean":
        options = [True, False]
    elif type_name == "BatchFilter":
        options = [
            {},
            {"workspace": "pub"},
            {"isSuperseded": False, "isCreationDone": True},
            {"taskType": "thumb", "createdAfter": "2020-01-01T00:00:00Z"},
            {"rootBatch": rng.choice(seed.ids.get("Batch", [""]))},
        ]
    elif type_name == "BatchOrderBy":
        options = [
            {"field": f, "direction": d}
            for f in ("ID", "TITLE", "CREATED", "LAST_MODIFIED")
            for d in ("ASC", "DESC")
        ]
    elif type_name == "JobFilter":
        options = [
            {},
            {"statuses": ["QUEUED", "RUNNING"]},
            {"node": "thumb"},
            {"worker": "gpu1-lab", "completedAfter": "2020-01-01T00:00:00Z"},
        ]
    elif type_name == "TaskTypeFilter":
        options = [{}, {"available": True}, {"nameContains": "RES"}, {"nameContains": "%"}]
    elif type_name == "JSON":
        options = [{}, {"url": "u", "width": 1}]
    else:
        options = []
    if not required:
        options = [*options, None]
    return rng.choice(options) if options else None


def planner() -> Planner:
    """The process's read planner (graphql_api.schema builds one per process)."""
    found = build_schema(Limits()).planner
    assert found is not None
    return found


def prepared_reads() -> PreparedReads:
    """The process's documents answered whole (graphql_api.prepared)."""
    found = build_schema(Limits()).prepared
    assert found is not None
    return found
