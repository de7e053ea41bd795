"""Versioned prompts of the symbolic tagging format: instruction, passage, types, output rule.

The layout follows the paper: an instruction, the passage, the entity types of the schema with
their one-line definitions, then the output rule (one line per type present, ``Header: `` and
the passage copied with ``[`` ``]`` around each entity, ``None`` when there is nothing). The text
is plain; an engine wraps it in the model's chat template when the tokenizer has one.

Any change to a template's wording changes what a model was trained on: bump
:data:`PROMPT_VERSION`, which every generation row records.

A second, compact prompt (:data:`COMPACT_PROMPT_VERSION`) gives only the type names and the
passage, for small models trained by this project: the instruction is the same for every
example, so a model that learns the task from examples gains nothing from it, and on a CPU its
~200 tokens cost most of training and generation time. The answer format is the same. The
prompt a model was trained with is part of the model (its ``bioner-model.json``), and an engine
prompts it that way.
"""

from __future__ import annotations

from bioner.labels import EntitySchema

PROMPT_VERSION = "symbolic-v1"
#: The compact prompt: ``Types: A, B`` then ``Passage: ...`` (see the module doc).
COMPACT_PROMPT_VERSION = "symbolic-compact-v1"
PROMPT_VERSIONS = (PROMPT_VERSION, COMPACT_PROMPT_VERSION)

_TEMPLATES = {
    "en": (
        "You are a biomedical named entity recognition system. "
        "Find every entity of the types listed below in the passage.\n"
        "\n"
        "Passage: {passage}\n"
        "\n"
        "Entity types:\n"
        "{types}\n"
        "\n"
        "For each entity type that occurs in the passage, write one line: the type name, a colon "
        "and a space, then the passage copied exactly with every entity of that type enclosed in "
        "square brackets [ ]. Write the lines in the order of the types above and leave out types "
        "without entities. If the passage contains no entity, write only: None"
    ),
    "zh": (
        "你是一个医学命名实体识别系统。请找出下面文本中属于下列类型的所有实体。\n"
        "\n"
        "文本：{passage}\n"
        "\n"
        "实体类型：\n"
        "{types}\n"
        "\n"
        "对于文本中出现的每一种实体类型，输出一行：先写类型名称、英文冒号和一个空格，"
        "再原样复制整段文本，并用方括号[ ]括出该类型的每一个实体。"
        "按上面的类型顺序输出，没有实体的类型不输出。如果文本中没有任何实体，只输出：None"
    ),
}

_COMPACT_TEMPLATES = {
    "en": "Types: {types}\nPassage: {passage}",
    "zh": "类型：{types}\n文本：{passage}",
}

#: Languages with a prompt template.
LANGUAGES = tuple(_TEMPLATES)


def check_prompt_version(version: str) -> str:
    """``version`` if it is a known prompt version, else a ValueError naming the known ones."""
    if version not in PROMPT_VERSIONS:
        raise ValueError(f"unknown prompt version {version!r}; known: {', '.join(PROMPT_VERSIONS)}")
    return version


def build_prompt(passage_text: str, schema: EntitySchema, version: str = PROMPT_VERSION) -> str:
    """The plain-text symbolic-tagging prompt for one passage, in the schema's language.

    ``version`` is one of :data:`PROMPT_VERSIONS`: the instruction prompt (default) or the
    compact one.
    """
    check_prompt_version(version)
    try:
        template = _TEMPLATES[schema.language]
    except KeyError:
        raise ValueError(
            f"schema {schema.name}: no prompt for language {schema.language!r}; "
            f"known: {', '.join(LANGUAGES)}"
        ) from None
    if "\n" in passage_text or "\r" in passage_text:
        # The output is one line per type: a line break in the passage would split a copy.
        raise ValueError("a passage must be a single line; segment the document first")
    if version == COMPACT_PROMPT_VERSION:
        names = ", ".join(t.header for t in schema.types)
        return _COMPACT_TEMPLATES[schema.language].format(passage=passage_text, types=names)
    types = "\n".join(f"- {t.header}: {t.definition}" for t in schema.types)
    return template.format(passage=passage_text, types=types)
