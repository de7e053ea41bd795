"""The ingest engine: corpus files in, reconciled per-shard Parquet tables out, restartable.

Layout under ``OUT`` (every path through :mod:`infra.storage`):

```
_ingest/config.json                 {"n_shards": N, "documents_schema": "documents/2"}, fixed
_ingest/inputs.jsonl                one line per ingested input, in ordinal order
_ingest/segments/<sha16>/part-<k>.parquet   what one input holds for shard k (ingest_events/1)
_ingest/segments/<sha16>/_SUCCESS   written last: the input's log entry; commits the segment
_ingest/runs/<run_id>.json          the run manifest: inputs, reconciliation, shards, time
quarantine/<sha16>.parquet          unusable records of one input, and where a file broke
documents/shard=<k>.parquet         the current documents of shard k (documents/2)
tombstones/shard=<k>.parquet        the deletions in force (tombstones/2)
passages/shard=<k>.parquet          the current documents' passages (passages/1)
```

An input is parsed once into its segment (its ordinal fixes its place in the history); then
each shard that received rows is compacted: the shard's current state plus the new segments'
events, folded with :func:`bioner.ingest.compact.fold`, make the new shard tables. Each shard
table records the last ordinal it includes (``bioner.ingest.through``); the three tables of a
shard are renamed into place tombstones, passages, documents last, so a crash between them is
seen (their ``through`` differ) and the shard is rebuilt from all its segments. The same input
again is skipped by its SHA-256; a shard with nothing new is not rewritten. One writer per
``OUT`` at a time.

Speed: records become Arrow columns in pieces (no row dictionaries); with ``workers`` > 1 a
PubMed file is cut into chunks of whole records parsed in worker processes while this process
decompresses, cuts and writes, and shards are compacted in worker processes. A shard's first
compaction, when every event is a new document, skips the event-by-event fold; passages are
built column by column from :func:`bioner.segment.passage_bounds`. None of this changes a
byte of the tables: the segment's row groups have the same size however the file was parsed.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import multiprocessing
import re
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import PurePosixPath
from typing import Any, BinaryIO

import pyarrow as pa
import pyarrow.compute as pc

from bioner.errors import InputError
from bioner.ingest import IngestItem, Quarantined, Tombstone
from bioner.ingest.cnki import read_cnki
from bioner.ingest.compact import FROM_BASE, Event, fold, shard_of
from bioner.ingest.detect import FORMATS, GZIP, HEAD_BYTES, detect_format, xml_root
from bioner.ingest.gunzip import GunzipStream
from bioner.ingest.other import (
    read_bioc_documents,
    read_jsonl_documents,
    read_parquet_documents,
    read_pubtator_documents,
)
from bioner.ingest.pubmed import PubmedChunk, read_pubmed, read_pubmed_chunk, split_pubmed
from bioner.records import Document, OtherAbstract, Section
from bioner.segment import DEFAULT_MAX_CHARS, passage_bounds
from infra import memory, s3, storage
from schemas import (
    DOCUMENTS_V2,
    INGEST_EVENTS_V1,
    PASSAGES_V1,
    QUARANTINE_V1,
    TOMBSTONES_V2,
    schema_version,
)

DEFAULT_SHARDS = 16
#: Event rows held in memory while parsing, all shards together, before they go to disk.
BUFFER_ROWS = 8_192
#: Records between two progress reports while parsing, and records turned into columns at once.
REPORT_EVERY = 1000
#: Bytes of XML per chunk when a PubMed file is parsed in several processes; a smaller file
#: (two chunks, guessing 8 bytes of XML per byte of gzip) is parsed in one.
PARSE_CHUNK_BYTES = 4 << 20

CONFIG = "_ingest/config.json"
LOG = "_ingest/inputs.jsonl"
SEGMENTS = "_ingest/segments"
RUNS = "_ingest/runs"
SUCCESS = "_SUCCESS"
TABLES = ("documents", "tombstones", "passages")
THROUGH = "bioner.ingest.through"
COUNTS = "bioner.ingest.counts"

_PUBMED_FILE = re.compile(r"pubmed(\d{2})n(\d{4})")
_XML_BREAK = re.compile(r"XML broken(?: at column (\d+))?: (.*)", re.DOTALL)
_NOT_RECOGNISED = (
    "not a recognised corpus format (PubMed XML, BioC XML, PubTator, JSON lines, Parquet, CNKI)"
)

#: ``progress(stage, done, total, count)``: ``done``/``total`` in bytes while parsing a file
#: (``count`` = records so far), in shards while compacting (``count`` None).
Progress = Callable[[str, int, int, int | None], None]


class ShardsChanged(ValueError):
    """``OUT`` was made with another number of shards: documents would change shard."""


class InputFailed(InputError):
    """An input that gave no record at all; ``str()`` is the one line for a user."""

    def __init__(self, file: str, message: str) -> None:
        super().__init__(message)
        self.file = file

    def __str__(self) -> str:
        return f"{self.file}: {self.message}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (InputFailed, (self.file, self.message))


def code_version() -> str:
    """The installed bioner version, recorded in every table's metadata."""
    try:
        return version("bioner")
    except PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


# --------------------------------------------------------------------------- config and log


@dataclass(frozen=True)
class IngestConfig:
    """What fixes where rows go; written by the first run into ``OUT`` and never changed."""

    n_shards: int = DEFAULT_SHARDS
    documents_schema: str = schema_version(DOCUMENTS_V2)

    def __post_init__(self) -> None:
        if not 1 <= self.n_shards <= 65_536:
            raise ValueError(f"n_shards must be in 1..65536, got {self.n_shards}")


def read_config(out: str) -> IngestConfig | None:
    """The configuration stored in ``OUT``; None for a new ``OUT``."""
    uri = storage.join(out, CONFIG)
    return IngestConfig(**json.loads(storage.read_text(uri))) if storage.exists(uri) else None


def check_config(out: str, n_shards: int | None) -> IngestConfig:
    """The configuration a run on ``OUT`` uses; :class:`ShardsChanged` if ``n_shards`` differs."""
    stored = read_config(out)
    if stored is None:
        return IngestConfig(n_shards or DEFAULT_SHARDS)
    if n_shards is not None and n_shards != stored.n_shards:
        raise ShardsChanged(
            f"{out} has {stored.n_shards} shards; --shards {n_shards} would move documents "
            f"between shards (use --shards {stored.n_shards}, or a new output folder)"
        )
    if stored.documents_schema != schema_version(DOCUMENTS_V2):
        raise ShardsChanged(
            f"{out} holds {stored.documents_schema} tables; this version writes "
            f"{schema_version(DOCUMENTS_V2)} (use a new output folder)"
        )
    return stored


