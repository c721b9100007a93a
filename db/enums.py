"""Enumerations stored in columns (as PostgreSQL enum types)."""

from __future__ import annotations

from enum import StrEnum


class TokenRole(StrEnum):
    ADMIN = "ADMIN"
    WRITER = "WRITER"
    READER = "READER"
    WORKER = "WORKER"


class CachePolicy(StrEnum):
    NONE = "NONE"
    BATCH = "BATCH"
    ALL = "ALL"
