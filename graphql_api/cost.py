"""What an operation may cost, computed from its document and variables before it runs.

The rule (GitHub's node limit, counted in objects):

* every object the answer can hold counts 1: an object-typed field counts 1; a
  list of objects counts its size; scalars and enums are free;
* a connection counts its page size: ``first`` as given, or the default page
  size when it is left out or null (its edges and their nodes count once, the
  connection object and ``pageInfo`` are free);
* a list that is not a connection counts ``first`` when it takes one
  (``TaskType.queue``), otherwise the bound declared for it in ``LIST_SIZES``,
  otherwise the default page size;
* what is selected under a list or a connection counts once per item: sizes
  multiply down the tree;
* fragments on different types of a union or interface add up (an upper bound);
  a fragment spread twice into one selection set counts once, as it executes once;
  ``@skip``/``@include`` are honoured;
* introspection obeys the same rule; its lists count at their average size in
  this schema (``__Schema.types`` at its exact size), and ``ofType`` deeper than
  the deepest type wrapping of this schema (``[Job!]!``: 3) is certainly null,
  so free.

The cost of a document is computed once per fragment (memoized), so it takes
time linear in the size of the document whatever its fragments do.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from graphql import (
    BooleanValueNode,
    DirectiveNode,
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLCompositeType,
    GraphQLField,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
    is_composite_type,
    is_leaf_type,
)
from graphql.type.introspection import SchemaMetaFieldDef, TypeMetaFieldDef

# Lists that are not connections, with the most items they can hold (bounds the
# domain enforces: recipe nodes, reported violations, the planned sample).
LIST_SIZES: dict[str, int] = {
    "Batch.metrics": 50,
    "Batch.nodeMetrics": 50,
    "BatchProgress.nodeMetrics": 50,
    "BatchComparison.batches": 20,  # like Batch.chain
    "BatchComparison.metrics": 12,  # the batch-level metrics
    "BatchComparison.nodes": 50,  # recipe nodes (a renamed node counts twice: rare)
    "NodeComparison.metrics": 19,  # the node-level metrics
    "Batch.chain": 20,  # a chain is as long as its re-processings; 20 is typical
    "Job.dependencies": 50,
    "Job.dependents": 50,
    "BatchValidation.errors": 100,
    "BatchValidation.warnings": 100,
    "BatchValidation.jobsByNode": 50,
    "BatchValidation.nodes": 50,
    "BatchValidation.diff": 50,
    "BatchValidation.sample": 100,
    "ValidationFailed.violations": 100,
    "SchemaMismatch.violations": 100,
    "ParameterValidation.violations": 100,
    "Lineage.nodes": 500,  # bounds; FIRST_SCALED sizes them from `lineage(first:)`
    "Lineage.edges": 2_000,
    "Query.fileStores": 20,
    "Workspace.artifactCategories": 100,
}
# Lists sized by the `first` of the field above them (× a factor): `lineage(first: n)`
# returns at most n nodes and 4n edges.
FIRST_SCALED: dict[str, int] = {"Lineage.nodes": 1, "Lineage.edges": 4}
# How many `ofType` hops can be non-null in this schema (introspection_sizes sets it).
OF_TYPE_DEPTH = "__Type.ofType"
# Reported costs stop here (JSON numbers past 2**53 lose precision in browsers).
SATURATION = 2**53 - 1


@dataclass(frozen=True, slots=True)
class _Part:
    """The cost of a selection set at one item of its parent: ``fixed``; and, inside a
    connection, ``per_item``, what each of the connection's items adds (its edges)."""

    fixed: int = 0
    per_item: int = 0


def _is_connection(type_: GraphQLCompositeType) -> bool:
    return isinstance(type_, GraphQLObjectType) and type_.name.endswith("Connection")


def _is_edge(type_: GraphQLCompositeType) -> bool:
    return isinstance(type_, GraphQLObjectType) and type_.name.endswith("Edge")


def _is_list(type_: GraphQLOutputType) -> bool:
    inner = type_.of_type if isinstance(type_, GraphQLNonNull) else type_
    return isinstance(inner, GraphQLList)


