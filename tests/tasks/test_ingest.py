"""The ingest tasks, called through ``.fn``: progress reports, bad input never retried."""

from __future__ import annotations

import gzip

import pytest
from prefect.states import Completed, Failed

from infra import ingest_store
from tasks import ingest as t
from tasks._common import transient

XML = (
    '<?xml version="1.0"?>\n<PubmedArticleSet>\n'
    '<PubmedArticle><MedlineCitation><PMID Version="1">1</PMID><Article>'
    "<ArticleTitle>Aspirin and asthma.</ArticleTitle></Article></MedlineCitation></PubmedArticle>"
    "\n</PubmedArticleSet>\n"
)


@pytest.fixture
def out(tmp_path):
    ingest_store.prepare(str(tmp_path / "out"), 2)
    return str(tmp_path / "out")


def test_ingest_input_commits_a_segment_and_reports_records(out, tmp_path, monkeypatch):
    source = tmp_path / "a.xml"
    source.write_text(XML)
    reports = []
    monkeypatch.setattr(t, "report", lambda *args: reports.append(args))
    segment = t.ingest_input.fn(str(source), out, 1, "run-1")
    entry = ingest_store.read_entry(segment)
    assert (entry["ordinal"], entry["documents"], entry["complete"]) == (1, 1, True)
    assert reports == [("a.xml", len(XML), len(XML), 1)]
    (result,) = [t.compact_shard.fn(out, k, "run-1") for k in ingest_store.pending_shards(out)]
    assert result["rows"]["documents"] == 1
    assert t.compact_shard.fn(out, result["shard"], "run-1") is None  # nothing new


def test_bad_input_names_the_file_and_is_not_retried(out, tmp_path):
    source = tmp_path / "notes.txt"
    source.write_bytes(b"not a corpus at all\n")
    with pytest.raises(ingest_store.InputFailed) as e:
        t.ingest_input.fn(str(source), out, 1, "r")
    assert str(e.value).startswith(f"{source}: not a recognised corpus format")
    assert not transient(None, None, Failed(data=e.value))
    assert transient(None, None, Failed(data=TimeoutError("slow disk")))
    assert not transient(None, None, Failed(data=FileNotFoundError("gone")))
    assert not transient(None, None, Completed())


def test_truncated_gzip_with_nothing_before_the_cut(out, tmp_path):
    source = tmp_path / "cut.xml.gz"
    source.write_bytes(gzip.compress(b"<PubmedArticleSet>" + b"<x/>" * 1000)[:60])
    with pytest.raises(ingest_store.InputFailed, match="truncated gzip"):
        t.ingest_input.fn(str(source), out, 1, "r")
