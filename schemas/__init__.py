"""Versioned Arrow schemas of every table; they import pyarrow only."""

from schemas.tables import (
    ALL,
    DECODE_ISSUES_V1,
    DOCUMENTS_V1,
    ENTITIES_V1,
    GENERATIONS_V1,
    PASSAGES_V1,
    SCHEMA_KEY,
    TOMBSTONES_V1,
    schema_version,
)

__all__ = [
    "ALL",
    "DECODE_ISSUES_V1",
    "DOCUMENTS_V1",
    "ENTITIES_V1",
    "GENERATIONS_V1",
    "PASSAGES_V1",
    "SCHEMA_KEY",
    "TOMBSTONES_V1",
    "schema_version",
]
