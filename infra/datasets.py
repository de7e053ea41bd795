"""The catalogue of benchmark splits under ``BIONER_DATA_DIR`` and how to read each one.

The folder is configuration (``BIONER_DATA_DIR``, default ``../shared/data`` next to the
repository), never copied into it. Reading goes through the pure readers of ``bioner.readers``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bioner.labels import DATASETS
from bioner.readers import FORMATS, read_brat
from bioner.records import AnnotatedDocument

_REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """The shared data folder: ``BIONER_DATA_DIR`` or ``../shared/data`` beside the repo."""
    return Path(os.environ.get("BIONER_DATA_DIR", _REPO.parent / "shared" / "data")).resolve()


@dataclass(frozen=True)
class Split:
    """One split of one benchmark in one source format."""

    name: str  # e.g. "ncbi/pubtator/test"
    dataset: str  # key of bioner.labels.DATASETS
    fmt: str  # key of bioner.readers.FORMATS, or "brat" for a folder of .txt/.ann pairs
    path: str  # relative to the data folder
    options: tuple[tuple[str, str], ...] = ()  # reader keyword options, e.g. data repairs

    def exists(self, root: Path | None = None) -> bool:
        return ((root or data_dir()) / self.path).exists()


def _splits() -> list[Split]:
    out = []
    for split, name in (("train", "train"), ("devel", "devel"), ("test", "test")):
        out.append(Split(f"ncbi/iob/{split}", "ncbi", "iob2", f"ncbi-disease/iob/{name}.tsv"))
        out.append(Split(f"bc5cdr/iob/{split}", "bc5cdr", "iob2", f"bc5cdr/iob/{name}.tsv"))
    for split, name in (("train", "train"), ("devel", "develop"), ("test", "test")):
        out.append(
            Split(
                f"ncbi/pubtator/{split}",
                "ncbi",
                "pubtator",
                f"ncbi-disease/pubtator/NCBI{name}set_corpus.txt",
            )
        )
    for split, name in (("train", "Training"), ("devel", "Development"), ("test", "Test")):
        base = f"bc5cdr/%s/CDR_{name}Set.%s"
        out.append(
            Split(
                f"bc5cdr/pubtator/{split}",
                "bc5cdr",
                "pubtator",
                base % ("pubtator", "PubTator.txt"),
            )
        )
        out.append(Split(f"bc5cdr/bioc/{split}", "bc5cdr", "bioc", base % ("bioc", "BioC.xml")))
    out += [
        Split("jnlpba/standoff/train", "jnlpba", "brat", "jnlpba/standoff/train"),
        Split("jnlpba/standoff/test", "jnlpba", "brat", "jnlpba/standoff/test"),
        Split("jnlpba/iob/devel", "jnlpba", "iob2", "jnlpba/iob/devel.tsv"),
        Split("jnlpba/iob/test", "jnlpba", "iob2", "jnlpba/iob/test.tsv"),
        Split("cmeee/v1/dev", "cmeee", "cmeee", "cmeee/v1/CMeEE_dev.json"),
        Split("cmeee/v2/dev", "cmeee", "cmeee", "cmeee/v2/CMeEE-V2_dev.json"),
        Split("genia/nested/dev", "genia", "genia", "genia-nested/dev.jsonlines"),
    ]
    # The BioNLP corpora come as tokens only (every punctuation mark split off); they are read
    # back as running text, as PubMed writes it ("TGF-beta RII", not "TGF - beta RII"), with
    # the same spans.
    for corpus in ("bionlp13cg", "bionlp11id"):
        for split in ("train", "devel", "test"):
            out.append(
                Split(
                    f"{corpus}/{split}",
                    corpus,
                    "iob2",
                    f"{corpus}/{split}.tsv",
                    (("join", "natural"),),
                )
            )
    for corpus, key in (("cMedQANER", "cmedqaner"), ("cEHRNER", "cehrner")):
        for split in ("train", "dev", "test"):
            # cMedQANER train line 367 has 15 mentions one character off: move each to its
            # nearest exact occurrence rather than lose the record.
            options = (("misaligned", "nearest"),) if key == "cmedqaner" else ()
            out.append(
                Split(
                    f"{key}/{split}",
                    key,
                    "chineseblue",
                    f"chineseblue/{corpus}/{split}.json",
                    options,
                )
            )
    return out


SPLITS: dict[str, Split] = {s.name: s for s in _splits()}


def load_split(split: Split | str, root: Path | None = None) -> list[AnnotatedDocument]:
    """Documents with gold spans of one split, labels mapped to the dataset's schema."""
    s = SPLITS[split] if isinstance(split, str) else split
    path = (root or data_dir()) / s.path
    spec = DATASETS[s.dataset]
    if s.fmt == "brat":
        docs = []
        for txt in sorted(path.glob("*.txt")):
            ann = txt.with_suffix(".ann")
            docs.extend(
                read_brat(
                    txt.read_text("utf-8"),
                    ann.read_text("utf-8") if ann.exists() else "",
                    txt.stem,
                    dataset=spec,
                    **dict(s.options),
                )
            )
        return docs
    fmt = FORMATS[s.fmt]
    source = path.read_bytes() if fmt.layout == "bytes" else path.read_text("utf-8")
    return fmt.read(source, dataset=spec, **dict(s.options))
