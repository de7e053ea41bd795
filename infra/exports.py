"""Export a run's entities for other tools: PubTator, BioC XML, and CSV/Parquet for graph loaders.

``export(SOURCE, TO, fmt)`` reads either

* an annotate output folder ``OUT`` (``OUT/documents|entities|tombstones/shard=<k>.parquet``),
  in its *current view*: tombstoned ids left out, one (the latest) version per document, and
  only the entities of that version; shards whose entities were not written yet are skipped,
  as :func:`infra.publish.publish` does; or
* a published Delta root (:mod:`infra.publish`, recognised by ``ROOT/entities/_delta_log``),
  which is current by construction,

and writes under ``TO`` (a folder or ``s3://bucket/prefix``; every write goes through
:mod:`infra.storage`, atomically per file):

``pubtator``
    ``<part>.pubtator``: ``PMID|t|title``, ``PMID|a|abstract`` and one
    ``PMID<TAB>start<TAB>end<TAB>mention<TAB>type<TAB>-1`` line per entity, offsets into
    ``title + " " + abstract``. Our documents' text is the title, a space and the abstract, so
    these are the document offsets unchanged (:func:`bioner.readers.pubtator.write_pubtator`).
``bioc``
    ``<part>.bioc.xml``: one BioC ``collection`` per file, a document per PMID with a title and
    an abstract passage and document-level annotation offsets
    (:func:`bioner.readers.bioc.write_bioc`); each annotation's ``source`` infon says what
    found it (``tagger``, ``lexicon`` or ``abbreviation``).
``csv`` / ``parquet``
    Four files in the layout of ``neo4j-admin database import`` (same column names in both
    formats; ``name:ID(space)``, ``:LABEL``, ``:START_ID(space)``, ``:END_ID(space)``,
    ``:TYPE``, ``name:long`` ...)::

        nodes_documents   doc_id:ID(Document), version:int, title, journal, pub_date, doi, :LABEL
        nodes_entities    node_id:ID(Entity), name, label, mentions:long, documents:long, :LABEL
        edges_mentions    :START_ID(Document), :END_ID(Entity), :TYPE, mentions:long,
                          doc_version:int
        edges_cooccurrences  :START_ID(Entity), :END_ID(Entity), :TYPE, passages:long,
                          documents:long

    Document nodes have label ``Document``; entity nodes ``Entity;<entity label>``;
    mention edges type ``MENTIONS``, co-occurrence edges (two nodes in one passage, source id
    below target id) type ``CO_OCCURS_WITH``. Node ids and counts are those of the published
    graph tables (:func:`infra.publish.entity_nodes` ...). Load with, e.g.::

        neo4j-admin database import full --multiline-fields=true \
          --nodes=nodes_documents.csv --nodes=nodes_entities.csv \
          --relationships=edges_mentions.csv --relationships=edges_cooccurrences.csv neo4j

PubTator and BioC files are made one source part at a time (a shard of ``OUT``, or a batch of
``batch_docs`` published documents), so memory holds one part's documents (from a Delta root,
the entities table's span columns are read once, whole, and split by part). The graph files
each hold the whole run: document nodes and mention edges are gathered part by part from
narrow columns, and entity nodes and co-occurrences are counted over all entities (their
counts span documents). By default entities the selector rejected (``selected`` false) are
left out of every format (the graph always leaves them out, as the published graph tables do).

Last, ``TO/_export.json`` names the files of this export with their counts and what a format
could not hold (``notes``); part files of an earlier export in the same format to ``TO`` that
this one did not write are removed.
"""

from __future__ import annotations

import io
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from bioner.readers._common import WriteReport, note
from bioner.readers.bioc import write_bioc
from bioner.readers.pubtator import write_pubtator
from bioner.records import AnnotatedDocument, Document, Span, sorted_unique
from infra import publish, storage
from schemas import DOCUMENTS_V2, ENTITIES_V3, TOMBSTONES_V2

