"""Versioned Arrow schemas of every table; they import pyarrow only."""

from schemas.tables import (
    ALL,
    CURRENT,
    DECODE_ISSUES_V1,
    DOCUMENTS_V1,
    DOCUMENTS_V2,
    ENTITIES_V1,
    ENTITIES_V2,
    GENERATIONS_V1,
    GENERATIONS_V2,
    INGEST_EVENTS_V1,
    PASSAGES_V1,
    QUARANTINE_V1,
    SCHEMA_KEY,
    TOMBSTONES_V1,
    TOMBSTONES_V2,
    schema_version,
)

__all__ = [
    "ALL",
    "CURRENT",
    "DECODE_ISSUES_V1",
    "DOCUMENTS_V1",
    "DOCUMENTS_V2",
    "ENTITIES_V1",
    "ENTITIES_V2",
    "GENERATIONS_V1",
    "GENERATIONS_V2",
    "INGEST_EVENTS_V1",
    "PASSAGES_V1",
    "QUARANTINE_V1",
    "SCHEMA_KEY",
    "TOMBSTONES_V1",
    "TOMBSTONES_V2",
    "schema_version",
]
