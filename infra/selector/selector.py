"""A trained selector: encoder, FAISS index of labelled embeddings, threshold; its folder.

The folder (an artifact, versioned by a digest of its content)::

    selector.json   format, version digest, settings (k, method, threshold, window ...),
                    library versions, training and dev statistics
    encoder/        the fine-tuned encoder (transformers format) and its tokenizer
    index.faiss     FAISS index of the bank's embeddings (CPU form)
    bank.parquet    one row per indexed vector: label, positive, kind, mention

It is written to a temporary folder beside the target and renamed into place, so a reader
never finds half a selector.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bioner.selector import Candidate, Reason, Sample, knn_scores
from infra.selector.encoder import EncoderError, SpanEncoder
from infra.selector.index import VectorIndex, build_index, load_index

FORMAT = "bioner-selector/1"
CONFIG_FILE = "selector.json"
ENCODER_DIR = "encoder"
INDEX_FILE = "index.faiss"
BANK_FILE = "bank.parquet"

BANK_SCHEMA = pa.schema(
    [
        pa.field("label", pa.string(), nullable=False),
        pa.field("positive", pa.bool_(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("mention", pa.string(), nullable=False),
    ]
)


class SelectorError(ValueError):
    """A selector folder that is missing or unusable; the message names it."""


@dataclass(frozen=True)
class ScoringSettings:
    """How neighbours become a score and a decision."""

    k: int = 10
    method: str = "vote"
    temperature: float = 0.1
    threshold: float = 0.5
    window: int = 64
    max_length: int = 128

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.method not in ("vote", "margin"):
            raise ValueError(f"method must be vote or margin, got {self.method!r}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")


@dataclass
class Bank:
    """What each indexed vector is: its label, truth, sample kind and mention text."""

    labels: np.ndarray
    positive: np.ndarray
    kinds: np.ndarray
    mentions: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> Bank:
        return cls(
            np.array([s.candidate.label for s in samples], dtype=object),
            np.array([s.positive for s in samples], dtype=bool),
            np.array([str(s.kind) for s in samples], dtype=object),
            [s.candidate.mention for s in samples],
        )

    def to_table(self) -> pa.Table:
        return pa.Table.from_pydict(
            {
                "label": list(self.labels),
                "positive": list(self.positive),
                "kind": list(self.kinds),
                "mention": self.mentions,
            },
            schema=BANK_SCHEMA,
        )

    @classmethod
    def from_table(cls, table: pa.Table) -> Bank:
        return cls(
            np.array(table["label"].to_pylist(), dtype=object),
            np.array(table["positive"].to_pylist(), dtype=bool),
            np.array(table["kind"].to_pylist(), dtype=object),
            table["mention"].to_pylist(),
        )


@dataclass
class Selector:
    """Scores candidates by their neighbours among labelled embeddings and decides."""

    encoder: SpanEncoder
    index: VectorIndex
    bank: Bank
    settings: ScoringSettings
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> tuple[str, ...]:
        """The types the selector knows (those of its bank's gold spans)."""
        return tuple(sorted(set(self.bank.labels[self.bank.positive])))

    def score_vectors(self, vectors: np.ndarray, labels: Sequence[str]) -> np.ndarray:
        """Scores of already-encoded candidates."""
        if len(labels) == 0:
            return np.zeros(0, dtype=np.float32)
        sims, ids = self.index.search(vectors, self.settings.k)
        return knn_scores(
            labels,
            ids,
            sims,
            self.bank.labels,
            self.bank.positive,
            method=self.settings.method,
            temperature=self.settings.temperature,
        )

    def score(
        self,
        candidates: Sequence[Candidate],
        batch_size: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """One score per candidate (encoded in batches)."""
        vectors = self.encoder.encode(candidates, batch_size, on_batch)
        return self.score_vectors(vectors, [c.label for c in candidates])

    def decide(self, scores: np.ndarray, labels: Sequence[str]) -> list[Reason]:
        """Accepted or why not, for scored candidates of ``labels``."""
        known = set(self.labels)
        return [
            Reason.UNKNOWN_LABEL
            if label not in known
            else Reason.ACCEPTED
            if s >= self.settings.threshold
            else Reason.BELOW_THRESHOLD
            for s, label in zip(scores, labels, strict=True)
        ]

    # ------------------------------------------------------------------ the folder

    def save(self, folder: Path) -> str:
        """Write the selector folder (see the module docstring); returns its version digest.

        Refuses a folder that exists and is not empty.
        """
        folder = Path(folder)
        if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
            raise FileExistsError(f"{folder}: exists and is not empty; choose a new folder")
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
        try:
            self.encoder.save(tmp / ENCODER_DIR)
            self.index.save(tmp / INDEX_FILE)
            pq.write_table(self.bank.to_table(), tmp / BANK_FILE)
            version = content_digest(tmp)
            config = {
                "format": FORMAT,
                "version": version,
                "scoring": asdict(self.settings),
                "index": self.index.settings() | {"size": self.index.size},
                "labels": list(self.labels),
                "embedding_dim": self.encoder.dim,
                **self.info,
                "libraries": library_versions(),
            }
            (tmp / CONFIG_FILE).write_text(
                json.dumps(config, indent=2, ensure_ascii=False) + "\n", "utf-8"
            )
            if folder.exists():
                folder.rmdir()
            os.replace(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.info = {k: v for k, v in config.items() if k not in ("scoring",)}
        return version

    @classmethod
    def load(cls, folder: str | Path, *, device: str = "cpu", gpu: str = "auto") -> Selector:
        """The selector saved in ``folder``; a :class:`SelectorError` naming what is wrong."""
        folder = Path(folder)
        if not folder.exists():
            raise SelectorError(f"{folder}: no such selector folder")
        config_path = folder / CONFIG_FILE
        if not config_path.is_file():
            raise SelectorError(
                f"{folder}: not a selector folder (no {CONFIG_FILE}; "
                "make one with bioner train-selector)"
            )
        try:
            config = json.loads(config_path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SelectorError(f"{config_path}: unreadable ({e})") from None
        if config.get("format") != FORMAT:
            raise SelectorError(
                f"{config_path}: format {config.get('format')!r}, this bioner reads {FORMAT}"
            )
        for name in (INDEX_FILE, BANK_FILE, ENCODER_DIR):
            if not (folder / name).exists():
                raise SelectorError(f"{folder}: incomplete selector folder, {name} is missing")
        try:
            settings = ScoringSettings(**config["scoring"])
            bank = Bank.from_table(pq.read_table(folder / BANK_FILE))
            index = load_index(folder / INDEX_FILE, config.get("index", {}), gpu=gpu)
            encoder = SpanEncoder(
                folder / ENCODER_DIR,
                device=device,
                max_length=settings.max_length,
                window=settings.window,
            )
        except (KeyError, TypeError, EncoderError, RuntimeError, pa.ArrowException) as e:
            raise SelectorError(f"{folder}: unusable selector ({e})") from None
        if index.size != len(bank.labels):
            raise SelectorError(
                f"{folder}: index holds {index.size} vectors but bank.parquet {len(bank.labels)}"
            )
        info = {k: v for k, v in config.items() if k != "scoring"}
        return cls(encoder, index, bank, settings, info)


def new_selector(
    encoder: SpanEncoder,
    vectors: np.ndarray,
    samples: Sequence[Sample],
    settings: ScoringSettings,
    *,
    index_kind: str = "auto",
    gpu: str = "auto",
    info: dict[str, Any] | None = None,
) -> Selector:
    """A selector whose bank is ``samples`` embedded as ``vectors``."""
    index = build_index(vectors, index_kind, gpu=gpu)
    return Selector(encoder, index, Bank.of(samples), settings, dict(info or {}))


def content_digest(folder: Path) -> str:
    """A digest of every file under ``folder`` (paths and bytes): the artifact's version."""
    h = hashlib.blake2b(digest_size=12)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(folder)).encode() + b"\0")
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
    return h.hexdigest()


def library_versions() -> dict[str, str]:
    """Versions of what made the artifact (bioner, torch, transformers, faiss, numpy)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("bioner", "torch", "transformers", "tokenizers", "faiss-cpu", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