def prepare(out: str, n_shards: int | None = None) -> tuple[IngestConfig, list[str]]:
    """Fix the configuration of ``OUT`` and repair what an interrupted run left.

    Uncommitted segment folders are deleted; committed segments missing from the log (a crash
    between commit and log line) are logged; temporary files of killed writers are removed.
    Returns the configuration and notes for the user.
    """
    config = check_config(out, n_shards)
    config_uri = storage.join(out, CONFIG)
    if not storage.exists(config_uri):
        storage.write_text(json.dumps(asdict(config)) + "\n", config_uri)
    notes = []
    orphans = storage.remove_orphan_temps(out)
    if orphans:
        notes.append(f"removed {orphans} temporary file(s) of an interrupted run")
    logged = {e["sha256"] for e in read_log(out)}
    segments = storage.join(out, SEGMENTS)
    recovered = []
    for name in storage.list_dir(segments):
        folder = storage.join(segments, name)
        success = storage.join(folder, SUCCESS)
        if not storage.exists(success):
            storage.remove_tree(folder)
            notes.append(f"removed the unfinished segment {name} of an interrupted run")
            continue
        entry = json.loads(storage.read_text(success))
        if entry["sha256"] not in logged:
            recovered.append(entry)
    for entry in sorted(recovered, key=lambda e: e["ordinal"]):
        storage.append_line(storage.join(out, LOG), json.dumps(entry))
        notes.append(f"recovered input {entry['ordinal']} ({entry['name']}) of an interrupted run")
    return config, notes


def read_log(out: str) -> list[dict[str, Any]]:
    """The entries of ``inputs.jsonl`` in ordinal order (a partial last line is skipped)."""
    uri = storage.join(out, LOG)
    if not storage.exists(uri):
        return []
    entries: dict[str, dict[str, Any]] = {}
    for line in storage.read_text(uri).splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash; its segment's _SUCCESS still has it
        entries.setdefault(entry["sha256"], entry)  # a retried task may have logged twice
    return sorted(entries.values(), key=lambda e: e["ordinal"])


# --------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class InputPlan:
    """One input file and what this run does with it: ``ingest``, ``skip`` or ``error``."""

    uri: str
    name: str
    action: str
    reason: str = ""
    explicit: bool = True  # named on the command line, not found in a folder
    size: int = 0
    sha256: str = ""
    format: str = ""
    compression: str = ""
    ordinal: int | None = None


@dataclass(frozen=True)
class Plan:
    """The inputs of a run in processing order, and notes on how they were ordered."""

    inputs: tuple[InputPlan, ...]
    notes: tuple[str, ...] = ()


def expand_inputs(paths: Sequence[str]) -> tuple[list[tuple[str, bool]], list[str]]:
    """``(uri, explicit)`` of every input file, folders walked in sorted order, and the missing.

    Hidden files and folders (``.name``) inside a folder are left out, as every tool does.
    """
    found: list[tuple[str, bool]] = []
    missing: list[str] = []
    for path in paths:
        if storage.is_dir(path):
            # files_under names files as the folder is named: s3://... or the local path.
            root = (path if s3.is_s3(path) else str(storage.local_path(path))).rstrip("/")
            for uri in storage.files_under(path):
                parts = uri.removeprefix(root).strip("/").split("/")
                if not any(p.startswith(".") for p in parts):
                    found.append((uri, False))
        elif storage.exists(path):
            found.append((path, True))
        else:
            missing.append(path)
    return found, missing


def pubmed_order(uris: Sequence[str]) -> list[str]:
    """``uris`` with PubMed files (``pubmed26n0001.xml.gz``) in their number order.

    The other inputs keep their places; PubMed files fill the places PubMed files had, baseline
    before updates, so the later of two records of a PMID is the one NLM published later.
    """
    keyed = {}
    for i, uri in enumerate(uris):
        found = _PUBMED_FILE.search(PurePosixPath(uri).name)
        if found:
            keyed[i] = (int(found.group(1)), int(found.group(2)), uri)
    ordered = list(uris)
    for i, (_, _, uri) in zip(sorted(keyed), sorted(keyed.values()), strict=True):
        ordered[i] = uri
    return ordered


def sniff(uri: str) -> tuple[str | None, str]:
    """``(format, compression)`` of a file from its content; raises OSError/EOFError/zlib."""
    with storage.open_raw(uri) as f:
        head = f.read(HEAD_BYTES)
    fmt = detect_format(head)
    if fmt != GZIP:
        return fmt, ""
    with storage.open_raw(uri) as f:
        inner = GunzipStream(f).read(HEAD_BYTES)  # what a cut stream has; EOFError if nothing
    if not inner:
        return "", GZIP  # an empty file, compressed
    fmt = detect_format(inner)
    return (None if fmt == GZIP else fmt), GZIP


def file_sha256(uri: str) -> str:
    """SHA-256 of the file's bytes as stored: the identity of an input."""
    with storage.open_raw(uri) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def plan_inputs(out: str, paths: Sequence[str]) -> Plan:
    """What to do with each input: new ones get the next ordinals, known ones are skipped."""
    found, missing = expand_inputs(paths)
    if missing:
        raise FileNotFoundError(f"{missing[0]}: no such file")
    explicit = dict(found)
    uris = list(dict.fromkeys(uri for uri, _ in found))  # a file named twice is one input
    ordered = pubmed_order(uris)
    notes = []
    if ordered != uris:
        pubmed = [PurePosixPath(u).name for u in ordered if _PUBMED_FILE.search(u)]
        notes.append(f"PubMed files ordered by their number (baseline first): {', '.join(pubmed)}")
    known = {e["sha256"]: e for e in read_log(out)}
    next_ordinal = max((e["ordinal"] for e in known.values()), default=0) + 1
    last_pubmed = max(
        (_pubmed_key(e["name"]) for e in known.values() if _pubmed_key(e["name"])), default=None
    )
    seen: dict[str, str] = {}
    plans = []
    for uri in ordered:
        item = _plan_one(uri, explicit[uri])
        if item.action == "ingest":
            if item.sha256 in known:
                entry = known[item.sha256]
                state = "" if entry["complete"] else f", incomplete: {entry['error']}"
                reason = f"already ingested as input {entry['ordinal']} ({entry['name']}{state})"
                item = replace(item, action="skip", reason=reason)
            elif item.sha256 in seen:
                item = replace(item, action="skip", reason=f"same content as {seen[item.sha256]}")
            else:
                seen[item.sha256] = uri
                item = replace(item, ordinal=next_ordinal)
                next_ordinal += 1
                key = _pubmed_key(item.name)
                if key and last_pubmed and key < last_pubmed:
                    notes.append(
                        f"{item.name} is older than PubMed files ingested before; "
                        "its records are applied after theirs (versions still decide)"
                    )
        plans.append(item)
    return Plan(tuple(plans), tuple(notes))


