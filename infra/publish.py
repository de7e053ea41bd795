"""Publish a run's tables as Delta Lake tables (local folder or S3) for analysts and graph loaders.

``publish(OUT, ROOT)`` reads the annotate run's stage tables (``OUT/<table>/shard=<k>.parquet``)
and brings five Delta tables under ``ROOT`` up to date:

* ``documents``: one row per current document (the ingest's columns and the ``run_id``);
* ``entities``: one row per entity (doc id and version, passage, offsets, text, label, score,
  selector decision, model id, prompt version, run id);
* ``mention_edges``: document-entity edges with the number of mentions;
* ``entity_nodes``: one node per (label, normalised text) with mention and document counts;
* ``cooccurrence_edges``: pairs of nodes that occur in one passage, with passage and document
  counts.

Semantics. A document in the run replaces all of that document's rows (a revised citation
drops its old entities); a tombstoned id removes them; other documents stay as they were. Each
table changes in one Delta commit (a merge keyed by document id), so a reader sees the old or
the new version, a failed publish leaves the previous version, and earlier versions stay
readable by time travel (``DeltaTable(uri, version=n)``). The run id goes into each commit as
an app transaction (``bioner.publish:<run id>``) and in the commit metadata: publishing the
same run again changes nothing, and a rerun after a failure completes only what is missing.
Two publishes at once never corrupt a table: Delta's optimistic concurrency (conditional PUTs
on S3) lets one commit win and the other fail with :class:`PublishError`; rerun it.

Only shards whose ``entities`` were written publish their documents, so documents never appear
without their entities; deletions come from every shard's tombstones. The node and
co-occurrence tables are recomputed from the whole entities table on each publish (their counts
span documents).

Releases: one publish is one step for readers. The five tables commit one after another, so
the last commit is a sixth Delta table, ``ROOT/_releases``, whose one row names the Delta
version of each table (``<table>_version``), the run, and the digest of every published shard.
Release ``n`` is version ``n`` of ``_releases`` (a new root starts with an empty version 0).
Readers follow the release: :func:`read`, :func:`open_table` and :func:`read_release` read each
table at the current release's version (or release ``n``'s), so they see the previous release
complete until the next one commits, never tables of two runs mixed; any Delta reader does the
same by reading the one row of ``_releases`` and then each table with ``version=`` that row's
value. A root published before releases existed (no ``_releases``) is read at each table's
latest version, and its first publish adopts those versions as release 0. Keep table versions
that releases name when vacuuming (a retention longer than the oldest release read).

A publish that changes nothing writes nothing: each shard's digest (the size and writing run of
its documents, entities, selected and tombstones files: footers, not rows) is compared with the
digests the current release records, and only shards whose digest changed are published. A
rerun of ``bioner run`` that rewrote no shard therefore publishes no new version.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from infra import s3, storage
from infra.entity_tables import read_entities
from infra.s3 import StorageError
from schemas import DOCUMENTS_V2, ENTITIES_V3, TOMBSTONES_V2

try:
    import deltalake
    from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
    from deltalake.exceptions import DeltaError, TableNotFoundError
except ImportError:  # pragma: no cover - the message says which extra to install
    deltalake = None  # type: ignore[assignment]

DOCUMENTS = "documents"
ENTITIES = "entities"
MENTIONS = "mention_edges"
NODES = "entity_nodes"
COOCCURRENCES = "cooccurrence_edges"
TABLES = (DOCUMENTS, ENTITIES, MENTIONS, NODES, COOCCURRENCES)
RELEASES = "_releases"
APP_PREFIX = "bioner.publish:"
_OP = "_bioner_op"

#: ``documents``: the ingest's document columns and the run that published the row.
PUBLISHED_DOCUMENTS = pa.schema([*DOCUMENTS_V2, pa.field("run_id", pa.string(), nullable=False)])
#: ``entities``: ENTITIES_V3's columns; ``selected`` is the selector's decision (null: none
#: yet), ``source`` what found the entity (``tagger``, ``lexicon`` or ``abbreviation``). Tables
#: published before ``source`` existed gain the column on their next publish (null in their
#: older rows).
PUBLISHED_ENTITIES = pa.schema(list(ENTITIES_V3))
PUBLISHED_MENTIONS = pa.schema(
    [
        pa.field("doc_id", pa.string(), nullable=False),
        pa.field("doc_version", pa.int32(), nullable=False),
        pa.field("node_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("mentions", pa.int64(), nullable=False),
        pa.field("run_id", pa.string(), nullable=False),
    ]
)
PUBLISHED_NODES = pa.schema(
    [
        pa.field("node_id", pa.string(), nullable=False),
        pa.field("label", pa.string(), nullable=False),
        pa.field("name", pa.string(), nullable=False),
        pa.field("mentions", pa.int64(), nullable=False),
        pa.field("documents", pa.int64(), nullable=False),
    ]
)
PUBLISHED_COOCCURRENCES = pa.schema(
    [
        pa.field("source_id", pa.string(), nullable=False),
        pa.field("target_id", pa.string(), nullable=False),
        pa.field("passages", pa.int64(), nullable=False),
        pa.field("documents", pa.int64(), nullable=False),
    ]
)
#: ``_releases``: one row, the current release: each table's Delta version, the run, and the
#: digest of every shard published so far (JSON: ``<OUT>/<shard file>`` to digest).
PUBLISHED_RELEASES = pa.schema(
    [
        *(pa.field(f"{name}_version", pa.int64(), nullable=False) for name in TABLES),
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("published_at", pa.timestamp("us", "UTC"), nullable=False),
        pa.field("shards", pa.string(), nullable=False),
    ]
)


class PublishError(StorageError):
    """A publish failed; the tables keep their previous version. One line, naming the table."""


@dataclass(frozen=True)
class TableReport:
    """What publishing did to one table."""

    uri: str
    version: int
    skipped: bool
    rows: int  # rows written by this publish (inserted or rewritten)


@dataclass(frozen=True)
class Release:
    """A complete publish as readers see it: release ``number`` is version ``number`` of
    ``_releases``; ``versions`` the Delta version of each table, ``shards`` the published
    shards' digests."""

    number: int
    run_id: str
    versions: dict[str, int]
    shards: dict[str, str]


