"""Arrow schemas of every table the pipeline writes, one constant per table version.

Column names are the field names of the records in ``bioner`` (a test keeps them in step), plus
the key and provenance columns a table needs to be joined and audited. The schema version sits in
the schema metadata under :data:`SCHEMA_KEY` (``b"entities/1"``); a reader checks it before
trusting a file. A change that breaks a reader makes a new constant (``ENTITIES_V2``), never an
edit of an old one.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_KEY = b"bioner.schema"


def _schema(name: str, version: int, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(fields, metadata={SCHEMA_KEY: f"{name}/{version}".encode()})


def _key(*, index: bool = True) -> list[pa.Field]:
    """The columns naming one passage of one document version."""
    key = [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("doc_version", pa.int32(), nullable=False),
    ]
    if index:
        key.append(pa.field("passage_index", pa.int32(), nullable=False))
    return key


_PROVENANCE = [
    pa.field("model_id", pa.string(), nullable=False),
    pa.field("prompt_version", pa.string(), nullable=False),
    pa.field("run_id", pa.string(), nullable=False),
]

#: ``bioner.records.Document``: one row per document version.
DOCUMENTS_V1 = _schema(
    "documents",
    1,
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("version", pa.int32(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("metadata", pa.map_(pa.string(), pa.string()), nullable=False),
    ],
)

#: ``bioner.ingest.Tombstone``: ids deleted at the source.
TOMBSTONES_V1 = _schema(
    "tombstones",
    1,
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
    ],
)

#: ``bioner.records.Passage``: offsets into the document text.
PASSAGES_V1 = _schema(
    "passages",
    1,
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("index", pa.int32(), nullable=False),
        pa.field("start", pa.int32(), nullable=False),
        pa.field("end", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("doc_version", pa.int32(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
    ],
)

#: ``bioner.generation.Generation`` of one passage, with its key and provenance.
GENERATIONS_V1 = _schema(
    "generations",
    1,
    [
        *_key(),
        *_PROVENANCE,
        pa.field("text", pa.string(), nullable=False),
        pa.field("prompt_tokens", pa.int32(), nullable=False),
        pa.field("output_tokens", pa.int32(), nullable=False),
        pa.field("finish_reason", pa.string(), nullable=False),
    ],
)

#: ``bioner.codec.issues.DecodeIssue`` of one passage's generation, with its key.
DECODE_ISSUES_V1 = _schema(
    "decode_issues",
    1,
    [
        *_key(),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("message", pa.string(), nullable=False),
        pa.field("line", pa.int32(), nullable=True),
        pa.field("lossy", pa.bool_(), nullable=False),
    ],
)

#: ``bioner.records.Entity``: document offsets, provenance, selector outcome.
ENTITIES_V1 = _schema(
    "entities",
    1,
    [
        *_key(),
        pa.field("start", pa.int32(), nullable=False),
        pa.field("end", pa.int32(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        *_PROVENANCE,
        pa.field("score", pa.float32(), nullable=True),
        pa.field("selected", pa.bool_(), nullable=True),
        pa.field("issues", pa.list_(pa.string()), nullable=False),
    ],
)

ALL = (DOCUMENTS_V1, TOMBSTONES_V1, PASSAGES_V1, GENERATIONS_V1, DECODE_ISSUES_V1, ENTITIES_V1)


def schema_version(schema: pa.Schema) -> str:
    """The ``name/version`` a schema (or a file's schema) declares; ``""`` if none."""
    return (schema.metadata or {}).get(SCHEMA_KEY, b"").decode()
