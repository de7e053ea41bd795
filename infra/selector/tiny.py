"""A tiny, randomly initialised BERT encoder folder, for tests and smoke runs of the selector.

A WordPiece tokenizer trained on the given texts (fast, with offsets) and a two-layer BERT
with random weights: seconds to train on a toy set, meaningless before that.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tiny_encoder(
    out_dir: str | Path,
    texts: Iterable[str],
    *,
    vocab_size: int = 512,
    hidden_size: int = 32,
    layers: int = 2,
    heads: int = 2,
    seed: int = 0,
) -> Path:
    """Save a tokenizer trained on ``texts`` and a random tiny BERT to ``out_dir``."""
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=_SPECIAL, show_progress=False
    )
    tok.train_from_iterator([*texts, "<< >> |"], trainer)
    cls_id, sep_id = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    fast.save_pretrained(str(out))
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=256,
    )
    BertModel(config).save_pretrained(str(out))
    return out


#: The toy corpus of :func:`toy_documents`: a disease or a chemical between fixed contexts.
TOY_ENTITIES = {
    "Disease": ("breast cancer", "diabetes", "renal failure", "asthma", "lung tumour", "gout"),
    "Chemical": ("aspirin", "sodium chloride", "heparin", "nitric oxide", "lithium"),
}
_TOY_LEFT = ("the patient had", "we studied", "a case of", "children given", "risk from")
_TOY_RIGHT = ("today .", "in the clinic .", "was noted .", "and fever .", "for years .")


def toy_documents(n: int, seed: int = 0, prefix: str = "toy") -> list[Any]:
    """``n`` one-sentence documents, each with one gold entity between fixed contexts."""
    from bioner.records import AnnotatedDocument, Document, Span

    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = rng.choice(sorted(TOY_ENTITIES))
        left, mention, right = (
            rng.choice(_TOY_LEFT),
            rng.choice(TOY_ENTITIES[label]),
            rng.choice(_TOY_RIGHT),
        )
        text = f"{left} {mention} {right}"
        start = len(left) + 1
        span = Span(start, start + len(mention), label)
        out.append(AnnotatedDocument(Document(f"{prefix}{seed}-{i}", text), (span,)))
    return out
