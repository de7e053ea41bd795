"""Copy-constrained decoding for ``transformers``: a logits processor over token byte strings.

:class:`bioner.constraint.CopyAutomaton` says which bytes may come next in a valid symbolic
answer. A token is allowed when all of its bytes are: the walk goes down a trie of the
vocabulary's byte strings and the automaton together, so tokens that span a bracket, a line
break and the next header, or half of a Chinese character, are judged by their bytes, whatever
the tokenizer's boundaries. The model's stop tokens are allowed only where the answer may end.

Byte strings come from the tokenizer's own model: byte-level BPE (GPT-2, Llama 3, Qwen and the
project's tiny models) maps each token character to a byte; SentencePiece-style vocabularies
(``▁`` for a space, ``<0xNN>`` byte fallback) are mapped accordingly. The table is checked by
re-encoding sample texts (English, Chinese, brackets); a tokenizer that fails the check raises
:class:`UnsupportedTokenizer` rather than constraining wrongly.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import torch
from transformers import LogitsProcessor

from bioner.constraint import CopyAutomaton, State, SymbolicTarget

_PROBES = (
    "Famotidine-associated [delirium] and (TNF-α).\nNone",
    "Disease: The [[BRCA1] mutation] carriers\\ had 2.5 mg/kg.",
    "疾病: 患者有[高血压]病史，给予阿司匹林治疗。",
)
_BYTE_TOKEN = re.compile(r"<0x([0-9A-Fa-f]{2})>")


class UnsupportedTokenizer(ValueError):
    """A tokenizer whose tokens cannot be mapped to exact byte strings."""


def _bytes_to_unicode() -> dict[int, str]:
    """The reversible byte → printable character map of byte-level BPE (GPT-2's scheme)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    chars = list(printable)
    n = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + n)
            n += 1
    return dict(zip(printable, map(chr, chars), strict=True))


def _decoder_kinds(tokenizer: Any) -> set[str]:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return set()
    spec = json.loads(backend.to_str()).get("decoder") or {}
    kinds = {spec.get("type", "")}
    for part in spec.get("decoders") or []:
        kinds.add(part.get("type", ""))
    return kinds


def token_bytes(tokenizer: Any) -> tuple[list[bytes | None], bool]:
    """The byte string of every token id (None for special tokens), checked on sample texts.

    Also says whether the tokenizer is SentencePiece-like: its decoder drops the space that
    the first token of a text carries, so an answer may open with that space.
    """
    size = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    special = set(tokenizer.all_special_ids)
    kinds = _decoder_kinds(tokenizer)
    table: list[bytes | None] = [None] * size
    metaspace = "ByteLevel" not in kinds
    if not metaspace:
        byte_of = {c: b for b, c in _bytes_to_unicode().items()}
        for i, piece in enumerate(pieces):
            if i in special or piece is None:
                continue
            try:
                table[i] = bytes(byte_of[c] for c in piece)
            except KeyError:  # an added token written as plain text
                table[i] = piece.encode("utf-8")
    elif kinds & {"Metaspace", "Replace", "ByteFallback"}:
        for i, piece in enumerate(pieces):
            if i in special or piece is None:
                continue
            match = _BYTE_TOKEN.fullmatch(piece)
            table[i] = (
                bytes((int(match.group(1), 16),))
                if match
                else piece.replace("\u2581", " ").encode("utf-8")
            )
    else:
        raise UnsupportedTokenizer(
            f"{type(tokenizer).__name__}: cannot map tokens to bytes (decoder {sorted(kinds)})"
        )
    for probe in _PROBES:
        ids = tokenizer(probe, add_special_tokens=False)["input_ids"]
        got = b"".join(table[i] or b"" for i in ids)
        if got not in (probe.encode("utf-8"), b" " + probe.encode("utf-8")):
            raise UnsupportedTokenizer(
                f"{type(tokenizer).__name__}: token bytes do not rebuild {probe!r} (got {got!r})"
            )
    return table, metaspace


