"""The tiny untrained model folder: real tokenizer, random Llama, loud marker."""

from __future__ import annotations

import json

from transformers import AutoConfig, AutoTokenizer

from infra.llm.local import MARKER, check_model_dir, is_untrained, model_id_of
from infra.llm.tiny import build_tiny_model


def test_folder_is_a_loadable_untrained_model(tiny_model):
    assert check_model_dir(tiny_model) == tiny_model
    assert is_untrained(tiny_model)
    assert json.loads((tiny_model / MARKER).read_text())["trained"] is False
    config = AutoConfig.from_pretrained(tiny_model, local_files_only=True)
    assert (config.model_type, config.hidden_size, config.num_hidden_layers) == ("llama", 64, 2)


def test_tokenizer_round_trips_both_languages_and_the_format_symbols(tiny_model):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model, local_files_only=True)
    text = "Disease: [乳腺癌] and [BRCA1]：\nNone ß→€ 😀"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert tokenizer(text)["input_ids"][0] == tokenizer.bos_token_id
    for symbol in ("[", "]", ":", "\n"):
        assert len(tokenizer(symbol, add_special_tokens=False)["input_ids"]) == 1
    specials = {tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}
    assert len(specials) == 3 and None not in specials


def test_same_seed_same_model_other_seed_other_model(tiny_model, tmp_path):
    corpus = ["Famotidine-associated delirium.", "患者有高血压病史。", "Disease: [cancer]"]
    again = build_tiny_model(tmp_path / "again", corpus, seed=0)
    other = build_tiny_model(tmp_path / "other", corpus, seed=1)
    assert model_id_of(again).split("@")[1] == model_id_of(tiny_model).split("@")[1]
    assert model_id_of(other).split("@")[1] != model_id_of(tiny_model).split("@")[1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "other"]  # no staging left
