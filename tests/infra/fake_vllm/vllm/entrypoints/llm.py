"""Stand-in for ``vllm.LLM``: records how it is built and called, answers from a script.

The keyword-only constructor arguments are those of ``LLM.__init__`` and of the ``EngineArgs``
fields it forwards (vLLM 0.33); anything else is a TypeError, as vLLM's EngineArgs would raise.
The tokenizer is the model folder's own (transformers), so prompts and answers are real token
ids. ``LLM.answers`` maps a piece of prompt text to the answer given for prompts containing it
(``"None"`` otherwise); an answer is cut at ``max_tokens`` ("length"), else it ends with the
end-of-sequence token ("stop", counted among the output tokens as vLLM does). With structured
outputs, a scripted answer outside the regex is an error: vLLM could not have produced it.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

from transformers import AutoTokenizer

from vllm.lora.request import LoRARequest
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import SamplingParams


class LLM:
    instances: ClassVar[list[LLM]] = []
    answers: ClassVar[dict[str, str]] = {}
    #: Forces this finish reason on every output (to test "abort"/"error").
    finish_reason_override: ClassVar[str | None] = None

    def __init__(
        self,
        model: str,
        *,
        tokenizer: str | None = None,
        trust_remote_code: bool = False,
        tensor_parallel_size: int = 1,
        dtype: str = "auto",
        quantization: str | None = None,
        seed: int = 0,
        gpu_memory_utilization: float = 0.92,
        enforce_eager: bool = False,
        structured_outputs_config: dict[str, Any] | None = None,
        # EngineArgs fields, passed through **kwargs by the real LLM:
        max_model_len: int | None = None,
        enable_prefix_caching: bool | None = None,
        enable_lora: bool = False,
        max_loras: int = 1,
        max_lora_rank: int = 16,
        speculative_config: dict[str, Any] | None = None,
        disable_log_stats: bool = True,
    ) -> None:
        path = Path(model)
        if not (path / "config.json").is_file():
            raise OSError(f"fake vLLM: {model} is not a local model folder")
        self.model = model
        self.kwargs = {
            "tokenizer": tokenizer,
            "tensor_parallel_size": tensor_parallel_size,
            "dtype": dtype,
            "seed": seed,
            "gpu_memory_utilization": gpu_memory_utilization,
            "enforce_eager": enforce_eager,
            "max_model_len": max_model_len,
            "enable_prefix_caching": enable_prefix_caching,
            "enable_lora": enable_lora,
            "max_loras": max_loras,
            "max_lora_rank": max_lora_rank,
            "speculative_config": speculative_config,
            "structured_outputs_config": structured_outputs_config,
        }
        if speculative_config is not None and speculative_config.get("method") not in (
            "ngram",
            "ngram_gpu",
            "eagle",
            "eagle3",
            "medusa",
            "mlp_speculator",
            "draft_model",
            "suffix",
        ):
            raise ValueError(f"fake vLLM: unknown speculative method in {speculative_config}")
        if max_lora_rank not in (1, 8, 16, 32, 64, 128, 256, 320, 512):
            raise ValueError(f"fake vLLM: max_lora_rank {max_lora_rank} is not allowed")
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        self.model_config = SimpleNamespace(
            model=model, max_model_len=max_model_len or config.get("max_position_embeddings")
        )
        self._tokenizer = AutoTokenizer.from_pretrained(tokenizer or model, local_files_only=True)
        self._ids = itertools.count()
        self.calls: list[dict[str, Any]] = []
        LLM.instances.append(self)

    def get_tokenizer(self) -> Any:
        return self._tokenizer

    def generate(
        self,
        prompts: Any,
        sampling_params: SamplingParams | Sequence[SamplingParams] | None = None,
        *,
        use_tqdm: bool | Callable[..., Any] = True,
        lora_request: Sequence[LoRARequest] | LoRARequest | None = None,
        priority: int | Sequence[int] | None = None,
        tokenization_kwargs: dict[str, Any] | None = None,
        mm_processor_kwargs: dict[str, Any] | None = None,
    ) -> list[RequestOutput]:
        batch = list(prompts) if isinstance(prompts, list | tuple) else [prompts]
        if sampling_params is None:
            params = [SamplingParams()] * len(batch)
        elif isinstance(sampling_params, SamplingParams):
            params = [sampling_params] * len(batch)
        else:
            params = list(sampling_params)
            if len(params) != len(batch):
                raise ValueError("The lengths of prompts and sampling_params must be the same.")
        if lora_request is not None and not isinstance(lora_request, LoRARequest | list):
            raise TypeError("lora_request must be a LoRARequest")
        if lora_request is not None and not self.kwargs["enable_lora"]:
            raise ValueError("LoRA is not enabled!")
        self.calls.append(
            {
                "prompts": batch,
                "sampling_params": params,
                "lora_request": lora_request,
                "use_tqdm": use_tqdm,
            }
        )
        return [self._answer(p, sp) for p, sp in zip(batch, params, strict=True)]

    def _answer(self, prompt: Any, params: SamplingParams) -> RequestOutput:
        tok = self._tokenizer
        if isinstance(prompt, dict):
            ids = list(prompt["prompt_token_ids"])
        else:
            ids = tok(prompt)["input_ids"]
        limit = self.model_config.max_model_len
        if limit is not None and len(ids) >= limit:
            raise ValueError(f"prompt of {len(ids)} tokens is longer than {limit}")
        text = tok.decode(ids)
        answer = next((a for key, a in self.answers.items() if key in text), "None")
        so = params.structured_outputs
        if so is not None and so.regex is not None and not re.fullmatch(so.regex, answer):
            raise AssertionError(f"fake vLLM: scripted answer {answer!r} is outside the regex")
        out_ids = [*tok.encode(answer, add_special_tokens=False), tok.eos_token_id]
        max_tokens = params.max_tokens if params.max_tokens is not None else 1 << 30
        if len(out_ids) > max_tokens:
            out_ids, reason = out_ids[:max_tokens], "length"
        else:
            reason = "stop"
        reason = self.finish_reason_override or reason
        completion = CompletionOutput(
            index=0,
            text=tok.decode(out_ids, skip_special_tokens=params.skip_special_tokens),
            token_ids=out_ids,
            cumulative_logprob=None,
            logprobs=None,
            finish_reason=reason,
        )
        return RequestOutput(
            request_id=str(next(self._ids)),
            prompt=None,
            prompt_token_ids=ids,
            prompt_logprobs=None,
            outputs=[completion],
            finished=True,
        )
