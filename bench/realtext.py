"""What the main job outputs on real text: density per type, junk share, a sample to judge.

Reads the tables of a ``bioner run`` (its ``OUT``: documents and entities, every shard) and
prints, per language:

- entities per 1,000 words per type (English: whitespace-separated words; Chinese: per 1,000
  CJK characters, the words of Chinese text not being delimited);
- the share of entities that are a single character, and of those that hold no letter or CJK
  character (``bioner.constraint.entity_shaped``'s two conditions, counted apart: a lone CJK
  character is a mention in Chinese, a lone Latin letter or a number is not);
- entities that are a whole section heading of the text ("Objectives", "结果": a passage-initial
  phrase right before a colon, of at most three words or four CJK characters);
- ``--sample N`` entities per language drawn at random (seeded), each with 40 characters of
  context, to be judged by a person.

    .venv/bin/bioner run ../shared/data/pubmed ../shared/data/cnki --out OUT
    .venv/bin/python bench/realtext.py OUT [--sample 50] [--seed 0] [--json FILE]

The peer is the text itself: these are rates per amount of real text, not timings.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow.dataset as pads

from bioner.constraint import entity_shaped

_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
#: A heading inside an abstract: after a sentence end, a short phrase and a colon (a title's
#: "SlideMamba: a hybrid framework" names a method; it is no heading).
_HEADING = re.compile(
    r"(?:(?<=[.。!?！？]\s)|(?<=[.。!?！？]))"
    r"([A-Z][A-Za-z]*(?: [A-Za-z]+){0,2}|[\u4e00-\u9fff]{1,4})\s?[:：]"
)


def _table(out: Path, name: str) -> list[dict]:
    folder = out / name
    if not folder.is_dir():
        raise SystemExit(f"{folder}: no such table (run bioner run first)")
    return pads.dataset(str(folder), format="parquet").to_table().to_pylist()


def measure(out: Path, sample: int, seed: int) -> dict:
    documents = {d["id"]: d for d in _table(out, "documents")}
    entities = _table(out, "entities")
    words: Counter[str] = Counter()
    for d in documents.values():
        language = "zh" if d["language"] == "zh" else "en"
        words[language] += (
            len(_CJK.findall(d["text"])) if language == "zh" else len(d["text"].split())
        )
    headings: dict[str, set[tuple[int, int]]] = {}
    for doc_id, d in documents.items():
        headings[doc_id] = {m.span(1) for m in _HEADING.finditer(d["text"])}
    by_language: dict[str, list[dict]] = defaultdict(list)
    for e in entities:
        d = documents[e["doc_id"]]
        by_language["zh" if d["language"] == "zh" else "en"].append(e)
    rng = random.Random(seed)
    report = {}
    for language, found in sorted(by_language.items()):
        per_type = Counter(e["label"] for e in found)
        unit = 1000 / max(words[language], 1)
        single = [e for e in found if len(e["text"]) == 1]
        no_letter = [e for e in found if not any(c.isalpha() for c in e["text"])]
        not_shaped = [e for e in found if not entity_shaped(e["text"])]
        on_heading = [e for e in found if (e["start"], e["end"]) in headings[e["doc_id"]]]
        drawn = rng.sample(found, min(sample, len(found)))
        report[language] = {
            "documents": sum(
                1 for d in documents.values() if (d["language"] == "zh") == (language == "zh")
            ),
            "words" if language == "en" else "cjk_characters": words[language],
            "entities": len(found),
            "per_1000": {t: round(n * unit, 2) for t, n in per_type.most_common()},
            "single_character": len(single),
            "single_character_texts": sorted(Counter(e["text"] for e in single).items()),
            "no_letter": len(no_letter),
            "not_entity_shaped": len(not_shaped),
            "headings": sorted({e["text"] for e in on_heading}),
            "sources": dict(Counter(e["source"] for e in found)),
            "sample": [
                {
                    "text": e["text"],
                    "label": e["label"],
                    "source": e["source"],
                    "context": _context(documents[e["doc_id"]]["text"], e["start"], e["end"]),
                }
                for e in drawn
            ],
        }
    return report


def _context(text: str, start: int, end: int, width: int = 40) -> str:
    return f"{text[max(0, start - width) : start]}[{text[start:end]}]{text[end : end + width]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path, help="The OUT folder of a bioner run.")
    parser.add_argument("--sample", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = measure(args.out, args.sample, args.seed)
    for language, r in report.items():
        unit = "words" if language == "en" else "CJK characters"
        print(f"## {language}: {r['documents']} documents, {r['entities']} entities")
        print(f"entities per 1,000 {unit}: {r['per_1000']}")
        print(
            f"single character: {r['single_character']} {r['single_character_texts']}; "
            f"no letter or CJK character: {r['no_letter']}; not entity-shaped: "
            f"{r['not_entity_shaped']}; whole section headings: {r['headings']}"
        )
        print(f"sources: {r['sources']}")
        for k, s in enumerate(r["sample"], 1):
            print(f"{k:3d}. {s['label']:<10} {s['source']:<12} {s['context']}")
        print()
    if args.json:
        args.json.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", "utf-8")


if __name__ == "__main__":
    main()
