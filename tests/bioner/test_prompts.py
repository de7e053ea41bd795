"""The versioned symbolic-tagging prompts."""

from __future__ import annotations

import pytest

from bioner.labels import SCHEMAS, EntitySchema, EntityType
from bioner.prompts import PROMPT_VERSION, build_prompt


def test_english_layout_instruction_passage_types_rule():
    prompt = build_prompt("Famotidine-associated delirium.", SCHEMAS["bc5cdr"])
    assert prompt == (
        "You are a biomedical named entity recognition system. "
        "Find every entity of the types listed below in the passage.\n"
        "\n"
        "Passage: Famotidine-associated delirium.\n"
        "\n"
        "Entity types:\n"
        "- Chemical: chemicals and drugs, including their abbreviations\n"
        "- Disease: diseases, disorders, syndromes, and their abnormal signs\n"
        "\n"
        "For each entity type that occurs in the passage, write one line: the type name, a colon "
        "and a space, then the passage copied exactly with every entity of that type enclosed in "
        "square brackets [ ]. Write the lines in the order of the types above and leave out types "
        "without entities. If the passage contains no entity, write only: None"
    )


def test_chinese_schema_gets_chinese_instruction_and_headers():
    prompt = build_prompt("患者有高血压病史。", SCHEMAS["cmeee"])
    assert prompt.startswith("你是一个医学命名实体识别系统。")
    assert "文本：患者有高血压病史。\n" in prompt
    assert "- 疾病: 疾病、综合征、中毒、损伤等\n" in prompt
    assert prompt.index("- 疾病:") < prompt.index("- 微生物类:")  # schema order


def test_passage_braces_are_not_format_fields():
    assert "Passage: {x} and {0}\n" in build_prompt("{x} and {0}", SCHEMAS["ncbi"])


def test_rejects_multiline_passages_and_unknown_languages():
    with pytest.raises(ValueError, match="single line"):
        build_prompt("one\ntwo", SCHEMAS["ncbi"])
    french = EntitySchema("fr", "fr", (EntityType("Disease", "Maladie", "maladies"),))
    with pytest.raises(ValueError, match="no prompt for language 'fr'"):
        build_prompt("texte", french)


def test_version_is_recorded_constant():
    assert PROMPT_VERSION == "symbolic-v1"


@pytest.mark.parametrize("name", ["ncbi", "bc5cdr", "jnlpba", "cmeee", "general", "general-zh"])
def test_every_required_schema_has_a_prompt_with_all_its_types(name):
    schema = SCHEMAS[name]
    prompt = build_prompt("x", schema)
    assert all(f"- {t.header}: {t.definition}\n" in prompt for t in schema.types)


def test_general_schema_follows_the_passage_language():
    from bioner.labels import schema_for

    assert schema_for("general", "zh").name == "general-zh"
    assert schema_for("general", "en").name == "general"
    assert schema_for("general", None).name == "general"
    assert schema_for("ncbi", "zh").name == "ncbi"  # no counterpart: as asked
    # The same labels where both languages have the type; Chinese adds its clinical types.
    shared = set(schema_for("general", "zh").labels) & set(SCHEMAS["general"].labels)
    assert shared == {"Chemical", "Disease", "Species", "Anatomy"}
    assert schema_for("general[Gene,Disease]", "zh").name == "general-zh[Disease]"
    assert build_prompt("患者。", schema_for("general", "zh")).startswith("你是")


def test_compact_prompt_gives_type_names_and_passage_only():
    from bioner.prompts import COMPACT_PROMPT_VERSION

    en = build_prompt("Famotidine-associated delirium.", SCHEMAS["bc5cdr"], COMPACT_PROMPT_VERSION)
    assert en == "Types: Chemical, Disease\nPassage: Famotidine-associated delirium."
    zh = build_prompt("乳腺癌。", SCHEMAS["cmeee"], COMPACT_PROMPT_VERSION)
    assert zh.startswith("类型：疾病, ") and zh.endswith("\n文本：乳腺癌。")
    assert COMPACT_PROMPT_VERSION != PROMPT_VERSION


def test_unknown_prompt_version_is_refused():
    with pytest.raises(ValueError, match="unknown prompt version 'v0'; known: symbolic-v1"):
        build_prompt("x", SCHEMAS["ncbi"], "v0")
