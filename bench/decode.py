"""Decode speed and accuracy on model-like outputs: bioner's decoder against a naive one.

Inputs: the real test sentences of NCBI-disease and BC5CDR (IOB2) and the CMeEE-V2 dev records,
their gold spans encoded in the symbolic format, then altered the way real models alter a
copy, at fixed seeded rates per output line: exact copy (the rest), case changed (8%), spaces
doubled or dropped around punctuation (8%), full-/half-width punctuation swapped (8%), a word
outside the entities dropped (4%) or added (4%), the source's escaped brackets written
unescaped (always, as models do), and 3% of outputs cut at a random point with
finish_reason="length".

Peer, measured in the same run on the same outputs: the naive decoder of released
symbolic-tagging demo code — per line, a regular expression takes each innermost ``[...]`` and
``str.find`` places its text in the passage after the previous match. Both sides decode every
output once per repeat, single-threaded; the figure is the best of ``--repeats`` runs.

Prints passages/s of each, the speed ratio, and strict micro F1 of each against the gold spans.

    .venv/bin/python bench/decode.py [--limit N] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import time
from pathlib import Path

from bioner.codec.symbolic import decode, encode
from bioner.labels import DATASETS, EntitySchema
from bioner.metrics import evaluate
from bioner.readers import FORMATS
from bioner.records import AnnotatedDocument, Span

DATA = Path(os.environ.get("BIONER_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
SETS = [
    ("ncbi", "iob2", "ncbi-disease/iob/test.tsv"),
    ("bc5cdr", "iob2", "bc5cdr/iob/test.tsv"),
    ("cmeee", "cmeee", "cmeee/v2/CMeEE-V2_dev.json"),
]
_HALF_TO_FULL = str.maketrans({",": "，", "(": "（", ")": "）", ":": "：", ";": "；"})
_FULL_TO_HALF = str.maketrans(
    {v: k for k, v in {",": "，", "(": "（", ")": "）", ":": "："}.items()}
)


def perturb(output: str, rng: random.Random) -> tuple[str, str | None]:
    """A model-like version of an encoded output, and its finish reason."""
    lines = []
    for line in output.split("\n"):
        head, sep, body = line.partition(": ")
        body = body.replace("\\[", "[").replace("\\]", "]").replace("\\\\", "\\")
        r = rng.random()
        if r < 0.08:
            body = body.lower() if rng.random() < 0.5 else body.upper()
        elif r < 0.16:
            body = (
                re.sub(r" ", "  ", body, count=2) if rng.random() < 0.5 else body.replace(" ,", ",")
            )
        elif r < 0.24:
            body = body.translate(_HALF_TO_FULL if rng.random() < 0.5 else _FULL_TO_HALF)
        elif r < 0.28:
            words = body.split(" ")
            free = [i for i, w in enumerate(words) if "[" not in w and "]" not in w]
            if free:
                del words[rng.choice(free)]
            body = " ".join(words)
        elif r < 0.32:
            words = body.split(" ")
            words.insert(rng.randrange(len(words) + 1), "the")
            body = " ".join(words)
        lines.append(head + sep + body)
    text = "\n".join(lines)
    if rng.random() < 0.03 and len(text) > 10:
        return text[: rng.randrange(5, len(text))], "length"
    return text, "stop"


_INNER = re.compile(r"\[([^\[\]]+)\]")


def naive_decode(output: str, text: str, schema: EntitySchema) -> list[Span]:
    """The peer: innermost bracketed texts, placed with str.find after the previous match."""
    spans = []
    for line in output.split("\n"):
        head, _, body = line.partition(":")
        label = schema.resolve(head)
        if label is None:
            continue
        cursor = 0
        for m in _INNER.finditer(body):
            mention = m.group(1).strip()
            at = text.find(mention, cursor)
            if at >= 0:
                spans.append(Span(at, at + len(mention), label))
                cursor = at + len(mention)
    return spans


def load(limit: int | None) -> list[tuple[str, AnnotatedDocument, EntitySchema]]:
    out = []
    for name, fmt, rel in SETS:
        path = DATA / rel
        if not path.is_file():
            raise SystemExit(f"missing {path}: set BIONER_DATA_DIR")
        docs = FORMATS[fmt].read(path.read_text("utf-8"), dataset=DATASETS[name])
        out.extend((name, d, DATASETS[name].schema) for d in docs[:limit])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="passages per data set")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=13)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    cases = []
    for name, doc, schema in load(args.limit):
        out, finish = perturb(encode(doc.text, doc.spans, schema), rng)
        cases.append((f"{name}/{doc.id}", doc, schema, out, finish))
    gold = {key: doc.spans for key, doc, *_ in cases}

    def ours() -> dict[str, list[Span]]:
        return {
            key: decode(out, doc.text, schema, finish_reason=fin)[0]
            for key, doc, schema, out, fin in cases
        }

    def peer() -> dict[str, list[Span]]:
        return {key: naive_decode(out, doc.text, schema) for key, doc, schema, out, _ in cases}

    results = {}
    for side, fn in (("bioner", ours), ("naive", peer)):
        best, pred = float("inf"), {}
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            pred = fn()
            best = min(best, time.perf_counter() - t0)
        results[side] = (len(cases) / best, evaluate(gold, pred).strict.micro.f1)
    print(f"passages: {len(cases)} ({', '.join(s for s, *_ in SETS)}), seed {args.seed}")
    for side, (rate, f1) in results.items():
        print(f"{side:>7}: {rate:10,.0f} passages/s   strict micro F1 {100 * f1:6.2f}")
    (ours_rate, ours_f1), (peer_rate, peer_f1) = results["bioner"], results["naive"]
    gain = 100 * (ours_f1 - peer_f1)
    print(f"speed ratio bioner/naive: {ours_rate / peer_rate:.3f}  (F1 gain {gain:+.2f})")


if __name__ == "__main__":
    main()
