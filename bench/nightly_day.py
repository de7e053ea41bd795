"""A nightly PubMed update on one box: ``bioner nightly`` end to end on a realistic daily file.

The file: ``--citations`` PubMed citations (a day of updates is about 11,000) in the real
update-file structure. Each is a real citation of ``../shared/data/pubmed`` (its XML: journal,
authors, MeSH, dates) with the title and abstract of a distinct real PubMed abstract from the
NCBI-disease and BC5CDR PubTator files (2,292 abstracts, so that no text repeats and no answer
comes from the generation cache), chosen to follow the length distribution of the real update
file's abstracts; citations without an abstract in the same share as there; and a
``DeleteCitation`` of ``--deletions`` PMIDs, as update files carry. Then, in a fresh process
and output folder, as a user runs it::

    bioner nightly SOURCE --out OUT [--model DIR]

and prints the process's wall time, the run summary's per-stage breakdown, and the projection
of the measured passages/s to a day of 11,000 citations and to the full baseline (about 36M
citations) on this box, against the issue's one-hour target. The peer is the day itself: the
hour a nightly job has.

    .venv/bin/python bench/nightly_day.py [--citations 1000] [--model DIR] [--keep DIR]
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

from infra.datasets import data_dir

REPO = Path(__file__).resolve().parents[1]
BIONER = str(Path(sys.executable).parent / "bioner")
DAY = 11_000
BASELINE = 36_000_000
POOL = (
    "ncbi-disease/pubtator/NCBItrainset_corpus.txt",
    "ncbi-disease/pubtator/NCBIdevelopset_corpus.txt",
    "ncbi-disease/pubtator/NCBItestset_corpus.txt",
    "bc5cdr/pubtator/CDR_TrainingSet.PubTator.txt",
    "bc5cdr/pubtator/CDR_DevelopmentSet.PubTator.txt",
    "bc5cdr/pubtator/CDR_TestSet.PubTator.txt",
)


def abstracts(root: Path) -> list[tuple[str, str]]:
    """(title, abstract) of every distinct PubTator document of :data:`POOL`."""
    seen: dict[str, tuple[str, str]] = {}
    for name in POOL:
        parts: dict[str, dict[str, str]] = {}
        for line in (root / name).read_text("utf-8").splitlines():
            pmid, sep, rest = line.partition("|")
            if sep and rest[:2] in ("t|", "a|"):
                parts.setdefault(pmid, {})[rest[0]] = rest[2:]
        for pmid, p in parts.items():
            if p.get("a") and pmid not in seen:
                seen[pmid] = (p.get("t", ""), p["a"])
    return list(seen.values())


def real_citations(root: Path) -> list[etree._Element]:
    """The real ``PubmedArticle`` elements of the shared PubMed files."""
    out = []
    for path in sorted((root / "pubmed").glob("*.xml.gz")):
        with gzip.open(path) as f:
            out += etree.parse(f).findall("PubmedArticle")
    return out


def abstract_length(article: etree._Element) -> int | None:
    texts = article.findall(".//Abstract/AbstractText")
    return sum(len("".join(t.itertext())) for t in texts) if texts else None


def build_day(root: Path, n: int, deletions: int, seed: int) -> tuple[bytes, dict[str, int]]:
    """The update file's bytes and what it holds."""
    rng = random.Random(seed)
    real = real_citations(root)
    lengths = [abstract_length(a) for a in real]
    with_abstract = [a for a, n_ in zip(real, lengths, strict=True) if n_]
    no_abstract = [a for a, n_ in zip(real, lengths, strict=True) if not n_]
    pool = sorted(abstracts(root), key=lambda ta: len(ta[1]))
    share_without = len(no_abstract) / len(real)
    n_with = round(n * (1 - share_without))
    if n_with > len(pool):
        raise SystemExit(
            f"--citations {n}: the pool holds {len(pool)} distinct abstracts, enough for "
            f"{int(len(pool) / (1 - share_without))} citations; a repeated text would be "
            "answered from the generation cache"
        )
    # Lengths drawn from the real file's; each takes the free pool abstract nearest to it.
    targets = sorted(rng.choice([x for x in lengths if x]) for _ in range(n_with))
    taken, chosen, j = set(), [], 0
    for want in targets:
        while j + 1 < len(pool) and len(pool[j + 1][1]) <= want:
            j += 1
        k = j
        while k in taken:
            k += 1
        if k >= len(pool):
            k = max(i for i in range(len(pool)) if i not in taken)
        taken.add(k)
        chosen.append(pool[k])
    articles = []
    pmid = 90_000_000
    for title, text in chosen:
        art = copy.deepcopy(rng.choice(with_abstract))
        pmid += 1
        art.find("MedlineCitation/PMID").text = str(pmid)
        art.find(".//Article/ArticleTitle").text = title
        abstract = art.find(".//Article/Abstract")
        for child in list(abstract):
            abstract.remove(child)
        etree.SubElement(abstract, "AbstractText").text = text
        articles.append(art)
    for _ in range(n - n_with):
        art = copy.deepcopy(rng.choice(no_abstract or with_abstract))
        pmid += 1
        art.find("MedlineCitation/PMID").text = str(pmid)
        articles.append(art)
    rng.shuffle(articles)
    root_el = etree.Element("PubmedArticleSet")
    root_el.extend(articles)
    if deletions:
        delete = etree.SubElement(root_el, "DeleteCitation")
        for k in range(deletions):
            etree.SubElement(delete, "PMID", Version="1").text = str(80_000_000 + k)
    data = etree.tostring(root_el, xml_declaration=True, encoding="utf-8")
    return gzip.compress(data), {"with_abstract": n_with, "without": n - n_with}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--citations", type=int, default=1000)
    parser.add_argument("--deletions", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, help="as bioner nightly (default: the reference)")
    parser.add_argument("--keep", type=Path, help="keep the day and its output here")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bioner-day-"))
    source, out = work / "updatefiles", work / "out"
    source.mkdir(parents=True, exist_ok=True)
    data, held = build_day(data_dir(), args.citations, args.deletions, args.seed)
    (source / "pubmed26n9001.xml.gz").write_bytes(data)
    print(
        f"day: {args.citations:,} citations ({held['with_abstract']:,} with an abstract), "
        f"{args.deletions} deletions, {len(data) / 1e6:.1f} MB gzip → {source}"
    )
    command = [BIONER, "nightly", str(source), "--out", str(out)]
    if args.model:
        command += ["--model", str(args.model)]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(
            f"bioner nightly failed ({done.returncode}): {done.stderr.strip()[-2000:]}"
        )
    summary = json.loads((out / "summary.json").read_text("utf-8"))
    print(f"bioner nightly: {wall:.1f} s in all (process start, Prefect, every stage)")
    print(f"{'stage':10s}{'in':>10s}{'out':>10s}{'seconds':>10s}{'share':>8s}")
    for s in summary["stages"]:
        share = 100 * s["wall_seconds"] / wall
        print(
            f"{s['stage']:10s}{s['in']:>10,}{s['out']:>10,}{s['wall_seconds']:>10.1f}{share:>7.1f}%"
        )
    passages = summary["passages"]
    per_citation = wall / args.citations
    day = per_citation * DAY
    print(
        f"{passages:,} passages ({passages / args.citations:.1f} per citation), "
        f"{summary['output_tokens']:,} output tokens; {args.citations / wall:.2f} citations/s"
    )
    print(
        f"projected: a day of {DAY:,} citations {day / 3600:.2f} h on this box (target 1 h: "
        f"{'met' if day <= 3600 else f'{day / 3600:.1f}x over'}); the baseline of "
        f"{BASELINE / 1e6:.0f}M citations {per_citation * BASELINE / 3600:,.0f} box-hours"
    )


if __name__ == "__main__":
    main()
