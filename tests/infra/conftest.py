"""A tiny untrained model, built once per session (a fraction of a second after imports)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from infra.llm.tiny import build_tiny_model

    corpus = ["Famotidine-associated delirium.", "患者有高血压病史。", "Disease: [cancer]"]
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny", corpus, seed=0)


@pytest.fixture(scope="session")
def engine(tiny_model):
    from infra.llm.transformers_engine import TransformersEngine

    return TransformersEngine(tiny_model, batch_tokens=4096)
