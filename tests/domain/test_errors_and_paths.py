from __future__ import annotations

import pytest

from domain import jsonpath
from graphql_api.errors import fold_statuses


@pytest.mark.parametrize(
    ("statuses", "folded"),
    [
        ([], 200),
        ([404], 404),
        ([404, 404], 404),
        ([404, 409], 400),
        ([400, 499], 400),  # 4xx inclusive at both ends (TopChef's was exclusive)
        ([401, 403, 404], 400),
        ([404, 500], 500),
        ([500, 503], 500),
        ([503, 503], 503),
    ],
)
def test_status_folding(statuses: list[int], folded: int) -> None:
    assert fold_statuses(statuses) == folded


@pytest.mark.parametrize(
    ("parts", "path"),
    [
        ([], "$"),
        (["a", 0, "b"], "$.a[0].b"),
        (["odd key"], "$['odd key']"),
        (["it's"], "$['it\\'s']"),
        ([3], "$[3]"),
    ],
)
def test_json_paths(parts: list[str | int], path: str) -> None:
    assert jsonpath.join("$", parts) == path