@dataclass(frozen=True)
class PublishReport:
    """The outcome of one publish: the run, the tables, the release, the documents it touched."""

    root: str
    run_id: str
    documents: int
    deleted: int
    seconds: float
    tables: dict[str, TableReport] = field(default_factory=dict)
    release: int | None = None  # the release readers now see (None: a root without releases)

    @property
    def skipped(self) -> bool:
        """Whether every table had this run already (nothing was written)."""
        return all(t.skipped for t in self.tables.values())

    @property
    def rows(self) -> int:
        """Rows written over all tables."""
        return sum(t.rows for t in self.tables.values())


def _require() -> None:
    if deltalake is None:
        raise ImportError(
            "publishing Delta tables needs deltalake: pip install 'bioner[s3]' "
            "(with -c requirements/cpu-constraints.txt)"
        )


def table_uri(root: str, name: str) -> str:
    """The URI of published table ``name`` under ``root`` (absolute for a local folder)."""
    if s3.is_s3(root):
        return storage.join(root, name)
    return str(Path(storage.local_path(root)).resolve() / name)


def storage_options(uri: str) -> dict[str, str] | None:
    """delta-rs ``storage_options`` for ``uri``: the S3 settings, nothing for a local path."""
    return s3.delta_options() if s3.is_s3(uri) else None


def reader_options(uri: str) -> dict[str, str] | None:
    """The endpoint and region part of :func:`storage_options`, for polars and other readers."""
    options = storage_options(uri)
    return None if options is None else {k: v for k, v in options.items() if k.startswith("AWS_")}


