"""Global ids (``relay.GlobalID``) taken apart safely for a given type."""

from __future__ import annotations

from strawberry import relay

# Database ids start at 1: an id that cannot be taken apart becomes 0, which the
# domain then reports as not found — after its authorisation checks, so that a
# malformed id never tells an unauthorised caller more than a valid one would.
MISSING = 0


def parse_id(global_id: relay.GlobalID, type_name: str) -> int:
    """The database id inside a global id of ``type_name``; anything else is MISSING."""
    if global_id.type_name != type_name:
        return MISSING
    return _to_int(global_id.node_id)


def node_ints(node_ids: list[str]) -> list[int]:
    return [_to_int(n) for n in node_ids]


def _to_int(node_id: str) -> int:
    if node_id.isdigit() and len(node_id) <= 18:
        return int(node_id)
    return MISSING
