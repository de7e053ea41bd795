"""The generation cache key: what an answer depends on, hashed.

A generation is reused, never regenerated, when everything that decides its text is the same:
the passage text, the prompt built from it (schema and template), the model (its id carries a
digest of its weights and, for adapters, of the adapter), the prompt version, the decoding
parameters (token limit included: it decides where an answer is cut) and the engine settings
that change outputs (copy constraint on or off, dtype ...). All of it goes into one canonical
JSON document, hashed with BLAKE2b; :data:`KEY_VERSION` is part of it so that a change of this
recipe misses every old key instead of matching the wrong ones.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from bioner.generation import GenerationParams

#: Version of the key recipe below; bump it when what goes into a key changes.
KEY_VERSION = 1
#: Bytes of the BLAKE2b digest (hex keys are twice as long).
DIGEST_SIZE = 16


def canonical_json(value: Any) -> str:
    """``value`` as JSON with sorted keys and no spaces: equal values, equal strings."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def decoding_params(
    params: GenerationParams, schema: str, settings: Mapping[str, str]
) -> dict[str, Any]:
    """Everything besides passage, prompt and model that decides an answer, as plain JSON.

    ``params`` are the passage's own parameters (its token limit included), ``schema`` the
    entity schema's name, ``settings`` the engine's output-affecting settings
    (``engine.settings``), stringified.
    """
    return {
        "schema": schema,
        **dataclasses.asdict(params),
        "settings": {str(k): str(v) for k, v in settings.items()},
    }


def cache_key(
    passage_text: str,
    model_id: str,
    prompt_version: str,
    params: Mapping[str, Any],
    *,
    prompt: str = "",
) -> str:
    """The hex key of one generation request; equal keys, interchangeable answers.

    ``params`` is :func:`decoding_params`' result; ``prompt`` the prompt text the model is
    given, so that an edited template or type definition misses even if nobody bumped the
    prompt version.
    """
    document = {
        "key_version": KEY_VERSION,
        "text": passage_text,
        "prompt": prompt,
        "model_id": model_id,
        "prompt_version": prompt_version,
        "params": params,
    }
    data = canonical_json(document).encode("utf-8")
    return hashlib.blake2b(data, digest_size=DIGEST_SIZE).hexdigest()
