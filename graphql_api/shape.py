"""The shape of a document, measured in one pass before it is validated.

graphql-core's validation and strawberry's depth and alias limiters walk every
fragment spread as if it were written out: a chain of fragments that each
spread the next one twice doubles the work per fragment (41 fragments pin a
process), and overlapping-fields validation compares every pair of fields that
share a response key (400 copies of one field took seconds). This pass visits
each fragment once (its figures are memoized) and refuses, before validation
runs, documents whose shape would make validation or execution expensive:

* depth: fields nested deeper than ``max_depth`` (introspection fields aside);
* aliases: more than ``max_aliases`` aliased fields, fragments expanded;
* duplicate fields: one response key selected more than ``max_duplicate_fields``
  times in one selection set, fields brought in by fragments included;
* fragment spreads: more than ``max_fragment_spreads`` distinct fragments spread
  into one selection set (validation compares them pairwise);
* fragment nesting: a chain of fragments spreading fragments longer than
  ``MAX_FRAGMENT_NESTING`` (graphql-core's cycle check recurses along it).

A fragment spread twice in one selection set counts once, as execution merges
it once. Unknown or cyclic fragments count as empty: validation reports them.

Number literals are refused here too when Python or PostgreSQL could not take
them: integers longer than 100 digits, floats that overflow (``1e400``).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FloatValueNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    StringValueNode,
    Visitor,
    visit,
)

from domain.errors import ErrorCode
from graphql_api.settings import Limits

MAX_FRAGMENT_NESTING = 32
MAX_NUMBER_DIGITS = 100


@dataclass(slots=True)
class _Level:
    """One selection set, with what its fragments bring to the same level."""

    keys: Counter[str] = field(default_factory=Counter)
    spreads: frozenset[str] = frozenset()
    depth: int = 0  # fields below this level, on the longest path
    aliases: int = 0


class ShapeError(Exception):
    """The document's shape is over a limit (``what`` names it), or a literal is unusable."""

    def __init__(self, what: str, message: str, code: ErrorCode = ErrorCode.LIMIT_EXCEEDED):
        super().__init__(message)
        self.what = what
        self.message = message
        self.code = code


class _Walker:
    def __init__(self, document: DocumentNode, limits: Limits) -> None:
        self.limits = limits
        self.fragments: dict[str, FragmentDefinitionNode] = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.memo: dict[str, _Level] = {}

    def fragments_in_order(self) -> list[str]:
        """Fragments after those they spread (iteratively: chains can be long); refuses
        chains longer than MAX_FRAGMENT_NESTING. Cycles are cut (validation reports them)."""
        spreads = {name: _spreads_in(d.selection_set) for name, d in self.fragments.items()}
        order: list[str] = []
        nesting: dict[str, int] = {}
        state: dict[str, int] = {}  # 1: in progress, 2: done
        for root in spreads:
            if state.get(root):
                continue
            stack: list[tuple[str, list[str]]] = [(root, sorted(spreads[root]))]
            state[root] = 1
            while stack:
                name, pending = stack[-1]
                while pending and (pending[-1] not in spreads or state.get(pending[-1])):
                    pending.pop()
                if pending:
                    child = pending.pop()
                    state[child] = 1
                    stack.append((child, sorted(spreads[child])))
                    continue
                stack.pop()
                state[name] = 2
                below = [nesting[c] for c in spreads[name] if c in nesting]
                nesting[name] = 1 + max(below, default=0)
                if nesting[name] > MAX_FRAGMENT_NESTING:
                    raise ShapeError(
                        "fragment nesting",
                        f"Fragments spread fragments {nesting[name]} deep;"
                        f" at most {MAX_FRAGMENT_NESTING}",
                    )
                order.append(name)
        return order

    def fragment(self, name: str) -> _Level:
        return self.memo.get(name) or _Level()  # unknown, or cut from a cycle: empty

    def level(self, selection_set: SelectionSetNode) -> _Level:
        keys: Counter[str] = Counter()
        spreads: set[str] = set()
        depth = 0
        aliases = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                keys[(selection.alias or selection.name).value] += 1
                if selection.alias is not None:
                    aliases += 1
                if selection.selection_set is not None:
                    below = self.level(selection.selection_set)
                    if not selection.name.value.startswith("__"):
                        # Introspection is as deep as GraphiQL's query needs (its
                        # cost still counts); as in strawberry's depth limiter.
                        depth = max(depth, below.depth + 1)
                    aliases += below.aliases
            else:
                if isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    if name in spreads:
                        continue  # merged once by execution
                    spreads.add(name)
                    inner = self.fragment(name)
                elif isinstance(selection, InlineFragmentNode):
                    inner = self.level(selection.selection_set)
                else:  # pragma: no cover - no other selection kinds exist
                    continue
                keys.update(inner.keys)
                spreads |= inner.spreads
                depth = max(depth, inner.depth)
                aliases += inner.aliases
        self._check(keys, spreads, depth, aliases)
        return _Level(keys=keys, spreads=frozenset(spreads), depth=depth, aliases=aliases)

    def _check(self, keys: Counter[str], spreads: set[str], depth: int, aliases: int) -> None:
        limits = self.limits
        if keys:
            key, count = keys.most_common(1)[0]
            if count > limits.max_duplicate_fields:
                raise ShapeError(
                    "duplicate fields",
                    f"'{key}' is selected {count} times in one selection set;"
                    f" at most {limits.max_duplicate_fields}",
                )
        if len(spreads) > limits.max_fragment_spreads:
            raise ShapeError(
                "fragment spreads",
                f"{len(spreads)} fragments are spread into one selection set;"
                f" at most {limits.max_fragment_spreads}",
            )
        if aliases > limits.max_aliases:
            raise ShapeError(
                "aliases", f"{aliases} aliases; at most {limits.max_aliases} per document"
            )


