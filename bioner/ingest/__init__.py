"""Readers of raw corpus formats into :class:`~bioner.records.Document` rows and tombstones."""

from bioner.ingest.pubmed import ROOT_TAG, Tombstone, read_pubmed, sniff_root

__all__ = ["ROOT_TAG", "Tombstone", "read_pubmed", "sniff_root"]
