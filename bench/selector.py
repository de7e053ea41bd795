"""The contrastive selector's effect on F1, per test set, on a synthetic or a real tagger.

By default predictions come from a synthetic noisy tagger (:mod:`bioner.selector.noise`):
every gold span of a document is, independently and seeded, missed (5%), replaced by a twin
with one boundary moved by 1-2 tokens (15%), given another type of the schema (5%; sets with
one type keep it), or kept; spurious spans on 1-3 tokens that overlap no gold span are added
(0.10 per gold span). The same tagger runs on the train split (its false positives become
training negatives, with sampled boundary and type twins), on the dev split (the threshold is
chosen there for F1) and on the test split (measured).

With ``--predictions OUT`` (a ``bioner evaluate`` output folder), the test candidates are a
real tagger's instead: the spans of ``OUT/sets/<set>.pred.jsonl``, scored against the gold
documents of that set read as the evaluation read them (:func:`infra.evaluation.load_eval_set`;
every predicted document, in gold order, unless ``--test-spans`` asks for a sample). The
selector is trained and its threshold chosen exactly as in the synthetic mode (synthetic
tagger on the train and dev splits): the real predictions are never used to tune it.

Peer: the same predictions without the selector. Printed per set: strict micro P/R/F1 without
and with the selector, F1 gained, precision gained against recall lost, candidates dropped (and
how many of them were correct), and candidates per second of selection on CPU (encode + FAISS
search + vote, the model loaded). Training is kept small (``--steps`` optimizer steps on at
most ``--train-spans`` gold spans, the top ``--trainable-layers`` layers of MiniLM) and
``torch.set_num_threads(--threads)``, 1 by default: the figures are for a small CPU budget,
not a tuned selector.

Sets: NCBI-disease, BC5CDR, JNLPBA (PubTator/brat whole abstracts) and the CMeEE-V2 eval part
(20% of its dev split; its train split is not available: see infra/selector/data.py).

    .venv/bin/python bench/selector.py [--sets ncbi,bc5cdr,jnlpba,cmeee] [--steps 150]
        [--train-spans 1500] [--test-spans 1500] [--threads 1] [--json OUT.json]
        [--predictions EVAL_OUT]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Mapping, Sequence

import torch

from bioner.errors import InputError
from bioner.labels import dataset
from bioner.metrics import evaluate
from bioner.readers.canonical import iter_canonical
from bioner.records import AnnotatedDocument, Span
from bioner.selector import Candidate, NoiseRates, noisy_predictions
from infra import storage
from infra.evaluation import EVAL_SETS, load_eval_set, predictions_uri, read_set_result
from infra.evaluation import set_result_uri as eval_result_uri
from infra.selector.data import SETS, SetSplits, load_set
from infra.selector.selector import Selector
from infra.selector.train import TrainConfig, train

#: ``--test-spans`` of the synthetic mode when not given (real predictions: every document).
DEFAULT_TEST_SPANS = 1500


class BenchError(Exception):
    """A one-line reason the bench cannot run (naming the file at fault)."""


def tagger(
    docs: Sequence[AnnotatedDocument], labels: Sequence[str], rates: NoiseRates, seed: int
) -> dict[str, list[Span]]:
    """The synthetic tagger's spans per document id."""
    rng = random.Random(seed)
    return {d.id: noisy_predictions(d.text, d.spans, labels, rates, rng) for d in docs}


def first_spans(docs: Sequence[AnnotatedDocument], n_spans: int, seed: int) -> list:
    """Documents in a seeded order until they hold ``n_spans`` gold spans."""
    order = list(docs)
    random.Random(seed).shuffle(order)
    out, total = [], 0
    for d in order:
        if total >= n_spans:
            break
        out.append(d)
        total += len(d.spans)
    return out


def read_predictions(
    out: str, name: str, gold: Sequence[AnnotatedDocument]
) -> tuple[list[AnnotatedDocument], dict[str, list[Span]]]:
    """The gold documents ``bioner evaluate`` predicted for set ``name`` under ``out`` (in
    gold order) and the predicted spans by document id, from ``OUT/sets/<name>.pred.jsonl``.

    BenchError naming the file when it is missing or malformed, or when one of its documents
    is not in ``gold`` or has another text there (its offsets would not be comparable).
    """
    uri = predictions_uri(out, name)
    if not storage.exists(uri):
        raise BenchError(
            f"{uri}: no such file (the {name} predictions of a bioner evaluate folder)"
        )
    by_id = {d.id: d for d in gold}
    predicted: dict[str, list[Span]] = {}
    try:
        for n, doc in iter_canonical(storage.read_text(uri)):
            found = by_id.get(doc.id)
            if found is None:
                raise InputError(
                    f"document id {doc.id!r} is not in the gold {name} set ({len(gold)} documents)",
                    line=n,
                )
            if found.text != doc.text:
                raise InputError(
                    f"document {doc.id!r}: text differs from the gold {name} set's", line=n
                )
            predicted[doc.id] = list(doc.spans)
    except InputError as e:
        raise BenchError(e.located(uri)) from None
    return [d for d in gold if d.id in predicted], predicted


