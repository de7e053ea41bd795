"""LLM backends behind :class:`bioner.generation.Engine`; heavy imports happen on first use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bioner.generation import Engine

BACKENDS = ("transformers",)


def load_engine(
    model_dir: str | Path, *, backend: str = "transformers", device: str = "cpu", **options: Any
) -> Engine:
    """Load the model in ``model_dir`` with ``backend`` (``transformers``; vLLM comes later)."""
    if backend == "transformers":
        from infra.llm.transformers_engine import TransformersEngine

        return TransformersEngine(model_dir, device, **options)
    raise ValueError(f"unknown LLM backend {backend!r}; known: {', '.join(BACKENDS)}")
