"""Model folders: which schemas a trained model was taught, and refusing the others."""

from __future__ import annotations

import json

import pytest

from infra.llm.local import (
    MARKER,
    ModelFolderError,
    check_trained_schema,
    request_groups,
    trained_schemas,
)


def _folder(tmp_path, marker):
    (tmp_path / MARKER).write_text(json.dumps(marker))
    return tmp_path


def test_the_schemas_of_every_stage_count(tmp_path):
    older = {"trained": True, "kind": "bioner-sft", "data": {"examples_per_dataset": {"ncbi": 3}}}
    newer = {"trained": True, "kind": "bioner-sft", "schemas": ["general"], "base_marker": older}
    model = _folder(tmp_path, newer)
    assert trained_schemas(model) == {"general", "ncbi"}
    check_trained_schema(model, "general")
    check_trained_schema(model, "general[Gene,Species]")
    check_trained_schema(model, "general-zh")  # the unified schema's counterpart
    with pytest.raises(ModelFolderError, match="trained for the schemas general, ncbi, not jnlpba"):
        check_trained_schema(model, "jnlpba")


def test_a_model_bioner_did_not_train_is_not_checked(tmp_path):
    assert trained_schemas(tmp_path) is None  # no marker at all
    check_trained_schema(tmp_path, "general")
    untrained = _folder(tmp_path, {"trained": False, "kind": "tiny"})
    assert trained_schemas(untrained) is None
    check_trained_schema(untrained, "general")


def test_a_model_trained_on_dataset_schemas_refuses_the_unified_one(tmp_path):
    per_dataset = {"ncbi": 1, "bc5cdr": 1, "jnlpba": 1, "copy": 5}
    model = _folder(
        tmp_path,
        {"trained": True, "kind": "bioner-sft", "data": {"examples_per_dataset": per_dataset}},
    )
    with pytest.raises(ModelFolderError, match="not general; ask one of those"):
        check_trained_schema(model, "general")


def test_a_model_says_how_it_wants_a_schema_asked(tmp_path):
    assert request_groups(tmp_path) == {}  # no marker: every schema asked whole
    model = _folder(tmp_path, {"requests": {"general": [["Disease"], ["Gene", "Cell"]]}})
    assert request_groups(model) == {"general": (("Disease",), ("Gene", "Cell"))}
    _folder(tmp_path, {"requests": {"general": [["Disease"], ["Protein X"]]}})
    with pytest.raises(
        ModelFolderError, match="requests: schema general: unknown type 'Protein X'"
    ):
        request_groups(model)
