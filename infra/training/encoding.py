"""Token ids of training examples, built exactly as the engine builds prompts at inference.

The prompt is encoded as :meth:`infra.llm.transformers_engine.TransformersEngine.encode_prompt`
does: the tokenizer's chat template with ``add_generation_prompt=True`` when it has one (then
no extra special tokens), otherwise the tokenizer's own special tokens (BOS) plus the prompt.
The response is encoded on its own, without special tokens, and followed by EOS, so the model
learns to produce, after exactly the prompt tokens it will see, the response and then stop.
Labels are the response tokens; every prompt position is ``-100`` (no loss).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

IGNORE_INDEX = -100


def encode_prompt(tokenizer: Any, prompt: str) -> list[int]:
    """Prompt token ids as the engine sees them (chat template if any, else BOS + prompt)."""
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    return list(tokenizer(prompt)["input_ids"])


def encode_response(tokenizer: Any, response: str) -> list[int]:
    """Response token ids followed by EOS (ValueError if the tokenizer has no EOS)."""
    if tokenizer.eos_token_id is None:
        raise ValueError("the tokenizer defines no end-of-sequence token; a response must end")
    return [*tokenizer(response, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]


@dataclass(frozen=True, slots=True)
class AllowedSets:
    """Per response token, the token ids the loss is normalised over (training under the copy
    constraint, :mod:`infra.training.constrained_loss`): those of position ``k`` are
    ``ids[offsets[k]:offsets[k + 1]]``; an empty range means the whole vocabulary."""

    ids: np.ndarray  # int32
    offsets: np.ndarray  # int32, one more than the response's tokens

    def __post_init__(self) -> None:
        if len(self.offsets) < 1 or self.offsets[0] != 0 or self.offsets[-1] != len(self.ids):
            raise ValueError("allowed-set offsets must run from 0 to the number of ids")

    def __len__(self) -> int:
        return len(self.offsets) - 1


@dataclass(frozen=True, slots=True)
class Encoded:
    """One example's ids: ``input_ids = prompt + response``; loss on the response only.

    ``allowed``: the response tokens' allowed sets when the loss is the constrained one.
    """

    input_ids: tuple[int, ...]
    n_prompt: int
    allowed: AllowedSets | None = field(default=None, compare=False)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def labels(self) -> list[int]:
        return [IGNORE_INDEX] * self.n_prompt + list(self.input_ids[self.n_prompt :])


def encode_example(tokenizer: Any, prompt: str, response: str) -> Encoded:
    """The ids of one (prompt, response) pair."""
    p = encode_prompt(tokenizer, prompt)
    return Encoded(tuple(p + encode_response(tokenizer, response)), len(p))


def encode_response_alone(tokenizer: Any, response: str) -> Encoded:
    """The response with no instruction (for IFD): BOS first when the tokenizer has one.

    Without a BOS the first response token has no context and carries no loss.
    """
    r = encode_response(tokenizer, response)
    bos = tokenizer.bos_token_id
    if bos is not None:
        return Encoded(tuple([bos, *r]), 1)
    return Encoded(tuple(r), 1)
