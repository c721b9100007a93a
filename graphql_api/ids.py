"""Global ids taken apart safely for a given type.

Arguments that take an id are typed ``strawberry.ID`` (``ID`` in the schema, as
before) and parsed here, not by strawberry's ``relay.GlobalID``, which refuses a
malformed id with a top-level BAD_REQUEST: an id that cannot be taken apart is an
id that names nothing, answered as such (null for lookups, NotFound for mutations).
"""

from __future__ import annotations

from strawberry.relay.utils import from_base64

# Database ids start at 1: an id that cannot be taken apart becomes 0, which the
# domain then reports as not found — after its authorisation checks, so that a
# malformed id never tells an unauthorised caller more than a valid one would.
MISSING = 0


def split_id(global_id: str) -> tuple[str, str] | None:
    """(type name, node id), or None when ``global_id`` is not a global id at all."""
    try:
        type_name, node_id = from_base64(global_id)
    except (ValueError, TypeError):
        return None
    return type_name, node_id


def parse_id(global_id: str, type_name: str) -> int:
    """The database id inside a global id of ``type_name``; anything else is MISSING."""
    found = split_id(global_id)
    if found is None or found[0] != type_name:
        return MISSING
    return _to_int(found[1])


def node_ints(node_ids: list[str]) -> list[int]:
    return [_to_int(n) for n in node_ids]


def _to_int(node_id: str) -> int:
    if node_id.isdigit() and len(node_id) <= 18:
        return int(node_id)
    return MISSING
