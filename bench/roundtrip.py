"""Spans and documents round-tripped through both tagger formats, per benchmark split.

For every split of the data catalogue (``infra/datasets.py``), each document's gold spans are
encoded (symbolic, then BioSelectTune JSON) and decoded back against the document text; a
document counts as round-tripped when the decoded spans equal the gold exactly and no lossy
issue was reported. Peer: the identity (100% is the only acceptable figure); the time column
is encode + decode per document, for scale.

    .venv/bin/python bench/roundtrip.py
"""

from __future__ import annotations

import time

from bioner.codec import TAG_FORMATS
from bioner.labels import DATASETS
from infra.datasets import SPLITS, data_dir, load_split


def main() -> None:
    root = data_dir()
    print(f"data: {root}")
    header = f"{'split':<24}{'format':<15}{'docs':>7}{'ok':>8}{'spans':>9}{'ok':>9}{'docs/s':>9}"
    print(header)
    print("-" * len(header))
    for name, split in SPLITS.items():
        if not split.exists(root):
            print(f"{name:<24}absent")
            continue
        docs = load_split(split, root)
        schema = DATASETS[split.dataset].schema
        for fmt_name, fmt in TAG_FORMATS.items():
            ok_docs = ok_spans = 0
            t0 = time.perf_counter()
            for d in docs:
                got, issues = fmt.decode(fmt.encode(d.text, d.spans, schema), d.text, schema)
                same = set(got) & set(d.spans)
                ok_spans += len(same)
                ok_docs += got == list(d.spans) and not any(i.lossy for i in issues)
            rate = len(docs) / (time.perf_counter() - t0)
            n_spans = sum(len(d.spans) for d in docs)
            print(
                f"{name:<24}{fmt_name:<15}{len(docs):>7}{100 * ok_docs / len(docs):>7.2f}%"
                f"{n_spans:>9}{100 * ok_spans / max(n_spans, 1):>8.2f}%{rate:>9,.0f}"
            )


if __name__ == "__main__":
    main()
