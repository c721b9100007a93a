from __future__ import annotations

import strawberry

from graphql_api.context import Info
from graphql_api.settings import package_version


@strawberry.type(description="Request limits this server enforces.")
class ApiLimits:
    max_depth: int
    max_aliases: int
    max_tokens: int
    max_batch_operations: int
    max_body_bytes: int
    default_page_size: int
    max_page_size: int


@strawberry.type(description="About this API (TopChef's API metadata).")
class ApiMetadata:
    version: str
    documentation_url: str
    maintainer: str
    source_url: str
    limits: ApiLimits


@strawberry.type
class MetaQueries:
    @strawberry.field
    def api_metadata(self, info: Info) -> ApiMetadata:
        settings = info.context.settings
        lim = settings.limits
        return ApiMetadata(
            version=package_version(),
            documentation_url=settings.documentation_url,
            maintainer=settings.maintainer,
            source_url=settings.source_url,
            limits=ApiLimits(
                max_depth=lim.max_depth,
                max_aliases=lim.max_aliases,
                max_tokens=lim.max_tokens,
                max_batch_operations=lim.max_batch_operations,
                max_body_bytes=lim.max_body_bytes,
                default_page_size=lim.default_page_size,
                max_page_size=lim.max_page_size,
            ),
        )