def release(root: str, number: int | None = None) -> Release | None:
    """The current release of ``root`` (or release ``number``); None for a root published
    before releases existed (read each table's latest version)."""
    _require()
    uri = table_uri(root, RELEASES)
    with _errors(uri):
        log = _load(uri, number)
        rows = [] if log is None else log.to_pyarrow_table().to_pylist()
    if log is None:
        if number is not None:
            raise PublishError(f"{uri}: no such Delta table")
        return None
    if not rows:
        raise PublishError(f"{root}: nothing published yet (the first publish has not completed)")
    row = rows[0]
    return Release(
        number=log.version(),
        run_id=row["run_id"],
        versions={name: row[f"{name}_version"] for name in TABLES},
        shards=json.loads(row["shards"]),
    )


def open_table(
    root: str, name: str, version: int | None = None, release_number: int | None = None
) -> DeltaTable:
    """The published table ``name`` as the current release has it, as of release
    ``release_number``, or as of its own Delta ``version`` (time travel by table)."""
    _require()
    if version is None:
        found = release(root, release_number)
        version = None if found is None else found.versions[name]
    uri = table_uri(root, name)
    with _errors(uri):
        return DeltaTable(uri, version=version, storage_options=storage_options(uri))


def read(
    root: str, name: str, version: int | None = None, release_number: int | None = None
) -> pa.Table:
    """The rows of a published table, as :func:`open_table` finds it."""
    uri = table_uri(root, name)
    with _errors(uri):
        return open_table(root, name, version, release_number).to_pyarrow_table()


def read_release(root: str, release_number: int | None = None) -> dict[str, pa.Table]:
    """Every published table at one release (the current one, or ``release_number``): one
    consistent view however many publishes commit meanwhile."""
    found = release(root, release_number)
    return {
        name: read(root, name, None if found is None else found.versions[name]) for name in TABLES
    }


