"""Fine-tuning a tagger: the training data folder, supervised fine-tuning, superfiltering.

:mod:`infra.training.data` reads the shared benchmark data into instruction examples,
:mod:`infra.training.sft` fine-tunes a local causal LM on them, and
:mod:`infra.training.superfilter` scores examples with a small model for data selection.
"""