def _pubmed_key(name: str) -> tuple[int, int] | None:
    found = _PUBMED_FILE.search(name)
    return (int(found.group(1)), int(found.group(2))) if found else None


def probe(uri: str) -> tuple[str, str, int, str]:
    """``(format, compression, size, problem)`` of one file; ``problem`` is "" when readable.

    Cheap (the first bytes only), so a command can refuse a wrong file before starting a run.
    """
    try:
        size = storage.size(uri)
        if size == 0:
            return "", "", 0, "empty file"
        fmt, compression = sniff(uri)
    except zlib.error as e:
        return "", GZIP, 0, f"not a valid gzip file ({e})"
    except EOFError as e:
        return "", GZIP, 0, f"truncated gzip: {e} (no data before the cut)"
    except OSError as e:
        return "", "", 0, f"cannot read ({e.strerror or e})"
    if fmt == "":
        return "", compression, size, "empty file (after gzip decompression)"
    if fmt is None:
        with storage.open_raw(uri) as f:
            root = xml_root(f.read(HEAD_BYTES)) if compression == "" else None
        return (
            "",
            compression,
            size,
            _NOT_RECOGNISED + (f"; its XML root is <{root}>" if root else ""),
        )
    return fmt, compression, size, ""


def _plan_one(uri: str, explicit: bool) -> InputPlan:
    fmt, compression, size, problem = probe(uri)
    item = InputPlan(
        uri, PurePosixPath(uri).name, "error", problem, explicit, size, "", fmt, compression
    )
    if problem.startswith(_NOT_RECOGNISED) and not explicit:
        # In a folder, a README beside the data is expected; named on its own, it is a mistake.
        return replace(item, action="skip")
    if problem:
        return item
    return replace(item, action="ingest", sha256=file_sha256(uri))


# --------------------------------------------------------------------------- parsing an input


def segment_uri(out: str, sha256: str) -> str:
    """The folder of one input's parsed records."""
    return storage.join(out, SEGMENTS, sha256[:16])


def part_uri(segment: str, shard: int) -> str:
    return storage.join(segment, f"part-{shard}.parquet")


def quarantine_uri(out: str, sha256: str) -> str:
    return storage.join(out, "quarantine", f"{sha256[:16]}.parquet")


def table_uri(out: str, table: str, shard: int) -> str:
    """``OUT/<table>/shard=<k>.parquet``."""
    return storage.join(out, table, f"shard={shard}.parquet")


def ingest_input(
    uri: str,
    out: str,
    ordinal: int,
    run_id: str,
    *,
    sha256: str | None = None,
    progress: Progress | None = None,
    workers: int = 1,
) -> str:
    """Parse one input file into its committed segment; returns the segment's URI.

    Every record goes to its shard's part file (documents and tombstones) or to the
    quarantine. A file that breaks part-way keeps the records before the break, gets one
    quarantine row describing the break, and is committed as incomplete; a file that gives no
    record at all raises :class:`InputFailed` and commits nothing (a rerun tries again). Stray
    bytes after the end of a gzip file's data are ignored, the file is complete, and a
    quarantine row and the entry's ``warning`` say so.

    ``workers`` > 1 parses a PubMed file in that many processes, cut into chunks of whole
    records (:func:`~bioner.ingest.pubmed.split_pubmed`) while this process reads and writes;
    the segment is the same as with one. A file that cannot be cut, or a chunk that fails, is
    read again from its start in this process, which finds and reports the exact problem.
    """
    config = read_config(out)
    if config is None:
        raise FileNotFoundError(f"{out}: no {CONFIG}; call prepare() first")
    memory.return_freed_memory()
    name = PurePosixPath(uri).name
    sha256 = sha256 or file_sha256(uri)
    try:
        fmt, compression = sniff(uri)
    except EOFError as e:
        raise InputFailed(uri, f"truncated gzip: {e} (no data before the cut)") from None
    if fmt not in FORMATS:
        raise InputFailed(uri, _NOT_RECOGNISED)
    segment = segment_uri(out, sha256)
    storage.remove_tree(segment)  # what an interrupted attempt left
    size = storage.size(uri)
    started = time.perf_counter()
    attempt = None
    xml_bytes = size * (8 if compression == GZIP else 1)
    if workers > 1 and fmt == "pubmed" and xml_bytes >= 2 * PARSE_CHUNK_BYTES:
        try:
            attempt = _parse_into(
                uri, compression, segment, ordinal, config.n_shards, out, sha256, run_id,
                lambda stream: _parallel_pieces(stream, name, ordinal, config.n_shards, workers),
                name, size, progress, parallel=True,
            )  # fmt: skip
        except _Fallback:
            attempt = None
    if attempt is None:
        attempt = _parse_into(
            uri, compression, segment, ordinal, config.n_shards, out, sha256, run_id,
            lambda stream: _pieces(_read(fmt, stream, name), ordinal, config.n_shards),
            name, size, progress, parallel=False,
        )  # fmt: skip
    writer, quarantine, counts, error, line, warning = attempt
    if error or warning:  # where the file broke, or what was ignored after its end
        quarantine.add(Quarantined(name, counts["records_read"] + 1, error or warning, line=line))
    quarantine.commit()
    if error and counts["records_read"] == 0:
        writer.abort()
        raise InputFailed(uri, error)
    entry = {
        "ordinal": ordinal,
        "name": name,
        "uri": uri,
        "sha256": sha256,
        "size": size,
        "format": fmt,
        "compression": compression,
        "records_read": counts["records_read"],
        "documents": counts["documents"],
        "tombstones": counts["tombstones"],
        "quarantined": counts["quarantined"],
        "complete": not error,
        "error": error,
        "warning": warning,
        "shards": writer.shards(),
        "run_id": run_id,
        "seconds": round(time.perf_counter() - started, 3),
    }
    writer.commit(entry)
    storage.append_line(storage.join(out, LOG), json.dumps(entry))
    if progress is not None:
        progress(name, size, size, counts["records_read"])
    return segment


class _Fallback(Exception):
    """The parallel parse of a file gave up: read it again in one process."""


_Attempt = tuple["_SegmentWriter", "_QuarantineWriter", Counter[str], str, int | None, str]


