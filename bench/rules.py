"""What each decode rule gives, on saved tagger answers: the choice of the rules on by default.

``bioner evaluate`` writes the tagger's spans alone beside its predictions
(``OUT/sets/<set>.tagger.jsonl``, every type asked). This script applies the decode rules
(:mod:`bioner.rules`) to them again, as ``bioner run`` would, under several switch settings, and
scores each against the gold documents of the set, read as the evaluation read them (same
schema mode, same scored types):

- ``tagger``: no rule (the tagger's spans as decoded, shape check off);
- ``all``: every rule on;
- ``-RULE``: every rule on but RULE, for each rule of :data:`bioner.rules.RULES`;
- ``default``: the rules the schema runs by default (:data:`bioner.rules.DEFAULT_OFF`).

Peer: ``all``. A rule earns its place on a schema when switching it off loses F1 on the
development sets (``-dev``): run ``bioner evaluate --sets ncbi-dev,... --out DEV`` first, then

    .venv/bin/python bench/rules.py --eval DEV --model models/reference [--json OUT.json]

Printed: strict micro F1 per set and setting, and each setting's mean difference to ``all``.
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from pathlib import Path

from bioner.labels import schema_for
from bioner.lexicon import Lexicon
from bioner.metrics import evaluate
from bioner.readers.canonical import read_canonical
from bioner.records import AnnotatedDocument, Span
from bioner.rules import RULES, TAGGER, DecodeRules, Sourced, apply_to_document, apply_to_passage
from bioner.segment import segment
from infra import evaluation as ev
from infra.lexicon import read_lexicons


def decoded(
    docs: list[AnnotatedDocument],
    tagger: dict[str, list[Span]],
    asked: str,
    lexicons: dict[str, Lexicon],
    rules: DecodeRules,
    max_chars: int,
) -> dict[str, list[Span]]:
    """The spans ``bioner run`` would output from the tagger's spans under ``rules``."""
    out = {}
    for doc in docs:
        text = doc.document.text
        found: list[Sourced] = []
        passages = segment(doc.document, max_chars=max_chars)
        for p in passages:
            schema = schema_for(asked, p.language)
            inside = [
                s.shifted(-p.start) for s in tagger.get(doc.id, []) if p.start <= s.start < p.end
            ]
            result = apply_to_passage(p.text, inside, schema, lexicons, rules)
            found += [Sourced(s.shifted(p.start), TAGGER) for s in result.kept]
            found += [Sourced(s.shifted(p.start), "lexicon") for s in result.added]
        bounds = [(p.start, p.end) for p in passages]
        spans = apply_to_document(text, found, rules, bounds).spans
        out[doc.id] = [f.span for f in spans]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--eval", type=Path, required=True, help="A bioner evaluate output.")
    parser.add_argument("--model", type=Path, required=True, help="The model (its lexicon).")
    parser.add_argument("--json", type=Path, help="Write the table here too.")
    args = parser.parse_args()
    report = json.loads((args.eval / ev.REPORT_JSON).read_text("utf-8"))
    mode = report.get("schema_mode", "dataset")
    lexicons = read_lexicons(args.model) or {}
    settings = {
        "tagger": DecodeRules(frozenset(RULES)),
        "all": DecodeRules(),
        **{f"-{rule}": DecodeRules(frozenset({rule})) for rule in RULES},
    }
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for name, result in report["sets"].items():
        asked, labels = result["schema"], result.get("scored_types") or None
        limit = result.get("limit")
        docs = ev.load_eval_set(name, None, limit, mode)
        path = args.eval / ev.SETS_FOLDER / f"{name}.tagger.jsonl"
        if not path.is_file():
            path = args.eval / ev.SETS_FOLDER / f"{name}.pred.jsonl"
        tagger = {d.id: list(d.spans) for d in read_canonical(path.read_text("utf-8"))}
        scored = set(labels or schema_for(asked, None).labels)
        gold = {d.id: [s for s in d.spans if s.label in scored] for d in docs}
        runs = {**settings, "default": DecodeRules.parse("", asked)}
        for setting, rules in runs.items():
            found = decoded(docs, tagger, asked, lexicons, rules, result["max_chars"])
            found = {k: [s for s in v if s.label in scored] for k, v in found.items()}
            f1 = evaluate(gold, found, labels=sorted(scored)).strict.micro.f1
            table[setting][name] = round(100 * f1, 2)
        print(name, {k: v[name] for k, v in table.items()}, flush=True)
    names = list(report["sets"])
    print(f"\n| setting | {' | '.join(names)} | mean Δ vs all |")
    print(f"| --- | {' | '.join('---:' for _ in names)} | ---: |")
    for setting, row in table.items():
        delta = statistics.fmean(row[n] - table["all"][n] for n in names)
        cells = " | ".join(f"{row[n]:.2f}" for n in names)
        print(f"| {setting} | {cells} | {delta:+.2f} |")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
