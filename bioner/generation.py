"""The LLM behind a small interface: parameters, results, and the engine protocol.

Backends (transformers on CPU, vLLM on GPU) live in ``infra.llm`` and implement :class:`Engine`;
stages only see this module, so they run unchanged on either.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from bioner.constraint import SymbolicTarget

FinishReason = Literal["stop", "length"]
FINISH_REASONS: tuple[FinishReason, ...] = ("stop", "length")


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """How to sample one answer; ``temperature == 0`` is greedy (the default, reproducible)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.max_new_tokens, int) or self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be an int >= 1, got {self.max_new_tokens!r}")
        if not math.isfinite(self.temperature) or self.temperature < 0:
            raise ValueError(f"temperature must be finite and >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.seed is not None and self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def with_max_new_tokens(self, max_new_tokens: int) -> GenerationParams:
        """The same sampling settings with another token limit (per-prompt limits)."""
        return dataclasses.replace(self, max_new_tokens=max_new_tokens)


@dataclass(frozen=True, slots=True)
class Generation:
    """One answer: its text (stop token excluded), token counts, and why it ended."""

    text: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: FinishReason

    def __post_init__(self) -> None:
        if self.finish_reason not in FINISH_REASONS:
            raise ValueError(f"finish_reason must be one of {FINISH_REASONS}")
        if self.prompt_tokens < 0 or self.output_tokens < 0:
            raise ValueError("token counts must be >= 0")


@runtime_checkable
class Engine(Protocol):
    """A loaded model that answers batches of prompts; one per worker process."""

    #: The model folder's name and a digest of its weights (and of a LoRA adapter, if any).
    model_id: str
    #: What else changes the output for a given prompt (backend, constraint, dtype ...): with
    #: ``model_id``, the prompt version and the parameters, the key of the generation cache.
    settings: dict[str, str]
    #: The prompt the model answers (:data:`bioner.prompts.PROMPT_VERSIONS`): callers build
    #: every prompt with it and record it; the instruction prompt unless the model says another.
    prompt_version: str

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text as the model's tokenizer splits it (no special tokens)."""
        ...

    def generate(
        self,
        prompts: Sequence[str],
        params: GenerationParams | Sequence[GenerationParams],
        targets: Sequence[SymbolicTarget | None] | None = None,
    ) -> list[Generation]:
        """One generation per prompt, in input order; ``params`` is shared or one per prompt.

        ``targets`` (one per prompt, or None) restricts each answer to the valid symbolic
        answers for its passage (copy-constrained decoding) where the engine was created with
        the constraint on; a None entry leaves that prompt free.
        """
        ...


def max_new_tokens_for(
    passage_tokens: int, n_types: int, *, header_tokens: int = 4, cap: int | None = None
) -> int:
    """Token limit for a symbolic answer: at most one line per type, each copying the passage.

    Derived from the passage so a runaway answer stops soon after the longest valid one, while a
    valid answer is never cut: brackets can re-split words, hence half the passage again.
    """
    if passage_tokens < 0 or n_types < 1 or header_tokens < 0:
        raise ValueError("passage_tokens and header_tokens must be >= 0, n_types >= 1")
    per_line = header_tokens + 2 + passage_tokens + (passage_tokens + 1) // 2 + 1
    limit = n_types * per_line + 4  # + "None" / end of text
    return max(1, min(limit, cap)) if cap is not None else limit