class _errors:
    """Turn a delta-rs or S3 failure inside into one-line :class:`PublishError`."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: Any, tb: Any) -> None:
        if error is None or isinstance(error, PublishError) or kind is ImportError:
            return
        if isinstance(error, FileNotFoundError) or (
            deltalake is not None and isinstance(error, TableNotFoundError)
        ):
            raise PublishError(f"{self.uri}: no such Delta table") from error
        if isinstance(error, OSError) or (deltalake is not None and isinstance(error, DeltaError)):
            text = str(error)
            if "Failed to commit" in text or "oncurrent" in text or "ransaction" in text:
                said = "another publish committed to this table first; nothing was changed, rerun"
            else:
                said = s3.reason(error)
            raise PublishError(f"{self.uri}: {said}") from error


# --------------------------------------------------------------------------- reading the run


@dataclass(frozen=True)
class RunTables:
    """The rows of one annotate run to publish."""

    run_id: str
    documents: pa.Table
    entities: pa.Table
    deleted: list[str]


#: The selector's table beside ``entities`` (tasks.select) and its footer key naming the run
#: of the entities it was made from.
SELECTED = "selected"
CANDIDATES_RUN = "bioner.candidates_run_id"


def made_from_current(entities: str, selected: str) -> bool:
    """Whether the selected table ``selected`` was made from the entities table as it is now
    (decode writes a new table, with a new run id, on every change)."""
    if not storage.exists(selected) or not storage.exists(entities):
        return False
    made_from = storage.read_metadata(selected).get(CANDIDATES_RUN)
    return made_from == storage.read_metadata(entities).get("bioner.run_id", "")


def entity_table(out: str, name: str, columns: list[str] | None = None) -> pa.Table:
    """The entities of shard file ``name`` of ``OUT``, as PUBLISHED_ENTITIES columns.

    The selector's decisions (``OUT/selected/<name>``: every entity with ``score`` and
    ``selected`` set) when that table was made from the shard's current entities; the decoded
    entities (``selected`` null: no selector has seen them) otherwise. Tables of any version
    are read (:func:`infra.entity_tables.read_entities`).
    """
    entities = storage.join(out, "entities", name)
    selected = storage.join(out, SELECTED, name)
    columns = columns or PUBLISHED_ENTITIES.names
    table = read_entities(selected if made_from_current(entities, selected) else entities, columns)
    return table.cast(pa.schema([PUBLISHED_ENTITIES.field(c) for c in columns]))


def _shards(out: str, table: str) -> list[str]:
    folder = storage.join(out, table)
    return [
        storage.join(folder, name)
        for name in storage.list_dir(folder)
        if name.startswith("shard=") and name.endswith(".parquet")
    ]


def _names(out: str, table: str) -> set[str]:
    return {uri.rsplit("/", 1)[1] for uri in _shards(out, table)}


def run_tables(out: str, run_id: str | None = None, names: list[str] | None = None) -> RunTables:
    """The documents and entities of ``OUT``'s shards with entities, and the deletions of all
    its shards (of the shard files ``names`` only, if given).

    ``run_id``: the run's id; by default the ``run_id`` of ``OUT/summary.json``, else a digest
    of the tables' footers (the same folder gives the same id, so a republish is skipped).
    """
    with_entities, with_tombstones = _names(out, "entities"), _names(out, "tombstones")
    names = sorted(with_entities | with_tombstones) if names is None else names
    tagged = [n for n in names if n in with_entities]
    entity_parts = [storage.join(out, "entities", n) for n in tagged]
    documents = [storage.join(out, "documents", n) for n in tagged]
    missing = [uri for uri in documents if not storage.exists(uri)]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: the entities of this shard have no documents")
    docs = _concat([storage.read_table(u, DOCUMENTS_V2) for u in documents], DOCUMENTS_V2)
    ents = _concat([entity_table(out, n) for n in tagged], PUBLISHED_ENTITIES)
    tombstone_parts = [storage.join(out, "tombstones", n) for n in names if n in with_tombstones]
    deleted = sorted(
        {
            i
            for u in tombstone_parts
            for i in storage.read_table(u, TOMBSTONES_V2, ["id"]).column("id").to_pylist()
        }
    )
    return RunTables(
        run_id or _run_id(out, [*documents, *entity_parts, *tombstone_parts]), docs, ents, deleted
    )


def shard_digests(out: str) -> dict[str, str]:
    """Each shard of ``OUT`` that :func:`run_tables` reads, as ``<OUT, absolute>/<shard file>``,
    and a digest of the size and writing run of its documents, entities, selected and
    tombstones files.

    Footers only: every stage writes a new file with its run's id when a shard changes and
    leaves it alone otherwise, so an unchanged digest means unchanged rows.
    """
    base = out.rstrip("/") if s3.is_s3(out) else str(storage.local_path(out).resolve())
    found = {}
    for name in sorted(_names(out, "entities") | _names(out, "tombstones")):
        digest = hashlib.sha256()
        for table in ("documents", "entities", SELECTED, "tombstones"):
            part = storage.join(out, table, name)
            if storage.exists(part):
                run = storage.read_metadata(part).get("bioner.run_id", "")
                digest.update(f"{table}\0{storage.size(part)}\0{run}\n".encode())
        found[f"{base}/{name}"] = digest.hexdigest()[:32]
    return found


def _concat(tables: list[pa.Table], schema: pa.Schema) -> pa.Table:
    plain = pa.schema(list(schema))
    if not tables:
        return plain.empty_table()
    return pa.concat_tables([t.select(plain.names).cast(plain) for t in tables])


def _run_id(out: str, parts: list[str]) -> str:
    summary = storage.join(out, "summary.json")
    if storage.exists(summary):
        found = json.loads(storage.read_text(summary)).get("run_id")
        if found:
            return str(found)
    digest = hashlib.sha256()
    for uri in parts:
        meta = storage.read_metadata(uri)
        digest.update(f"{uri}\0{storage.size(uri)}\0{meta.get('bioner.run_id', '')}\n".encode())
    return "out-" + digest.hexdigest()[:16]


# --------------------------------------------------------------------------- graph tables


def node_ids(labels: pa.Array, texts: pa.Array) -> pa.Array:
    """``label:normalised text`` (whitespace collapsed, lower case): one node per concept name."""
    name = pc.utf8_lower(pc.utf8_trim_whitespace(pc.replace_substring_regex(texts, r"\s+", " ")))
    return pc.binary_join_element_wise(labels, name, ":")


def _counted(entities: pa.Table) -> pa.Table:
    """Entities that count for the graph: not rejected by the selector, with their node id."""
    kept = entities.filter(pc.invert(pc.fill_null(pc.equal(entities["selected"], False), False)))
    return kept.append_column("node_id", node_ids(kept["label"], kept["text"]))


def mention_edges(entities: pa.Table, run_id: str) -> pa.Table:
    """Document-node edges with the number of mentions, from a run's entities."""
    kept = _counted(entities)
    grouped = kept.group_by(["doc_id", "doc_version", "node_id", "label"]).aggregate(
        [("start", "count")]
    )
    table = grouped.rename_columns(["doc_id", "doc_version", "node_id", "label", "mentions"])
    table = table.append_column("run_id", pa.array([run_id] * table.num_rows, pa.string()))
    return table.select(PUBLISHED_MENTIONS.names).cast(PUBLISHED_MENTIONS)


