"""Local model folders: checking one, naming it, and reading the bioner marker file.

A model folder holds what ``save_pretrained`` writes (``config.json``, weights, tokenizer) and,
when bioner made it, ``bioner-model.json`` saying how (for instance ``"trained": false`` for
the tiny random model). None of this needs torch, so a command can check a folder before it
pays for loading a model.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from bioner.labels import DATASETS, get_schema
from bioner.prompts import PROMPT_VERSION, check_prompt_version

MARKER = "bioner-model.json"
#: Version of :func:`infra.llm.tiny.build_tiny_model`'s recipe (part of cached folder names).
TINY_VERSION = 1
_WEIGHTS = ("*.safetensors", "*.bin")
#: The JSON files of a model folder that loading parses: a broken one is named before any run.
_JSON_FILES = ("config.json", "generation_config.json", "tokenizer_config.json", MARKER)
_HEAD_BYTES = 1 << 20


class ModelFolderError(FileNotFoundError):
    """A model folder that is missing or incomplete; the message says what to do."""


def check_model_dir(model_dir: str | Path) -> Path:
    """``model_dir`` as a Path if it looks like a saved causal LM, else ModelFolderError."""
    path = Path(model_dir)
    if not path.is_dir():
        raise ModelFolderError(f"{path}: no such model folder")
    if not (path / "config.json").is_file():
        raise ModelFolderError(f"{path}: not a model folder (no config.json)")
    if not any(path.glob(p) for p in _WEIGHTS):
        raise ModelFolderError(f"{path}: no weights (*.safetensors or *.bin)")
    for name in _JSON_FILES:
        if (path / name).is_file():
            _check_json(path / name)
    return path


def _check_json(file: Path) -> None:
    """ModelFolderError naming ``file`` and the JSON error where it is not a JSON object."""
    try:
        found = json.loads(file.read_bytes())
    except UnicodeDecodeError as e:
        raise ModelFolderError(f"{file}: not UTF-8 text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise ModelFolderError(f"{file}: not valid JSON ({e})") from None
    if not isinstance(found, dict):
        raise ModelFolderError(f"{file}: not a JSON object")


def marker(model_dir: str | Path) -> dict[str, Any]:
    """The bioner marker of a model folder; empty when the folder has none."""
    path = Path(model_dir) / MARKER
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def check_decoding(model_dir: str | Path, constrained: bool) -> None:
    """ValueError when a model trained with the constrained loss (marker ``training_loss``) is
    asked to decode unconstrained: it was never taught to copy the passage on its own."""
    if not constrained and marker(model_dir).get("training_loss") == "constrained":
        raise ValueError(
            f"{model_dir}: trained with the constrained loss, it copies only under "
            "copy-constrained decoding; run it constrained (without --no-constrain)"
        )


def prompt_version(model_dir: str | Path) -> str:
    """The prompt version a model folder was trained with (its marker's ``"prompt"``).

    Models without the field (any model not trained by bioner, and bioner's before the field)
    get the instruction prompt, :data:`bioner.prompts.PROMPT_VERSION`.
    """
    found = marker(model_dir).get("prompt", PROMPT_VERSION)
    try:
        return check_prompt_version(found)
    except ValueError as e:
        raise ModelFolderError(f"{Path(model_dir) / MARKER}: {e}") from None


def request_groups(model_dir: str | Path) -> dict[str, tuple[tuple[str, ...], ...]]:
    """How a model folder wants each schema asked (its marker's ``"requests"``: schema base
    name to groups of labels, :meth:`bioner.labels.EntitySchema.parts`); empty when it does
    not say, every schema then asked whole. ModelFolderError for a group naming an unknown
    schema or type."""
    found = marker(model_dir).get("requests") or {}
    groups: dict[str, tuple[tuple[str, ...], ...]] = {}
    for name, listed in found.items():
        try:
            schema = get_schema(name)
            for group in listed:
                schema.restrict(group)
        except ValueError as e:
            raise ModelFolderError(f"{Path(model_dir) / MARKER}: requests: {e}") from None
        groups[schema.base] = tuple(tuple(group) for group in listed)
    return groups


def trained_schemas(model_dir: str | Path) -> frozenset[str] | None:
    """The schemas (base names: ``general``, ``ncbi`` ...) a model bioner trained was taught,
    over every stage of its training (the marker's ``base_marker`` chain); None when the folder
    does not say (a model bioner did not train, or an untrained one).

    A stage's marker lists its ``schemas``; an older one's are its datasets' schemas (its
    ``examples_per_dataset``).
    """
    found: set[str] = set()
    known = False
    stage = marker(model_dir)
    while stage:
        if stage.get("trained") and str(stage.get("kind", "")).startswith("bioner-sft"):
            known = True
            if "schemas" in stage:
                found.update(stage["schemas"])
            else:
                datasets = stage.get("data", {}).get("examples_per_dataset", {})
                found.update(DATASETS[d].schema.base for d in datasets if d in DATASETS)
        stage = stage.get("base_marker") or {}
    return frozenset(found) if known else None


def check_trained_schema(model_dir: str | Path, schema: str) -> None:
    """ModelFolderError when a model bioner trained was never taught ``schema``: asking it
    would give junk (an untaught header is a guess). Its unified counterpart (``general-zh``
    of ``general``) counts as taught with it."""
    trained = trained_schemas(model_dir)
    base = get_schema(schema).base
    if trained is None or base in trained:
        return
    if base == "general-zh" and "general" in trained:
        return
    raise ModelFolderError(
        f"{model_dir}: trained for the schemas {', '.join(sorted(trained))}, not {base}; "
        "ask one of those (--schema), or train the model on it (bioner train-data --views "
        "unified for the unified schema)"
    )


def is_untrained(model_dir: str | Path) -> bool:
    """True when bioner's marker says the weights are random (outputs are meaningless)."""
    return marker(model_dir).get("trained") is False


def model_id_of(model_dir: str | Path) -> str:
    """A stable id for a local model: folder name and a digest of its config and weights.

    The digest reads the config, the tokenizer files and the first MiB and size of each weight
    file, so it is cheap for a large model yet differs between two fine-tunes of one base. The
    training lexicon (``lexicon.parquet``) is not part of it: it changes no generated text, so
    a new lexicon reuses the generations and only decodes again (``bioner.lexicon`` setting).
    """
    path = Path(model_dir)
    digest = hashlib.blake2b(digest_size=6)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", MARKER):
        f = path / name
        if f.is_file():
            digest.update(name.encode() + f.read_bytes())
    for f in sorted(p for pattern in _WEIGHTS for p in path.glob(pattern)):
        digest.update(f"{f.name}:{f.stat().st_size}".encode())
        with open(f, "rb") as fh:
            digest.update(fh.read(_HEAD_BYTES))
    return f"{path.resolve().name}@{digest.hexdigest()}"
