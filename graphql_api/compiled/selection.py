"""The validated selection as a tree of fields per concrete type: fragments (named and
inline, on object types, interfaces and unions) merged, aliases kept as response keys,
``@skip``/``@include`` applied. Built once per document and operation (and per value
of the variables that directives read), then shared by every request."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLAbstractType,
    GraphQLField,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    SchemaMetaFieldDef,
    SelectionSetNode,
    TypeMetaFieldDef,
    TypeNameMetaFieldDef,
    VariableNode,
    get_named_type,
    visit,
)
from graphql.execution.values import VariableValues, get_directive_values
from graphql.language import Visitor
from graphql.type import GraphQLIncludeDirective, GraphQLSkipDirective


class Unsupported(Exception):
    """This part of the document is not compiled: it goes to the resolvers."""


@dataclass(eq=False)
class Field:
    """One response key of one object type: every node asking for it, merged."""

    key: str
    name: str
    nodes: tuple[FieldNode, ...]
    definition: GraphQLField
    tree: Tree
    _children: dict[str, tuple[Field, ...]] = field(default_factory=dict)

    @property
    def has_arguments(self) -> bool:
        return bool(self.nodes[0].arguments)

    def children(self, type_name: str) -> tuple[Field, ...]:
        """The sub-selection as seen by objects of the concrete type ``type_name``."""
        found = self._children.get(type_name)
        if found is None:
            found = self.tree.collect(
                type_name, [n.selection_set for n in self.nodes if n.selection_set]
            )
            self._children[type_name] = found
        return found

    @property
    def return_type(self) -> GraphQLNamedType:
        return get_named_type(self.definition.type)


class Tree:
    """Field collection for one operation, under fixed directive variables."""

    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: VariableValues,
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables

    def collect(
        self, type_name: str, selection_sets: Iterable[SelectionSetNode]
    ) -> tuple[Field, ...]:
        runtime = self.schema.get_type(type_name)
        if not isinstance(runtime, GraphQLObjectType):
            raise Unsupported(f"{type_name} is not an object type")
        grouped: dict[str, list[FieldNode]] = {}
        visited: set[str] = set()
        for selection_set in selection_sets:
            self._collect(runtime, selection_set, grouped, visited)
        fields = []
        for key, nodes in grouped.items():
            name = nodes[0].name.value
            if name == "__typename":
                definition = TypeNameMetaFieldDef
            elif name == "__schema":  # introspection: left to the resolvers (no spec)
                definition = SchemaMetaFieldDef
            elif name == "__type":
                definition = TypeMetaFieldDef
            else:
                definition = runtime.fields[name]
            fields.append(Field(key, name, tuple(nodes), definition, self))
        return tuple(fields)

    def _collect(
        self,
        runtime: GraphQLObjectType,
        selection_set: SelectionSetNode,
        grouped: dict[str, list[FieldNode]],
        visited: set[str],
    ) -> None:
        for selection in selection_set.selections:
            if not self._included(selection):
                continue
            if isinstance(selection, FieldNode):
                key = selection.alias.value if selection.alias else selection.name.value
                grouped.setdefault(key, []).append(selection)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                if condition is None or self._applies(condition.name.value, runtime):
                    self._collect(runtime, selection.selection_set, grouped, visited)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                if name in visited:
                    continue
                visited.add(name)
                fragment = self.fragments[name]
                if self._applies(fragment.type_condition.name.value, runtime):
                    self._collect(runtime, fragment.selection_set, grouped, visited)

    def _applies(self, condition: str, runtime: GraphQLObjectType) -> bool:
        if condition == runtime.name:
            return True
        found = self.schema.get_type(condition)
        if isinstance(found, GraphQLAbstractType):
            return self.schema.is_sub_type(found, runtime)
        return False

    def _included(self, node: Any) -> bool:
        skip = get_directive_values(GraphQLSkipDirective, node, self.variables)
        if skip and skip["if"] is True:
            return False
        include = get_directive_values(GraphQLIncludeDirective, node, self.variables)
        return not (include and include["if"] is False)


@dataclass(frozen=True)
class Operation:
    """A parsed, validated operation: what is cached per document."""

    document: DocumentNode
    definition: OperationDefinitionNode
    fragments: Mapping[str, FragmentDefinitionNode]
    directive_variables: tuple[str, ...]  # variables read by @skip/@include
    trees: dict[tuple[Any, ...], tuple[Field, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, document: DocumentNode, definition: OperationDefinitionNode) -> Operation:
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        return cls(document, definition, fragments, _directive_variables(document))

    def root_fields(
        self, schema: GraphQLSchema, variables: VariableValues
    ) -> tuple[tuple[Any, ...], tuple[Field, ...]]:
        """(the directive variables' values, the root fields under them)."""
        signature = tuple(_freeze(variables.coerced.get(name)) for name in self.directive_variables)
        found = self.trees.get(signature)
        if found is None:
            query = schema.query_type
            assert query is not None
            tree = Tree(schema, self.fragments, variables)
            found = tree.collect(query.name, [self.definition.selection_set])
            if len(self.trees) < 16:
                self.trees[signature] = found
        return signature, found


def _directive_variables(document: DocumentNode) -> tuple[str, ...]:
    names: list[str] = []

    class Finder(Visitor):
        def enter_directive(self, node: Any, *_: Any) -> None:
            if node.name.value in ("skip", "include"):
                for argument in node.arguments or ():
                    if isinstance(argument.value, VariableNode):
                        names.append(argument.value.name.value)

    visit(document, Finder())
    return tuple(sorted(set(names)))


def _freeze(value: Any) -> Any:
    return value if isinstance(value, bool | None) else repr(value)
