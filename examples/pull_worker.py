#!/usr/bin/env python3
"""A tiny external (pull) worker for batchgraph, standard library only.

    # 1. register once: prints the worker's token (disabled until an admin enables it)
    python examples/pull_worker.py --url http://127.0.0.1:8000/graphql register --host $(hostname)
    # 2. an admin enables it: setTokenEnabled(id: …, enabled: true) in GraphiQL
    # 3. work: claim jobs of the given task types, run them, report back
    BATCHGRAPH_TOKEN=bg_… python examples/pull_worker.py --url … work --task-type word-count

The "work" here counts the words of parameters.text; replace `run` with yours.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.request
from typing import Any


def graphql(url: str, token: str | None, query: str, **variables: Any) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={
            "content-type": "application/json",
            **({"authorization": f"Bearer {token}"} if token else {}),
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body = json.loads(response.read())
    if body.get("errors"):
        raise RuntimeError(body["errors"][0]["message"])
    return body["data"]  # type: ignore[no-any-return]


def run(parameters: dict[str, Any]) -> dict[str, Any]:
    """The job itself. Raise to fail it."""
    return {"words": len(str(parameters.get("text", "")).split())}


def register(args: argparse.Namespace) -> int:
    found = graphql(
        args.url,
        None,
        """mutation($host: String!) {
        registerWorker(input: {host: $host}) { __typename
          ... on WorkerRegistered { token worker { name } } } }""",
        host=args.host,
    )
    registered = found["registerWorker"]
    print(
        f"registered as {registered['worker']['name']}; token (shown once, disabled until"
        f" an admin enables it):\n{registered['token']}"
    )
    return 0


def work(args: argparse.Namespace) -> int:
    token = os.environ.get("BATCHGRAPH_TOKEN")
    if not token:
        print("set BATCHGRAPH_TOKEN to the worker's (enabled) token", file=sys.stderr)
        return 2
    done = 0
    last_beat = 0.0
    while args.max_jobs is None or done < args.max_jobs:
        if time.monotonic() - last_beat > 5:
            graphql(args.url, token, "mutation { workerHeartbeat { __typename } }")
            last_beat = time.monotonic()
        claimed = graphql(
            args.url,
            token,
            """mutation($types: [String!]) {
            claimJob(taskTypes: $types) { ... on JobClaim { job { id parameters } } } }""",
            types=args.task_type,
        )["claimJob"]["job"]
        if claimed is None:
            if args.until_idle:
                return 0
            time.sleep(args.poll)
            continue
        try:
            result = run(claimed["parameters"])
        except Exception as exc:  # report it: the job fails with a code
            graphql(
                args.url,
                token,
                """mutation($job: ID!, $message: String!) {
                failJob(job: $job, code: "EXAMPLE_FAILED", message: $message) { __typename } }""",
                job=claimed["id"],
                message=repr(exc),
            )
        else:
            graphql(
                args.url,
                token,
                """mutation($job: ID!, $result: JSON!) {
                completeJob(job: $job, result: $result) { __typename } }""",
                job=claimed["id"],
                result=result,
            )
        done += 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000/graphql")
    sub = parser.add_subparsers(required=True)
    reg = sub.add_parser("register")
    reg.add_argument("--host", required=True)
    reg.set_defaults(handler=register)
    w = sub.add_parser("work")
    w.add_argument("--task-type", action="append", help="task types to claim (repeatable)")
    w.add_argument("--poll", type=float, default=1.0, help="seconds between empty claims")
    w.add_argument("--max-jobs", type=int)
    w.add_argument("--until-idle", action="store_true", help="exit when nothing is queued")
    w.set_defaults(handler=work)
    args = parser.parse_args()
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
