"""A tiny, UNTRAINED causal LM for running the pipeline end to end without real weights.

It has a real byte-level BPE tokenizer (so every character, Chinese included, round-trips) and
a real Llama architecture with random weights: its outputs are noise, so entities from it are
meaningless. It exists so that tests and a first ``bioner run`` exercise every stage on CPU in
seconds. The folder carries a ``bioner-model.json`` marker with ``"trained": false``, which the
command line turns into a visible warning.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

try:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"the tiny model needs torch, tokenizers and transformers ({e.name} is missing): "
        "install the llm extra: pip install -e .[llm]"
    ) from e

from bioner.labels import SCHEMAS
from bioner.prompts import build_prompt
from infra.llm.local import MARKER, TINY_VERSION

PAD, BOS, EOS = "<pad>", "<s>", "</s>"

# Always in the tokenizer's training text, so the symbols of the format are cheap tokens.
_BASE_CORPUS = (
    "Disease: The patient had [breast cancer] and [diabetes].\nNone\n",
    "Chemical: [Famotidine]-associated delirium.\nDisease: Famotidine-associated [delirium].\n",
    "疾病: 患者有[高血压]病史。\n药物: 给予[阿司匹林]治疗。\n临床表现: 出现[头痛]、[发热]。\n",
)


def _corpus(texts: Iterable[str]) -> list[str]:
    # Every prompt of every schema (English and Chinese instructions, headers, definitions).
    prompts = [build_prompt("The passage.", schema) for schema in SCHEMAS.values()]
    return [*_BASE_CORPUS, *prompts, *texts]


def _train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, tokenizer.token_to_id(BOS))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD
    )


def build_tiny_model(
    out_dir: str | Path,
    corpus_texts: Iterable[str] = (),
    seed: int = 0,
    *,
    vocab_size: int = 2048,
    hidden_size: int = 64,
    layers: int = 2,
    heads: int = 4,
    max_positions: int = 4096,
    initializer_range: float = 0.3,
) -> Path:
    """Save a tokenizer trained on ``corpus_texts`` and a random tiny Llama to ``out_dir``.

    The folder appears complete or not at all (built aside, then renamed), so a cache of it
    is safe against interrupted builds. Returns ``out_dir``.
    """
    tokenizer = _train_tokenizer(_corpus(corpus_texts), vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=max_positions,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        # With the usual 0.02 a random model repeats one token forever; 0.3 (the default) gives
        # varied noise, which exercises the decoder's issue paths the way a poor model would.
        # A model that is going to be trained starts from 0.02.
        initializer_range=initializer_range,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    record = {
        "trained": False,
        "kind": "tiny-random-llama",
        "version": TINY_VERSION,
        "seed": seed,
        "warning": "UNTRAINED: random weights, outputs are meaningless",
    }
    return save_model_folder(out_dir, model, tokenizer, record)


def save_model_folder(out_dir: str | Path, model: Any, tokenizer: Any, record: dict) -> Path:
    """Save ``model``, ``tokenizer`` and the marker ``record`` to ``out_dir``, all or nothing.

    The folder is built aside and renamed over any previous one, so a cache of it is safe
    against interrupted builds. Returns ``out_dir``.
    """
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / MARKER).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out