def _parse_into(
    uri: str,
    compression: str,
    segment: str,
    ordinal: int,
    n_shards: int,
    out: str,
    sha256: str,
    run_id: str,
    pieces_of: Callable[[BinaryIO], Iterator[_Piece]],
    name: str,
    size: int,
    progress: Progress | None,
    *,
    parallel: bool,
) -> _Attempt:
    """Write the pieces of one input into its segment and quarantine; counts and any break.

    ``parallel``: any failure raises :class:`_Fallback` after dropping what was written.
    """
    writer = _SegmentWriter(segment, ordinal, n_shards)
    quarantine = _QuarantineWriter(quarantine_uri(out, sha256), run_id)
    counts: Counter[str] = Counter()
    error = ""
    line = None
    reported = 0
    with storage.open_raw(uri) as raw:
        stream: BinaryIO = GunzipStream(raw) if compression == GZIP else raw  # type: ignore[assignment]
        try:
            for piece in pieces_of(stream):
                writer.add(piece, counts["records_read"])
                pa.default_memory_pool().release_unused()  # see compact_shard
                for item in piece.quarantined:
                    quarantine.add(item)
                counts["records_read"] += piece.items
                counts["documents"] += piece.documents
                counts["tombstones"] += piece.tombstones
                counts["quarantined"] += len(piece.quarantined)
                if progress is not None and counts["records_read"] - reported >= REPORT_EVERY:
                    reported = counts["records_read"]
                    progress(name, min(raw.tell(), size), size, reported)
        except Exception as e:
            if parallel:
                writer.abort()
                quarantine.abort()
                raise _Fallback(str(e)) from e
            if isinstance(e, InputError):
                error = _break_reason(e)
                line = e.line
            elif isinstance(e, EOFError):
                error, line = f"truncated gzip: {e}", None
            elif isinstance(e, zlib.error):
                error, line = f"corrupt gzip data: {e}", None
            elif isinstance(e, UnicodeDecodeError):
                error, line = f"not valid {e.encoding} at byte {e.start}: {e.reason}", None
            else:
                writer.abort()
                quarantine.abort()
                raise
    warning = stream.trailing if isinstance(stream, GunzipStream) else ""
    return writer, quarantine, counts, error, line, warning


@dataclass
class _Piece:
    """Consecutive items of one input: their event rows, quarantined records and counts.

    ``events`` holds the rows sorted by shard (file order within a shard), positions counted
    from 1 within the piece; ``shards`` gives each shard's ``(shard, offset, length)`` in it.
    """

    items: int
    documents: int
    tombstones: int
    quarantined: list[Quarantined]
    events: pa.RecordBatch | None
    shards: list[tuple[int, int, int]]


def _pieces(
    items: Iterable[IngestItem], ordinal: int, n_shards: int, size: int | None = None
) -> Iterator[_Piece]:
    """``items`` in pieces of ``size`` (:data:`REPORT_EVERY`); a break ends the last piece.

    The items read before an exception come out as a piece, then the exception is raised.
    """
    iterator = iter(items)
    size = size or REPORT_EVERY
    while True:
        builder = _EventColumns(ordinal, n_shards)
        try:
            for item in itertools.islice(iterator, size):
                builder.add(item)
        except Exception:
            if builder.items:
                yield builder.piece()
            raise
        if not builder.items:
            return
        yield builder.piece()
        if builder.items < size:
            return


_DOCUMENT_COLUMNS = DOCUMENTS_V2.names
_EVENT_TYPES = [INGEST_EVENTS_V1.field(n).type for n in INGEST_EVENTS_V1.names]


class _EventColumns:
    """Event rows of consecutive items built column by column, for :class:`_Piece`."""

    def __init__(self, ordinal: int, n_shards: int) -> None:
        self.ordinal = ordinal
        self.n_shards = n_shards
        self.items = 0
        self.documents = 0
        self.tombstones = 0
        self.quarantined: list[Quarantined] = []
        self.positions: list[int] = []
        self.kinds: list[str] = []
        self.values: list[list[Any]] = [[] for _ in _DOCUMENT_COLUMNS]
        self.by_shard: dict[int, list[int]] = {}

    def add(self, item: IngestItem) -> None:
        self.items += 1
        if isinstance(item, Document):
            self.documents += 1
            self._row("document", item.id, document_values(item))
        elif isinstance(item, Tombstone):
            self.tombstones += 1
            values = [item.id, *_TOMBSTONE_FILL]
            values[_SOURCE] = item.source
            self._row("tombstone", item.id, values)
        else:
            self.quarantined.append(item)

    def _row(self, kind: str, doc_id: str, values: list[Any]) -> None:
        row = len(self.positions)
        self.positions.append(self.items)
        self.kinds.append(kind)
        for column, value in zip(self.values, values, strict=True):
            column.append(value)
        self.by_shard.setdefault(shard_of(doc_id, self.n_shards), []).append(row)

    def piece(self) -> _Piece:
        events = None
        shards = []
        if self.positions:
            columns = [[self.ordinal] * len(self.positions), self.positions, self.kinds]
            arrays = [
                pa.array(c, type=t)
                for c, t in zip([*columns, *self.values], _EVENT_TYPES, strict=True)
            ]
            batch = pa.RecordBatch.from_arrays(arrays, schema=INGEST_EVENTS_V1)
            order: list[int] = []
            for shard in sorted(self.by_shard):
                rows = self.by_shard[shard]
                shards.append((shard, len(order), len(rows)))
                order.extend(rows)
            events = batch if order == sorted(order) else batch.take(pa.array(order, pa.int64()))
        return _Piece(self.items, self.documents, self.tombstones, self.quarantined, events, shards)


def _chunk_piece(
    chunk: PubmedChunk, source: str, ordinal: int, n_shards: int
) -> tuple[_Piece, int]:
    """The piece of a chunk of a PubMed file and its number of records (in a worker process).

    Quarantined positions count from 1 in the chunk (:func:`_parallel_pieces` shifts them).
    """
    memory.return_freed_memory()
    items, records = read_pubmed_chunk(chunk, source)
    builder = _EventColumns(ordinal, n_shards)
    for item in items:
        builder.add(item)
    piece = builder.piece()
    pa.default_memory_pool().release_unused()  # see compact_shard
    return piece, records


def _parallel_pieces(
    stream: BinaryIO, source: str, ordinal: int, n_shards: int, workers: int
) -> Iterator[_Piece]:
    """The pieces of a PubMed stream, its chunks parsed in ``workers`` processes, in order.

    At most two chunks per worker are in flight, so memory does not grow with the file.
    """
    # forkserver: safe when the caller runs threads (Prefect's task runner does).
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"))
    pending: deque[Future[tuple[_Piece, int]]] = deque()
    records = 0  # before the piece given next

    def shifted(done: Future[tuple[_Piece, int]]) -> _Piece:
        nonlocal records
        piece, n = done.result()
        if records:
            piece.quarantined = [
                replace(q, position=q.position + records) for q in piece.quarantined
            ]
        records += n
        return piece

    try:
        for chunk in split_pubmed(stream, PARSE_CHUNK_BYTES):
            pending.append(pool.submit(_chunk_piece, chunk, source, ordinal, n_shards))
            while len(pending) > 2 * workers or (pending and pending[0].done()):
                yield shifted(pending.popleft())
        while pending:
            yield shifted(pending.popleft())
    finally:
        pool.shutdown(cancel_futures=True)