def introspection_sizes(schema: GraphQLSchema) -> dict[str, int]:
    """Average list sizes of this schema's introspection (exact for ``__Schema.types``)."""
    types = list(schema.type_map.values())
    with_fields = [t for t in types if isinstance(t, GraphQLObjectType | GraphQLInterfaceType)]
    fields = [f for t in with_fields for f in t.fields.values()]
    enums = [t for t in types if hasattr(t, "values")]
    inputs = [t for t in types if isinstance(t, GraphQLInputObjectType)]
    abstract = [t for t in types if isinstance(t, GraphQLInterfaceType | GraphQLUnionType)]

    def mean(total: int, count: int) -> int:
        return max(1, math.ceil(total / count)) if count else 1

    def wrapping(type_: object) -> int:
        depth = 0
        while hasattr(type_, "of_type"):
            type_, depth = type_.of_type, depth + 1
        return depth

    typed = [*fields, *(a for f in fields for a in f.args.values())]
    typed += [f for t in inputs for f in t.fields.values()]
    return {
        OF_TYPE_DEPTH: max((wrapping(x.type) for x in typed), default=0),
        "__Schema.types": len(types),
        "__Schema.directives": len(schema.directives),
        "__Type.fields": mean(len(fields), len(with_fields)),
        "__Type.interfaces": mean(
            sum(len(getattr(t, "interfaces", ())) for t in with_fields), len(with_fields)
        ),
        "__Type.possibleTypes": mean(
            sum(len(schema.get_possible_types(t)) for t in abstract), len(abstract)
        ),
        "__Type.enumValues": mean(sum(len(t.values) for t in enums), len(enums)),
        "__Type.inputFields": mean(sum(len(t.fields) for t in inputs), len(inputs)),
        "__Field.args": mean(sum(len(f.args) for f in fields), len(fields)),
        "__Directive.args": mean(
            sum(len(d.args) for d in schema.directives), len(schema.directives)
        ),
    }


