"""Readers of raw corpus formats into :class:`~bioner.records.Document` rows and tombstones."""

from bioner.ingest.pubmed import ROOT_TAG, read_pubmed, sniff_root
from bioner.ingest.types import IngestItem, Quarantined, Tombstone

__all__ = ["ROOT_TAG", "IngestItem", "Quarantined", "Tombstone", "read_pubmed", "sniff_root"]