def read_entry(segment: str) -> dict[str, Any]:
    """The log entry of a committed segment."""
    return json.loads(storage.read_text(storage.join(segment, SUCCESS)))


#: Readers that take a stream and keep memory flat: JSON lines and PubTator a line at a time,
#: BioC a document at a time, Parquet a row group at a time (from a seekable stream: its
#: footer is read first, else from the file's bytes).
_STREAM_READERS: dict[str, Callable[[BinaryIO, str], Iterator[IngestItem]]] = {
    "bioc": read_bioc_documents,
    "pubtator": read_pubtator_documents,
    "jsonl": read_jsonl_documents,
    "parquet": read_parquet_documents,
}


def _read(fmt: str, stream: BinaryIO, source: str) -> Iterator[IngestItem]:
    """The records of one input in file order, by the reader of its format."""
    if fmt == "pubmed":
        return read_pubmed(stream, source)
    if fmt == "cnki":
        return read_cnki(stream, source)
    if fmt == "parquet" and not stream.seekable():
        return read_parquet_documents(stream.read(), source)
    return _STREAM_READERS[fmt](stream, source)


def _break_reason(error: InputError) -> str:
    """One line on where and why a file broke, e.g. ``XML broken at line 12: ...``."""
    found = _XML_BREAK.fullmatch(error.message)
    if found and error.line:
        column = f", column {found.group(1)}" if found.group(1) else ""
        return f"XML broken at line {error.line}{column}: {found.group(2)}"
    return error.where() + error.message


def document_values(doc: Document) -> list[Any]:
    """The DOCUMENTS_V2 column values of a document, in column order."""
    values = []
    for name in DOCUMENTS_V2.names:
        value = getattr(doc, name)
        if name == "sections":
            value = [(s.label, s.start, s.end, s.category) for s in value]
        elif name == "other_abstracts":
            value = [(a.language, a.text, a.type) for a in value]
        values.append(value)
    return values


def document_of(row: dict[str, Any]) -> Document:
    """A Document from a DOCUMENTS_V2 row (``Table.to_pylist``)."""
    fields = {name: row[name] for name in DOCUMENTS_V2.names}
    for name in ("authors", "mesh_headings", "keywords", "publication_types"):
        fields[name] = tuple(fields[name])
    fields["metadata"] = tuple(tuple(kv) for kv in fields["metadata"])
    fields["sections"] = tuple(Section(**s) for s in fields["sections"])
    fields["other_abstracts"] = tuple(OtherAbstract(**a) for a in fields["other_abstracts"])
    return Document(**fields)


_TOMBSTONE_FILL = [None] * (len(DOCUMENTS_V2.names) - 1)
_SOURCE = DOCUMENTS_V2.names.index("source")