def load_predicted_set(
    name: str, out: str, args: argparse.Namespace
) -> tuple[list[AnnotatedDocument], dict[str, list[Span]], float | None]:
    """Test documents, the tagger's spans by id and the strict micro F1 the evaluation
    reported for them (None when its result file is absent) of set ``name``."""
    if name not in EVAL_SETS:
        raise BenchError(f"unknown test set {name!r}; known: {', '.join(EVAL_SETS)}")
    try:
        gold = load_eval_set(name)
    except InputError as e:
        raise BenchError(str(e)) from None
    docs, predicted = read_predictions(out, name, gold)
    if args.test_spans is not None:
        docs = first_spans(docs, args.test_spans, args.seed)
        predicted = {d.id: predicted[d.id] for d in docs}
    reported = None
    result_uri = eval_result_uri(out, name)
    if storage.exists(result_uri):
        reported = read_set_result(result_uri)["metrics"]["strict"]["micro"]["f1"]
    return docs, predicted, reported


def train_selector(
    splits: SetSplits, labels: Sequence[str], rates: NoiseRates, args: argparse.Namespace
) -> tuple[Selector, float]:
    """The bench's selector for one set, and its training seconds: ``--steps`` on at most
    ``--train-spans`` train gold spans (with the synthetic tagger's false positives), its
    threshold chosen for F1 on the synthetic tagger's spans of at most ``--dev-spans`` dev
    gold spans."""
    train_docs = first_spans(splits.train, args.train_spans, args.seed)
    dev_docs = first_spans(splits.dev, args.dev_spans, args.seed)
    config = TrainConfig(
        max_steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        negatives_per_positive=args.negatives,
        trainable_layers=args.trainable_layers,
        k=args.k,
        method=args.method,
        seed=args.seed,
        threads=args.threads,
    )
    started = time.perf_counter()
    selector = train(
        train_docs,
        dev_docs,
        labels,
        config,
        encoder=args.encoder,
        train_predictions=tagger(train_docs, labels, rates, args.seed),
        dev_predictions=tagger(dev_docs, labels, rates, args.seed + 1),
    )
    return selector, time.perf_counter() - started


def measure(
    selector: Selector,
    test_docs: Sequence[AnnotatedDocument],
    predicted: Mapping[str, Sequence[Span]],
    labels: Sequence[str],
    batch_size: int,
) -> dict:
    """Strict micro scores of ``predicted`` without and with the selector, and what it
    dropped (candidates scored below its threshold)."""
    cands, owners = [], []
    for d in test_docs:
        for s in predicted[d.id]:
            cands.append(Candidate(d.text, s.start, s.end, s.label))
            owners.append(d.id)
    started = time.perf_counter()
    scores = selector.score(cands, batch_size)
    select_s = time.perf_counter() - started
    gold = {d.id: d.spans for d in test_docs}
    gold_triples = {(d.id, s.start, s.end, s.label) for d in test_docs for s in d.spans}
    kept: dict[str, list[Span]] = {d.id: [] for d in test_docs}
    dropped = dropped_correct = 0
    for c, doc_id, score in zip(cands, owners, scores, strict=True):
        if score >= selector.settings.threshold:
            kept[doc_id].append(Span(c.start, c.end, c.label))
        else:
            dropped += 1
            dropped_correct += (doc_id, c.start, c.end, c.label) in gold_triples
    without = evaluate(gold, predicted, labels=labels).micro
    with_ = evaluate(gold, kept, labels=labels).micro
    return {
        "test_docs": len(test_docs),
        "gold": without.support,
        "candidates": len(cands),
        "threshold": selector.settings.threshold,
        "without": {"p": without.precision, "r": without.recall, "f1": without.f1},
        "with": {"p": with_.precision, "r": with_.recall, "f1": with_.f1},
        "delta_f1": with_.f1 - without.f1,
        "precision_gained": with_.precision - without.precision,
        "recall_lost": without.recall - with_.recall,
        "dropped": dropped,
        "dropped_correct": dropped_correct,
        "candidates_per_s": len(cands) / select_s if select_s > 0 else None,
    }


