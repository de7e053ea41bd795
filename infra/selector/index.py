"""The FAISS index of labelled embeddings: exact inner product by default, IVF or HNSW for
large banks, on a GPU when one is present and FAISS was built for it.

Embeddings are L2-normalised, so inner product is cosine similarity. The index is saved as
FAISS's own file (always the CPU form); search parameters (``nprobe``, ``efSearch``) are kept
with it by the caller and set again on load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:
    import faiss
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "the selector's index needs faiss: install the selector extra: "
        "pip install -e .[selector] (faiss-cpu; a GPU build of faiss works too)"
    ) from e

KINDS = ("auto", "flat", "ivf", "hnsw")
GPU_CHOICES = ("auto", "yes", "no")
#: Above this many vectors ``auto`` builds an HNSW graph instead of the exact flat index.
AUTO_HNSW_ABOVE = 200_000


def gpus_available() -> int:
    """GPUs FAISS can use: 0 for a CPU-only build or a machine without one."""
    get = getattr(faiss, "get_num_gpus", None)
    try:
        return int(get()) if get is not None else 0
    except RuntimeError:  # a GPU build on a machine without a driver
        return 0


@dataclass
class VectorIndex:
    """A FAISS index with the parameters needed to search it as it was built."""

    index: Any
    kind: str
    nprobe: int = 0
    ef_search: int = 0
    on_gpu: bool = False

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(similarities, ids)``, each ``(n, min(k, size))``; ids -1 where fewer were found."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        k = max(1, min(k, self.size))
        sims, ids = self.index.search(q, k)
        return sims, ids

    def save(self, path: Path) -> None:
        """FAISS's file of the CPU form of the index."""
        cpu = faiss.index_gpu_to_cpu(self.index) if self.on_gpu else self.index
        faiss.write_index(cpu, str(path))

    def settings(self) -> dict[str, Any]:
        """What :func:`load_index` needs besides the file."""
        return {"kind": self.kind, "nprobe": self.nprobe, "ef_search": self.ef_search}


def _to_gpu(index: Any, kind: str, gpu: str) -> tuple[Any, bool]:
    if gpu not in GPU_CHOICES:
        raise ValueError(f"gpu must be one of {', '.join(GPU_CHOICES)}, got {gpu!r}")
    if gpu == "no":
        return index, False
    n = gpus_available()
    if gpu == "yes" and n == 0:
        raise ValueError("a GPU index was asked for, but FAISS sees no GPU (a faiss-cpu build?)")
    if n == 0 or kind == "hnsw":  # FAISS has no GPU HNSW; the CPU graph is fast enough
        if gpu == "yes" and kind == "hnsw":
            raise ValueError("FAISS has no GPU HNSW index: use --index flat or ivf on a GPU")
        return index, False
    return faiss.index_cpu_to_all_gpus(index), True


def build_index(
    vectors: np.ndarray,
    kind: str = "auto",
    *,
    gpu: str = "auto",
    nlist: int | None = None,
    hnsw_m: int = 32,
    seed: int = 0,
) -> VectorIndex:
    """An inner-product index over ``vectors`` (``(n, d)`` float32, normalised).

    ``auto`` is exact (``flat``) up to :data:`AUTO_HNSW_ABOVE` vectors, HNSW above. ``ivf``
    clusters into ``nlist`` lists (default about 4·√n) and probes an eighth of them.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; known: {', '.join(KINDS)}")
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"an index needs a non-empty (n, d) array, got shape {x.shape}")
    n, d = x.shape
    if kind == "auto":
        kind = "hnsw" if n > AUTO_HNSW_ABOVE else "flat"
    nprobe = ef_search = 0
    if kind == "flat":
        index = faiss.IndexFlatIP(d)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        ef_search = 64
        index.hnsw.efSearch = ef_search
    else:
        lists = nlist or max(1, min(int(4 * math.sqrt(n)), n // 39 or 1))
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, lists, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        index.train(x)
        nprobe = max(1, lists // 8)
        index.nprobe = nprobe
    index.add(x)
    index, on_gpu = _to_gpu(index, kind, gpu)
    if on_gpu and nprobe:
        faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", nprobe)
    return VectorIndex(index, kind, nprobe, ef_search, on_gpu)


def load_index(path: Path, settings: dict[str, Any], *, gpu: str = "auto") -> VectorIndex:
    """The index saved at ``path`` with its search ``settings``, on a GPU if asked/present."""
    index = faiss.read_index(str(path))
    kind = str(settings.get("kind", "flat"))
    nprobe, ef_search = int(settings.get("nprobe", 0)), int(settings.get("ef_search", 0))
    if nprobe:
        faiss.extract_index_ivf(index).nprobe = nprobe
    if ef_search:
        index.hnsw.efSearch = ef_search
    index, on_gpu = _to_gpu(index, kind, gpu)
    if on_gpu and nprobe:
        faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", nprobe)
    return VectorIndex(index, kind, nprobe, ef_search, on_gpu)
