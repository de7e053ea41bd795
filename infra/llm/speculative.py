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

Rows are decoded in batches (:func:`decode_batch`): one forward pass per step for every row,
each with its own draft and its own number of accepted tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import DynamicCache

from bioner.constraint import CopyAutomaton, State, SymbolicTarget
from infra.llm.constrained import TokenTrie, mask_at, step_token

#: Longest draft, in tokens. The model takes a draft up to the next bracket, 8 tokens on
#: average, and in a batch every row's draft is padded to the longest one: drafts of 6 to 16
#: tokens ran about 1.4 times the passages/s of drafting the whole rest of the copy (30
#: development passages asked the unified schema, one batch; a row's draft doubled after
#: each whole acceptance padded the batch to 10k positions against 7k, and ran slower).
MAX_DRAFT = 12
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
    return decode_batch(
        model, [prompt_ids], [target], trie, tokenizer, stop_ids, [limit], max_draft=max_draft
    )[0]


@dataclass
class _Row:
    """One row of a batch being decoded."""

    automaton: CopyAutomaton
    masks: _Masks
    drafter: CopyDrafter
    limit: int
    length: int  # valid positions of this row in the cache (its prompt's included)
    state: State | None
    tokens: list[int]
    logits: torch.Tensor | None = None  # the next position's logits
    done: bool = False
    stopped: bool = False
    passes: int = 1


def decode_batch(
    model: Any,
    prompts: Sequence[list[int]],
    targets: Sequence[SymbolicTarget],
    trie: TokenTrie,
    tokenizer: Any,
    stop_ids: Sequence[int],
    limits: Sequence[int],
    *,
    pad_id: int = 0,
    max_draft: int = MAX_DRAFT,
) -> list[Decoded]:
    """Greedy constrained decoding of several prompts at once, each with its own copy drafts.

    Rows share one KV cache and one forward pass per step: the prompts left-padded, each step
    feeding every unfinished row its last token and its draft, padded to the longest. A row
    accepts its own number of draft tokens; the keys and values of its rejected draft and of
    padding stay in the cache but are masked out for every later step (attention mask and
    explicit position ids), and rows that finish leave the batch.
    """
    device = next(model.parameters()).device
    stops = set(stop_ids)
    rows: list[_Row] = []
    for prompt, target, limit in zip(prompts, targets, limits, strict=True):
        automaton = CopyAutomaton(target, leading_space=trie.leading_space)
        boundaries = trie.boundaries(tokenizer, target.copy)
        rows.append(
            _Row(
                automaton,
                _Masks(trie, automaton, stop_ids, boundaries, device),
                CopyDrafter(tokenizer, automaton),
                limit,
                len(prompt),
                automaton.start,
                [],
            )
        )
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for r, prompt in enumerate(prompts):
        ids[r, width - len(prompt) :] = torch.tensor(prompt)
        mask[r, width - len(prompt) :] = 1
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    live = list(range(len(rows)))  # rows in the batch, in cache order
    with torch.inference_mode():
        out = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            position_ids=positions.to(device),
            past_key_values=cache,
            use_cache=True,
        )
        for k, r in enumerate(live):
            rows[r].logits = out.logits[k, -1]
        while live:
            feeds: list[list[int]] = []
            for r in live:
                row = rows[r]
                if len(row.tokens) >= row.limit:
                    row.done = True
                    feeds.append([])
                    continue
                token = row.masks.choose(row.logits, row.state)
                row.tokens.append(token)
                if token in stops:
                    row.done = row.stopped = True
                    feeds.append([])
                    continue
                row.state = step_token(trie, row.automaton, row.state, token)
                room = row.limit - len(row.tokens)
                if room <= 0:
                    row.done = True
                    feeds.append([])
                    continue
                feeds.append([token, *row.drafter.draft(row.state, min(max_draft, room))])
            keep = [k for k, r in enumerate(live) if not rows[live[k]].done]
            if not keep:
                break
            if len(keep) < len(live):  # finished rows leave the batch and the cache
                index = torch.tensor(keep, device=device)
                cache.reorder_cache(index)
                mask = mask[keep]
                live = [live[k] for k in keep]
                feeds = [feeds[k] for k in keep]
            span = max(len(f) for f in feeds)
            step_ids = torch.full((len(live), span), pad_id, dtype=torch.long)
            step_mask = torch.zeros((len(live), span), dtype=torch.long)
            step_positions = torch.zeros((len(live), span), dtype=torch.long)
            for k, (r, feed) in enumerate(zip(live, feeds, strict=True)):
                step_ids[k, : len(feed)] = torch.tensor(feed)
                step_mask[k, : len(feed)] = 1
                step_positions[k] = rows[r].length + torch.arange(span)
            mask = torch.cat([mask, step_mask], dim=1)
            out = model(
                input_ids=step_ids.to(device),
                attention_mask=mask.to(device),
                position_ids=step_positions.to(device),
                past_key_values=cache,
                use_cache=True,
            )
            column = mask.shape[1] - span
            for k, (r, feed) in enumerate(zip(live, feeds, strict=True)):
                row = rows[r]
                row.passes += 1
                accepted = 0
                for j, proposed in enumerate(feed[1:]):
                    if row.masks.choose(out.logits[k, j], row.state) != proposed:
                        break
                    row.tokens.append(proposed)
                    row.state = step_token(trie, row.automaton, row.state, proposed)
                    accepted += 1
                row.logits = out.logits[k, accepted]
                row.length += 1 + accepted
                mask[k, column + 1 + accepted :] = 0  # the rejected draft and the padding
    return [Decoded(row.tokens, row.stopped, row.passes) for row in rows]