def entity_nodes(entities: pa.Table) -> pa.Table:
    """One row per node with its mentions and documents, from the whole entities table."""
    kept = _counted(entities)
    kept = kept.append_column(
        "name",
        pc.utf8_lower(
            pc.utf8_trim_whitespace(pc.replace_substring_regex(kept["text"], r"\s+", " "))
        ),
    )
    grouped = kept.group_by(["node_id", "label", "name"]).aggregate(
        [("start", "count"), ("doc_id", "count_distinct")]
    )
    table = grouped.rename_columns(["node_id", "label", "name", "mentions", "documents"])
    return table.sort_by("node_id").cast(PUBLISHED_NODES)


def cooccurrence_edges(entities: pa.Table) -> pa.Table:
    """Pairs of nodes in one passage (``source_id < target_id``), with passage/document counts."""
    kept = _counted(entities)
    key = ["doc_id", "doc_version", "passage_index"]
    per_passage = kept.group_by([*key, "node_id"]).aggregate([])
    pairs = per_passage.join(
        per_passage, keys=key, join_type="inner", left_suffix="_a", right_suffix="_b"
    )
    pairs = pairs.filter(pc.less(pairs["node_id_a"], pairs["node_id_b"]))
    grouped = pairs.group_by(["node_id_a", "node_id_b"]).aggregate(
        [("passage_index", "count"), ("doc_id", "count_distinct")]
    )
    table = grouped.rename_columns(["source_id", "target_id", "passages", "documents"])
    return table.sort_by([("source_id", "ascending"), ("target_id", "ascending")]).cast(
        PUBLISHED_COOCCURRENCES
    )


# --------------------------------------------------------------------------- writing

#: Called with the table name just before each commit (tests use it to race or to fail).
before_commit: Callable[[str], None] = lambda name: None  # noqa: E731


def _commit_properties(run_id: str) -> CommitProperties:
    return CommitProperties(
        custom_metadata={"bioner.run_id": run_id},
        app_transactions=[Transaction(APP_PREFIX + run_id, 1)],
        max_commit_retries=3,
    )


def _load(uri: str, version: int | None = None) -> DeltaTable | None:
    try:
        return DeltaTable(uri, version=version, storage_options=storage_options(uri))
    except TableNotFoundError:
        return None


def _add_missing_columns(table: DeltaTable, schema: pa.Schema, run_id: str) -> None:
    """Add the columns of ``schema`` a table made by an older bioner lacks (nullable: its
    older rows have none), in a commit of their own before the data's."""
    have = set(table.schema().to_arrow().names)
    missing = [f.with_nullable(True) for f in schema if f.name not in have]
    if missing:
        fields = deltalake.Schema.from_arrow(pa.schema(missing)).fields
        # Not the run's app transaction: that marks the data committed, which this is not.
        table.alter.add_columns(
            fields, commit_properties=CommitProperties(custom_metadata={"bioner.run_id": run_id})
        )