def run_set(name: str, args: argparse.Namespace, real: tuple | None = None) -> dict:
    """One set's figures; ``real``: :func:`load_predicted_set`'s answer (else synthetic)."""
    labels = dataset(name).schema.labels
    rates = NoiseRates(retype=0.05 if len(labels) > 1 else 0.0)
    splits = load_set(name, test=real is None)
    selector, train_s = train_selector(splits, labels, rates, args)
    if real is None:
        n_test = DEFAULT_TEST_SPANS if args.test_spans is None else args.test_spans
        test_docs = first_spans(splits.test, n_test, args.seed)
        predicted = tagger(test_docs, labels, rates, args.seed + 2)
        reported = None
    else:
        test_docs, predicted, reported = real
    result = {
        "set": name,
        "tagger": "synthetic" if real is None else predictions_uri(args.predictions, name),
        **measure(selector, test_docs, predicted, labels, args.encode_batch_size),
        "train_s": round(train_s, 1),
        "dev": selector.info["dev"],
        "training": {
            k: selector.info["training"][k]
            for k in ("steps", "samples", "gold_spans", "bank", "loss_first", "loss_last")
        },
    }
    if real is not None:
        result["evaluation_f1"] = reported
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument(
        "--predictions",
        default=None,
        metavar="EVAL_OUT",
        help="a bioner evaluate output folder: test candidates from its sets/<set>.pred.jsonl "
        "instead of the synthetic tagger",
    )
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--train-spans", type=int, default=1500)
    parser.add_argument("--dev-spans", type=int, default=800)
    parser.add_argument(
        "--test-spans",
        type=int,
        default=None,
        help=f"test documents up to this many gold spans (default {DEFAULT_TEST_SPANS}; "
        "with --predictions every predicted document)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument("--trainable-layers", type=int, default=2)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--method", default="vote")
    parser.add_argument("--encoder", default=None, help="encoder folder (default MiniLM)")
    parser.add_argument("--encode-batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args()
    names = list(dict.fromkeys(n.strip() for n in args.sets.split(",") if n.strip()))
    real: dict[str, tuple] = {}
    if args.predictions:
        try:  # every file checked before any training
            real = {n: load_predicted_set(n, args.predictions, args) for n in names}
        except BenchError as e:
            raise SystemExit(f"error: {e}") from None
    torch.set_num_threads(args.threads)
    source = f"predictions of {args.predictions}" if args.predictions else "synthetic noisy tagger"
    print(
        f"selector bench: {source}, {args.steps} steps on <= {args.train_spans} "
        f"gold spans, top {args.trainable_layers} layers, k={args.k} {args.method}, "
        f"threshold for F1 on the synthetic tagger's dev spans, torch threads {args.threads}",
        flush=True,
    )
    header = (
        f"{'set':8} {'cands':>6} {'P0':>6} {'R0':>6} {'F1_0':>6} {'P1':>6} {'R1':>6} "
        f"{'F1_1':>6} {'dF1':>6} {'+P':>6} {'-R':>6} {'P/R':>5} {'drop':>6} {'(ok)':>5} "
        f"{'thr':>5} {'cand/s':>7} {'train':>6}"
    )
    results = []
    for name in names:
        r = run_set(name, args, real.get(name))
        results.append(r)
        if len(results) == 1:
            print(header)
        ratio = r["precision_gained"] / r["recall_lost"] if r["recall_lost"] > 0 else float("inf")
        print(
            f"{r['set']:8} {r['candidates']:6d} "
            + " ".join(
                f"{100 * r[side][m]:6.2f}" for side in ("without", "with") for m in ["p", "r", "f1"]
            )
            + f" {100 * r['delta_f1']:+6.2f} {100 * r['precision_gained']:+6.2f} "
            f"{100 * r['recall_lost']:6.2f} {ratio:5.1f} {r['dropped']:6d} "
            f"{r['dropped_correct']:5d} {r['threshold']:5.3f} {r['candidates_per_s']:7.1f} "
            f"{r['train_s']:5.0f}s",
            flush=True,
        )
        reported = r.get("evaluation_f1")
        if reported is not None and abs(reported - r["without"]["f1"]) > 1e-9:
            print(
                f"  note: {r['set']}: tagger F1 {100 * r['without']['f1']:.2f} here, "
                f"{100 * reported:.2f} in the evaluation report (a --test-spans sample?)",
                flush=True,
            )
    if results:
        gained = sum(r["precision_gained"] for r in results)
        lost = sum(r["recall_lost"] for r in results)
        dropped = sum(r["dropped"] for r in results)
        print(
            f"mean dF1 {100 * sum(r['delta_f1'] for r in results) / len(results):+.2f} over "
            f"{len(results)} sets; precision gained / recall lost {100 * gained:+.2f} / "
            f"{100 * lost:.2f} = "
            + (f"{gained / lost:.2f}" if lost > 0 else "inf")
            + f"; dropped {dropped} of {sum(r['candidates'] for r in results)} candidates, "
            f"{sum(r['dropped_correct'] for r in results)} of them correct",
            flush=True,
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
