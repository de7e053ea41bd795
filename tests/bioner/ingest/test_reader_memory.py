"""The streaming readers run in constant memory: ten times the records need no more memory
(PubMed XML, BioC, PubTator; CNKI has its own test in ``test_cnki.py``)."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from bioner.ingest import read_bioc_documents, read_pubmed, read_pubtator_documents

REPO = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024


def citation(pmid: int) -> bytes:
    """One realistic-sized PubmedArticle (about 2 kB), different for every PMID."""
    authors = "".join(
        f"<Author><LastName>Author{pmid % 97}x{i}</LastName><ForeName>F</ForeName>"
        f"<AffiliationInfo><Affiliation>Department {i}, University {pmid}.</Affiliation>"
        "</AffiliationInfo></Author>"
        for i in range(6)
    )
    sentences = " ".join(f"Sentence {j} of record {pmid} about <i>BRCA{j}</i>." for j in range(20))
    return (
        f'<PubmedArticle><MedlineCitation><PMID Version="1">{pmid}</PMID><Article>'
        f"<Journal><Title>J</Title><JournalIssue><PubDate><Year>2024</Year><Month>May</Month>"
        f"</PubDate></JournalIssue></Journal><ArticleTitle>Title {pmid}.</ArticleTitle>"
        f'<Abstract><AbstractText Label="RESULTS">{sentences}</AbstractText></Abstract>'
        f"<AuthorList>{authors}</AuthorList><Language>eng</Language></Article>"
        f"<KeywordList><Keyword>k{pmid}</Keyword></KeywordList></MedlineCitation>"
        f'<PubmedData><ArticleIdList><ArticleId IdType="doi">10.1/{pmid}</ArticleId>'
        f"</ArticleIdList></PubmedData></PubmedArticle>\n"
    ).encode()


def _pubmed(n: int) -> Iterator[bytes]:
    yield b'<?xml version="1.0" encoding="UTF-8"?>\n<PubmedArticleSet>\n'
    for pmid in range(1, n + 1):
        yield citation(pmid)
    yield b"</PubmedArticleSet>\n"


def _abstract(n: int) -> str:
    return " ".join(f"Sentence {j} of document {n} about BRCA{j} in cancer." for j in range(15))


def _bioc(n: int) -> Iterator[bytes]:
    yield b'<?xml version="1.0" encoding="UTF-8"?>\n<collection><source>t</source><date/><key/>\n'
    for i in range(1, n + 1):
        title = f"Title {i}."
        yield (
            f'<document><id>{i}</id><passage><infon key="type">title</infon><offset>0</offset>'
            f'<text>{title}</text><annotation id="a{i}"><infon key="type">Gene</infon>'
            f'<location offset="0" length="5"/><text>Title</text></annotation></passage>'
            f'<passage><infon key="type">abstract</infon><offset>{len(title) + 1}</offset>'
            f"<text>{_abstract(i)}</text></passage></document>\n"
        ).encode()
    yield b"</collection>\n"


def _pubtator(n: int) -> Iterator[bytes]:
    for i in range(1, n + 1):
        yield f"{i}|t|Title {i}.\n{i}|a|{_abstract(i)}\n{i}\t0\t5\tTitle\tGene\t-1\n\n".encode()


_FORMATS = {
    "pubmed": (_pubmed, read_pubmed),
    "bioc": (_bioc, read_bioc_documents),
    "pubtator": (_pubtator, read_pubtator_documents),
}


class Generated:
    """A file of ``n`` records in ``fmt`` made on the fly, so the file is never in memory."""

    def __init__(self, fmt: str, n: int) -> None:
        self._chunks = _FORMATS[fmt][0](n)
        self._buffer = b""

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0:
            size = len(self._buffer)
        out, self._buffer = self._buffer[:size], self._buffer[size:]
        return out


def count(fmt: str, n: int) -> int:
    """The records ``fmt``'s reader reads from ``n`` generated ones."""
    return sum(1 for _ in _FORMATS[fmt][1](Generated(fmt, n)))  # type: ignore[operator]


_PEAK_RSS = """
import resource, sys
sys.path.insert(0, sys.argv[3])
from test_reader_memory import count
n = int(sys.argv[2])
assert count(sys.argv[1], n) == n
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_kib(fmt: str, n: int) -> int:
    """Peak resident memory of a fresh interpreter reading ``n`` generated ``fmt`` records."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS, fmt, str(n), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
        env=env,
    )
    return int(done.stdout.split()[-1])


def test_peak_resident_memory_does_not_grow_with_the_file():
    # libxml2's tree lives outside Python's allocator: only the process peak RSS sees it.
    # Measured: keeping the records adds ~380 MiB for 20k; clearing them but keeping their
    # empty shells under the root adds ~4.5 MiB; freeing both adds nothing (+-0.1 MiB).
    small, large = peak_rss_kib("pubmed", 2_000), peak_rss_kib("pubmed", 20_000)
    assert (large - small) * 1024 < 2 * MIB, (small, large)


@pytest.mark.parametrize("fmt", ["bioc", "pubtator"])
def test_bioc_and_pubtator_peak_memory_does_not_grow_with_the_file(fmt):
    # Measured: +0 MiB for BioC, +0.04 MiB for PubTator (whole, 10x the BC5CDR training
    # set's BioC took 3x the memory of 1x in the ingest).
    small, large = peak_rss_kib(fmt, 5_000), peak_rss_kib(fmt, 50_000)
    assert (large - small) * 1024 < 3 * MIB, (small, large)


@pytest.mark.slow  # tracemalloc slows every allocation: ~15 s
def test_python_allocations_do_not_grow_with_the_file():
    peaks = []
    for n in (2_000, 20_000):
        tracemalloc.start()
        try:
            assert count("pubmed", n) == n
            peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    small, large = peaks
    assert large < small + 1 * MIB, (small, large)
