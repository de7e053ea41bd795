"""Training under the copy constraint: the loss of the choices the constrained decoder leaves.

Copy-constrained decoding (:mod:`infra.llm.constrained`) lets the model pick, at each step of
a symbolic answer, only among the tokens that keep the answer valid: the copy's next token,
``[``, ``]``, a line break and a type header, the stop token. On the training data that is 2.5
tokens per position on average (the reference model's tokenizer, 300 examples): the copy
itself is certain, the model only decides where brackets open and close, which type lines
appear and when to stop. The token loss still pays for copying, and a small model pays a
lot: for the 8-epoch reference tagger, copy tokens carry 70% of the loss on Chinese
examples, of which 63% is mass on tokens the mask would remove anyway.

An example of the ``full`` view (:attr:`bioner.training.data.Example.annotated`) answers only
the lines of the types its dataset annotates under a request for more: the choices of which
line comes next and of the end are left out of its loss (the gold token alone is allowed
there), the brackets within its lines stay.

With ``loss="constrained"`` each response position of a symbolic example is normalised over
the tokens the decoding mask allows there (:func:`infra.llm.constrained.allowed_along`, the
same trie, automaton, canonical copy boundaries and stop tokens as the engine), always with
the gold token among them: the loss is ``-log p(gold | allowed)``, the probability the
constrained decoder uses. Other positions (JSON-format examples, an answer that leaves the
valid ones) keep the token loss. A model trained so is not taught to copy: it is meant to run
constrained, and its marker says so (``training_loss``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bioner.constraint import CopyAutomaton, SymbolicTarget
from bioner.training.data import Example, example_schema
from infra.llm.constrained import TokenTrie, allowed_along
from infra.training.encoding import IGNORE_INDEX, AllowedSets, Encoded

LOSSES = ("token", "constrained")


class ConstraintSets:
    """Allowed sets of training answers, for one tokenizer and its stop tokens."""

    def __init__(self, tokenizer: Any, stop_ids: Sequence[int]) -> None:
        self.tokenizer = tokenizer
        self.trie = TokenTrie.of(tokenizer)
        self.stop_ids = list(stop_ids)

    def of(self, example: Example, response_ids: Sequence[int]) -> AllowedSets | None:
        """The allowed sets of ``example``'s response tokens; None for a non-symbolic one."""
        if example.format != "symbolic":
            return None
        schema = example_schema(example)
        target = SymbolicTarget.of(example.text, schema)
        automaton = CopyAutomaton(target, leading_space=self.trie.leading_space)
        boundaries = self.trie.boundaries(self.tokenizer, target.copy)
        along = allowed_along(self.trie, automaton, response_ids, self.stop_ids, boundaries)
        if example.annotated and set(example.annotated) != set(schema.labels):
            along = self._without_line_choices(along, response_ids)
        offsets = np.zeros(len(along) + 1, dtype=np.int32)
        flat: list[int] = []
        for k, allowed in enumerate(along):
            flat.extend(allowed or ())
            offsets[k + 1] = len(flat)
        return AllowedSets(np.asarray(flat, dtype=np.int32), offsets)

    @functools.cached_property
    def line_breaks(self) -> frozenset[int]:
        """The ids of the tokens whose bytes end a line (the trie's table of token bytes)."""
        return frozenset(i for i, data in enumerate(self.trie.table) if data and data[-1:] == b"\n")

    def _without_line_choices(self, along: list[Any], response_ids: Sequence[int]) -> list[Any]:
        """``along`` with the choices of which type line comes next (or the end) left to the
        gold token alone, so they cost nothing: the first token, the token after each line
        break, and every position where the answer may stop. An example that answers only the
        types its dataset annotates (``Example.annotated``) knows nothing of the other lines."""
        stops = set(self.stop_ids)
        out = list(along)
        for k, allowed in enumerate(along):
            if not allowed:
                continue
            after_break = k > 0 and response_ids[k - 1] in self.line_breaks
            if k == 0 or after_break or stops.intersection(allowed):
                out[k] = (response_ids[k],)
        return out

    def attach(self, encoded: Encoded, example: Example) -> Encoded:
        """``encoded`` with its allowed sets."""
        sets = self.of(example, encoded.input_ids[encoded.n_prompt :])
        return Encoded(encoded.input_ids, encoded.n_prompt, sets)


def restriction(batch: Sequence[Encoded], width: int) -> dict[str, torch.Tensor]:
    """The restricted positions of a right-padded batch of ``width`` columns: ``positions``
    index the flattened ``(rows, width - 1)`` grid of next-token logits, ``ids`` their allowed
    token ids (padded with -1)."""
    positions: list[int] = []
    rows: list[np.ndarray] = []
    for r, e in enumerate(batch):
        sets = e.allowed
        if sets is None:
            continue
        for k in range(len(sets)):
            a, b = int(sets.offsets[k]), int(sets.offsets[k + 1])
            at = e.n_prompt + k - 1  # the logits that predict response token k
            if a == b or at < 0:
                continue
            positions.append(r * (width - 1) + at)
            rows.append(sets.ids[a:b])
    most = max((len(x) for x in rows), default=0)
    ids = torch.full((len(rows), most), -1, dtype=torch.long)
    for i, x in enumerate(rows):
        ids[i, : len(x)] = torch.from_numpy(x.astype(np.int64))
    return {"restrict_positions": torch.tensor(positions, dtype=torch.long), "restrict_ids": ids}


def loss_sum(
    shifted: torch.Tensor,
    targets: torch.Tensor,
    positions: torch.Tensor | None = None,
    ids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Summed loss of next-token logits ``shifted`` (rows, T, vocab) against ``targets``
    (rows, T; ``-100`` for none): the token loss, and at ``positions`` (of the flattened grid)
    ``logsumexp(logits[ids]) - logits[gold]`` instead."""
    flat = shifted.reshape(-1, shifted.size(-1))
    gold = targets.reshape(-1)
    free = gold != IGNORE_INDEX
    if positions is not None and ids is not None and positions.numel():
        free[positions] = False
        picked = flat[positions.unsqueeze(1), ids.clamp(min=0)]
        picked = picked.masked_fill(ids < 0, float("-inf"))
        restricted = (torch.logsumexp(picked, dim=1) - flat[positions, gold[positions]]).sum()
    else:
        restricted = flat.new_zeros(())
    # Only the rows with a token loss go through the softmax over the vocabulary.
    rows = free.nonzero().squeeze(1)
    token = torch.nn.functional.cross_entropy(flat[rows], gold[rows], reduction="sum")
    return token + restricted
