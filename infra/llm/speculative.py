"""Copy-speculative constrained greedy decoding: the answer is mostly a copy, so guess it.

A symbolic answer copies its passage, so under the copy constraint most steps have one likely
token, the next token of the copy. From a state in the copy (:class:`CopyDrafter`), the rest of
the copy's canonical tokens (the tokens the tokenizer gives the passage, as the model was
trained to copy it) is proposed as a draft; one forward pass over the last token and the draft,
with the KV cache, gives the model's choice at every draft position. The draft is accepted up
to the first position where the model's greedy choice under the constraint's mask differs (a
bracket, usually); that choice is the next token, and the cache is cut back to the accepted
tokens. Forward passes per line are then about the brackets plus the header's tokens, not the
line's tokens.

The result is greedy constrained decoding's: each accepted token is the argmax of the masked
logits at its position, ties to the smallest id as ``torch.argmax`` over the whole vocabulary
breaks them; only the number of forward passes changes. (Logits of one position computed in
a longer pass can differ from a one-token pass in the last bits of float arithmetic; the tests
check the outputs are the same on real passages.)

One row at a time (drafts and acceptances differ per row); on a CPU a 14M-parameter model's
batch of one with drafts of ~30 tokens keeps the cores busier than token-by-token batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from bioner.constraint import CopyAutomaton, State, SymbolicTarget
from infra.llm.constrained import TokenTrie, mask_at, step_token

#: Longest draft, in tokens: a passage's copy (500 characters) is about 120 tokens.
MAX_DRAFT = 128
_LINE_PHASE, _COPY_PHASE = 0, 1


class CopyDrafter:
    """Drafts of the answer's continuation: the rest of the copy (and of the header being
    written, when only one header can continue), tokenized as the tokenizer writes that text,
    which is how the model saw it in training."""

    def __init__(self, tokenizer: Any, automaton: CopyAutomaton) -> None:
        self.tokenizer = tokenizer
        self.copy = automaton.copy
        self.headers = automaton.headers
        self._drafts: dict[tuple[int, bytes | int], list[int]] = {}

    def _continuation(self, state: State) -> bytes | None:
        if state[0] == _COPY_PHASE:
            return self.copy[state[1] :]
        typed = state[1]
        if state[0] != _LINE_PHASE or not typed:
            return None  # at a line start any later header may come: no guess
        heads = [h for h in self.headers if h.startswith(typed)]
        return heads[0][len(typed) :] + self.copy if len(heads) == 1 else None

    def draft(self, state: State | None, most: int = MAX_DRAFT) -> list[int]:
        """Up to ``most`` tokens of the continuation from ``state`` (none where it is unknown,
        or starts inside a character)."""
        if state is None:
            return []
        key = (state[0], state[1])
        found = self._drafts.get(key)
        if found is None:
            rest = self._continuation(state)
            try:
                text = rest.decode("utf-8") if rest else ""
            except UnicodeDecodeError:
                text = ""
            found = self.tokenizer(text, add_special_tokens=False)["input_ids"] if text else []
            self._drafts[key] = found
        return found[:most]


@dataclass
class Decoded:
    """One row's answer: its token ids (the stop token last, when it stopped), whether it
    stopped, and the forward passes it took (the prompt's included)."""

    tokens: list[int]
    stopped: bool
    passes: int


class _Masks:
    """The allowed token ids of each automaton state, as sorted tensors (computed once)."""

    def __init__(self, trie: TokenTrie, automaton: CopyAutomaton, stop_ids: Sequence[int],
                 boundaries: frozenset[int] | None, device: torch.device) -> None:  # fmt: skip
        self.trie, self.automaton, self.stop_ids = trie, automaton, list(stop_ids)
        self.boundaries, self.device = boundaries, device
        self.cache: dict[State, torch.Tensor] = {}

    def allowed(self, state: State | None) -> torch.Tensor:
        if state is None:
            return torch.tensor(sorted(self.stop_ids), device=self.device)
        found = self.cache.get(state)
        if found is None:
            ids = mask_at(self.trie, self.automaton, state, self.stop_ids, self.boundaries)
            found = torch.tensor(sorted(set(ids)), device=self.device)
            self.cache[state] = found
        return found

    def choose(self, logits: torch.Tensor, state: State | None) -> int:
        """The greedy choice under the mask: the allowed id of the highest logit, the smallest
        such id on a tie (as argmax over the masked vocabulary)."""
        allowed = self.allowed(state)
        return int(allowed[int(torch.argmax(logits[allowed]))])


def decode_row(
    model: Any,
    prompt_ids: list[int],
    target: SymbolicTarget,
    trie: TokenTrie,
    tokenizer: Any,
    stop_ids: Sequence[int],
    limit: int,
    *,
    max_draft: int = MAX_DRAFT,
) -> Decoded:
    """Greedy constrained decoding of one prompt with copy drafts (module doc)."""
    device = next(model.parameters()).device
    automaton = CopyAutomaton(target, leading_space=trie.leading_space)
    boundaries = trie.boundaries(tokenizer, target.copy)
    masks = _Masks(trie, automaton, stop_ids, boundaries, device)
    drafter = CopyDrafter(tokenizer, automaton)
    stops = set(stop_ids)
    cache = DynamicCache()
    with torch.inference_mode():
        out = model(
            input_ids=torch.tensor([prompt_ids], device=device),
            past_key_values=cache,
            use_cache=True,
        )
        logits = out.logits[0, -1]
        passes = 1
        tokens: list[int] = []
        state: State | None = automaton.start
        while len(tokens) < limit:
            token = masks.choose(logits, state)
            tokens.append(token)
            if token in stops:
                return Decoded(tokens, True, passes)
            state = step_token(trie, automaton, state, token)
            if len(tokens) >= limit:
                break
            draft = drafter.draft(state, min(max_draft, limit - len(tokens)))
            feed = [token, *draft]
            out = model(
                input_ids=torch.tensor([feed], device=device),
                past_key_values=cache,
                use_cache=True,
            )
            passes += 1
            step_logits = out.logits[0]
            accepted = 0
            for j, proposed in enumerate(draft):
                if masks.choose(step_logits[j], state) != proposed:
                    break
                tokens.append(proposed)
                state = step_token(trie, automaton, state, proposed)
                accepted += 1
            logits = step_logits[accepted]
            if accepted < len(draft):  # forget the rejected draft's keys and values
                cache.crop(len(prompt_ids) + len(tokens) - cache.get_seq_length())
    return Decoded(tokens, False, passes)
