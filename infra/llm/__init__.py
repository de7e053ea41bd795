"""LLM backends behind :class:`bioner.generation.Engine`; heavy imports happen on first use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bioner.generation import Engine

BACKENDS = ("transformers", "vllm")


def load_engine(
    model_dir: str | Path, *, backend: str = "transformers", device: str = "cpu", **options: Any
) -> Engine:
    """Load the model in ``model_dir`` with ``backend``.

    ``transformers`` runs on ``device`` (``cpu`` or ``cuda``); ``vllm`` (GPU workers) uses the
    GPUs the process can see, so ``device`` is ignored, and takes the options of
    :class:`infra.llm.vllm_engine.VLLMEngine` (``tensor_parallel_size``, ``lora_dir``,
    ``speculative_ngram_tokens``, ``constrained``, ...).
    """
    if backend == "transformers":
        from infra.llm.transformers_engine import TransformersEngine

        return TransformersEngine(model_dir, device, **options)
    if backend == "vllm":
        from infra.llm.vllm_engine import VLLMEngine

        return VLLMEngine(model_dir, **options)
    raise ValueError(f"unknown LLM backend {backend!r}; known: {', '.join(BACKENDS)}")