class TokenTrie:
    """The vocabulary as a trie of byte strings; a node is (children by byte, ids ending here)."""

    def __init__(self, table: Sequence[bytes | None], *, leading_space: bool = False) -> None:
        self.root: tuple[dict[int, Any], list[int]] = ({}, [])
        for token_id, data in enumerate(table):
            if not data:
                continue
            node = self.root
            for byte in data:
                children = node[0]
                if byte not in children:
                    children[byte] = ({}, [])
                node = children[byte]
            node[1].append(token_id)
        self.table = list(table)
        #: SentencePiece writes a word's leading space into its token ("▁Disease").
        self.leading_space = leading_space

    @classmethod
    def of(cls, tokenizer: Any) -> TokenTrie:
        """The trie of ``tokenizer``'s vocabulary (UnsupportedTokenizer if it cannot be built)."""
        table, metaspace = token_bytes(tokenizer)
        return cls(table, leading_space=metaspace)

    def boundaries(self, tokenizer: Any, text: str) -> frozenset[int]:
        """Byte offsets in ``text`` (UTF-8) where its canonical tokenization puts a boundary."""
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        data = text.encode("utf-8")
        offsets, at = {0}, 0
        for i in ids:
            at += len(self.table[i] or b"") if i < len(self.table) else 0
            offsets.add(at)
        extra = at - len(data)  # a SentencePiece tokenizer's leading space
        return frozenset(o - extra for o in offsets if o - extra >= 0)

    def allowed(
        self,
        automaton: CopyAutomaton,
        state: State,
        boundaries: frozenset[int] | None = None,
    ) -> list[int]:
        """Token ids whose every byte the automaton accepts from ``state``.

        With ``boundaries`` (byte offsets of the copy's canonical tokenization), tokens made
        only of copy bytes must end on one of them (the longest ones if none can): the model
        copies with the tokens it was trained on, not with arbitrary fragments, which would
        cost tokens and drift from its training (a valid copy can be spelt many ways).
        """
        found: list[int] = []
        copies: dict[int, list[int]] = {}  # end offset -> pure-copy token ids
        stack = [(self.root, state, True)]
        while stack:
            (children, _), at, pure = stack.pop()
            for byte in automaton.allowed(at):
                child = children.get(byte)
                if child is None:
                    continue
                nxt = automaton.step(at, byte)
                if nxt is None:
                    continue
                step_pure = pure and at[0] == nxt[0] == 1 and nxt[1] == at[1] + 1
                if child[1]:
                    if step_pure and boundaries is not None:
                        copies.setdefault(nxt[1], []).extend(child[1])
                    else:
                        found.extend(child[1])
                if child[0]:
                    stack.append((child, nxt, step_pure))
        if copies:
            ends = [e for e in copies if e in boundaries] or [max(copies)]
            for e in ends:
                found.extend(copies[e])
        return found


def mask_at(
    trie: TokenTrie,
    automaton: CopyAutomaton,
    state: State,
    stop_ids: Sequence[int],
    boundaries: frozenset[int] | None = None,
) -> list[int]:
    """The token ids allowed after ``state``; the stop tokens where the answer may end (or
    where nothing else is left)."""
    allowed = trie.allowed(automaton, state, boundaries)
    if automaton.accepting(state) or not allowed:
        allowed = [*allowed, *stop_ids]
    return allowed


def step_token(
    trie: TokenTrie, automaton: CopyAutomaton, state: State | None, token: int
) -> State | None:
    """The state after ``token`` (None once the answer has left the valid ones)."""
    data = trie.table[token] if token < len(trie.table) else None
    return automaton.walk(data, state) if state is not None and data else None


class _Row:
    """One row's automaton and the states after each generated token."""

    __slots__ = ("automaton", "boundaries", "cache", "states", "tokens")

    def __init__(self, automaton: CopyAutomaton, boundaries: frozenset[int] | None) -> None:
        self.automaton = automaton
        self.boundaries = boundaries
        self.tokens: list[int] = []
        self.states: list[State | None] = [automaton.start]
        self.cache: dict[State, list[int]] = {}


