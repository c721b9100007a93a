"""GraphiQL, served with its assets from the app itself (it must work offline).

The page opens with no headers at all: the schema loads for everyone (introspection
is allowed to anonymous callers unless BATCHGRAPH_INTROSPECTION=false), public
workspaces read without a token, and a token typed into the Headers tab later takes
effect without a reload. The example tabs are the README walkthrough's operations
that need no variables, exactly as the README writes them (a test compares them).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from starlette.requests import Request

ASSETS_DIR = Path(__file__).parent / "static" / "graphiql"
ASSETS_PATH = "/graphiql-assets"
TEMPLATE = Path(__file__).parent / "templates" / "graphiql.html"

WELCOME = """# Welcome to batchgraph. Press ▶ to run this query.
# Public workspaces, the schema (Docs) and this tab
# need no token. For the rest, put your token in the
# Headers tab below (no reload needed):
#   {"Authorization": "Bearer bg_..."}
# `make run` printed an admin token on first start.
# The other tabs are steps of the README walkthrough
# (the README has the steps in between too).
"""


@dataclass(frozen=True, slots=True)
class Example:
    name: str
    query: str


EXAMPLES: list[Example] = [
    Example(
        "WhoAmI",
        """query WhoAmI {
  viewer { authenticated owner role }
  apiMetadata { version documentationUrl maintainer sourceUrl
    limits { maxDepth maxAliases maxPageSize maxBatchOperations } }
  workspaces(first: 10) { totalCount edges { node { name public } } }
}
""",
    ),
    Example(
        "CreateWorkspace",
        """mutation CreateWorkspace {
  createWorkspace(input: { name: "imaging", public: true }) {
    __typename
    ... on WorkspaceCreated { workspace { id name public } }
    ... on Error { code message }
  }
}
""",
    ),
    Example(
        "CreateTaskType",
        """mutation CreateTaskType {
  createTaskType(input: {
    workspace: "imaging"
    name: "resize-image"
    description: "Resize one image (a stand-in: builtin.simulate)"
    implementation: "builtin.simulate"
    parametersSchema: {
      type: "object"
      required: ["url", "width"]
      properties: { url: { type: "string", format: "uri" }, width: { type: "integer", minimum: 1 } }
    }
    resultSchema: { type: "object", required: ["url"] }
    maxAttempts: 3
    timeoutSeconds: 600
  }) {
    __typename
    ... on TaskTypeCreated { taskType { id name available latestRevision
      currentRevision { implementation } } }
    ... on ValidationFailed { code message violations { path message } }
    ... on Error { code message }
  }
}
""",
    ),
    Example(
        "TaskTypes",
        """query TaskTypes {
  taskTypes(workspace: "imaging", filter: { available: true }, first: 10) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node { id name available hasTimedOut latestRevision
      workspace { name }
      revisions(first: 5) { edges { node { revision createdBy parametersSchema } } } } }
  }
  taskType(workspace: "imaging", name: "resize-image") { id currentRevision { revision } }
}
""",
    ),
    Example(
        "CreateToken",
        """mutation CreateToken {
  createToken(input: { owner: "nightly-script", role: WRITER }) {
    __typename
    ... on TokenCreated { secret token { id owner role prefix enabled } }
  }
}
""",
    ),
    Example(
        "ValidateBatch",
        """query ValidateBatch {
  validateBatch(input: {
    workspace: "imaging"
    title: "Resize March"
    definition: {
      recipe: { nodes: [{ name: "resize", taskType: "resize-image" }] }
      inputs: [{ url: "https://img.example/1.png" }, { width: 3 }]
    }
  }) {
    ... on BatchValidation { isValid estimatedRecipes
      errors { name description path node inputIndex }
      warnings { name description } }
  }
}
""",
    ),
    Example(
        "CreateBatch",
        """mutation CreateBatch {
  createBatch(input: {
    workspace: "imaging"
    title: "Resize March"
    definition: {
      recipe: { nodes: [{ name: "resize", taskType: "resize-image" }] }
      inputs: [
        { url: "https://img.example/1.png", seconds: 8 }
        { url: "https://img.example/2.png", seconds: 8 }
        { url: "https://img.example/3.png", seconds: 8 }
        { url: "https://img.example/4.png", seconds: 8 }
      ]
    }
    priority: 10
    maxParallelJobs: 2
  }) {
    __typename
    ... on BatchCreated { batch { id title isCreationDone } validation { plannedJobs } }
    ... on InvalidBatch { validation { errors { name description path } } }
  }
}
""",
    ),
    Example(
        "CreateWordCount",
        """mutation CreateWordCount {
  createTaskType(input: {
    workspace: "imaging"
    name: "word-count"
    description: "Count the words of a caption (examples/pull_worker.py)"
    implementation: "external"
    parametersSchema: { type: "object", required: ["text"],
      properties: { text: { type: "string" } } }
    resultSchema: { type: "object", required: ["words"],
      properties: { words: { type: "integer" } } }
  }) {
    __typename
    ... on TaskTypeCreated { taskType { id name currentRevision { implementation } } }
    ... on Error { code message }
  }
}
""",
    ),
    Example(
        "CreateCaptionBatch",
        """mutation CreateCaptionBatch {
  createBatch(input: {
    workspace: "imaging"
    title: "Caption word counts"
    definition: {
      recipe: { nodes: [{ name: "count", taskType: "word-count" }] }
      inputs: [{ text: "a cat on a mat" }, { text: "two dogs" }, { text: "sunset" }]
    }
  }) {
    __typename
    ... on BatchCreated { batch { id title } validation { plannedJobs } }
    ... on InvalidBatch { validation { errors { name description path } } }
  }
}
""",
    ),
    Example(
        "CreateCaptionCategory",
        """mutation CreateCaptionCategory {
  createArtifactCategory(input: { workspace: "imaging", name: "caption",
    description: "The caption of one image, as text"
    dataSchema: { type: "object", required: ["image"],
      properties: { image: { type: "string" } } } }) {
    __typename
    ... on ArtifactCategoryCreated { category { name dataSchema } }
    ... on Error { code message }
  }
}
""",
    ),
    Example(
        "Captions",
        """query Captions {
  artifacts(filter: { workspace: "imaging", category: "caption" }, first: 10) {
    edges { node { id category data isComplete fileCount
      files { edges { node { path size sha256 contentType isComplete downloadUrl } } } } }
  }
}
""",
    ),
    Example(
        "CreateChecksumTaskType",
        """mutation CreateChecksumTaskType {
  createTaskType(input: { workspace: "imaging", name: "checksum",
    description: "sha256, lines and words of the input artifacts' files"
    implementation: "builtin.checksum" }) {
    __typename ... on TaskTypeCreated { taskType { id name } } ... on Error { code message }
  }
}
""",
    ),
    Example(
        "DemoChain",
        """query DemoChain {
  batches(filter: { workspace: "demo" }) { edges { node { id title isSuperseded
    counters { jobsTotal completed failed canceled pending blocked }
    nodeMetrics { node completed failed runDuration { avg { iso } p95 { iso } } } } } }
}
""",
    ),
    Example(
        "DemoLineage",
        """query DemoLineage {
  artifacts(filter: { workspace: "demo", category: "report" }, first: 1) {
    edges { node { lineage(depth: 5) {
      nodes { depth artifact { id category createdBy { node } } }
      edges { type source target } } } }
  }
}
""",
    ),
]


def tabs() -> list[dict[str, str]]:
    """GraphiQL's ``defaultTabs``: the welcome comment above the first one."""
    return [
        {"query": (WELCOME if i == 0 else "") + example.query} for i, example in enumerate(EXAMPLES)
    ]


@cache
def _template() -> str:
    return TEMPLATE.read_text()


def render_graphiql(request: Request) -> str:
    root = request.scope.get("root_path", "")
    return (
        _template()
        .replace("{{ASSETS}}", root + ASSETS_PATH)
        .replace("{{EXAMPLES}}", json.dumps(tabs()).replace("</", "<\\/"))
    )