def _spreads_in(selection_set: SelectionSetNode) -> set[str]:
    found: set[str] = set()
    stack = [selection_set]
    while stack:
        for selection in stack.pop().selections:
            if isinstance(selection, FragmentSpreadNode):
                found.add(selection.name.value)
            elif isinstance(selection, FieldNode | InlineFragmentNode) and selection.selection_set:
                stack.append(selection.selection_set)
    return found


class _Literals(Visitor):
    """Literals Python or PostgreSQL could not take (graphql-core's visit is iterative,
    so literals nested as deep as the parser allows are fine): huge numbers, and NUL
    in strings — GraphQL's own ``\\u{0}`` escape makes one (lone surrogates its
    parser refuses)."""

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if "\x00" in node.value:
            raise ShapeError(
                "strings", "NUL characters (\\u0000) are not accepted", ErrorCode.BAD_REQUEST
            )

    def enter_int_value(self, node: IntValueNode, *_: Any) -> None:
        if len(node.value.lstrip("-")) > MAX_NUMBER_DIGITS:
            raise ShapeError(
                "numbers",
                f"Integers may have at most {MAX_NUMBER_DIGITS} digits",
                ErrorCode.BAD_REQUEST,
            )

    def enter_float_value(self, node: FloatValueNode, *_: Any) -> None:
        if len(node.value) > MAX_NUMBER_DIGITS * 2 or math.isinf(float(node.value)):
            raise ShapeError(
                "numbers", f"The number {node.value[:40]} is too large", ErrorCode.BAD_REQUEST
            )


def check_shape(document: DocumentNode, limits: Limits) -> None:
    """Raise ShapeError when a limit is exceeded. Linear in the size of the document
    (each fragment is measured once, after the fragments it spreads)."""
    walker = _Walker(document, limits)
    for name in walker.fragments_in_order():
        walker.memo[name] = walker.level(walker.fragments[name].selection_set)
    for definition in document.definitions:
        # Depth counts from an operation (a fragment is as deep as where it is spread).
        if (
            isinstance(definition, OperationDefinitionNode)
            and walker.level(definition.selection_set).depth > limits.max_depth
        ):
            raise ShapeError("depth", f"The query exceeds the maximum depth of {limits.max_depth}")
    visit(document, _Literals())
