"""The annotate flow as a whole: resume after ``kill -9``, the run summary, shard isolation."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from lxml import etree
from typer.testing import CliRunner

from flows.cli import app
from flows.commands.run import SAMPLE

runner = CliRunner()
BIONER = str(Path(sys.executable).parent / "bioner")


def committed(out: Path, table: str) -> list[dict]:
    """The rows of a table's committed shard files (``shard=<k>.parquet``), run ids left out:
    they name the run, and two runs always differ in them."""
    rows = []
    for f in sorted((out / table).glob("shard=*.parquet")):
        rows += [
            {k: v for k, v in r.items() if k != "run_id"} for r in pq.read_table(f).to_pylist()
        ]
    return rows


TABLES = ("documents", "tombstones", "passages", "generations", "entities", "decode_issues")
KEYS = {
    "passages": ("doc_id", "doc_version", "index"),
    "generations": ("doc_id", "doc_version", "passage_index", "window_start"),
    "entities": ("doc_id", "doc_version", "passage_index", "start", "end", "label"),
}


def _api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return str(PREFECT_API_URL.value())


def first_articles(n: int, path: Path) -> Path:
    """The bundled sample's first ``n`` articles as a PubMed file of their own."""
    with gzip.open(SAMPLE) as f:
        root = etree.parse(f).getroot()
    for article in root.findall("PubmedArticle")[n:]:
        root.remove(article)
    path.write_bytes(gzip.compress(etree.tostring(root, xml_declaration=True, encoding="UTF-8")))
    return path


def test_kill_9_during_generation_then_rerun_equals_an_uninterrupted_run(
    prefect_backend, tiny_model, tmp_path, kill_after_chunks
):
    corpus = first_articles(4, tmp_path / "pubmed26n0001.xml.gz")
    args = ["--model", str(tiny_model), "--shards", "2", "--chunk-size", "2"]
    args += ["--max-new-tokens", "4"]
    reference = runner.invoke(app, ["run", str(corpus), "--out", str(tmp_path / "ref"), *args])
    assert reference.exit_code == 0, reference.output

    out = tmp_path / "out"
    command = [BIONER, "run", str(corpus), "--out", str(out), *args]
    # The subprocesses use the test's Prefect server: no server of their own to start.
    env = {**os.environ, "PREFECT_API_URL": _api_url(), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    proc = kill_after_chunks(command, env, str(out))  # three chunks committed
    assert proc.returncode == -signal.SIGKILL
    work = out / "_work" / "generations"
    saved = list(work.glob("shard=*/part-*.parquet"))
    assert saved, "the chunks made before the kill are kept"

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    for table in TABLES:
        rows = committed(out, table)
        assert rows == committed(tmp_path / "ref", table), table
        if table in KEYS:  # no duplicates
            keys = [tuple(r[k] for k in KEYS[table]) for r in rows]
            assert len(keys) == len(set(keys)), table
    summary = json.loads((out / "summary.json").read_text())
    assert summary["resumed"] >= 6  # the chunks of the killed run were taken up, not redone
    assert not work.exists()  # and removed once their shard was committed
    leftovers = [p for t in TABLES for p in (out / t).glob(".*")]
    assert leftovers == []


@pytest.fixture(scope="module")
def annotated(prefect_backend, tiny_model, tmp_path_factory):
    from flows.annotate import annotate_corpus

    out = tmp_path_factory.mktemp("flow") / "out"
    kwargs = dict(inputs=[str(SAMPLE)], out=str(out), model=str(tiny_model), max_new_tokens=4)
    first = annotate_corpus(n_shards=3, **kwargs)
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "generations").iterdir()}
    second = annotate_corpus(**kwargs)
    return out, first, second, mtimes


def test_the_summary_has_a_row_per_stage_that_reconciles(annotated):
    out, summary, _, _ = annotated
    rows = {row["stage"]: row for row in summary["stages"]}
    assert list(rows) == ["ingest", "segment", "generate", "decode"]
    totals = summary["ingest"]["totals"]
    assert (rows["ingest"]["in"], rows["ingest"]["out"]) == (8, 8)
    assert rows["ingest"]["in"] == (
        totals["documents"] + totals["tombstones"] + totals["quarantined"]
    )
    assert (rows["segment"]["in"], rows["segment"]["out"]) == (8, summary["passages"])
    assert rows["generate"]["in"] == summary["passages"] == len(committed(out, "passages"))
    assert rows["generate"]["generated"] + rows["generate"]["cached"] == summary["generations"]
    assert rows["decode"]["out"] == summary["entities"] == len(committed(out, "entities"))
    for row in rows.values():
        assert 0 <= row["wall_seconds"] <= row["seconds"] + 1e-6
    time_split = summary["time"]
    assert time_split["stage_seconds"] + time_split["orchestration_seconds"] == pytest.approx(
        time_split["wall_seconds"], abs=0.01
    )
    assert 0 <= time_split["orchestration_share"] < 1


def test_a_new_flow_run_skips_the_shards_already_done(annotated):
    out, first, second, mtimes = annotated
    assert first["shards"] == [0, 1, 2]
    assert second["shards"] == [] and second["generations"] == 0
    assert {p: p.stat().st_mtime_ns for p in (out / "generations").iterdir()} == mtimes


def test_each_run_publishes_a_markdown_artifact(annotated):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from flows.annotate import ARTIFACT_KEY

    _, summary, _, _ = annotated

    async def read():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[summary["run_id"]])
                )
            )

    (artifact,) = asyncio.run(read())
    assert artifact.key == ARTIFACT_KEY and artifact.type == "markdown"
    assert "| stage | in | out |" in artifact.data
    assert "| generate |" in artifact.data and "orchestration" in artifact.data


def test_a_failing_shard_does_not_stop_the_others(
    prefect_backend, tiny_model, tmp_path, monkeypatch
):
    from prefect import task

    from flows.annotate import ShardsFailed, annotate_corpus
    from tasks import annotate as t

    real = t.decode

    @task(name="decode")
    def flaky(generations_uri, *args, **kwargs):
        if "shard=1." in generations_uri:
            raise ValueError("bad shard")
        return real.fn(generations_uri, *args, **kwargs)

    monkeypatch.setattr(t, "decode", flaky)
    out = tmp_path / "out"
    kwargs = dict(inputs=[str(SAMPLE)], out=str(out), model=str(tiny_model), max_new_tokens=4)
    with pytest.raises(ShardsFailed, match=r"1 of 3 shard\(s\) failed: shard 1: "):
        annotate_corpus(n_shards=3, **kwargs)
    assert sorted(p.name for p in (out / "entities").iterdir()) == [
        "shard=0.parquet",
        "shard=2.parquet",
    ]
    monkeypatch.setattr(t, "decode", real)
    summary = annotate_corpus(**kwargs)  # the next run does only what is left
    assert summary["shards"] == [1] and summary["generated"] == 0
