"""The GPU worker's engine: a local causal LM served in-process by vLLM's offline ``LLM``.

One :class:`VLLMEngine` per worker: the ``vllm.LLM`` (weights, KV cache, CUDA graphs) is built
once in the constructor and reused for every batch. Each :meth:`VLLMEngine.generate` call is one
``LLM.generate`` call with the whole list of prompts and one ``SamplingParams`` per prompt;
vLLM schedules them itself (continuous batching), so there is no batching here. Prefix caching
is always on, since every prompt of a shard shares the instruction. n-gram speculative
decoding (drafts copied from the prompt, which the symbolic answer mostly repeats) is on by
default (:data:`DEFAULT_NGRAM_TOKENS`); options: one LoRA
adapter (a local folder), tensor parallelism.

The copy constraint is on by default: a prompt with a :class:`SymbolicTarget` gets vLLM's
structured outputs with :func:`bioner.codec.grammar.symbolic_ebnf` (or ``symbolic_regex``),
so its answer is always an exact copy of the passage with tags (the backend masks tokens byte
by byte, whatever the tokenizer's boundaries).

Models and adapters are local folders; nothing is downloaded. vLLM is imported when an engine is
created, so this module imports on machines without it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bioner.codec.grammar import EBNF_VERSION, GRAMMAR_VERSION, symbolic_ebnf, symbolic_regex
from bioner.constraint import SymbolicTarget
from bioner.generation import Generation, GenerationParams
from infra.llm.local import (
    ModelFolderError,
    check_decoding,
    check_model_dir,
    model_id_of,
    prompt_version,
)
from infra.llm.prefixlm import ATTENTION_KEY

#: n-gram (prompt-lookup) speculation, on by default: a symbolic answer copies its passage, so
#: the tokens after the answer's last n-gram in the prompt are the likely next ones; vLLM
#: drafts up to this many and verifies them in one step, under the structured-output grammar
#: like every other token (greedy answers do not change). The n-gram may be a single token, so
#: drafting resumes one token after a bracket, which the passage does not hold.
DEFAULT_NGRAM_TOKENS = 8
DEFAULT_NGRAM_LOOKUP = (1, 4)

log = logging.getLogger(__name__)

_INSTALL_HINT = (
    "the vllm engine needs vLLM, which only the GPU worker image installs: "
    "pip install -r requirements/gpu-worker.txt (or pip install -e .[gpu])"
)
#: LoRA ranks vLLM accepts for ``max_lora_rank``.
_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)
#: Forms of the copy constraint for structured outputs: the EBNF grammar (default: one copy
#: shared by all header lines, compiles in milliseconds) or the regex (for backends without
#: grammars; its size grows with the number of types).
_FORMS = {"grammar": EBNF_VERSION, "regex": GRAMMAR_VERSION}
_ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


@dataclass(frozen=True, slots=True)
class _VLLM:
    """The vLLM names this adapter uses, imported on first use."""

    LLM: Any
    SamplingParams: Any
    StructuredOutputsParams: Any
    LoRARequest: Any


def _import_vllm() -> _VLLM:
    try:
        from vllm import LLM, SamplingParams
        from vllm.lora.request import LoRARequest
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError as e:
        raise ImportError(f"{_INSTALL_HINT} ({e.name or e} is missing)") from e
    return _VLLM(LLM, SamplingParams, StructuredOutputsParams, LoRARequest)


@dataclass(frozen=True, slots=True)
class LoRAAdapter:
    """A local PEFT adapter folder: its path, name, rank and content digest."""

    path: Path
    name: str
    rank: int
    digest: str

    @classmethod
    def load(cls, adapter_dir: str | Path) -> LoRAAdapter:
        """Check ``adapter_dir`` (``adapter_config.json`` and weights) and digest it."""
        path = Path(adapter_dir)
        config_file = path / "adapter_config.json"
        if not path.is_dir():
            raise ModelFolderError(f"{path}: no such adapter folder")
        if not config_file.is_file():
            raise ModelFolderError(f"{path}: not a LoRA adapter (no adapter_config.json)")
        weights = [path / w for w in _ADAPTER_WEIGHTS if (path / w).is_file()]
        if not weights:
            raise ModelFolderError(f"{path}: no adapter weights ({' or '.join(_ADAPTER_WEIGHTS)})")
        config = json.loads(config_file.read_text(encoding="utf-8"))
        rank = int(config.get("r", 8))
        # Adapters are small: the digest covers their whole content.
        digest = hashlib.blake2b(digest_size=6)
        for f in (config_file, *weights):
            digest.update(f.name.encode())
            with open(f, "rb") as fh:
                while block := fh.read(1 << 20):
                    digest.update(block)
        return cls(path.resolve(), path.resolve().name, rank, digest.hexdigest())

    @property
    def id(self) -> str:
        return f"{self.name}@{self.digest}"


#: Architectures of this project's small models that vLLM has no implementation of.
_NOT_IN_VLLM = {"BertLMHeadModel": "a BERT decoder (bioner init-model --from-encoder)"}


def _check_architecture(model_dir: Path) -> None:
    """Refuse, before vLLM starts, a model folder whose architecture vLLM cannot run."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelFolderError(f"{model_dir / 'config.json'}: unreadable ({e})") from None
    for name in config.get("architectures") or ():
        if name in _NOT_IN_VLLM:
            raise ModelFolderError(
                f"{model_dir}: {_NOT_IN_VLLM[name]}, which vLLM does not run: "
                "use the transformers engine (--engine transformers)"
            )
    if config.get(ATTENTION_KEY, "causal") != "causal":
        raise ModelFolderError(
            f"{model_dir}: a prefix-LM ({ATTENTION_KEY}={config[ATTENTION_KEY]!r} in its "
            "config.json), which vLLM would run as a causal LM: use the transformers engine "
            "(--engine transformers)"
        )


