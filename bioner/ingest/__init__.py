"""Readers of raw corpus formats into :class:`~bioner.records.Document` rows and tombstones,
format detection, and the rules of the current view (shards, versions, deletions)."""

from bioner.ingest.cnki import detect_cnki_dialect, read_cnki
from bioner.ingest.compact import Event, View, fold, shard_of
from bioner.ingest.detect import FORMATS, detect_format, xml_root
from bioner.ingest.other import (
    read_bioc_documents,
    read_jsonl_documents,
    read_parquet_documents,
    read_pubtator_documents,
)
from bioner.ingest.pubmed import ROOT_TAG, ROOT_TAGS, read_pubmed, sniff_root
from bioner.ingest.types import IngestItem, Quarantined, Tombstone

__all__ = [
    "FORMATS",
    "ROOT_TAG",
    "ROOT_TAGS",
    "Event",
    "IngestItem",
    "Quarantined",
    "Tombstone",
    "View",
    "detect_cnki_dialect",
    "detect_format",
    "fold",
    "read_bioc_documents",
    "read_cnki",
    "read_jsonl_documents",
    "read_parquet_documents",
    "read_pubmed",
    "read_pubtator_documents",
    "shard_of",
    "sniff_root",
    "xml_root",
]
