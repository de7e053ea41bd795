"""The contrastive entity selector's pure parts: samples, encoder inputs, scores, thresholds.

The encoder, the FAISS index and training live in :mod:`infra.selector`; this package decides
what is a positive or a negative, what the encoder reads, and how neighbours become a score
and a decision.
"""

from __future__ import annotations

from bioner.selector.markers import MarkedInput, marked_input
from bioner.selector.noise import NoiseRates, noisy_predictions
from bioner.selector.samples import (
    Candidate,
    Kind,
    Sample,
    boundary_shifts,
    candidate_in_passage,
    samples_of_document,
    subsample,
    tokens_of,
    training_samples,
)
from bioner.selector.scoring import METHODS, Reason, Threshold, best_threshold, knn_scores

__all__ = [
    "METHODS",
    "Candidate",
    "Kind",
    "MarkedInput",
    "NoiseRates",
    "Reason",
    "Sample",
    "Threshold",
    "best_threshold",
    "boundary_shifts",
    "candidate_in_passage",
    "knn_scores",
    "marked_input",
    "noisy_predictions",
    "samples_of_document",
    "subsample",
    "tokens_of",
    "training_samples",
]
