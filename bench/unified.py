"""The unified schema against the dataset schemas, on one label space: is asking every type at
once worse than asking a set's own types?

``bioner evaluate --schema general`` asks each test set the unified schema, as ``bioner run``
does, and scores the unified types its dataset annotates whole; ``--schema dataset`` asks the
set's own schema and scores its own labels. JNLPBA's five types and CMeEE's own labels are not
the unified ones, so the two reports' F1 are not comparable as they stand. This script reads both
outputs and scores the dataset-schema predictions mapped into unified labels (the dataset's
unified map, :attr:`bioner.labels.DatasetSpec.unified`: JNLPBA protein, DNA and RNA become Gene;
spans of a label the map leaves out go) against the same unified gold as the general run.

Peer: the dataset schema, same model, same passages, same decode rules (each schema's
defaults), same gold. Printed per set: strict micro F1 of each and the difference (unified minus
dataset), and the same for relaxed F1.

    .venv/bin/bioner evaluate --model M --schema general --out GEN
    .venv/bin/bioner evaluate --model M --schema dataset --out DS
    .venv/bin/python bench/unified.py GEN DS [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bioner.labels import DATASETS
from bioner.metrics import evaluate
from bioner.readers.canonical import read_canonical
from bioner.training.data import unified_view
from infra import evaluation as ev


def _report(out: Path) -> dict:
    path = out / ev.REPORT_JSON
    if not path.is_file():
        raise SystemExit(f"{path}: no evaluate report (run bioner evaluate --out {out} first)")
    return json.loads(path.read_text("utf-8"))


def _predictions(out: Path, name: str) -> dict:
    path = out / ev.SETS_FOLDER / f"{name}.pred.jsonl"
    return {d.id: d for d in read_canonical(path.read_text("utf-8"))}


def compare(general: Path, dataset: Path) -> dict[str, dict[str, float]]:
    """Per set both reports hold: F1 strict and relaxed of each schema, on unified labels."""
    gen, ds = _report(general), _report(dataset)
    if gen.get("schema_mode") != "general" or ds.get("schema_mode") != "dataset":
        raise SystemExit("give a --schema general output first, then a --schema dataset one")
    table: dict[str, dict[str, float]] = {}
    for name, result in gen["sets"].items():
        if name not in ds["sets"]:
            continue
        if result.get("limit") != ds["sets"][name].get("limit"):
            raise SystemExit(f"{name}: the two runs used different --limit")
        spec = DATASETS[ev.EVAL_SETS[name].dataset]
        labels = sorted(result["scored_types"])
        gold_docs = ev.load_eval_set(name, None, result.get("limit"), "general")
        gold = {d.id: [s for s in d.spans if s.label in labels] for d in gold_docs}
        row: dict[str, float] = {}
        for side, out in (("unified", general), ("dataset", dataset)):
            found = _predictions(out, name)
            if side == "dataset":
                found = {k: unified_view(d, spec) for k, d in found.items()}
            pred = {k: [s for s in d.spans if s.label in labels] for k, d in found.items()}
            scores = evaluate(gold, pred, labels=labels)
            row[f"{side} strict"] = round(100 * scores.strict.micro.f1, 2)
            row[f"{side} relaxed"] = round(100 * scores.relaxed.micro.f1, 2)
        row["Δ strict"] = round(row["unified strict"] - row["dataset strict"], 2)
        row["Δ relaxed"] = round(row["unified relaxed"] - row["dataset relaxed"], 2)
        table[name] = row
    if not table:
        raise SystemExit("the two outputs share no set")
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("general", type=Path, help="A bioner evaluate --schema general output.")
    parser.add_argument("dataset", type=Path, help="A bioner evaluate --schema dataset output.")
    parser.add_argument("--json", type=Path, help="Write the table here too.")
    args = parser.parse_args()
    table = compare(args.general, args.dataset)
    columns = list(next(iter(table.values())))
    print(f"| set | {' | '.join(columns)} |")
    print(f"| --- | {' | '.join('---:' for _ in columns)} |")
    for name, row in table.items():
        print(f"| {name} | {' | '.join(f'{row[c]:.2f}' for c in columns)} |")
    if args.json:
        args.json.write_text(json.dumps(table, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
