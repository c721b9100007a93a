#!/usr/bin/env python3
"""A tiny external (pull) worker for batchgraph, standard library only.

    # 1. register once: prints the worker's token (disabled until an admin enables it)
    #    and the mutation an admin runs to enable it
    python examples/pull_worker.py register --host $(hostname)
    # 2. an admin enables it: setTokenEnabled(id: <tokenId>, enabled: true)
    # 3. work: claim jobs of the given task types, run them, report back
    BATCHGRAPH_TOKEN=bg_… python examples/pull_worker.py work --task-type word-count

The "work" here counts the words of parameters.text; replace `run` with yours.
It prints what it claims and completes. When the server refuses something (its token
is disabled, a result does not match the task type's result schema, …) it says so
and exits with status 1; a refused result fails its job (RESULT_INVALID) first, so
the job is not left running.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any


def default_url() -> str:
    """BATCHGRAPH_URL; else, run with the project's Python, the server running from
    the same BATCHGRAPH_HOME, as the ``batchgraph`` command finds it (port included);
    else port 8000 here. On another machine, give --url or BATCHGRAPH_URL."""
    if os.environ.get("BATCHGRAPH_URL"):
        return os.environ["BATCHGRAPH_URL"]
    try:
        from db.config import load_settings
        from launcher.client import server_url
    except ImportError:  # a copy of this script, without the project
        return "http://127.0.0.1:8000/graphql"
    return server_url(load_settings())


REGISTER = """mutation($host: String!) { registerWorker(input: {host: $host}) { __typename
  ... on WorkerRegistered { token tokenId worker { name } }
  ... on ValidationFailed { message violations { path message } } } }"""
HEARTBEAT = "mutation { workerHeartbeat { __typename } }"
CLAIM = """mutation($types: [String!], $running: [ID!]) {
  claimJob(taskTypes: $types, running: $running) { __typename
    ... on JobClaim { job { id node parameters } } } }"""
COMPLETE = """mutation($job: ID!, $result: JSON!, $runSeconds: Float) {
  completeJob(job: $job, result: $result, runSeconds: $runSeconds) {
  __typename ... on Error { code message }
  ... on SchemaMismatch { violations { path message } } } }"""
FAIL = """mutation($job: ID!, $code: String!, $message: String!) {
  failJob(job: $job, code: $code, message: $message, category: DOMAIN) {
    __typename ... on Error { code message } } }"""


class Refused(Exception):
    """The server said no; the message says what and why."""


def graphql(url: str, token: str | None, query: str, **variables: Any) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps({"query": query, "variables": variables}).encode(),
        headers={
            "content-type": "application/json",
            **({"authorization": f"Bearer {token}"} if token else {}),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # 4xx answers carry GraphQL errors
        body = json.loads(exc.read() or b"{}")
    except urllib.error.URLError as exc:
        raise Refused(f"cannot reach {url}: {exc.reason}") from None
    if body.get("errors"):
        error = body["errors"][0]
        raise Refused(f"{(error.get('extensions') or {}).get('code')}: {error['message']}")
    return body["data"]  # type: ignore[no-any-return]


def run(parameters: dict[str, Any]) -> dict[str, Any]:
    """The job itself. Raise to fail it."""
    return {"words": len(str(parameters.get("text", "")).split())}


def show(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def register(args: argparse.Namespace) -> int:
    found = graphql(args.url, None, REGISTER, host=args.host)["registerWorker"]
    if found["__typename"] != "WorkerRegistered":
        raise Refused(f"{found['message']}: {show(found['violations'])}")
    print(f"registered as worker {found['worker']['name']}")
    print(f"token (shown once; disabled until an admin enables it): {found['token']}")
    print(
        "an admin enables it with:  mutation { setTokenEnabled("
        f'id: "{found["tokenId"]}", enabled: true) {{ __typename }} }}'
    )
    return 0


def work(args: argparse.Namespace) -> int:
    token = os.environ.get("BATCHGRAPH_TOKEN")
    if not token:
        print("set BATCHGRAPH_TOKEN to the worker's (enabled) token", file=sys.stderr)
        return 2
    completed = failed = 0
    last_beat = 0.0
    while args.max_jobs is None or completed + failed < args.max_jobs:
        if time.monotonic() - last_beat > 5:
            graphql(args.url, token, HEARTBEAT)
            last_beat = time.monotonic()
        # One job at a time: nothing is running when this worker asks for the next.
        claimed = graphql(args.url, token, CLAIM, types=args.task_type, running=[])
        job = claimed["claimJob"]["job"]
        if job is None:
            if args.until_idle:
                break
            time.sleep(args.poll)
            continue
        print(f"claimed job {job['id']} ({job['node']}): {show(job['parameters'])}", flush=True)
        started = time.perf_counter()
        try:
            result = run(job["parameters"])
        except Exception as exc:  # report it: the job fails with a code
            answer = graphql(
                args.url, token, FAIL, job=job["id"], code="EXAMPLE_FAILED", message=repr(exc)
            )["failJob"]
            if answer["__typename"] != "JobFinished":
                raise Refused(
                    f"failJob {job['id']}: {answer['code']}: {answer['message']}"
                ) from exc
            print(f"failed job {job['id']}: {exc!r}", flush=True)
            failed += 1
            continue
        # The work's own time: the job's run duration in the batch's metrics.
        run_seconds = time.perf_counter() - started
        answer = graphql(
            args.url, token, COMPLETE, job=job["id"], result=result, runSeconds=run_seconds
        )["completeJob"]
        if answer["__typename"] == "JobFinished":
            print(f"completed job {job['id']}: {show(result)}", flush=True)
            completed += 1
            continue
        # Refused: say so, and do not leave the job running on this worker.
        reason = f"{answer['code']}: {answer['message']}"
        if answer["__typename"] == "SchemaMismatch":
            reason += " " + show(answer["violations"])
            graphql(args.url, token, FAIL, job=job["id"], code="RESULT_INVALID", message=reason)
        raise Refused(f"completeJob {job['id']} was refused: {reason}")
    print(f"nothing left to claim: {completed} jobs completed, {failed} failed", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url",
        default=None,
        help="default: BATCHGRAPH_URL, else the server running from BATCHGRAPH_HOME,"
        " else http://127.0.0.1:8000/graphql",
    )
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
    args.url = args.url or default_url()
    try:
        return int(args.handler(args))
    except Refused as exc:
        print(f"refused: {exc}", file=sys.stderr)
        if "UNAUTHENTICATED" in str(exc) and args.handler is work:
            print(
                "(a newly registered worker's token works once an admin enables it:"
                " setTokenEnabled, or `batchgraph workers` to see it)",
                file=sys.stderr,
            )
        return 1


if __name__ == "__main__":
    sys.exit(main())
