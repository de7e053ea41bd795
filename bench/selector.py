"""The contrastive selector's effect on F1, per test set, on a synthetic noisy tagger.

Until the reference tagger exists, predictions come from a synthetic noisy tagger
(:mod:`bioner.selector.noise`): every gold span of a document is, independently and seeded,
missed (5%), replaced by a twin with one boundary moved by 1-2 tokens (15%), given another
type of the schema (5%; sets with one type keep it), or kept; spurious spans on 1-3 tokens that
overlap no gold span are added (0.10 per gold span). The same tagger runs on the train split
(its false positives become training negatives, with sampled boundary and type twins), on the
dev split (the threshold is chosen there for F1) and on the test split (measured).

Peer: the same predictions without the selector. Printed per set: strict micro P/R/F1 without
and with the selector, F1 gained, precision gained against recall lost, and candidates per
second of selection on CPU (encode + FAISS search + vote, the model loaded). Training is kept
small (``--steps`` optimizer steps on at most ``--train-spans`` gold spans, the top
``--trainable-layers`` layers of MiniLM) and ``torch.set_num_threads(--threads)``, 1 by default:
the figures are for a small CPU budget, not a tuned selector.

Sets: NCBI-disease, BC5CDR, JNLPBA (PubTator/brat whole abstracts) and the CMeEE-V2 eval part
(20% of its dev split; its train split is not available: see infra/selector/data.py).

    .venv/bin/python bench/selector.py [--sets ncbi,bc5cdr,jnlpba,cmeee] [--steps 150]
        [--train-spans 1500] [--test-spans 1500] [--threads 1] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Sequence

import torch

from bioner.labels import dataset
from bioner.metrics import evaluate
from bioner.records import AnnotatedDocument, Span
from bioner.selector import Candidate, NoiseRates, noisy_predictions
from infra.selector.data import SETS, load_set
from infra.selector.train import TrainConfig, train


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


def run_set(name: str, args: argparse.Namespace) -> dict:
    labels = dataset(name).schema.labels
    rates = NoiseRates(retype=0.05 if len(labels) > 1 else 0.0)
    splits = load_set(name)
    train_docs = first_spans(splits.train, args.train_spans, args.seed)
    dev_docs = first_spans(splits.dev, args.dev_spans, args.seed)
    test_docs = first_spans(splits.test, args.test_spans, args.seed)
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
    train_s = time.perf_counter() - started

    predicted = tagger(test_docs, labels, rates, args.seed + 2)
    cands, owners = [], []
    for d in test_docs:
        for s in predicted[d.id]:
            cands.append(Candidate(d.text, s.start, s.end, s.label))
            owners.append(d.id)
    started = time.perf_counter()
    scores = selector.score(cands, args.encode_batch_size)
    select_s = time.perf_counter() - started
    kept: dict[str, list[Span]] = {d.id: [] for d in test_docs}
    for c, doc_id, score in zip(cands, owners, scores, strict=True):
        if score >= selector.settings.threshold:
            kept[doc_id].append(Span(c.start, c.end, c.label))
    gold = {d.id: d.spans for d in test_docs}
    without = evaluate(gold, predicted).micro
    with_ = evaluate(gold, kept).micro
    return {
        "set": name,
        "test_docs": len(test_docs),
        "gold": without.support,
        "candidates": len(cands),
        "threshold": selector.settings.threshold,
        "without": {"p": without.precision, "r": without.recall, "f1": without.f1},
        "with": {"p": with_.precision, "r": with_.recall, "f1": with_.f1},
        "delta_f1": with_.f1 - without.f1,
        "precision_gained": with_.precision - without.precision,
        "recall_lost": without.recall - with_.recall,
        "candidates_per_s": len(cands) / select_s if select_s > 0 else None,
        "train_s": round(train_s, 1),
        "dev": selector.info["dev"],
        "training": {
            k: selector.info["training"][k]
            for k in ("steps", "samples", "gold_spans", "bank", "loss_first", "loss_last")
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--train-spans", type=int, default=1500)
    parser.add_argument("--dev-spans", type=int, default=800)
    parser.add_argument("--test-spans", type=int, default=1500)
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
    torch.set_num_threads(args.threads)
    print(
        f"selector bench: synthetic noisy tagger, {args.steps} steps on <= {args.train_spans} "
        f"gold spans, top {args.trainable_layers} layers, k={args.k} {args.method}, "
        f"torch threads {args.threads}",
        flush=True,
    )
    header = (
        f"{'set':8} {'cands':>6} {'P0':>6} {'R0':>6} {'F1_0':>6} {'P1':>6} {'R1':>6} "
        f"{'F1_1':>6} {'dF1':>6} {'+P':>6} {'-R':>6} {'P/R':>5} {'cand/s':>7} {'train':>6}"
    )
    results = []
    for name in args.sets.split(","):
        r = run_set(name.strip(), args)
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
            f"{100 * r['recall_lost']:6.2f} {ratio:5.1f} {r['candidates_per_s']:7.1f} "
            f"{r['train_s']:5.0f}s",
            flush=True,
        )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
