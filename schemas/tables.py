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


def _strings() -> pa.DataType:
    return pa.list_(pa.field("item", pa.string(), nullable=False))


#: ``bioner.records.Section``, as an item of ``documents.sections``.
SECTION = pa.struct(
    [
        pa.field("label", pa.string(), nullable=False),
        pa.field("start", pa.int32(), nullable=False),
        pa.field("end", pa.int32(), nullable=False),
        pa.field("category", pa.string(), nullable=False),
    ]
)

#: ``bioner.records.OtherAbstract``, as an item of ``documents.other_abstracts``.
OTHER_ABSTRACT = pa.struct(
    [
        pa.field("language", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("type", pa.string(), nullable=False),
    ]
)

_DOCUMENT_FIELDS = [
    pa.field("id", pa.string(), nullable=False),
    pa.field("text", pa.string(), nullable=False),
    pa.field("version", pa.int32(), nullable=False),
    pa.field("title", pa.string(), nullable=False),
    pa.field("language", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("metadata", pa.map_(pa.string(), pa.string()), nullable=False),
    pa.field("journal", pa.string(), nullable=False),
    pa.field("pub_date", pa.string(), nullable=False),
    pa.field("doi", pa.string(), nullable=False),
    pa.field("authors", _strings(), nullable=False),
    pa.field("mesh_headings", _strings(), nullable=False),
    pa.field("keywords", _strings(), nullable=False),
    pa.field("publication_types", _strings(), nullable=False),
    pa.field("vernacular_title", pa.string(), nullable=False),
    pa.field(
        "other_abstracts",
        pa.list_(pa.field("item", OTHER_ABSTRACT, nullable=False)),
        nullable=False,
    ),
    pa.field("sections", pa.list_(pa.field("item", SECTION, nullable=False)), nullable=False),
]

#: ``bioner.records.Document`` with its bibliographic fields: one row per current document.
DOCUMENTS_V2 = _schema("documents", 2, _DOCUMENT_FIELDS)

#: What the ingest reads from one input file, in file order, before reconciliation: a
#: document or tombstone per row (``kind``), at ``position`` in input number ``ordinal``.
#: Document columns are null on tombstone rows; ``version`` is null where a tombstone has none.
INGEST_EVENTS_V1 = _schema(
    "ingest_events",
    1,
    [
        pa.field("ordinal", pa.int32(), nullable=False),
        pa.field("position", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        *(f if f.name in ("id", "source") else f.with_nullable(True) for f in _DOCUMENT_FIELDS),
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

#: ``bioner.ingest.Tombstone``: the deletions in force (ids deleted and not re-added since).
TOMBSTONES_V2 = _schema(
    "tombstones",
    2,
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("position", pa.int64(), nullable=False),
    ],
)

#: ``bioner.ingest.Quarantined``: records (and breaks in files) that could not be used.
QUARANTINE_V1 = _schema(
    "quarantine",
    1,
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("position", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("record_id", pa.string(), nullable=False),
        pa.field("line", pa.int64(), nullable=True),
        pa.field("raw", pa.string(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
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

#: ``bioner.generation.Generation`` of one passage, with its key, provenance and cache key:
#: ``cache_key`` (:func:`bioner.gencache.cache_key`) names what the text depends on, ``params``
#: is the canonical JSON of the decoding parameters and engine settings it was made with,
#: ``cached`` says the text was reused rather than generated for this row by this write (from
#: the shard's previous generations, or from an identical passage earlier in the shard);
#: ``run_id`` is the run that generated the text.
GENERATIONS_V2 = _schema(
    "generations",
    2,
    [
        *_key(),
        # The part of the passage this answer tags: the whole passage, or one of the
        # overlapping windows of a passage longer than the model's context.
        pa.field("window_start", pa.int32(), nullable=False),
        pa.field("window_end", pa.int32(), nullable=False),
        pa.field("cache_key", pa.string(), nullable=False),
        *_PROVENANCE,
        pa.field("params", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("prompt_tokens", pa.int32(), nullable=False),
        pa.field("output_tokens", pa.int32(), nullable=False),
        pa.field("finish_reason", pa.string(), nullable=False),
        pa.field("cached", pa.bool_(), nullable=False),
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

#: ``bioner.records.Entity`` after the contrastive selector (``tasks.select``): the columns of
#: ENTITIES_V1 plus ``reason``, why the selector accepted or rejected the row (the values of
#: ``bioner.selector.Reason``: ``accepted``, ``below_threshold``, ``unknown_label``,
#: ``no_passage``, ``offsets_outside_passage``, ``text_mismatch``); null where no selector ran.
#: Rejected rows stay in the table with ``selected`` false, their score and their reason.
ENTITIES_V2 = _schema(
    "entities",
    2,
    [*ENTITIES_V1, pa.field("reason", pa.string(), nullable=True)],
)

#: ``bioner.lexicon.Entry`` of one schema's training lexicon (``lexicon.parquet`` beside a
#: model, ``infra.lexicon``): an annotated string, its most frequent label and the counts.
LEXICON_V1 = _schema(
    "lexicon",
    1,
    [
        pa.field("schema", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("annotated", pa.int32(), nullable=False),
        pa.field("occurrences", pa.int32(), nullable=False),
    ],
)

#: LEXICON_V1 with a second kind of row: ``annotated`` 0 and ``label`` ``""`` is a string the
#: training passages hold ``occurrences`` times and never annotate (``Lexicon.unseen``: a tagger
#: span of it is dropped). A version 1 file reads as one without such rows.
LEXICON_V2 = _schema("lexicon", 2, list(LEXICON_V1))

#: LEXICON_V2 with ``kind`` naming each row: ``entry`` (an annotated string), ``unseen`` (a
#: string never annotated) or ``unit`` (a unit, lower-cased, that lies inside a mention
#: ``annotated`` times of its ``occurrences``; ``Lexicon.inside``, ``label`` ``""``).
LEXICON_V3 = _schema("lexicon", 3, [*LEXICON_V2, pa.field("kind", pa.string(), nullable=False)])

#: ENTITIES_V1 plus ``source``, what found the entity: ``tagger`` (decoded from the model's
#: answer), ``lexicon`` (the model's training lexicon: a gap the tagger's spans left, a mention
#: they cut short, or a label it corrected; ``bioner.lexicon``) or ``abbreviation`` (a later use
#: of an abbreviation defined on a found mention; ``bioner.abbreviations``). Tables of version 1
#: and 2 read as ``tagger`` throughout.
ENTITIES_V3 = _schema(
    "entities",
    3,
    [*ENTITIES_V1, pa.field("source", pa.string(), nullable=False)],
)

#: ENTITIES_V3 plus the selector's ``reason``, as ENTITIES_V2 adds it to ENTITIES_V1.
ENTITIES_V4 = _schema(
    "entities",
    4,
    [*ENTITIES_V3, pa.field("reason", pa.string(), nullable=True)],
)

#: The schema each table is written with today. Entities have two: decode writes
#: ENTITIES_V3 (no selector yet), the selector writes ENTITIES_V4.
CURRENT = (
    DOCUMENTS_V2,
    TOMBSTONES_V2,
    INGEST_EVENTS_V1,
    QUARANTINE_V1,
    PASSAGES_V1,
    GENERATIONS_V2,
    DECODE_ISSUES_V1,
    ENTITIES_V3,
    ENTITIES_V4,
    LEXICON_V3,
)
#: Every schema ever written, old versions included (their files may still be read).
ALL = (
    DOCUMENTS_V1,
    TOMBSTONES_V1,
    GENERATIONS_V1,
    ENTITIES_V1,
    ENTITIES_V2,
    LEXICON_V1,
    LEXICON_V2,
    *CURRENT,
)


def schema_version(schema: pa.Schema) -> str:
    """The ``name/version`` a schema (or a file's schema) declares; ``""`` if none."""
    return (schema.metadata or {}).get(SCHEMA_KEY, b"").decode()
