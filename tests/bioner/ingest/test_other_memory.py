"""BioC and PubTator are read as streams: 50,000 documents need no more memory than 5,000 do."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bioner.ingest import read_bioc_documents, read_pubtator_documents

REPO = Path(__file__).resolve().parents[3]
MIB = 1024 * 1024


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


class Generated:
    """A file of ``n`` documents made on the fly, so the file itself is never in memory."""

    def __init__(self, fmt: str, n: int) -> None:
        self._chunks = {"bioc": _bioc, "pubtator": _pubtator}[fmt](n)
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
    reader = read_bioc_documents if fmt == "bioc" else read_pubtator_documents
    return sum(1 for _ in reader(Generated(fmt, n)))  # type: ignore[arg-type]


_PEAK_RSS = """
import resource, sys
sys.path.insert(0, sys.argv[3])
from test_other_memory import count
n = int(sys.argv[2])
assert count(sys.argv[1], n) == n
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak_rss_kib(fmt: str, n: int) -> int:
    """Peak resident memory of a fresh interpreter reading ``n`` generated documents."""
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


@pytest.mark.parametrize("fmt", ["bioc", "pubtator"])
def test_peak_resident_memory_does_not_grow_with_the_file(fmt):
    # libxml2's tree lives outside Python's allocator: only the process peak RSS sees it.
    # Measured: +0 MiB for BioC, +0.04 MiB for PubTator (whole, 10x the BC5CDR training
    # set's BioC took 3x the memory of 1x in the ingest).
    small, large = peak_rss_kib(fmt, 5_000), peak_rss_kib(fmt, 50_000)
    assert (large - small) * 1024 < 3 * MIB, (small, large)
