"""Prefix-LM attention: the prompt reads itself both ways, the answer is generated causally.

A decoder warm-started from a bidirectional encoder (MiniLM, :mod:`infra.llm.warmstart`) was
pretrained with every token seeing the whole passage. Run purely causally, its passage tokens
lose their right context, the very signal an encoder's NER features are made of. As in UniLM's
sequence-to-sequence mode (the family MiniLM comes from), a prefix-LM keeps the encoder's
attention over the prompt and makes only the answer causal:

* query ``i`` may read key ``j`` when ``j`` is a real token and either ``j <= i`` (causal) or
  both lie in the prefix (bidirectional);
* the prefix is the prompt **without its last token**. The last prompt token predicts the first
  answer token, so it is computed like an answer token; at generation the prefix is prefilled
  with this mask and ``generate`` continues from the cache with the last prompt token, so
  training and generation see exactly the same attention pattern.

The pattern is a property of the model, not of a run: the folder's ``config.json`` carries
``bioner_attention: "prefix"`` (Hugging Face configs keep unknown keys), written by ``bioner
init-model --attention prefix`` and carried through ``bioner train``. A model without it is
causal. Masks are 4-D booleans, which transformers passes to SDPA as they are (measured on
CPU: the same step time as its own causal mask).
"""

from __future__ import annotations

from typing import Any

import torch

#: The config key and its values.
ATTENTION_KEY = "bioner_attention"
ATTENTIONS = ("causal", "prefix")


def attention_of(model_or_config: Any) -> str:
    """``"prefix"`` or ``"causal"`` for a model or its config."""
    config = getattr(model_or_config, "config", model_or_config)
    value = getattr(config, ATTENTION_KEY, None) or "causal"
    if value not in ATTENTIONS:
        raise ValueError(f"unknown {ATTENTION_KEY} {value!r} in the model's config.json")
    return str(value)


def is_prefix_lm(model_or_config: Any) -> bool:
    return attention_of(model_or_config) == "prefix"


def prefix_mask(attention_mask: torch.Tensor, prefix_lengths: torch.Tensor) -> torch.Tensor:
    """The 4-D boolean mask ``(batch, 1, length, length)`` of a right-padded batch whose row
    ``b`` has a bidirectional prefix of ``prefix_lengths[b]`` tokens (see the module doc)."""
    length = attention_mask.shape[1]
    pos = torch.arange(length, device=attention_mask.device)
    causal = pos[None, :] <= pos[:, None]  # (query, key)
    in_prefix = pos[None, :] < prefix_lengths.to(attention_mask.device)[:, None]  # (batch, pos)
    both = in_prefix[:, :, None] & in_prefix[:, None, :]  # (batch, query, key)
    allowed = (causal[None] | both) & attention_mask.bool()[:, None, :]
    return allowed[:, None]


def training_mask(
    model: torch.nn.Module, attention_mask: torch.Tensor, prompt_lengths: torch.Tensor
) -> torch.Tensor:
    """The attention mask to train ``model`` with: the 2-D padding mask for a causal model, the
    prefix mask (prefix = prompt minus its last token) for a prefix-LM."""
    if not is_prefix_lm(model):
        return attention_mask
    return prefix_mask(attention_mask, (prompt_lengths - 1).clamp(min=0))


def prefill(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
    """The KV cache of a left-padded batch of prompts minus their last token, each prompt
    reading itself both ways; ``generate(input_ids, attention_mask, past_key_values=...)``
    then continues causally from the last prompt token.

    Positions are those ``generate`` gives left-padded rows (count of real tokens before).
    """
    from transformers import DynamicCache

    head = input_ids[:, :-1]
    mask = attention_mask[:, :-1]
    allowed = mask.bool()[:, None, None, :].expand(-1, 1, head.shape[1], -1)
    # a pad query reads nothing real; let it read itself so its softmax stays finite
    eye = torch.eye(head.shape[1], dtype=torch.bool, device=head.device)[None, None]
    allowed = allowed | (eye & ~mask.bool()[:, None, :, None])
    positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
    positions = positions.masked_fill(mask == 0, 1)
    cache = DynamicCache(config=model.config)
    model(
        input_ids=head,
        attention_mask=allowed,
        position_ids=positions,
        past_key_values=cache,
        use_cache=True,
    )
    return cache
