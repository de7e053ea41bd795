"""The nightly, backfill and training flows, the runner settings, and the deployment files."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import yaml

from flows.backfill import parse_bound, select_files
from flows.nightly import pubmed_files, pubmed_key, read_watermark
from flows.runners import RunnerSettings, gpu_placement, is_gpu, task_runner

REPO = Path(__file__).resolve().parents[2]


def pubmed_file(folder: Path, number: int, pmids: list[str], *, broken: bool = False) -> Path:
    """A small PubMed update file ``pubmed26n<number>.xml.gz`` with one article per PMID."""
    articles = "".join(
        f'<PubmedArticle><MedlineCitation><PMID Version="1">{p}</PMID><Article>'
        f"<ArticleTitle>Aspirin and asthma in study {p}.</ArticleTitle></Article>"
        "</MedlineCitation></PubmedArticle>"
        for p in pmids
    )
    xml = f'<?xml version="1.0"?>\n<PubmedArticleSet>{articles}</PubmedArticleSet>\n'
    path = folder / f"pubmed26n{number:04d}.xml.gz"
    path.write_bytes(b"\x1f\x8bnot gzip at all" if broken else gzip.compress(xml.encode()))
    return path


def test_pubmed_files_after_a_watermark_in_number_order(tmp_path):
    for n in (12, 3, 10):
        pubmed_file(tmp_path, n, ["1"])
    (tmp_path / "README.txt").write_text("not a PubMed file")
    (tmp_path / ".pubmed26n0099.xml.gz").write_bytes(b"hidden")
    names = [Path(f).name for f in pubmed_files(str(tmp_path))]
    assert names == ["pubmed26n0003.xml.gz", "pubmed26n0010.xml.gz", "pubmed26n0012.xml.gz"]
    assert [Path(f).name for f in pubmed_files(str(tmp_path), (26, 10))] == ["pubmed26n0012.xml.gz"]
    assert pubmed_key("s3://b/x/pubmed25n1274.xml") == (25, 1274)
    assert pubmed_key("pubmed26n0001.xml.gz.md5") is None


def _options(tiny_model) -> dict:
    return {"model": str(tiny_model), "max_new_tokens": 4, "n_shards": 2}


def test_nightly_takes_new_files_in_order_and_moves_the_watermark_after_success(
    prefect_backend, tiny_model, tmp_path
):
    from flows.nightly import NightlyIncomplete, nightly_pubmed

    source, out = tmp_path / "updates", tmp_path / "out"
    source.mkdir()
    pubmed_file(source, 2, ["10", "11"])
    pubmed_file(source, 1, ["10", "12"])
    first = nightly_pubmed(source=str(source), out=str(out), options=_options(tiny_model))
    assert first["files"] == ["pubmed26n0001.xml.gz", "pubmed26n0002.xml.gz"]
    assert first["watermark_before"] is None
    assert read_watermark(str(out)).name == "pubmed26n0002.xml.gz"
    assert first["summary"]["ingest"]["current"]["documents"] == 3  # 10 (twice), 11, 12
    assert json.loads((out / "_nightly" / "runs" / f"{first['run_id']}.json").read_text())

    again = nightly_pubmed(source=str(source), out=str(out), options=_options(tiny_model))
    assert again["files"] == [] and again["summary"] is None  # nothing new tonight

    pubmed_file(source, 3, ["13"])
    pubmed_file(source, 4, ["14"], broken=True)
    pubmed_file(source, 5, ["15"])
    with pytest.raises(NightlyIncomplete, match=r"pubmed26n0004\.xml\.gz: not a valid gzip"):
        nightly_pubmed(source=str(source), out=str(out), options=_options(tiny_model))
    # The watermark stops before the file that could not be read; its neighbours are in.
    assert read_watermark(str(out)).name == "pubmed26n0003.xml.gz"
    nights = [json.loads(p.read_text()) for p in (out / "_nightly" / "runs").iterdir()]
    (night,) = [n for n in nights if n["failed"]]
    assert night["files"] == [f"pubmed26n000{n}.xml.gz" for n in (3, 4, 5)]
    assert night["watermark_after"]["name"] == "pubmed26n0003.xml.gz"


@pytest.mark.s3
def test_nightly_reads_its_source_from_s3(prefect_backend, tiny_model, moto_s3, tmp_path):
    import boto3

    from flows.nightly import nightly_pubmed

    local = tmp_path / "local"
    local.mkdir()
    prefix = moto_s3.uri("nightly", tmp_path.name)
    client = boto3.client("s3", endpoint_url=moto_s3.endpoint)
    for n in (7, 8):
        path = pubmed_file(local, n, [str(20 + n)])
        # boto3, as a mirror job would upload them (pyarrow's output streams would compress a
        # ``.gz`` name once more).
        key = f"nightly/{tmp_path.name}/updates/{path.name}"
        client.put_object(Bucket=moto_s3.bucket, Key=key, Body=path.read_bytes())
    out = tmp_path / "out"
    night = nightly_pubmed(source=f"{prefix}/updates", out=str(out), options=_options(tiny_model))
    assert night["files"] == ["pubmed26n0007.xml.gz", "pubmed26n0008.xml.gz"]
    assert read_watermark(str(out)).name == "pubmed26n0008.xml.gz"
    assert night["summary"]["ingest"]["current"]["documents"] == 2


def test_backfill_ranges():
    assert parse_bound("pubmed26n0007.xml.gz") == (26, 7)
    assert parse_bound("26n7") == (26, 7) and parse_bound("12") == (None, 12)
    with pytest.raises(ValueError, match="not a PubMed file number"):
        parse_bound("yesterday")


def test_backfill_selects_a_range_and_runs_in_batches(prefect_backend, tiny_model, tmp_path):
    from flows.backfill import backfill

    source = tmp_path / "baseline"
    source.mkdir()
    for n in range(1, 5):
        pubmed_file(source, n, [str(100 + n)])
    assert [Path(f).name[-11:] for f in select_files([str(source)], "2", "26n3")] == [
        "0002.xml.gz",
        "0003.xml.gz",
    ]
    assert len(select_files([str(source)])) == 4
    out = tmp_path / "out"
    result = backfill(
        inputs=[str(source)],
        out=str(out),
        options=_options(tiny_model),
        first="2",
        files_per_run=1,
        max_concurrency=1,
    )
    assert [b["files"] for b in result["batches"]] == [
        ["pubmed26n0002.xml.gz"],
        ["pubmed26n0003.xml.gz"],
        ["pubmed26n0004.xml.gz"],
    ]
    assert all(b["totals"]["documents"] == 1 for b in result["batches"])
    ids = {r for f in (out / "documents").glob("shard=*.parquet") for r in _ids(f)}
    assert ids == {"102", "103", "104"}


def _ids(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    return pq.read_table(path, columns=["id"]).column("id").to_pylist()


def test_train_tagger_flow_trains_and_a_rerun_resumes(prefect_backend, tiny_model, tmp_path):
    from bioner.labels import DATASETS
    from bioner.records import AnnotatedDocument, Document, Span
    from bioner.training.data import BuildOptions, examples_of
    from flows.train import train_tagger
    from infra.llm.local import marker
    from infra.training.data import write_examples

    doc = AnnotatedDocument(
        Document("d1", "Famotidine-associated delirium."), (Span(22, 30, "Disease"),)
    )
    examples = list(examples_of([doc], DATASETS["bc5cdr"], "toy/train", BuildOptions()))
    write_examples(examples, tmp_path / "data" / "train.jsonl")
    args = dict(
        model=str(tiny_model),
        data=str(tmp_path / "data"),
        out=str(tmp_path / "trained"),
        max_steps=2,
        batch_size=2,
        threads=1,
        save_every=1,
        max_batch_tokens=64,
        loss="constrained",
    )
    first = train_tagger(**args)
    assert (first["steps"], first["stopped"], first["resumed"]) == (2, "max_steps", False)
    assert marker(tmp_path / "trained")["trained"] is True
    assert marker(tmp_path / "trained")["config"]["max_batch_tokens"] == 64
    assert marker(tmp_path / "trained")["training_loss"] == "constrained"
    second = train_tagger(**args)  # a finished run: resumed at its last step, nothing redone
    assert (second["steps"], second["resumed"]) == (2, True)


def test_runner_settings_come_from_parameters_or_the_environment(monkeypatch):
    monkeypatch.delenv("BIONER_TASK_RUNNER", raising=False)
    assert RunnerSettings.resolve() == RunnerSettings("thread")
    monkeypatch.setenv("BIONER_TASK_RUNNER", "ray")
    monkeypatch.setenv("BIONER_RUNNER_ADDRESS", "ray://head:10001")
    assert RunnerSettings.resolve() == RunnerSettings("ray", "ray://head:10001")
    assert RunnerSettings.resolve("dask", "tcp://s:8786").address == "tcp://s:8786"
    with pytest.raises(ValueError, match="unknown task runner 'spark'"):
        RunnerSettings.resolve("spark")
    with pytest.raises(ValueError, match="takes no address"):
        RunnerSettings("thread", "tcp://x:1")
    assert type(task_runner(RunnerSettings("thread", max_workers=2))).__name__ == (
        "ThreadPoolTaskRunner"
    )
    ray_runner = task_runner(RunnerSettings("ray", "ray://head:10001"))
    assert ray_runner.address == "ray://head:10001"
    assert task_runner(RunnerSettings("dask", "tcp://s:8786")).address == "tcp://s:8786"


def test_gpu_tasks_ask_ray_for_one_gpu_and_keep_their_worker():
    pytest.importorskip("prefect_ray")
    from prefect_ray.context import RemoteOptionsContext

    assert is_gpu("cuda:1") and not is_gpu("cpu")
    with gpu_placement(RunnerSettings("ray"), "cuda"):
        assert RemoteOptionsContext.get().current_remote_options == {"num_gpus": 1, "max_calls": 0}
    with gpu_placement(RunnerSettings("ray"), "cpu"):
        assert not RemoteOptionsContext.get().current_remote_options


def test_generate_is_tagged_gpu_only_on_a_gpu_device(tmp_path):
    """The GPU tag (for Prefect's tag concurrency limit) goes on generate tasks of GPU runs."""
    import inspect

    from flows import annotate

    source = inspect.getsource(annotate.annotate_shards)
    assert "with_options(tags={GPU_TAG}) if is_gpu(request.device)" in source


def test_the_deployments_name_real_flows_with_valid_parameters():
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((REPO / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert {"nightly-pubmed", "backfill", "train-tagger"} <= set(deployments)
    (schedule,) = deployments["nightly-pubmed"]["schedules"]
    CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"])
    for name, d in deployments.items():
        flow = load_flow_from_entrypoint(str(REPO / d["entrypoint"]))
        flow.validate_parameters(d["parameters"])  # raises on a wrong or missing parameter
        assert d["work_pool"]["name"] in ("bioner-gpu", "bioner-cpu"), name
    for image in ("cpu-worker", "gpu-worker"):
        text = (REPO / "infra" / "docker" / f"{image}.Dockerfile").read_text()
        assert 'prefect", "worker", "start"' in text
    assert (
        "requirements/gpu-worker.txt" in (REPO / "infra/docker/gpu-worker.Dockerfile").read_text()
    )
