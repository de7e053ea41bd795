"""PubMed ingest throughput and peak memory: bioner against pubmed-parser, same XML, same run.

Input: the real baseline sample ``pubmed/pubmed26n1334.subset.xml.gz`` (30 citations) enlarged
by repeating its records with fresh PMIDs into gzip files of 10,000 and 100,000 citations in
PubMed's own file structure.

Sides, each in a fresh subprocess per file (peak RSS is the largest ``ru_maxrss`` of that
process and of its worker processes):

- ``pubmed-parser``: ``pubmed_parser.parse_medline_xml(path)`` at its documented defaults
  (``year_info_only=True``, no author or reference lists), the iterator consumed to the end;
  it yields one dict per citation and keeps nothing else.
- ``bioner parse``: ``bioner.ingest.read_pubmed`` over the same gzip stream, consumed to the end
  (richer records: sections with offsets, MeSH, keywords, authors, dates, DOI ...).
- ``bioner ingest``: the whole ingest, ``infra.ingest_store.ingest_paths``: parse, write the
  shard segments, compact the shards (versions, deletions), write documents and passages
  tables (16 shards), with the reconciliation; once in one process, once with the shards
  compacted in as many processes as there are cores (the parse of one file is sequential).

Prints documents/s and peak RSS per side and file, the throughput ratios against
pubmed-parser, and each side's peak memory at 100k over 10k (1.0 = does not grow).

    .venv/bin/pip install -e .[bench]      # pubmed-parser, only for this benchmark
    .venv/bin/python bench/ingest.py [--sizes 10000 100000] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lxml import etree

DATA = Path(os.environ.get("BIONER_DATA_DIR", Path(__file__).resolve().parents[2] / "shared/data"))
SAMPLE = DATA / "pubmed" / "pubmed26n1334.subset.xml.gz"
PMID_BASE = 90_000_000
CORES = os.cpu_count() or 1

_PEER = """
import pubmed_parser, resource, sys, time
t = time.perf_counter(); n = 0
for _ in pubmed_parser.parse_medline_xml(sys.argv[1]):
    n += 1
print(n, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
_PARSE = """
import gzip, resource, sys, time
from bioner.ingest import read_pubmed
from bioner.records import Document
t = time.perf_counter(); n = 0
with gzip.open(sys.argv[1], "rb") as f:
    for item in read_pubmed(f, sys.argv[1]):
        n += isinstance(item, Document)
print(n, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
_INGEST = """
import resource, sys, time
from infra.ingest_store import ingest_paths
t = time.perf_counter()
summary = ingest_paths([sys.argv[1]], sys.argv[2], n_shards=16, workers=int(sys.argv[3]))
n = summary["totals"]["documents"]
rss = max(resource.getrusage(w).ru_maxrss for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(n, time.perf_counter() - t, rss)
"""


def enlarge(n: int, out: Path) -> Path:
    """A PubMed file of ``n`` citations: the sample's records repeated with fresh PMIDs."""
    with gzip.open(SAMPLE, "rb") as f:
        root = etree.parse(f, etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    templates = []
    for article in root.iter("PubmedArticle"):
        pmid = article.find("MedlineCitation/PMID")
        assert pmid is not None
        pmid.text = "@@PMID@@"
        templates.append(etree.tostring(article, encoding="unicode"))
    path = out / f"pubmed-enlarged-{n}.xml.gz"
    with gzip.open(path, "wt", encoding="utf-8", compresslevel=1) as w:
        w.write('<?xml version="1.0" encoding="utf-8"?>\n<PubmedArticleSet>\n')
        for i in range(n):
            w.write(templates[i % len(templates)].replace("@@PMID@@", str(PMID_BASE + i)))
            w.write("\n")
        w.write("</PubmedArticleSet>\n")
    return path


def measure(code: str, *args: str) -> tuple[int, float, int]:
    """(documents, seconds, peak RSS in KiB) of ``code`` run in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark side failed:\n{done.stderr}")
    n, seconds, rss = done.stdout.split()[-3:]
    return int(n), float(seconds), int(rss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()
    if not SAMPLE.is_file():
        raise SystemExit(f"missing {SAMPLE}: set BIONER_DATA_DIR")
    try:
        import pubmed_parser  # noqa: F401
    except ImportError:
        raise SystemExit("pubmed-parser is not installed: pip install -e .[bench]") from None
    work = args.workdir or Path(tempfile.mkdtemp(prefix="bioner-bench-ingest-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[int, tuple[int, float, int]]] = {}
    for n in args.sizes:
        t0 = time.perf_counter()
        path = enlarge(n, work)
        print(
            f"{path.name}: {n:,} citations, {path.stat().st_size / 1e6:.1f} MB gzip "
            f"(made in {time.perf_counter() - t0:.1f} s)",
            flush=True,
        )
        sides = {
            "pubmed-parser": (_PEER, str(path)),
            "bioner parse": (_PARSE, str(path)),
            "bioner ingest": (_INGEST, str(path), str(work / f"out-{n}"), "1"),
            f"bioner ingest {CORES}p": (_INGEST, str(path), str(work / f"out-{n}-p"), str(CORES)),
        }
        for side, (code, *argv) in sides.items():
            docs, seconds, rss = measure(code, *argv)
            if docs != n:
                raise SystemExit(f"{side} read {docs} documents of {n}")
            results.setdefault(side, {})[n] = (docs, seconds, rss)
            print(
                f"  {side:<14} {docs / seconds:>9,.0f} docs/s  peak RSS {rss / 1024:>7.0f} MiB",
                flush=True,
            )
    print()
    small, large = min(args.sizes), max(args.sizes)
    peer = results["pubmed-parser"]
    for side in [s for s in results if s != "pubmed-parser"]:
        for n in args.sizes:
            ratio = (n / results[side][n][1]) / (n / peer[n][1])
            print(f"{side} / pubmed-parser throughput at {n:,}: {ratio:.2f}x")
    for side, by_n in results.items():
        growth = by_n[large][2] / by_n[small][2]
        print(f"{side}: peak memory {large:,} / {small:,} citations = {growth:.2f}")
    (work / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