class CopyConstraintProcessor(LogitsProcessor):
    """Masks every token that would leave the valid answers of each row's target.

    ``targets[r]`` is row r's :class:`SymbolicTarget` (None: row unconstrained). The processor
    reads each row's generated tokens from ``input_ids`` after ``prompt_length``, so it follows
    greedy, sampled and assisted (prompt-lookup) generation alike, including roll-backs of
    rejected draft tokens. A row whose answer is complete may only stop; a row that somehow
    has no valid token left (e.g. a character the vocabulary cannot spell) may only stop too,
    and decoding reports the broken copy.
    """

    def __init__(
        self,
        trie: TokenTrie,
        targets: Sequence[SymbolicTarget | None],
        prompt_length: int,
        stop_ids: Sequence[int],
        tokenizer: Any = None,
    ) -> None:
        self.trie = trie
        self.prompt_length = prompt_length
        self.stop_ids = list(stop_ids)
        self.rows = [
            _Row(
                CopyAutomaton(t, leading_space=trie.leading_space),
                trie.boundaries(tokenizer, t.copy) if tokenizer is not None else None,
            )
            if t is not None
            else None
            for t in targets
        ]

    def _advance(self, row: _Row, generated: list[int]) -> State | None:
        keep = 0
        limit = min(len(row.tokens), len(generated))
        while keep < limit and row.tokens[keep] == generated[keep]:
            keep += 1
        del row.tokens[keep:]
        del row.states[keep + 1 :]
        state = row.states[-1]
        for token in generated[keep:]:
            state = step_token(self.trie, row.automaton, state, token)
            row.tokens.append(token)
            row.states.append(state)
        return state

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        generated = input_ids[:, self.prompt_length :].tolist()
        rows: list[int] = []
        cols: list[int] = []
        constrained: list[int] = []
        for r, row in enumerate(self.rows):
            if row is None:
                continue
            tokens = generated[r]
            if any(t in self.stop_ids for t in tokens):
                continue  # finished: the rest is padding
            state = self._advance(row, tokens)
            constrained.append(r)
            if state is None:  # cannot happen when every token was chosen under this mask
                allowed = self.stop_ids
            else:
                allowed = row.cache.get(state)
                if allowed is None:
                    allowed = mask_at(
                        self.trie, row.automaton, state, self.stop_ids, row.boundaries
                    )
                    row.cache[state] = allowed
            rows.extend([r] * len(allowed))
            cols.extend(allowed)
        if not constrained:
            return scores
        mask = torch.full_like(scores[constrained], float("-inf"))
        index = {r: k for k, r in enumerate(constrained)}
        mask[[index[r] for r in rows], cols] = 0
        scores = scores.clone()
        scores[constrained] = scores[constrained] + mask
        return scores


def allowed_along(
    trie: TokenTrie,
    automaton: CopyAutomaton,
    tokens: Sequence[int],
    stop_ids: Sequence[int],
    boundaries: frozenset[int] | None = None,
) -> list[list[int] | None]:
    """What :class:`CopyConstraintProcessor` would allow before each of ``tokens`` (an answer's
    ids, its stop token last), walking the answer: the training twin of the decoding mask.

    Each position's list holds the token itself even where the mask would not (a training
    answer spelt with other tokens than the copy's canonical ones); a position is None once
    the answer has left the valid ones (e.g. two lines of one type), and so is every later one.
    """
    out: list[list[int] | None] = []
    state: State | None = automaton.start
    for token in tokens:
        if state is None:
            out.append(None)
            continue
        allowed = mask_at(trie, automaton, state, stop_ids, boundaries)
        out.append(allowed if token in allowed else [*allowed, token])
        state = step_token(trie, automaton, state, token)
    return out