FORMATS = ("pubtator", "bioc", "csv", "parquet")
MANIFEST = "_export.json"
#: File name suffix of each text format's parts.
SUFFIXES = {"pubtator": ".pubtator", "bioc": ".bioc.xml"}
#: The graph files (without their ``.csv``/``.parquet`` suffix).
GRAPH_FILES = ("nodes_documents", "nodes_entities", "edges_mentions", "edges_cooccurrences")

_DOC_COLUMNS = ["id", "version", "title", "text", "journal", "pub_date", "doi"]
_ENTITY_COLUMNS = [
    "doc_id",
    "doc_version",
    "passage_index",
    "start",
    "end",
    "text",
    "label",
    "selected",
    "source",
]
# Characters XML 1.0 cannot hold (lxml refuses them): such documents are left out of BioC.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


@dataclass(frozen=True)
class ExportReport:
    """What one export wrote."""

    source: str
    to: str
    format: str
    files: list[str]  # URIs, in writing order (the manifest last)
    documents: int
    annotations: int  # PubTator/BioC: entity lines/annotations; graph: edges and nodes
    seconds: float
    notes: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Part:
    """Current documents (``_DOC_COLUMNS``) and their entities (``_ENTITY_COLUMNS``)."""

    name: str
    documents: pa.Table
    entities: pa.Table


# --------------------------------------------------------------------------- reading


def is_delta_root(source: str) -> bool:
    """Whether ``source`` is a published Delta root rather than an annotate ``OUT`` folder."""
    return storage.exists(storage.join(source, publish.ENTITIES, "_delta_log"))


def _shard_names(out: str, table: str) -> list[str]:
    return [
        n
        for n in storage.list_dir(storage.join(out, table))
        if n.startswith("shard=") and n.endswith(".parquet")
    ]


def _current(docs: pa.Table, ents: pa.Table, deleted: pa.Array, rejected: bool) -> _Part:
    """Documents not deleted, the latest version of each, and the entities of that version."""
    docs = docs.filter(pc.invert(pc.is_in(docs["id"], value_set=deleted)))
    best: dict[str, tuple[int, int]] = {}  # id -> (version, row)
    for row, (doc_id, version) in enumerate(
        zip(docs["id"].to_pylist(), docs["version"].to_pylist(), strict=True)
    ):
        if doc_id not in best or version > best[doc_id][0]:
            best[doc_id] = (version, row)
    docs = docs.take(sorted(row for _, row in best.values()))
    ids = docs["id"].combine_chunks()
    position = pc.index_in(ents["doc_id"], value_set=ids)
    wanted = pc.take(docs["version"].combine_chunks(), position)
    keep = pc.fill_null(pc.equal(ents["doc_version"], wanted), False)
    if not rejected:
        keep = pc.and_(keep, pc.invert(pc.fill_null(pc.equal(ents["selected"], False), False)))
    return _Part("", docs, ents.filter(keep))


def _out_parts(out: str, rejected: bool, skipped: Counter[str]) -> Iterator[_Part]:
    """One part per shard of ``OUT`` that has its entities, in its current view."""
    tomb_uris = [storage.join(out, "tombstones", n) for n in _shard_names(out, "tombstones")]
    deleted = pa.array(
        sorted(
            {
                i
                for u in tomb_uris
                for i in storage.read_table(u, TOMBSTONES_V2, ["id"]).column("id").to_pylist()
            }
        ),
        pa.string(),
    )
    names = _shard_names(out, "entities")
    if not names and not _shard_names(out, "documents"):
        raise FileNotFoundError(f"{out}: neither an annotate output folder nor a Delta root")
    skipped["shards without entities skipped"] += len(
        set(_shard_names(out, "documents")) - set(names)
    )
    for name in names:
        doc_uri = storage.join(out, "documents", name)
        if not storage.exists(doc_uri):
            raise FileNotFoundError(f"{doc_uri}: the entities of this shard have no documents")
        docs = storage.read_table(doc_uri, DOCUMENTS_V2, _DOC_COLUMNS)
        ents = publish.entity_table(out, name, _ENTITY_COLUMNS)
        part = _current(docs, ents, deleted, rejected)
        yield _Part(name.removesuffix(".parquet"), part.documents, part.entities)


