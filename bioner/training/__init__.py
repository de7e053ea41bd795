"""Training data and data selection for fine-tuning a tagger: pure, no torch, no files.

:mod:`bioner.training.data` turns annotated documents into instruction examples (prompt,
response) with statistics; :mod:`bioner.training.filter` selects examples by their scores.
The file system, the models and the training loop live in :mod:`infra.training`.
"""