def _replace_by_key(
    name: str, uri: str, rows: pa.Table, schema: pa.Schema, key: str, ids: list[str], run_id: str
) -> TableReport:
    """Replace the rows of documents ``ids`` by ``rows`` in one commit (create if absent)."""
    rows = rows.select(schema.names).cast(schema)
    table = _load(uri)
    if table is not None and table.transaction_version(APP_PREFIX + run_id) is not None:
        return TableReport(uri, table.version(), True, 0)
    before_commit(name)
    if table is None:
        if not s3.is_s3(uri):
            Path(uri).mkdir(parents=True, exist_ok=True)
        write_deltalake(
            uri,
            rows,
            mode="error",
            storage_options=storage_options(uri),
            commit_properties=_commit_properties(run_id),
        )
    else:
        _add_missing_columns(table, schema, run_id)
        # Marker rows (op "delete", one per id) match and delete every old row of a
        # document; the new rows (op "insert") never match and are inserted: one commit.
        loose = pa.schema([f.with_nullable(True) for f in schema] + [pa.field(_OP, pa.string())])
        inserts = rows.append_column(_OP, pa.array(["insert"] * rows.num_rows, pa.string()))
        marks = {c: pa.nulls(len(ids), schema.field(c).type) for c in schema.names}
        marks[key] = pa.array(ids, pa.string())
        marks[_OP] = pa.array(["delete"] * len(ids), pa.string())
        source = pa.concat_tables([inserts.cast(loose), pa.table(marks).cast(loose)])
        (
            table.merge(
                source,
                f"t.{key} = s.{key} AND s.{_OP} = 'delete'",
                source_alias="s",
                target_alias="t",
                commit_properties=_commit_properties(run_id),
            )
            .when_matched_delete()
            .when_not_matched_insert(
                {c: f"s.`{c}`" for c in schema.names}, predicate=f"s.{_OP} = 'insert'"
            )
            .execute()
        )
    done = DeltaTable(uri, storage_options=storage_options(uri))
    return TableReport(uri, done.version(), False, rows.num_rows)


def _overwrite(name: str, uri: str, rows: pa.Table, run_id: str) -> TableReport:
    table = _load(uri)
    if table is not None and table.transaction_version(APP_PREFIX + run_id) is not None:
        return TableReport(uri, table.version(), True, 0)
    before_commit(name)
    if table is None and not s3.is_s3(uri):
        Path(uri).mkdir(parents=True, exist_ok=True)
    write_deltalake(
        uri,
        rows,
        mode="overwrite",
        storage_options=storage_options(uri),
        commit_properties=_commit_properties(run_id),
    )
    done = DeltaTable(uri, storage_options=storage_options(uri))
    return TableReport(uri, done.version(), False, rows.num_rows)


def _release_row(versions: dict[str, int], run_id: str, shards: dict[str, str]) -> dict:
    return {f"{name}_version": versions[name] for name in TABLES} | {
        "run_id": run_id,
        "published_at": datetime.now(UTC),
        "shards": json.dumps(shards, sort_keys=True),
    }


def _releases(root: str) -> tuple[DeltaTable, Release | None]:
    """``_releases`` (made if missing) and its current release (None: none complete yet).

    A root published before releases existed gets its tables' latest versions as release 0,
    so its readers go on seeing them while the first publish with releases runs.
    """
    uri = table_uri(root, RELEASES)
    log = _load(uri)
    if log is None:
        found = {n: t.version() for n in TABLES if (t := _load(table_uri(root, n))) is not None}
        rows = [_release_row(found, "", {})] if len(found) == len(TABLES) else []
        if not s3.is_s3(uri):
            Path(uri).mkdir(parents=True, exist_ok=True)
        write_deltalake(
            uri,
            pa.Table.from_pylist(rows, PUBLISHED_RELEASES),
            mode="error",
            storage_options=storage_options(uri),
        )
        log = DeltaTable(uri, storage_options=storage_options(uri))
    rows = log.to_pyarrow_table().to_pylist()
    if not rows:
        return log, None
    versions = {name: rows[0][f"{name}_version"] for name in TABLES}
    return log, Release(log.version(), rows[0]["run_id"], versions, json.loads(rows[0]["shards"]))