def _delta_parts(root: str, rejected: bool, batch_docs: int) -> Iterator[_Part]:
    """Parts of ``batch_docs`` published documents with their entities (read once)."""
    ents = publish.open_table(root, publish.ENTITIES).to_pyarrow_table(columns=_ENTITY_COLUMNS)
    dataset = publish.open_table(root, publish.DOCUMENTS).to_pyarrow_dataset()
    none = pa.array([], pa.string())
    for n, batch in enumerate(dataset.to_batches(columns=_DOC_COLUMNS, batch_size=batch_docs)):
        if batch.num_rows == 0:
            continue
        docs = pa.Table.from_batches([batch])
        mine = ents.filter(pc.is_in(ents["doc_id"], value_set=docs["id"].combine_chunks()))
        part = _current(docs, mine, none, rejected)
        yield _Part(f"part-{n:05d}", part.documents, part.entities)


def _parts(source: str, rejected: bool, batch_docs: int, notes: Counter[str]) -> Iterator[_Part]:
    if is_delta_root(source):
        return _delta_parts(source, rejected, batch_docs)
    return _out_parts(source, rejected, notes)


# --------------------------------------------------------------------------- PubTator, BioC


def annotated(part: _Part, report: WriteReport | None = None) -> list[AnnotatedDocument]:
    """The part's documents with their entities as spans (document offsets, unique, sorted)."""
    spans: dict[str, list[Span]] = {}
    e = part.entities
    for doc_id, start, end, label in zip(
        e["doc_id"].to_pylist(),
        e["start"].to_pylist(),
        e["end"].to_pylist(),
        e["label"].to_pylist(),
        strict=True,
    ):
        spans.setdefault(doc_id, []).append(Span(start, end, label))
    d = part.documents
    docs = []
    for doc_id, version, title, text in zip(
        d["id"].to_pylist(),
        d["version"].to_pylist(),
        d["title"].to_pylist(),
        d["text"].to_pylist(),
        strict=True,
    ):
        mine = spans.get(doc_id, [])
        inside = [s for s in mine if s.end <= len(text)]
        note(report, "entities outside their document's text left out", len(mine) - len(inside))
        document = Document(id=doc_id, text=text, version=version, title=title)
        docs.append(AnnotatedDocument(document, sorted_unique(inside)))
    return docs


def _sources(entities: pa.Table) -> dict[tuple[str, Span], dict[str, str]]:
    """BioC's ``source`` infon of each entity (what found it: ``tagger``, ``lexicon`` or
    ``abbreviation``), by (document id, span); none where a table older than the column left
    it null."""
    return {
        (doc_id, Span(start, end, label)): {"source": source}
        for doc_id, start, end, label, source in zip(
            *(entities[c].to_pylist() for c in ("doc_id", "start", "end", "label", "source")),
            strict=True,
        )
        if source
    }


def _writable(docs: list[AnnotatedDocument], fmt: str, report: WriteReport) -> list[Any]:
    """The documents ``fmt`` can represent; the others are counted in ``report``."""
    kept = []
    for doc in docs:
        if fmt == "pubtator" and (
            "|" in doc.id
            or not doc.id.isprintable()
            or not all(s.label.isprintable() for s in doc.spans)
        ):
            note(report, "pubtator: documents whose id or labels cannot be written left out")
            continue
        if fmt == "bioc" and (
            not doc.id.isprintable()
            or _NOT_XML.search(doc.text)
            or _NOT_XML.search(doc.document.title)
            or any(_NOT_XML.search(s.label) for s in doc.spans)
        ):
            note(report, "bioc: documents with characters XML cannot hold left out")
            continue
        kept.append(doc)
    return kept