class _Coster:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variables: Mapping[str, object],
        defaults: Mapping[str, object],
        *,
        default_page_size: int,
        list_sizes: Mapping[str, int],
    ) -> None:
        self.schema = schema
        self.variables = variables
        self.defaults = defaults
        self.default_page_size = default_page_size
        self.list_sizes = list_sizes
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        self.memo: dict[str, _Part] = {}

    def fragment(self, name: str) -> _Part:
        found = self.memo.get(name)
        if found is not None:
            return found
        self.memo[name] = _Part()  # a cycle (validation refuses those) costs nothing
        definition = self.fragments.get(name)
        type_ = self.schema.get_type(definition.type_condition.name.value) if definition else None
        if definition is None or not is_composite_type(type_):
            return self.memo[name]
        part = self.selection_set(definition.selection_set, type_)
        self.memo[name] = part
        return part

    def selection_set(
        self,
        node: SelectionSetNode,
        parent: GraphQLCompositeType,
        of_type: int = 0,
        parent_first: int | None = None,
    ) -> _Part:
        """``of_type``: how many ``ofType`` hops led here (introspection); ``parent_first``:
        the ``first`` of the field that selected this object (for FIRST_SCALED lists)."""
        fixed = per_item = 0
        spread: set[str] = set()
        for selection in node.selections:
            if not self.included(selection.directives):
                continue
            if isinstance(selection, FieldNode):
                part = self.field(selection, parent, of_type, parent_first)
            elif isinstance(selection, FragmentSpreadNode):
                if selection.name.value in spread:
                    continue
                spread.add(selection.name.value)
                part = self.fragment(selection.name.value)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                type_ = self.schema.get_type(condition.name.value) if condition else parent
                if not is_composite_type(type_):
                    continue
                part = self.selection_set(selection.selection_set, type_, of_type, parent_first)
            else:  # pragma: no cover
                continue
            fixed += part.fixed
            per_item += part.per_item
        return _Part(min(fixed, SATURATION), min(per_item, SATURATION))

    def field(
        self,
        node: FieldNode,
        parent: GraphQLCompositeType,
        of_type: int,
        parent_first: int | None = None,
    ) -> _Part:
        name = node.name.value
        definition = self._definition(parent, name)
        if definition is None:
            return _Part()
        named = get_named_type(definition.type)
        if is_leaf_type(named) or node.selection_set is None:
            return _Part()
        assert is_composite_type(named)
        if parent.name == "__Type" and name == "ofType":
            of_type += 1
            if of_type > self.list_sizes.get(OF_TYPE_DEPTH, of_type):
                return _Part()  # deeper than any type of this schema is wrapped: null
        else:
            of_type = 0
        first_here = (
            self.size(node, definition, self.default_page_size)
            if "first" in definition.args
            and not _is_connection(named)
            and not _is_list(definition.type)
            else None
        )
        below = self.selection_set(node.selection_set, named, of_type, first_here)
        if _is_connection(parent) and name == "edges":
            return _Part(per_item=below.fixed)  # the items are counted by the connection
        if _is_connection(parent) and name == "pageInfo":
            return _Part()
        if _is_edge(parent) and name == "node":
            return _Part(fixed=below.fixed)
        if _is_connection(named):
            size = self.size(node, definition, self.default_page_size)
            return _Part(fixed=size + below.fixed + size * below.per_item)
        if _is_list(definition.type):
            key = f"{parent.name}.{name}"
            bound = self.list_sizes.get(key, self.default_page_size)
            if key in FIRST_SCALED and parent_first is not None:
                bound = min(bound, parent_first * FIRST_SCALED[key])
            size = self.size(node, definition, bound) if "first" in definition.args else bound
            return _Part(fixed=size * (1 + below.fixed))
        return _Part(fixed=1 + below.fixed)

    def _definition(self, parent: GraphQLCompositeType, name: str) -> GraphQLField | None:
        if name == "__schema" and parent is self.schema.query_type:
            return SchemaMetaFieldDef
        if name == "__type" and parent is self.schema.query_type:
            return TypeMetaFieldDef
        fields = getattr(parent, "fields", None)
        return fields.get(name) if fields is not None else None

    def size(self, node: FieldNode, definition: GraphQLField, default: int) -> int:
        """``first`` as given; its schema default, or ``default``, when absent or null."""
        value: object = None
        for argument in node.arguments or ():
            if argument.name.value == "first":
                value = self.value(argument.value)
                break
        else:
            argument_default = definition.args["first"].default_value if definition.args else None
            value = argument_default if isinstance(argument_default, int) else None
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # graphql-core takes 100.0 for an Int: so does the cost
        if isinstance(value, int) and not isinstance(value, bool):
            return max(value, 0)
        return default

    def value(self, node: object) -> object:
        if isinstance(node, IntValueNode):
            return int(node.value)
        if isinstance(node, BooleanValueNode):
            return node.value
        if isinstance(node, VariableNode):
            name = node.name.value
            return self.variables[name] if name in self.variables else self.defaults.get(name)
        return None

    def included(self, directives: tuple[DirectiveNode, ...] | None) -> bool:
        for directive in directives or ():
            if directive.name.value not in ("skip", "include"):
                continue
            condition = next(
                (a.value for a in directive.arguments or () if a.name.value == "if"), None
            )
            value = self.value(condition)
            if not isinstance(value, bool):
                continue  # validation or coercion reports it
            if (directive.name.value == "skip") == value:
                return False
        return True


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    *,
    operation_name: str | None,
    variables: Mapping[str, object] | None,
    default_page_size: int,
    list_sizes: Mapping[str, int],
) -> int:
    """The cost of the operation that will run (at least 1: every request costs something)."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    chosen = [
        op
        for op in operations
        if operation_name is None or (op.name is not None and op.name.value == operation_name)
    ]
    if len(chosen) != 1:
        return 1  # execution refuses an ambiguous or unknown operation
    operation = chosen[0]
    defaults: dict[str, object] = {}
    for definition in operation.variable_definitions or ():
        if isinstance(definition.default_value, IntValueNode | BooleanValueNode):
            defaults[definition.variable.name.value] = (
                int(definition.default_value.value)
                if isinstance(definition.default_value, IntValueNode)
                else definition.default_value.value
            )
    root = schema.get_root_type(operation.operation)
    if root is None:
        return 1
    coster = _Coster(
        schema,
        document,
        variables or {},
        defaults,
        default_page_size=default_page_size,
        list_sizes=list_sizes,
    )
    return max(1, min(coster.selection_set(operation.selection_set, root).fixed, SATURATION))


def input_values(variables: Mapping[str, object] | None) -> int:
    """How many JSON values the operation's variables hold: every scalar, array and
    object counts 1, at any depth (an item ``{"url": …, "width": …}`` counts 3).

    The work of validateBatch, createBatch and the other mutations that take large
    documents grows with this, not with the answer; literals in the document are
    bounded by the token limit instead. Iterative: depth is bounded elsewhere, but
    the count should not depend on it.
    """
    count = 0
    stack: list[object] = list((variables or {}).values())
    while stack:
        value = stack.pop()
        count += 1
        if isinstance(value, dict):
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return count
