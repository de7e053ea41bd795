"""decode(encode(gold)) == gold for every annotation of every benchmark split, both formats.

Whole documents are encoded (titles and abstracts with their line breaks, nested CMeEE and
GENIA spans, source brackets), which is harder than the sentence-sized passages the tagger sees.
"""

from __future__ import annotations

import pytest

from bioner.codec import TAG_FORMATS
from bioner.labels import DATASETS
from infra.datasets import SPLITS, load_split

pytestmark = pytest.mark.data


@pytest.mark.parametrize("fmt", sorted(TAG_FORMATS))
@pytest.mark.parametrize("split", sorted(SPLITS))
def test_every_gold_annotation_round_trips(shared_data, split: str, fmt: str) -> None:
    s = SPLITS[split]
    if not s.exists(shared_data):
        pytest.skip(f"{s.path} not in {shared_data}")
    schema = DATASETS[s.dataset].schema
    codec = TAG_FORMATS[fmt]
    docs = load_split(s, shared_data)
    assert docs, f"{split}: no documents read"
    failures = []
    for doc in docs:
        got, issues = codec.decode(codec.encode(doc.text, doc.spans, schema), doc.text, schema)
        lossy = [str(i) for i in issues if i.lossy]
        if got != list(doc.spans) or lossy:
            failures.append((doc.id, sorted(set(doc.spans) ^ set(got))[:3], lossy[:3]))
    assert not failures, f"{len(failures)}/{len(docs)} documents differ, e.g. {failures[:3]}"