def _export_text(
    parts: Iterator[_Part], to: str, fmt: str, report: WriteReport
) -> tuple[list[str], dict[str, dict[str, int]], int, int]:
    files: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    documents = annotations = 0
    for part in parts:
        docs = _writable(annotated(part, report), fmt, report)
        if not docs:
            continue
        name = part.name + SUFFIXES[fmt]
        if fmt == "pubtator":
            text = write_pubtator(docs, report=report)
        else:
            text = write_bioc(docs, report=report, infons=_sources(part.entities))
        files.append(storage.write_text(text, storage.join(to, name)))
        spans = sum(len(d.spans) for d in docs)
        counts[name] = {"documents": len(docs), "annotations": spans}
        documents += len(docs)
        annotations += spans
    return files, counts, documents, annotations


# --------------------------------------------------------------------------- graph files


def _graph_from_out(parts: Iterator[_Part]) -> dict[str, pa.Table]:
    doc_nodes: list[pa.Table] = []
    mentions: list[pa.Table] = []
    spans: list[pa.Table] = []
    for part in parts:
        d = part.documents
        doc_nodes.append(d.select(["id", "version", "title", "journal", "pub_date", "doi"]))
        mentions.append(publish.mention_edges(part.entities, ""))
        spans.append(part.entities)
    every = pa.concat_tables(spans) if spans else _empty_entities()
    return {
        "documents": _concat(doc_nodes),
        "nodes": publish.entity_nodes(every),
        "mentions": _concat(mentions, publish.PUBLISHED_MENTIONS),
        "cooccurrences": publish.cooccurrence_edges(every),
    }


def _empty_entities() -> pa.Table:
    return pa.schema([ENTITIES_V3.field(c) for c in _ENTITY_COLUMNS]).empty_table()


def _concat(tables: list[pa.Table], schema: pa.Schema | None = None) -> pa.Table:
    if tables:
        return pa.concat_tables(tables)
    if schema is None:
        return pa.schema([DOCUMENTS_V2.field(c) for c in _DOC_COLUMNS if c != "text"]).empty_table()
    return schema.empty_table()


def _graph_from_delta(root: str) -> dict[str, pa.Table]:
    def table(name: str, columns: list[str] | None = None) -> pa.Table:
        return publish.open_table(root, name).to_pyarrow_table(columns=columns)

    return {
        "documents": table(
            publish.DOCUMENTS, ["id", "version", "title", "journal", "pub_date", "doi"]
        ),
        "nodes": table(publish.NODES),
        "mentions": table(publish.MENTIONS),
        "cooccurrences": table(publish.COOCCURRENCES),
    }


def _constant(value: str, rows: int) -> pa.Array:
    return pa.array([value] * rows, pa.string())


def graph_tables(graph: dict[str, pa.Table]) -> dict[str, pa.Table]:
    """The four graph files' tables, with ``neo4j-admin import`` headers (see the module doc)."""
    docs, nodes = graph["documents"], graph["nodes"].sort_by("node_id")
    mentions, pairs = graph["mentions"], graph["cooccurrences"]
    docs = docs.sort_by("id")
    mentions = mentions.sort_by([("doc_id", "ascending"), ("node_id", "ascending")])
    return {
        "nodes_documents": pa.table(
            {
                "doc_id:ID(Document)": docs["id"],
                "version:int": docs["version"],
                "title": docs["title"],
                "journal": docs["journal"],
                "pub_date": docs["pub_date"],
                "doi": docs["doi"],
                ":LABEL": _constant("Document", docs.num_rows),
            }
        ),
        "nodes_entities": pa.table(
            {
                "node_id:ID(Entity)": nodes["node_id"],
                "name": nodes["name"],
                "label": nodes["label"],
                "mentions:long": nodes["mentions"],
                "documents:long": nodes["documents"],
                ":LABEL": pc.binary_join_element_wise(
                    _constant("Entity", nodes.num_rows), nodes["label"], ";"
                ),
            }
        ),
        "edges_mentions": pa.table(
            {
                ":START_ID(Document)": mentions["doc_id"],
                ":END_ID(Entity)": mentions["node_id"],
                ":TYPE": _constant("MENTIONS", mentions.num_rows),
                "mentions:long": mentions["mentions"],
                "doc_version:int": mentions["doc_version"],
            }
        ),
        "edges_cooccurrences": pa.table(
            {
                ":START_ID(Entity)": pairs["source_id"],
                ":END_ID(Entity)": pairs["target_id"],
                ":TYPE": _constant("CO_OCCURS_WITH", pairs.num_rows),
                "passages:long": pairs["passages"],
                "documents:long": pairs["documents"],
            }
        ),
    }