class _SegmentWriter:
    """Event rows of one input, one Parquet file per shard, in bounded buffers.

    Each shard's rows are written in row groups of exactly ``limit`` rows (the last one
    shorter), whatever pieces they came in: the segment does not depend on how it was parsed.
    """

    def __init__(self, segment: str, ordinal: int, n_shards: int) -> None:
        self.segment = segment
        self.ordinal = ordinal
        self.n_shards = n_shards
        self.limit = max(256, BUFFER_ROWS // n_shards)
        self.buffers: dict[int, list[pa.RecordBatch | pa.Table]] = {}
        self.buffered: dict[int, int] = {}
        self.writers: dict[int, storage.TableWriter] = {}

    def add(self, piece: _Piece, base: int) -> None:
        """The rows of ``piece``, whose positions count from ``base`` + 1 in the input."""
        events = piece.events
        if events is None:
            return
        if base:
            columns = events.columns
            columns[1] = pc.add(columns[1], pa.scalar(base, pa.int64()))
            events = pa.RecordBatch.from_arrays(columns, schema=INGEST_EVENTS_V1)
        for shard, offset, length in piece.shards:
            self.buffers.setdefault(shard, []).append(events.slice(offset, length))
            self.buffered[shard] = self.buffered.get(shard, 0) + length
            if self.buffered[shard] >= self.limit:
                self._flush(shard, final=False)

    def _flush(self, shard: int, *, final: bool) -> None:
        parts = self.buffers.pop(shard, [])
        self.buffered.pop(shard, None)
        if not parts:
            return
        table = pa.Table.from_batches(
            [b for p in parts for b in (p.to_batches() if isinstance(p, pa.Table) else [p])],
            schema=INGEST_EVENTS_V1,
        )
        writer = self.writers.get(shard)
        if writer is None:
            writer = storage.TableWriter(part_uri(self.segment, shard), INGEST_EVENTS_V1)
            self.writers[shard] = writer
        start = 0
        while table.num_rows - start >= self.limit:
            writer.write(table.slice(start, self.limit))
            start += self.limit
        if start < table.num_rows:
            rest = table.slice(start)
            if final:
                writer.write(rest)
            else:
                self.buffers[shard] = [rest]
                self.buffered[shard] = rest.num_rows

    def shards(self) -> list[int]:
        return sorted(set(self.writers) | set(self.buffers))

    def commit(self, entry: dict[str, Any]) -> None:
        for shard in list(self.buffers):
            self._flush(shard, final=True)
        for writer in self.writers.values():
            writer.commit()
        # Last: a segment folder without it is an interrupted attempt.
        storage.write_text(json.dumps(entry) + "\n", storage.join(self.segment, SUCCESS))

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()
        storage.remove_tree(self.segment)


class _QuarantineWriter:
    """Quarantine rows of one input, written in bounded batches; a file only if any."""

    def __init__(self, uri: str, run_id: str) -> None:
        self.uri = uri
        self.run_id = run_id
        self.rows: list[dict[str, Any]] = []
        self.writer: storage.TableWriter | None = None

    def add(self, item: Quarantined) -> None:
        self.rows.append(asdict(item) | {"run_id": self.run_id})
        if len(self.rows) >= BUFFER_ROWS // 8:
            self._flush()

    def _flush(self) -> None:
        if not self.rows:
            return
        if self.writer is None:
            self.writer = storage.TableWriter(self.uri, QUARANTINE_V1)
        self.writer.write(pa.Table.from_pylist(self.rows, schema=QUARANTINE_V1))
        self.rows = []

    def commit(self) -> None:
        self._flush()
        if self.writer is not None:
            self.writer.commit()

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
        self.writer = None
        self.rows = []


# --------------------------------------------------------------------------- compaction


@dataclass(frozen=True)
class ShardState:
    """What the tables of one shard hold: the last ordinal included, and whether they agree."""

    through: int
    consistent: bool
    max_chars: int | None
    counts: dict[str, int] = field(default_factory=dict)


def shard_state(out: str, shard: int) -> ShardState:
    """Read from the shard tables' footers (no data read)."""
    throughs = []
    meta: dict[str, dict[str, str]] = {}
    for table in TABLES:
        uri = table_uri(out, table, shard)
        meta[table] = storage.read_metadata(uri) if storage.exists(uri) else {}
        throughs.append(int(meta[table].get(THROUGH, "0")))
    max_chars = meta["passages"].get("bioner.max_chars")
    return ShardState(
        through=throughs[-1] if len(set(throughs)) == 1 else 0,
        consistent=len(set(throughs)) == 1,
        max_chars=int(max_chars) if max_chars else None,
        counts=json.loads(meta["documents"].get(COUNTS, "{}")),
    )


def pending_shards(out: str, max_chars: int = DEFAULT_MAX_CHARS) -> list[int]:
    """Shards with committed input not yet in their tables, or tables to redo."""
    config = read_config(out)
    if config is None:
        return []
    log = read_log(out)
    pending = []
    for shard in range(config.n_shards):
        state = shard_state(out, shard)
        new = any(e["ordinal"] > state.through and shard in e["shards"] for e in log)
        has_tables = state.through > 0
        redo_passages = has_tables and state.max_chars != max_chars
        if new or not state.consistent or redo_passages:
            pending.append(shard)
    return pending


def compact_shard(
    out: str, shard: int, run_id: str, max_chars: int = DEFAULT_MAX_CHARS
) -> dict[str, Any] | None:
    """Bring the tables of one shard up to date with the committed segments.

    Returns the URIs written and what changed per input ordinal, or None if there was nothing
    to do. Arrow's allocator keeps freed memory for reuse; it is given back after each shard,
    so a process compacting many large shards stays at the size one shard needs.
    """
    memory.return_freed_memory()
    try:
        return _compact_shard(out, shard, run_id, max_chars)
    finally:
        pa.default_memory_pool().release_unused()


def _compact_shard(
    out: str, shard: int, run_id: str, max_chars: int = DEFAULT_MAX_CHARS
) -> dict[str, Any] | None:
    """Bring the tables of one shard up to date with the committed segments.

    Returns the URIs written and what changed per input ordinal, or None if there was nothing
    to do. Memory: the events of the new segments' part for this shard (key columns), one
    batch of rows, and the ids they touch.
    """
    started = time.perf_counter()
    state = shard_state(out, shard)
    through = state.through if state.consistent else 0  # disagreeing tables: rebuild
    log = read_log(out)
    parts = [
        (e["ordinal"], part_uri(segment_uri(out, e["sha256"]), shard))
        for e in log
        if e["ordinal"] > through and shard in e["shards"]
    ]
    redo_passages = through > 0 and state.max_chars != max_chars
    if not parts and not redo_passages and state.consistent:
        return None
    keys = _event_keys(parts)
    uris = {t: table_uri(out, t, shard) for t in TABLES}
    if not through and _only_new_documents(keys):
        # The usual first ingest: every event a document of its own id, no state before, so
        # every event wins (the fold's result, without folding event by event).
        return _compact_new(out, shard, run_id, max_chars, state, parts, keys, uris, started)
    events = _events(keys)
    touched = list({e.id for e in events})
    base_documents: dict[str, int] = {}
    base_tombstones: list[str] = []
    if through and touched:
        filters = [("id", "in", touched)]
        found = storage.read_table(uris["documents"], DOCUMENTS_V2, ["id", "version"], filters)
        base_documents = dict(zip(*found.to_pydict().values(), strict=True))
        deleted = storage.read_table(uris["tombstones"], TOMBSTONES_V2, ["id"], filters)
        base_tombstones = deleted.column("id").to_pylist()
    view = fold(events, base_documents, base_tombstones)
    dropped = pa.array(
        [i for i in base_documents if view.documents.get(i, (0, None))[1] != FROM_BASE],
        pa.string(),
    )
    dropped_tombstones = pa.array(
        [i for i in base_tombstones if view.tombstones.get(i) != FROM_BASE], pa.string()
    )
    last = max((o for o, _ in parts), default=through)
    counts = Counter(state.counts if through else {})
    for c in view.counts.values():
        counts.update(c)
    counts["document_events"] += sum(e.kind == "document" for e in events)
    counts["tombstone_events"] += sum(e.kind == "tombstone" for e in events)
    documents, tombstones, passages = writers = _shard_writers(
        uris, last, run_id, counts, max_chars
    )
    segment_seconds = 0.0
    with _committing(writers):
        reuse_passages = through > 0 and state.max_chars == max_chars
        if through:
            for batch in storage.iter_batches(uris["documents"], DOCUMENTS_V2):
                kept = batch.filter(pc.invert(pc.is_in(batch.column("id"), dropped)))
                documents.write(kept)
                if not reuse_passages:
                    segment_seconds += _write_passages(passages, kept, max_chars)
            if reuse_passages:
                for batch in storage.iter_batches(uris["passages"], PASSAGES_V1):
                    passages.write(batch.filter(pc.invert(pc.is_in(batch["doc_id"], dropped))))
            for batch in storage.iter_batches(uris["tombstones"], TOMBSTONES_V2):
                tombstones.write(batch.filter(pc.invert(pc.is_in(batch["id"], dropped_tombstones))))
        winners = _by_ordinal(view.new_documents())
        deletions = _by_ordinal(view.new_tombstones())
        for ordinal, part in parts:
            if ordinal not in winners and ordinal not in deletions:
                continue
            won = pa.array(winners.get(ordinal, []), pa.int64())
            gone = pa.array(deletions.get(ordinal, []), pa.int64())
            for batch in storage.iter_batches(part, INGEST_EVENTS_V1):
                new = batch.filter(pc.is_in(batch["position"], won))
                documents.write(new)
                segment_seconds += _write_passages(passages, new, max_chars)
                tombstones.write(batch.filter(pc.is_in(batch["position"], gone)))
    by_ordinal = {o: dict(c) for o, c in view.counts.items()}
    return _shard_result(shard, uris, last, state, writers, by_ordinal, started, segment_seconds)


def _shard_writers(
    uris: dict[str, str], last: int, run_id: str, counts: Counter[str], max_chars: int
) -> tuple[storage.TableWriter, storage.TableWriter, storage.TableWriter]:
    """The documents, tombstones and passages writers of a shard compacted through ``last``."""
    meta = {THROUGH: str(last), "bioner.run_id": run_id, "bioner.code_version": code_version()}
    return (
        storage.TableWriter(uris["documents"], DOCUMENTS_V2, meta | {COUNTS: json.dumps(counts)}),
        storage.TableWriter(uris["tombstones"], TOMBSTONES_V2, meta),
        storage.TableWriter(
            uris["passages"], PASSAGES_V1, meta | {"bioner.max_chars": str(max_chars)}
        ),
    )


@contextmanager
def _committing(writers: Sequence[storage.TableWriter]) -> Iterator[None]:
    """Commit the (documents, tombstones, passages) writers if the block succeeds, else abort.

    Documents last: its ``through`` says the shard is complete (see the module doc).
    """
    documents, tombstones, passages = writers
    try:
        yield
        for writer in writers:
            writer.close()
        tombstones.commit()
        passages.commit()
        documents.commit()
    except BaseException:
        for writer in writers:
            writer.abort()
        raise


def _shard_result(
    shard: int,
    uris: dict[str, str],
    last: int,
    state: ShardState,
    writers: Sequence[storage.TableWriter],
    by_ordinal: dict[int, dict[str, int]],
    started: float,
    segment_seconds: float,
) -> dict[str, Any]:
    """What :func:`compact_shard` returns: URIs, rows written, counts and seconds."""
    documents, tombstones, passages = writers
    return {
        "shard": shard,
        **uris,
        "through": last,
        "rebuilt": not state.consistent,
        "rows": {
            "documents": documents.rows,
            "tombstones": tombstones.rows,
            "passages": passages.rows,
        },
        "by_ordinal": by_ordinal,
        "seconds": {
            "compact": round(time.perf_counter() - started - segment_seconds, 3),
            "segment": round(segment_seconds, 3),
        },
    }


_KEY_COLUMNS = ["ordinal", "position", "kind", "id", "version"]


def _event_keys(parts: Sequence[tuple[int, str]]) -> list[pa.Table]:
    """The key columns of the parts' events, a table per part, in (ordinal, position) order."""
    return [
        storage.read_table(part, INGEST_EVENTS_V1, _KEY_COLUMNS).sort_by("position")
        for _, part in sorted(parts)
    ]


def _events(keys: Sequence[pa.Table]) -> list[Event]:
    """The events of :func:`_event_keys`' tables, for :func:`~bioner.ingest.compact.fold`."""
    events: list[Event] = []
    for table in keys:
        ordinals, positions, kinds, ids, versions = (
            table.column(c).to_pylist() for c in _KEY_COLUMNS
        )
        events.extend(
            Event(o, p, k, i, v or 1)
            for o, p, k, i, v in zip(ordinals, positions, kinds, ids, versions, strict=True)
        )
    return events


def _only_new_documents(keys: Sequence[pa.Table]) -> bool:
    """Whether the events are all documents, each of an id no other event has."""
    rows = sum(t.num_rows for t in keys)
    if not rows or any(pc.any(pc.not_equal(t["kind"], "document")).as_py() for t in keys):
        return False
    ids = pa.chunked_array([t["id"] for t in keys], pa.string())
    return bool(pc.count_distinct(ids).as_py() == rows)


def _compact_new(
    out: str,
    shard: int,
    run_id: str,
    max_chars: int,
    state: ShardState,
    parts: Sequence[tuple[int, str]],
    keys: Sequence[pa.Table],
    uris: dict[str, str],
    started: float,
) -> dict[str, Any]:
    """:func:`compact_shard` of a shard without tables yet whose events all win."""
    counts = Counter({"document_events": sum(t.num_rows for t in keys), "tombstone_events": 0})
    last = max(o for o, _ in parts)
    documents, _, passages = writers = _shard_writers(uris, last, run_id, counts, max_chars)
    segment_seconds = 0.0
    with _committing(writers):
        for _, part in parts:
            for batch in storage.iter_batches(part, INGEST_EVENTS_V1):
                documents.write(batch)
                segment_seconds += _write_passages(passages, batch, max_chars)
    by_ordinal = {int(t["ordinal"][0].as_py()): {} for t in keys if t.num_rows}
    return _shard_result(shard, uris, last, state, writers, by_ordinal, started, segment_seconds)


def _by_ordinal(where: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for ordinal, position in where:
        found.setdefault(ordinal, []).append(position)
    return found


def _write_passages(
    writer: storage.TableWriter, documents: pa.RecordBatch | pa.Table, max_chars: int
) -> float:
    """Segment a batch of document rows into ``writer``; returns the seconds it took.

    Column by column: the offsets come from :func:`bioner.segment.passage_bounds` on each
    text, the document columns of the passages are taken from the batch.
    """
    started = time.perf_counter()
    texts = documents.column("text").to_pylist()
    titles = documents.column("title").to_pylist()
    rows: list[int] = []
    indexes: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    pieces: list[str] = []
    for row, (text, title) in enumerate(zip(texts, titles, strict=True)):
        bounds = passage_bounds(text, title, max_chars)
        rows.extend(itertools.repeat(row, len(bounds)))
        indexes.extend(range(len(bounds)))
        for start, end in bounds:
            starts.append(start)
            ends.append(end)
            pieces.append(text[start:end])
    if rows:
        take = pa.array(rows, pa.int32())
        batch = pa.RecordBatch.from_arrays(
            [
                documents.column("id").take(take),
                pa.array(indexes, pa.int32()),
                pa.array(starts, pa.int32()),
                pa.array(ends, pa.int32()),
                pa.array(pieces, pa.string()),
                documents.column("version").take(take),
                documents.column("language").take(take),
            ],
            schema=PASSAGES_V1,
        )
        writer.write(batch)
    return time.perf_counter() - started


# --------------------------------------------------------------------------- a whole run


IngestFn = Callable[..., str]
CompactFn = Callable[..., dict[str, Any] | None]


def new_run_id() -> str:
    """A run id that sorts by start time: ``20260131T120501Z-1a2b3c``."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:6]


def ingest_paths(
    paths: Sequence[str],
    out: str,
    n_shards: int | None = None,
    progress: Progress | None = None,
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    run_id: str | None = None,
    ingest: IngestFn | None = None,
    compact: CompactFn | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Ingest files and folders into ``out``; returns the run summary (also the manifest).

    ``workers`` > 1 parses each PubMed file in that many processes (see :func:`ingest_input`)
    and compacts shards in that many processes (shards are independent); it applies to the
    default parse and compaction only, a flow's tasks get their concurrency from Prefect.

    The plain engine, no Prefect: the ingest flow passes its tasks as ``ingest`` and
    ``compact`` (same signatures as :func:`ingest_input` and :func:`compact_shard`).
    ``n_shards`` None means the number ``out`` was made with (16 for a new one).
    Raises :class:`ShardsChanged` and ``FileNotFoundError`` (a missing input) before any write.
    """
    started = time.time()
    clock = time.perf_counter()
    run_id = run_id or new_run_id()
    check_config(out, n_shards)
    _found, missing = expand_inputs(paths)
    if missing:
        raise FileNotFoundError(f"{missing[0]}: no such file")
    config, notes = prepare(out, n_shards)
    plan = plan_inputs(out, paths)
    ingest = ingest or functools.partial(ingest_input, progress=progress, workers=workers)
    compact = compact or compact_shard
    inputs = []
    for item in plan.inputs:
        record: dict[str, Any] = {
            "name": item.name,
            "uri": item.uri,
            "format": item.format,
            "compression": item.compression,
            "bytes": item.size,
            "sha256": item.sha256,
            "status": _STATUS[item.action],
            "reason": item.reason,
            "ordinal": item.ordinal,
        }
        if item.action == "ingest":
            try:
                entry = read_entry(ingest(item.uri, out, item.ordinal, run_id, sha256=item.sha256))
            except InputFailed as e:
                record |= {"status": "error", "reason": e.message, "ordinal": None}
            else:
                record |= {k: entry[k] for k in (*_INPUT_COUNTS, "complete", "error", "seconds")}
                if entry["error"] or entry.get("warning"):
                    record["reason"] = entry["error"] or entry["warning"]
        inputs.append(record)
    parsed = time.perf_counter()
    shards = pending_shards(out, max_chars)
    results = []
    if compact is compact_shard and workers > 1 and len(shards) > 1:
        with ProcessPoolExecutor(min(workers, len(shards))) as pool:
            futures = [pool.submit(compact, out, s, run_id, max_chars) for s in shards]
            for i, future in enumerate(as_completed(futures)):
                if progress is not None:
                    progress("compact", i, len(shards), None)
                if (result := future.result()) is not None:
                    results.append(result)
        results.sort(key=lambda r: r["shard"])
    else:
        for i, shard in enumerate(shards):
            if progress is not None:
                progress("compact", i, len(shards), None)
            result = compact(out, shard, run_id, max_chars)
            if result is not None:
                results.append(result)
    if progress is not None and shards:
        progress("compact", len(shards), len(shards), None)
    summary = summarize(out, config, run_id, inputs, results, [*notes, *plan.notes])
    summary["started"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    # The compaction's wall time, split by the shards' own shares of segmenting (they may
    # have run side by side in several processes).
    compacting = time.perf_counter() - parsed
    segment_seconds = sum(r["seconds"]["segment"] for r in results)
    busy = segment_seconds + sum(r["seconds"]["compact"] for r in results)
    if busy > compacting:
        segment_seconds *= compacting / busy
    summary["seconds"] = {
        "parse": round(parsed - clock, 3),
        "compact": round(compacting - segment_seconds, 3),
        "segment": round(segment_seconds, 3),
        "total": round(time.perf_counter() - clock, 3),
    }
    storage.write_text(json.dumps(summary, indent=2) + "\n", summary["outputs"]["manifest"])
    return summary


_STATUS = {"ingest": "ingested", "skip": "skipped", "error": "error"}
_INPUT_COUNTS = ("records_read", "documents", "tombstones", "quarantined")
_VIEW_COUNTS = ("duplicates_collapsed", "superseded", "deleted")


def summarize(
    out: str,
    config: IngestConfig,
    run_id: str,
    inputs: list[dict[str, Any]],
    results: list[dict[str, Any]],
    notes: list[str],
) -> dict[str, Any]:
    """The run manifest: per input and total reconciliation, the current view, outputs."""
    by_ordinal: dict[int, Counter[str]] = {}
    for result in results:
        for ordinal, c in result["by_ordinal"].items():
            by_ordinal.setdefault(int(ordinal), Counter()).update(c)
    totals: Counter[str] = Counter()
    for record in inputs:
        if record["status"] != "ingested":
            continue
        c = by_ordinal.get(record["ordinal"], Counter())
        record["duplicates_collapsed"] = c["collapsed"]
        record["superseded"] = c["superseded"]
        record["deleted"] = c["deleted"]
        totals.update({k: record[k] for k in _INPUT_COUNTS + _VIEW_COUNTS})
    status = Counter(r["status"] for r in inputs)
    incomplete = [r for r in inputs if r["status"] == "error" or r.get("complete") is False]
    return {
        "run_id": run_id,
        "out": out,
        "n_shards": config.n_shards,
        "notes": notes,
        "inputs": inputs,
        "totals": {
            "inputs": len(inputs),
            "ingested": status["ingested"],
            "skipped": status["skipped"],
            "errors": len(incomplete),
            **{k: totals[k] for k in _INPUT_COUNTS + _VIEW_COUNTS},
        },
        "current": current_view(out, config.n_shards),
        "shards_written": sorted(r["shard"] for r in results),
        "outputs": {
            **{t: storage.join(out, t) for t in (*TABLES, "quarantine")},
            "manifest": storage.join(out, RUNS, f"{run_id}.json"),
        },
    }


def current_view(out: str, n_shards: int) -> dict[str, Any]:
    """Rows of the current view from the shard files' footers, and the history's counts.

    Every document ever read is current, collapsed, superseded or deleted:
    ``history.documents_read == documents + collapsed + superseded + deleted``.
    """
    rows: Counter[str] = Counter()
    history: Counter[str] = Counter()
    for shard in range(n_shards):
        for table in TABLES:
            uri = table_uri(out, table, shard)
            if storage.exists(uri):
                rows[table] += storage.count_rows(uri)
        history.update(shard_state(out, shard).counts)
    return {
        **{t: rows[t] for t in TABLES},
        "history": {
            "documents_read": history["document_events"],
            "tombstones_read": history["tombstone_events"],
            "collapsed": history["collapsed"],
            "superseded": history["superseded"],
            "deleted": history["deleted"],
        },
    }


def exit_status(summary: dict[str, Any]) -> int:
    """0 when every input was read completely (or skipped), else 1."""
    return 1 if summary["totals"]["errors"] else 0


def error_lines(summary: dict[str, Any]) -> list[str]:
    """``FILE: what`` for each input that failed or broke part-way."""
    return [
        f"{r['uri']}: {r['reason']}"
        for r in summary["inputs"]
        if r["status"] == "error" or r.get("complete") is False
    ]
