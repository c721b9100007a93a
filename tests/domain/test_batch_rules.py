"""Pure batch rules: which nodes a re-processing runs."""

from __future__ import annotations

from db.enums import RerunMode
from domain.batches.rules import PinnedNode, nodes_to_run, render_parameters


def node(name: str, *deps: str) -> PinnedNode:
    return PinnedNode(
        name=name,
        task_type="t",
        task_type_id=1,
        revision=1,
        revision_id=1,
        depends_on=deps,
        parameters=None,
    )


NODES = [node("a"), node("b", "a"), node("c", "b"), node("d")]


def test_failed_mode_reruns_what_did_not_complete_and_its_downstream() -> None:
    statuses = {"a": "COMPLETED", "b": "FAILED", "c": "CANCELED", "d": "COMPLETED"}
    assert nodes_to_run(
        NODES, mode=RerunMode.FAILED, forced=(), always=(), previous_statuses=statuses
    ) == {"b", "c"}


def test_a_node_the_previous_batch_kept_is_not_failed() -> None:
    # The previous batch re-ran only b (and c); a and d kept their earlier results.
    statuses = {"b": "FAILED", "c": "CANCELED"}
    assert nodes_to_run(
        NODES, mode=RerunMode.FAILED, forced=(), always=(), previous_statuses=statuses
    ) == {"b", "c"}


def test_nodes_mode_runs_forced_and_changed_nodes_with_their_downstream() -> None:
    assert nodes_to_run(
        NODES, mode=RerunMode.NODES, forced=("b",), always=("d",), previous_statuses={}
    ) == {"b", "c", "d"}
    assert nodes_to_run(NODES, mode=RerunMode.ALL, forced=(), always=(), previous_statuses={}) == {
        "a",
        "b",
        "c",
        "d",
    }


def test_templates() -> None:
    item = {"url": "u", "size": {"w": 3}, "tags": ["x"]}
    rendered, missing = render_parameters(
        {
            "src": "{{item.url}}",
            "w": "{{ item.size.w }}",
            "all": "{{item}}",
            "label": "img {{item.url}} w={{item.size.w}}",
            "gone": "{{item.nope}}",
            "n": 4,
        },
        item,
    )
    assert rendered == {"src": "u", "w": 3, "all": item, "label": "img u w=3", "gone": None, "n": 4}
    assert missing == ["item.nope"]
    assert render_parameters(None, item) == (item, [])
