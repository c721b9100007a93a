import graphql_api.enums  # noqa: F401  (registers the schema enums first)
