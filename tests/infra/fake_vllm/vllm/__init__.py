"""Stand-in for vLLM's top-level names (``vllm.LLM``, ``vllm.SamplingParams``, outputs)."""

from vllm.entrypoints.llm import LLM
from vllm.outputs import CompletionOutput, RequestOutput
from vllm.sampling_params import SamplingParams

__fake__ = True
__version__ = "0.33.0"
__all__ = ["LLM", "CompletionOutput", "RequestOutput", "SamplingParams"]
