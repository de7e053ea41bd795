"""The CPU (and small-GPU) engine: a local causal LM run through ``transformers.generate``.

Prompts are sorted by length and packed into batches under a token budget (prompt plus new
tokens, padded), left-padded so every row generates from the same position, and run with
``torch.inference_mode``. Each prompt keeps its own ``max_new_tokens``: a stopping criterion
retires a row when it reaches its limit, the batch ends when every row has stopped, and each
result says ``"length"`` only when that prompt hit its own limit. Results come back in input
order.

Greedy copy-constrained prompts go through copy-speculative decoding by default
(:mod:`infra.llm.speculative`): one row at a time, the rest of the copy drafted and checked in
one forward pass, the same answers in a fraction of the forward passes. Sampled and
unconstrained prompts, and prefix-LM folders (whose prompt is prefilled with another mask),
take ``transformers.generate``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    import torch
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        GenerationConfig,
        LogitsProcessorList,
        StoppingCriteria,
        StoppingCriteriaList,
    )
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"the transformers engine needs torch and transformers ({e.name} is missing): "
        "install the llm extra: pip install -e .[llm]"
    ) from e

from bioner.constraint import CONSTRAINT_VERSION, SymbolicTarget
from bioner.generation import Generation, GenerationParams
from infra.llm.constrained import CopyConstraintProcessor, TokenTrie
from infra.llm.local import check_decoding, check_model_dir, model_id_of, prompt_version
from infra.llm.prefixlm import is_prefix_lm, prefill
from infra.llm.speculative import decode_batch

log = logging.getLogger(__name__)

DEFAULT_BATCH_TOKENS = 16_384
DEFAULT_MAX_BATCH_SIZE = 64


class _RowLimits(StoppingCriteria):
    """Stops each row once it has generated its own number of new tokens."""

    def __init__(self, limits: list[int], prompt_length: int, device: torch.device) -> None:
        self.limits = torch.tensor(limits, device=device)
        self.prompt_length = prompt_length

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        return (input_ids.shape[1] - self.prompt_length) >= self.limits


def stop_token_ids(generation_config: Any, tokenizer: Any) -> list[int]:
    """The tokens that end an answer: the generation config's EOS ids, then the tokenizer's."""
    ids = getattr(generation_config, "eos_token_id", None)
    ids = [] if ids is None else [ids] if isinstance(ids, int) else list(ids)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def compute_dtype(requested: str, device: torch.device) -> str | torch.dtype:
    """The dtype to run a model in: ``requested``, except that ``"auto"`` (the folder's dtype)
    runs in float32 on a CPU. A CPU without bf16 units (AVX2, most AVX-512) emulates bf16
    matrix products about 150 times slower than float32 (measured on this project's 2-core
    machine: 0.95 against 149 GFLOP/s), and on the small models a CPU runs, float32's memory
    costs nothing."""
    if requested == "auto" and device.type == "cpu":
        return torch.float32
    return requested


class TransformersEngine:
    """A local Hugging Face causal LM behind the :class:`bioner.generation.Engine` protocol."""

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "cpu",
        *,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        dtype: str = "auto",
        constrained: bool = True,
        prompt_lookup_tokens: int = 0,
        speculative: bool = True,
    ) -> None:
        if batch_tokens < 1 or max_batch_size < 1:
            raise ValueError("batch_tokens and max_batch_size must be >= 1")
        if prompt_lookup_tokens < 0:
            raise ValueError("prompt_lookup_tokens must be >= 0")
        self.model_dir = check_model_dir(model_dir)
        check_decoding(self.model_dir, constrained)
        self.model_id = model_id_of(self.model_dir)
        self.prompt_version = prompt_version(self.model_dir)
        self.device = torch.device(device)
        self.batch_tokens = batch_tokens
        self.max_batch_size = max_batch_size
        # local_files_only: model hubs are never contacted; a model is a folder.
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_dir, local_files_only=True)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.model = AutoModelForCausalLM.from_pretrained(
            self.model_dir, local_files_only=True, dtype=compute_dtype(dtype, self.device)
        ).to(self.device)
        self.model.eval()
        #: Prefix-LM (:mod:`infra.llm.prefixlm`): prompts are prefilled reading both ways.
        self.prefix_lm = is_prefix_lm(self.model)
        if self.prefix_lm and prompt_lookup_tokens:
            raise ValueError(
                f"{self.model_dir}: prompt-lookup decoding is not available for a prefix-LM"
            )
        self.stop_ids = self._stop_ids()
        self.max_context: int | None = getattr(self.model.config, "max_position_embeddings", None)
        #: Prompt-lookup decoding: draft this many tokens by matching the output's last n-gram
        #: in the prompt (the answer copies the passage). transformers runs assisted
        #: generation one prompt at a time, so batches hold a single row when it is on.
        self.prompt_lookup_tokens = prompt_lookup_tokens
        if prompt_lookup_tokens:
            self.max_batch_size = 1
        #: Copy-constrained decoding (prompts given a target may only produce valid answers).
        self.trie = TokenTrie.of(self.tokenizer) if constrained else None
        #: Copy-speculative decoding of greedy constrained prompts (the same answers).
        self.speculative = speculative and self.trie is not None and not prompt_lookup_tokens
        if self.speculative and self.prefix_lm:
            log.warning(
                "%s: a prefix-LM cannot run copy-speculative decoding; decoding token by token",
                self.model_dir,
            )
            self.speculative = False
        #: Forward passes and tokens of the speculative rows so far (tokens per pass).
        self.passes = self.speculated_tokens = 0
        #: What changes the output besides the model and the request (the generation cache's key).
        self.settings = {
            "backend": "transformers",
            "constrained": CONSTRAINT_VERSION if constrained else "off",
            "dtype": str(self.model.dtype).removeprefix("torch."),
        }
        if self.prefix_lm:
            self.settings["attention"] = "prefix"

    def _stop_ids(self) -> list[int]:
        ids = stop_token_ids(self.model.generation_config, self.tokenizer)
        if not ids:
            raise ValueError(f"{self.model_dir}: the model defines no end-of-sequence token")
        return ids

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text under this model's tokenizer, special tokens excluded."""
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        return [len(ids) for ids in encoded]

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids of a prompt as the model sees it: chat template if it has one, else BOS."""
        if self.tokenizer.chat_template:
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            return self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self.tokenizer(prompt)["input_ids"]

    def generate(
        self,
        prompts: Sequence[str],
        params: GenerationParams | Sequence[GenerationParams],
        targets: Sequence[SymbolicTarget | None] | None = None,
    ) -> list[Generation]:
        """One generation per prompt, in input order (see the module docstring for batching).

        With the constraint on, a prompt with a target may only produce a valid symbolic
        answer for its passage (:mod:`infra.llm.constrained`).
        """
        per_prompt = (
            [params] * len(prompts) if isinstance(params, GenerationParams) else list(params)
        )
        if len(per_prompt) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(per_prompt)} parameter sets")
        per_target = list(targets) if targets is not None else [None] * len(prompts)
        if len(per_target) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(per_target)} targets")
        if self.trie is None:
            per_target = [None] * len(prompts)
        encoded = [self.encode_prompt(p) for p in prompts]
        limits = [self._limit(ids, p) for ids, p in zip(encoded, per_prompt, strict=True)]
        results: list[Generation | None] = [None] * len(prompts)
        # Rows of one batch share the sampling settings; only the token limit may differ.
        groups: dict[GenerationParams, list[int]] = {}
        for i, p in enumerate(per_prompt):
            groups.setdefault(dataclasses.replace(p, max_new_tokens=1), []).append(i)
        for sampling, indices in groups.items():
            if self.speculative and sampling.greedy:
                drafted = [i for i in indices if per_target[i] is not None]
                for batch in self._batches(drafted, encoded, limits):
                    for i, generation in self._speculate(batch, encoded, per_target, limits):
                        results[i] = generation
                indices = [i for i in indices if per_target[i] is None]
            for batch in self._batches(indices, encoded, limits):
                for i, generation in self._run_batch(batch, encoded, limits, per_target, sampling):
                    results[i] = generation
        return [r for r in results if r is not None]

    def _speculate(
        self,
        batch: list[int],
        encoded: list[list[int]],
        targets: list[SymbolicTarget | None],
        limits: list[int],
    ) -> list[tuple[int, Generation]]:
        """One batch of greedy constrained prompts, decoded copy-speculatively."""
        assert self.trie is not None
        rows = decode_batch(
            self.model,
            [encoded[i] for i in batch],
            [targets[i] for i in batch],  # type: ignore[misc]
            self.trie,
            self.tokenizer,
            self.stop_ids,
            [limits[i] for i in batch],
            pad_id=self.tokenizer.pad_token_id,
        )
        out = []
        for i, row in zip(batch, rows, strict=True):
            self.passes += row.passes
            self.speculated_tokens += len(row.tokens)
            out.append((i, self._result(row.tokens, len(encoded[i]), limits[i])))
        return out

    def _limit(self, prompt_ids: list[int], params: GenerationParams) -> int:
        if self.max_context is None:
            return params.max_new_tokens
        room = self.max_context - len(prompt_ids)
        if room < 1:
            raise ValueError(
                f"a prompt of {len(prompt_ids)} tokens leaves no room in the model's context of "
                f"{self.max_context}: segment into shorter passages"
            )
        return min(params.max_new_tokens, room)

    def _batches(
        self, indices: list[int], encoded: list[list[int]], limits: list[int]
    ) -> list[list[int]]:
        """Indices packed longest-first so that rows x (longest prompt + limit) <= budget."""
        order = sorted(indices, key=lambda i: (len(encoded[i]), limits[i]), reverse=True)
        batches: list[list[int]] = []
        batch: list[int] = []
        width = 0
        for i in order:
            row = len(encoded[i]) + limits[i]
            new_width = max(width, row)
            if batch and (
                len(batch) >= self.max_batch_size
                or (len(batch) + 1) * new_width > self.batch_tokens
            ):
                batches.append(batch)
                batch, new_width = [], row
            batch.append(i)
            width = new_width
        if batch:
            batches.append(batch)
        return batches

    def _run_batch(
        self,
        batch: list[int],
        encoded: list[list[int]],
        limits: list[int],
        targets: list[SymbolicTarget | None],
        sampling: GenerationParams,
    ) -> list[tuple[int, Generation]]:
        """Generate one batch; on a GPU out-of-memory error, halve it and retry each half."""
        try:
            outputs = self._generate_batch(
                [encoded[i] for i in batch],
                [limits[i] for i in batch],
                [targets[i] for i in batch],
                sampling,
            )
        except torch.OutOfMemoryError:
            if len(batch) == 1:
                raise
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            half = len(batch) // 2
            log.warning(
                "out of memory on a batch of %d: retrying as %d + %d",
                len(batch),
                half,
                len(batch) - half,
            )
            return [
                *self._run_batch(batch[:half], encoded, limits, targets, sampling),
                *self._run_batch(batch[half:], encoded, limits, targets, sampling),
            ]
        return list(zip(batch, outputs, strict=True))

    def _generate_batch(
        self,
        prompt_ids: list[list[int]],
        limits: list[int],
        targets: list[SymbolicTarget | None],
        sampling: GenerationParams,
    ) -> list[Generation]:
        padded = self.tokenizer.pad(
            {"input_ids": prompt_ids}, padding=True, return_tensors="pt", return_attention_mask=True
        )
        input_ids = padded["input_ids"].to(self.device)
        attention_mask = padded["attention_mask"].to(self.device)
        prompt_length = input_ids.shape[1]
        # A fresh config: the model's own defaults (often sampling) must not leak in.
        config = GenerationConfig(
            max_new_tokens=max(limits),
            do_sample=not sampling.greedy,
            eos_token_id=self.stop_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            bos_token_id=self.tokenizer.bos_token_id,
        )
        if self.prompt_lookup_tokens:
            config.prompt_lookup_num_tokens = self.prompt_lookup_tokens
        if not sampling.greedy:
            config.temperature = sampling.temperature
            config.top_p = sampling.top_p
            if sampling.seed is not None:
                torch.manual_seed(sampling.seed)
        processors = LogitsProcessorList()
        if self.trie is not None and any(t is not None for t in targets):
            processors.append(
                CopyConstraintProcessor(
                    self.trie, targets, prompt_length, self.stop_ids, self.tokenizer
                )
            )
        extra: dict[str, Any] = {}
        with torch.inference_mode():
            if self.prefix_lm and prompt_length > 1:
                extra["past_key_values"] = prefill(self.model, input_ids, attention_mask)
            output = self.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                generation_config=config,
                **extra,
                logits_processor=processors,
                stopping_criteria=StoppingCriteriaList(
                    [_RowLimits(limits, prompt_length, self.device)]
                ),
            )
        new_tokens = output[:, prompt_length:].tolist()
        return [
            self._result(ids, len(prompt), limit)
            for ids, prompt, limit in zip(new_tokens, prompt_ids, limits, strict=True)
        ]

    def _result(self, ids: list[int], prompt_tokens: int, limit: int) -> Generation:
        ids = ids[:limit]
        stop = next((k for k, t in enumerate(ids) if t in self.stop_ids), None)
        if stop is not None:
            text = self.tokenizer.decode(ids[:stop], skip_special_tokens=True)
            return Generation(text, prompt_tokens, stop + 1, "stop")
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        return Generation(text, prompt_tokens, len(ids), "length")