class VLLMEngine:
    """A local model run by vLLM behind the :class:`bioner.generation.Engine` protocol.

    ``settings`` lists what changes outputs besides the model (the generation cache keys on
    ``model_id`` and ``settings``); speculative decoding is left out, as it does not change
    what greedy decoding returns.
    """

    def __init__(
        self,
        model_dir: str | Path,
        *,
        constrained: bool = True,
        constraint_form: str = "grammar",
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        lora_dir: str | Path | None = None,
        speculative_ngram_tokens: int | None = DEFAULT_NGRAM_TOKENS,
        ngram_lookup: tuple[int, int] = DEFAULT_NGRAM_LOOKUP,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        seed: int = 0,
        enforce_eager: bool = False,
        use_tqdm: bool = False,
    ) -> None:
        if tensor_parallel_size < 1:
            raise ValueError("tensor_parallel_size must be >= 1")
        if speculative_ngram_tokens is not None and speculative_ngram_tokens < 1:
            raise ValueError("speculative_ngram_tokens must be >= 1 (or None: off)")
        lookup_min, lookup_max = ngram_lookup
        if not 1 <= lookup_min <= lookup_max:
            raise ValueError(
                f"ngram_lookup must be (min, max) with 1 <= min <= max: {ngram_lookup}"
            )
        if constraint_form not in _FORMS:
            raise ValueError(f"constraint_form must be one of {', '.join(_FORMS)}")
        self.constraint_form = constraint_form
        self.model_dir = check_model_dir(model_dir)
        check_decoding(self.model_dir, constrained)
        _check_architecture(self.model_dir)
        self.adapter = LoRAAdapter.load(lora_dir) if lora_dir is not None else None
        self.constrained = constrained
        self.use_tqdm = use_tqdm
        base_id = model_id_of(self.model_dir)
        self.model_id = f"{base_id}+lora:{self.adapter.id}" if self.adapter else base_id
        self.prompt_version = prompt_version(self.model_dir)
        self.settings: dict[str, str] = {
            "backend": "vllm",
            "constrained": _FORMS[constraint_form] if constrained else "off",
            "dtype": dtype,
            "lora": self.adapter.id if self.adapter else "",
        }
        self._vllm = _import_vllm()

        kwargs: dict[str, Any] = {
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "seed": seed,
            "gpu_memory_utilization": gpu_memory_utilization,
            "enforce_eager": enforce_eager,
            "enable_prefix_caching": True,
        }
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        if speculative_ngram_tokens is not None:
            kwargs["speculative_config"] = {
                "method": "ngram",
                "num_speculative_tokens": speculative_ngram_tokens,
                "prompt_lookup_min": lookup_min,
                "prompt_lookup_max": lookup_max,
            }
        self.lora_request: Any = None
        if self.adapter is not None:
            kwargs["enable_lora"] = True
            kwargs["max_loras"] = 1
            kwargs["max_lora_rank"] = next((r for r in _LORA_RANKS if r >= self.adapter.rank), 512)
            self.lora_request = self._vllm.LoRARequest(
                lora_name=self.adapter.name, lora_int_id=1, lora_path=str(self.adapter.path)
            )
        # The tokenizer is the folder's own; vLLM reads nothing but this folder.
        self.llm = self._vllm.LLM(model=str(self.model_dir), **kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        model_config = getattr(self.llm, "model_config", None)
        self.max_context: int | None = getattr(model_config, "max_model_len", None)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token count of each text under this model's tokenizer, special tokens excluded."""
        return [len(self.tokenizer.encode(t, add_special_tokens=False)) for t in texts]

    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids of a prompt as the model sees it: chat template if it has one, else BOS."""
        if getattr(self.tokenizer, "chat_template", None):
            text = self.tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        return list(self.tokenizer.encode(prompt, add_special_tokens=True))

    def generate(
        self,
        prompts: Sequence[str],
        params: GenerationParams | Sequence[GenerationParams],
        targets: Sequence[SymbolicTarget | None] | None = None,
    ) -> list[Generation]:
        """One generation per prompt, in input order, from one ``LLM.generate`` call."""
        per_prompt = (
            [params] * len(prompts) if isinstance(params, GenerationParams) else list(params)
        )
        if len(per_prompt) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(per_prompt)} parameter sets")
        per_target = [None] * len(prompts) if targets is None else list(targets)
        if len(per_target) != len(prompts):
            raise ValueError(f"{len(prompts)} prompts but {len(per_target)} targets")
        if not prompts:
            return []
        encoded = [self.encode_prompt(p) for p in prompts]
        sampling = [
            self._sampling(ids, p, t)
            for ids, p, t in zip(encoded, per_prompt, per_target, strict=True)
        ]
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in encoded],
            sampling,
            use_tqdm=self.use_tqdm,
            lora_request=self.lora_request,
        )
        if len(outputs) != len(prompts):
            raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(prompts)} prompts")
        return [self._result(out, ids) for out, ids in zip(outputs, encoded, strict=True)]

    def _sampling(
        self, prompt_ids: list[int], params: GenerationParams, target: SymbolicTarget | None
    ) -> Any:
        structured = None
        if self.constrained and target is not None:
            structured = (
                self._vllm.StructuredOutputsParams(grammar=symbolic_ebnf(target))
                if self.constraint_form == "grammar"
                else self._vllm.StructuredOutputsParams(regex=symbolic_regex(target))
            )
        sampling: dict[str, Any] = {
            "n": 1,
            "max_tokens": self._limit(prompt_ids, params),
            "temperature": params.temperature,
            "top_p": params.top_p if not params.greedy else 1.0,
            "structured_outputs": structured,
        }
        if not params.greedy and params.seed is not None:
            sampling["seed"] = params.seed
        return self._vllm.SamplingParams(**sampling)

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

    @staticmethod
    def _result(output: Any, prompt_ids: list[int]) -> Generation:
        completion = output.outputs[0]
        reason = completion.finish_reason
        if reason not in ("stop", "length"):
            # "abort"/"error": the request failed; never record it as an answer.
            raise RuntimeError(f"vLLM request {output.request_id} finished with {reason!r}")
        prompt_tokens = (
            len(output.prompt_token_ids) if output.prompt_token_ids is not None else len(prompt_ids)
        )
        return Generation(completion.text, prompt_tokens, len(completion.token_ids), reason)