def publish(out: str, root: str, run_id: str | None = None) -> PublishReport:
    """Publish the run in ``OUT`` to the Delta tables under ``root``; see the module doc."""
    _require()
    started = time.perf_counter()
    releases_uri = table_uri(root, RELEASES)
    with _errors(releases_uri):
        log, previous = _releases(root)
    digests = shard_digests(out)
    known = {} if previous is None else previous.shards
    changed = sorted(key for key, digest in digests.items() if known.get(key) != digest)
    if previous is not None and not changed:
        return PublishReport(
            root=root,
            run_id=previous.run_id,  # the run whose rows readers see
            documents=0,
            deleted=0,
            seconds=time.perf_counter() - started,
            tables={
                n: TableReport(table_uri(root, n), previous.versions[n], True, 0) for n in TABLES
            },
            release=previous.number,
        )
    run = run_tables(out, run_id, [key.rsplit("/", 1)[1] for key in changed])
    docs = run.documents.append_column(
        "run_id", pa.array([run.run_id] * run.documents.num_rows, pa.string())
    )
    doc_ids = run.documents.column("id").to_pylist()
    ids = sorted(set(doc_ids) | set(run.deleted))
    reports: dict[str, TableReport] = {}
    steps: list[tuple[str, Callable[[str], TableReport]]] = [
        (
            DOCUMENTS,
            lambda uri: _replace_by_key(
                DOCUMENTS, uri, docs, PUBLISHED_DOCUMENTS, "id", ids, run.run_id
            ),
        ),
        (
            ENTITIES,
            lambda uri: _replace_by_key(
                ENTITIES, uri, run.entities, PUBLISHED_ENTITIES, "doc_id", ids, run.run_id
            ),
        ),
        (
            MENTIONS,
            lambda uri: _replace_by_key(
                MENTIONS,
                uri,
                mention_edges(run.entities, run.run_id),
                PUBLISHED_MENTIONS,
                "doc_id",
                ids,
                run.run_id,
            ),
        ),
    ]
    for name, step in steps:
        uri = table_uri(root, name)
        with _errors(uri):
            reports[name] = step(uri)
    entities_uri = table_uri(root, ENTITIES)
    needs_graph = [
        n
        for n in (NODES, COOCCURRENCES)
        if (t := _safe_load(table_uri(root, n))) is None
        or t.transaction_version(APP_PREFIX + run.run_id) is None
    ]
    if needs_graph:
        with _errors(entities_uri):
            everything = DeltaTable(
                entities_uri, storage_options=storage_options(entities_uri)
            ).to_pyarrow_table(
                columns=[
                    "doc_id",
                    "doc_version",
                    "passage_index",
                    "start",
                    "text",
                    "label",
                    "selected",
                ]
            )
        builders = {NODES: entity_nodes, COOCCURRENCES: cooccurrence_edges}
    for name in (NODES, COOCCURRENCES):
        uri = table_uri(root, name)
        with _errors(uri):
            if name in needs_graph:
                reports[name] = _overwrite(name, uri, builders[name](everything), run.run_id)
            else:
                table = DeltaTable(uri, storage_options=storage_options(uri))
                reports[name] = TableReport(uri, table.version(), True, 0)
    # Last: the release that makes this publish visible to readers, in one commit. A
    # concurrent publish's release makes this commit conflict (one PublishError; rerun).
    shards = known | {key: digests[key] for key in changed}
    versions = {name: report.version for name, report in reports.items()}
    with _errors(releases_uri):
        before_commit(RELEASES)
        write_deltalake(
            log,
            pa.Table.from_pylist([_release_row(versions, run.run_id, shards)], PUBLISHED_RELEASES),
            mode="overwrite",
            commit_properties=CommitProperties(custom_metadata={"bioner.run_id": run.run_id}),
        )
    return PublishReport(
        root=root,
        run_id=run.run_id,
        documents=len(doc_ids),
        deleted=len(run.deleted),
        seconds=time.perf_counter() - started,
        tables=reports,
        release=log.version(),  # the writer's table moved to its own commit
    )


def _safe_load(uri: str) -> DeltaTable | None:
    with _errors(uri):
        return _load(uri)
