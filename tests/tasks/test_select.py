"""The select and train-selector tasks, called through ``.fn``: every candidate is kept."""

from __future__ import annotations

import pytest

pytest.importorskip("faiss", reason="install the selector extra (faiss-cpu)")
pytest.importorskip("torch", reason="install the llm extra (torch)")

from bioner.errors import InputError
from infra import storage
from infra.selector.selector import Selector, SelectorError
from infra.selector.tiny import build_tiny_encoder, toy_documents
from infra.selector.train import TrainConfig, train
from schemas import ENTITIES_V1, ENTITIES_V4, PASSAGES_V1
from tasks import select as t

LABELS = ["Chemical", "Disease"]
DOC = "Intro. the patient had breast cancer today ."
#      0123456789012345678901234567890123456789012345
PASSAGE = {"doc_id": "d1", "index": 1, "start": 7, "end": 44, "text": DOC[7:], "doc_version": 1,
           "language": "en"}  # fmt: skip


def entity(start, end, label="Disease", text=None, passage_index=1):
    return {
        "doc_id": "d1",
        "doc_version": 1,
        "passage_index": passage_index,
        "start": start,
        "end": end,
        "text": DOC[start:end] if text is None else text,
        "label": label,
        "model_id": "m",
        "prompt_version": "symbolic-v1",
        "run_id": "r1",
        "score": None,
        "selected": None,
        "issues": [],
    }


@pytest.fixture(scope="module")
def selector_dir(tmp_path_factory):
    import torch

    torch.set_num_threads(1)
    docs = toy_documents(120, seed=1)
    root = tmp_path_factory.mktemp("selector")
    encoder = build_tiny_encoder(root / "enc", [d.text for d in docs])
    config = TrainConfig(max_steps=60, lr=1e-3, k=5, max_shift=1, warmup_ratio=0.05)
    sel = train(docs, toy_documents(30, seed=2), LABELS, config, encoder=str(encoder))
    sel.save(root / "sel")
    return str(root / "sel")


@pytest.fixture
def shard(tmp_path):
    out = str(tmp_path / "out")
    rows = [
        entity(23, 36),  # breast cancer: exact
        entity(19, 36),  # had breast cancer: a shifted twin
        entity(23, 36, "Gene"),  # a type the selector does not know
        entity(23, 60, text="breast cancer today . and more"),  # past the passage's end
        entity(23, 29, text="BREAST"),  # not the passage's text
        entity(0, 6, passage_index=0),  # a passage that is not in the table
    ]
    storage.write_rows(rows, storage.join(out, "entities", "shard=0.parquet"), ENTITIES_V1,
                       {"bioner.run_id": "r1", "bioner.model": "m"})  # fmt: skip
    storage.write_rows([PASSAGE], storage.join(out, "passages", "shard=0.parquet"), PASSAGES_V1)
    return out


def test_select_keeps_every_candidate_with_score_decision_and_reason(shard, selector_dir):
    uri = storage.join(shard, "entities", "shard=0.parquet")
    written = t.select_shard.fn(uri, selector_dir, run_id="r2")
    assert written == storage.join(shard, "selected", "shard=0.parquet")
    rows = storage.read_table(written, ENTITIES_V4).to_pylist()
    assert [(r["start"], r["end"], r["label"]) for r in rows] == [
        (23, 36, "Disease"), (19, 36, "Disease"), (23, 36, "Gene"), (23, 60, "Disease"),
        (23, 29, "Disease"), (0, 6, "Disease"),
    ]  # fmt: skip
    reasons = [r["reason"] for r in rows]
    assert reasons[3:] == ["offsets_outside_passage", "text_mismatch", "no_passage"]
    assert reasons[2] == "unknown_label" and rows[2]["selected"] is False
    assert all(r["score"] is None and r["selected"] is False for r in rows[3:])
    threshold = Selector.load(selector_dir).settings.threshold
    for r in rows[:3]:
        assert 0.0 <= r["score"] <= 1.0
    for r in rows[:2]:
        assert r["selected"] == (r["score"] >= threshold)
        assert r["reason"] == ("accepted" if r["selected"] else "below_threshold")
    # the exact span beats its shifted twin, and is accepted
    assert rows[0]["selected"] and rows[0]["score"] > rows[1]["score"]
    meta = storage.read_metadata(written)
    assert meta["bioner.run_id"] == "r2" and meta["bioner.model"] == "m"
    assert meta["bioner.selector_version"] == Selector.load(selector_dir).info["version"]
    summary = t.selection_summary(written)
    assert summary["candidates"] == 6 and summary["accepted"] == sum(r["selected"] for r in rows)
    assert summary["reasons"]["text_mismatch"] == 1
    assert [reason for _, reason in t.malformed_rows(written)] == reasons[3:]


