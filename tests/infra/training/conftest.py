"""A small data folder of real-looking examples for the training tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from bioner.labels import DATASETS
from bioner.records import AnnotatedDocument, Document, Span
from bioner.training.data import BuildOptions, examples_of
from infra.training.data import write_examples

DOCS = [
    AnnotatedDocument(
        Document("d1", "Famotidine-associated delirium."),
        (Span(0, 10, "Chemical"), Span(22, 30, "Disease")),
    ),
    AnnotatedDocument(Document("d2", "Naloxone reverses it."), (Span(0, 8, "Chemical"),)),
    AnnotatedDocument(Document("d3", "No mention here."), ()),
    AnnotatedDocument(Document("d4", "Cancer of the lung."), (Span(0, 6, "Disease"),)),
]


@pytest.fixture(scope="session")
def examples():
    return list(examples_of(DOCS, DATASETS["bc5cdr"], "toy/train", BuildOptions()))


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory, examples) -> Path:
    d = tmp_path_factory.mktemp("train-data")
    write_examples(examples, d / "train.jsonl")
    return d


@pytest.fixture(scope="session")
def documents() -> list[AnnotatedDocument]:
    return DOCS