#: Control characters a CSV field must not hold raw (tab and line breaks are quoted).
_CONTROLS = "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"


def _no_controls(table: pa.Table, notes: WriteReport) -> pa.Table:
    """``table`` with every control character of its string columns written as U+FFFD.

    Ids are replaced alike in every file, so nodes and edges still join.
    """
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            found = pc.sum(pc.count_substring_regex(column, _CONTROLS)).as_py() or 0
            if found:
                note(notes, "csv: control characters written as U+FFFD", found)
                column = pc.replace_substring_regex(column, _CONTROLS, "\ufffd")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=table.schema)


def _write_graph(
    tables: dict[str, pa.Table], to: str, fmt: str, notes: WriteReport
) -> tuple[list[str], dict[str, dict[str, int]]]:
    files: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    for stem in GRAPH_FILES:
        table = tables[stem]
        name = f"{stem}.{fmt}"
        uri = storage.join(to, name)
        if fmt == "csv":
            buffer = io.BytesIO()
            pacsv.write_csv(_no_controls(table, notes), buffer)
            files.append(storage.write_bytes(buffer.getvalue(), uri))
        else:
            files.append(storage.write_table(table, uri, table.schema))
        counts[name] = {"rows": table.num_rows}
    return files, counts


# --------------------------------------------------------------------------- export


def export(
    source: str,
    to: str,
    fmt: str,
    *,
    include_rejected: bool = False,
    batch_docs: int = 10_000,
) -> ExportReport:
    """Export ``source`` (an annotate ``OUT`` or a Delta root) as ``fmt`` under ``to``.

    ``include_rejected``: keep entities the selector rejected in PubTator and BioC (never in
    the graph files). ``batch_docs``: documents per part when reading a Delta root.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    if batch_docs < 1:
        raise ValueError(f"batch_docs must be >= 1, got {batch_docs}")
    started = time.perf_counter()
    notes: WriteReport = Counter()
    if fmt in SUFFIXES:
        parts = _parts(source, include_rejected, batch_docs, notes)
        files, counts, documents, annotations = _export_text(parts, to, fmt, notes)
    else:
        if is_delta_root(source):
            graph = _graph_from_delta(source)
        else:
            graph = _graph_from_out(_out_parts(source, False, notes))
        files, counts = _write_graph(graph_tables(graph), to, fmt, notes)
        documents = graph["documents"].num_rows
        annotations = sum(c["rows"] for n, c in counts.items() if n.startswith("edges_"))
    written = {uri.rsplit("/", 1)[1] for uri in files}
    for name in storage.list_dir(to):
        ours = (
            name.endswith(SUFFIXES[fmt])
            if fmt in SUFFIXES
            else any(name == f"{stem}.{fmt}" for stem in GRAPH_FILES)
        )
        if ours and name not in written:
            storage.remove(storage.join(to, name))
    manifest = {
        "format": fmt,
        "source": source,
        "documents": documents,
        "annotations": annotations,
        "files": counts,
        "notes": dict(sorted(notes.items())),
    }
    files.append(
        storage.write_text(json.dumps(manifest, indent=1) + "\n", storage.join(to, MANIFEST))
    )
    return ExportReport(
        source=source,
        to=to,
        format=fmt,
        files=files,
        documents=documents,
        annotations=annotations,
        seconds=time.perf_counter() - started,
        notes=dict(notes),
    )
