"""Smoke tests of the whole annotate flow on a local two-worker Ray and Dask cluster.

The shard tasks run in the clusters' worker processes, report to the test's Prefect server,
and must write exactly the tables the thread runner writes.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.flows.test_annotate_flow import TABLES, committed, first_articles


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return first_articles(3, tmp_path_factory.mktemp("scale") / "pubmed26n0001.xml.gz")


@pytest.fixture(scope="module")
def reference(prefect_backend, tiny_model, corpus, tmp_path_factory):
    """The thread runner's tables for the corpus."""
    from flows.annotate import annotate_corpus

    out = tmp_path_factory.mktemp("thread") / "out"
    annotate_corpus(**_kwargs(corpus, out, tiny_model), runner="thread")
    return out


def _kwargs(corpus, out, tiny_model):
    return dict(
        inputs=[str(corpus)], out=str(out), model=str(tiny_model), n_shards=2, max_new_tokens=4
    )


def _task_runs_of_latest_shards_flow() -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    async def read():
        async with get_client() as client:
            (run,) = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["annotate-shards"])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=1,
            )
            return await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
            )

    return asyncio.run(read())


def _check(summary, out, reference):
    assert summary["shards"] == [0, 1]
    for table in TABLES:
        assert committed(out, table) == committed(reference, table), table
    # The workers reported their task runs to this test's Prefect server.
    runs = _task_runs_of_latest_shards_flow()
    assert sorted(r.name.split("-")[0] for r in runs) == ["decode"] * 2 + ["generate"] * 2
    assert {r.state_type.value for r in runs} == {"COMPLETED"}


def test_annotate_on_a_local_ray_cluster(ray_cluster, reference, tiny_model, corpus, tmp_path):
    from flows.annotate import annotate_corpus

    out = tmp_path / "out"
    summary = annotate_corpus(**_kwargs(corpus, out, tiny_model), runner="ray")
    assert summary["runner"]["kind"] == "ray"
    _check(summary, out, reference)


def test_annotate_on_a_local_dask_cluster(dask_cluster, reference, tiny_model, corpus, tmp_path):
    from flows.annotate import annotate_corpus

    out = tmp_path / "out"
    summary = annotate_corpus(
        **_kwargs(corpus, out, tiny_model), runner="dask", runner_address=dask_cluster
    )
    assert summary["runner"] == {"kind": "dask", "address": dask_cluster, "max_workers": 4}
    _check(summary, out, reference)