def test_select_can_score_its_own_output_again(shard, selector_dir, tmp_path):
    first = t.select_shard.fn(storage.join(shard, "entities", "shard=0.parquet"), selector_dir)
    again = t.select_shard.fn(
        first, selector_dir, str(tmp_path / "again.parquet"),
        storage.join(shard, "passages", "shard=0.parquet"),
    )  # fmt: skip
    a = storage.read_table(first, ENTITIES_V4).to_pylist()
    b = storage.read_table(again, ENTITIES_V4).to_pylist()
    assert a == b


def test_strict_select_fails_naming_the_record(shard, selector_dir):
    uri = storage.join(shard, "entities", "shard=0.parquet")
    with pytest.raises(InputError, match=r"record d1#1\[23:60\] Disease: offsets outside"):
        t.select_shard.fn(uri, selector_dir, strict=True)


def test_select_refuses_a_table_that_is_not_entities(shard, selector_dir):
    passages = storage.join(shard, "passages", "shard=0.parquet")
    with pytest.raises(ValueError, match=r"passages/shard=0.parquet: expected an entities table"):
        t.select_shard.fn(passages, selector_dir, "x.parquet", passages)
    with pytest.raises(FileNotFoundError, match="no such candidates table"):
        t.select_shard.fn(storage.join(shard, "entities", "shard=9.parquet"), selector_dir)


def test_select_needs_a_selector_folder(shard, tmp_path):
    uri = storage.join(shard, "entities", "shard=0.parquet")
    with pytest.raises(SelectorError, match="no such selector folder"):
        t.select_shard.fn(uri, str(tmp_path / "missing"))


PUBTATOR = """{id}|t|{title}
{id}|a|{abstract}
{id}\t{start}\t{end}\t{mention}\tSpecificDisease\tD1

"""


def write_ncbi(root, split, docs):
    text = ""
    for d in docs:
        (span,) = d.spans
        text += PUBTATOR.format(
            id=d.id.replace("toy", "1").replace("-", "0"), title=d.text, abstract="No more.",
            start=span.start, end=span.end, mention=span.text(d.text),
        )  # fmt: skip
    folder = root / "ncbi-disease" / "pubtator"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"NCBI{split}set_corpus.txt").write_text(text)


def test_train_selector_task_reads_the_benchmark_splits(tmp_path):
    docs = [d for d in toy_documents(80, seed=4) if d.spans[0].label == "Disease"]
    write_ncbi(tmp_path / "data", "train", docs[:30])
    write_ncbi(tmp_path / "data", "develop", docs[30:])
    encoder = build_tiny_encoder(tmp_path / "enc", [d.text for d in docs])
    out = t.train_selector.fn(
        "ncbi", str(tmp_path / "sel"), encoder=str(encoder), data_root=str(tmp_path / "data"),
        config=TrainConfig(max_steps=3, k=3),
    )  # fmt: skip
    sel = Selector.load(out)
    assert sel.info["set"] == "ncbi" and sel.labels == ("Disease",)
    assert sel.info["training"]["gold_spans"] == 30 and sel.info["dev"]["gold"] == len(docs) - 30
    with pytest.raises(FileExistsError, match="not empty"):
        t.train_selector.fn("ncbi", out, encoder=str(encoder), data_root=str(tmp_path / "data"))


def test_select_an_empty_shard(tmp_path, selector_dir):
    out = tmp_path / "out"
    storage.write_rows([], str(out / "entities" / "shard=0.parquet"), ENTITIES_V1)
    storage.write_rows([], str(out / "passages" / "shard=0.parquet"), PASSAGES_V1)
    written = t.select_shard.fn(str(out / "entities" / "shard=0.parquet"), selector_dir)
    assert storage.read_table(written, ENTITIES_V4).num_rows == 0
    assert t.selection_summary(written)["candidates"] == 0
