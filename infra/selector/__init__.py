"""The contrastive selector's adapters: the transformer encoder, the FAISS index, training,
the saved artifact, and the benchmark splits it learns from.

Importing this package needs torch, transformers and faiss (the ``llm`` and ``selector``
extras); the pure logic is in :mod:`bioner.selector`.
"""
