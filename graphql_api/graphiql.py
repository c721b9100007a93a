"""GraphiQL, served with its assets from the app itself (it must work offline)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from starlette.requests import Request

ASSETS_DIR = Path(__file__).parent / "static" / "graphiql"
ASSETS_PATH = "/graphiql-assets"
TEMPLATE = Path(__file__).parent / "templates" / "graphiql.html"

EXAMPLES: list[dict[str, str]] = [
    {
        "query": """# Welcome to batchgraph.
# Reads of public workspaces need no token. For everything else, put your token
# in the Headers tab below:  {"Authorization": "Bearer bg_..."}
query WhoAmI {
  viewer { authenticated owner role }
  apiMetadata { version documentationUrl limits { maxPageSize maxDepth } }
  workspaces(first: 10) { totalCount edges { node { id name public } } }
}
""",
        "headers": '{"Authorization": "Bearer PASTE_YOUR_TOKEN"}',
    },
    {
        "query": """mutation CreateTaskType {
  createTaskType(input: {
    name: "resize-image"
    description: "Resize one image"
    parametersSchema: {
      type: "object"
      required: ["url", "width"]
      properties: { url: { type: "string" }, width: { type: "integer", minimum: 1 } }
    }
  }) {
    __typename
    ... on TaskTypeCreated { taskType { id name latestRevision available } }
    ... on Error { code message }
    ... on ValidationFailed { violations { path message } }
  }
}
""",
        "headers": '{"Authorization": "Bearer PASTE_YOUR_TOKEN"}',
    },
    {
        "query": """query TaskTypes {
  taskTypes(workspace: "default", first: 20) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node { id name available hasTimedOut latestRevision
      currentRevision { revision parametersSchema implementation maxAttempts } } }
  }
}
""",
        "headers": '{"Authorization": "Bearer PASTE_YOUR_TOKEN"}',
    },
    {
        "query": """# Replace the id with one from the TaskTypes tab.
query CheckParameters {
  validateParameters(taskType: "VGFza1R5cGU6MQ==", parameters: {url: "x", width: 0}) {
    __typename
    ... on ParameterValidation { isValid violations { path message } revision { revision } }
    ... on NotFound { code message }
  }
}
""",
        "headers": '{"Authorization": "Bearer PASTE_YOUR_TOKEN"}',
    },
]


@cache
def _template() -> str:
    return TEMPLATE.read_text()


def render_graphiql(request: Request) -> str:
    root = request.scope.get("root_path", "")
    return (
        _template()
        .replace("{{ASSETS}}", root + ASSETS_PATH)
        .replace("{{EXAMPLES}}", json.dumps(EXAMPLES).replace("</", "<\\/"))
    )
