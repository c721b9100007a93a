"""The compiled read path: a validated query becomes one SQL statement whose JSON
PostgreSQL builds (graphql_api.compiled.extension hooks it in; see planner, spec,
connection, and the types_* modules for how each field compiles)."""
