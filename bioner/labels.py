"""Entity schemas and the per-dataset label maps, all in one place.

A schema fixes the entity types a tagger is asked for, their order in the symbolic output
(one line per type, schema order), the header written before ``:`` on each line, and a
one-line definition used by prompts. A dataset spec maps the raw labels of a source
format onto the canonical labels of its schema.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace


def _key(name: str) -> str:
    """Header/label matching key: case-, space-, dash- and underscore-insensitive."""
    return re.sub(r"[\s_\-/]+", "", name).casefold()


@dataclass(frozen=True, slots=True)
class EntityType:
    """One entity type: canonical ``label`` (tables, spans), output ``header``, definition."""

    label: str
    header: str
    definition: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class EntitySchema:
    """An ordered set of entity types for one language."""

    name: str
    language: str
    types: tuple[EntityType, ...]
    #: Schemas whose mentions are never mentions of this one: a tagger span whose string only
    #: their training lexicons know is dropped (:meth:`bioner.lexicon.Lexicon.foreign`).
    excludes: tuple[str, ...] = ()
    _by_key: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.types:
            raise ValueError(f"schema {self.name}: no entity types")
        by_key: dict[str, str] = {}
        for t in self.types:
            for name in (t.label, t.header, *t.aliases):
                k = _key(name)
                if k in by_key and by_key[k] != t.label:
                    raise ValueError(f"schema {self.name}: name {name!r} is ambiguous")
                by_key[k] = t.label
        object.__setattr__(self, "_by_key", by_key)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(t.label for t in self.types)

    def header_of(self, label: str) -> str:
        """The header written for ``label`` in the symbolic output."""
        for t in self.types:
            if t.label == label:
                return t.header
        raise KeyError(f"schema {self.name} has no type {label!r}")

    def resolve(self, name: str) -> str | None:
        """Canonical label for a header, label or alias as a model may write it, else None."""
        return self._by_key.get(_key(name))

    @property
    def base(self) -> str:
        """The name of the schema this one restricts (``general`` for ``general[Gene]``)."""
        return self.name.partition("[")[0]

    def restrict(self, names: Iterable[str]) -> EntitySchema:
        """This schema asking only the types ``names`` (labels, headers or aliases), in schema
        order, named ``base[Label,Label]``; the schema itself when every type is asked.

        An unknown name, or none at all, is a ValueError naming the known types.
        """
        names = list(names)
        wanted = {self.resolve(n) for n in names}
        unknown = [n for n in names if self.resolve(n) is None]
        if unknown or not names:
            what = f"unknown type {unknown[0]!r}" if unknown else "no type named"
            known = ", ".join(self.labels)
            raise ValueError(f"schema {self.base}: {what}; known: {known}")
        types = tuple(t for t in self.types if t.label in wanted)
        if len(types) == len(self.types) and "[" not in self.name:
            return self
        name = f"{self.base}[{','.join(t.label for t in types)}]"
        return replace(self, name=name, types=types)

    def parts(self, groups: Iterable[Iterable[str]] = ()) -> tuple[EntitySchema, ...]:
        """The requests this schema is asked in: one per group of ``groups`` (labels) that has
        a type of it, restricted to those types, then one of its types in no group; the schema
        itself when ``groups`` is empty or a single part would ask every type.

        A tagger taught each dataset's own request answers a request in the conventions of the
        dataset that asked it (the model folder says how it wants each schema asked,
        :func:`infra.llm.local.request_groups`). Every type is asked exactly once.
        """
        placed: set[str] = set()
        parts: list[list[str]] = []
        for group in groups:
            labels = {self.resolve(name) for name in group} - placed - {None}
            if labels:
                parts.append([lb for lb in self.labels if lb in labels])
                placed.update(parts[-1])
        rest = [lb for lb in self.labels if lb not in placed]
        if rest:
            parts.append(rest)
        if len(parts) <= 1:
            return (self,)
        return tuple(self.restrict(labels) for labels in parts)


@dataclass(frozen=True)
class DatasetSpec:
    """A benchmark: its schema, the map from the source's raw labels to schema labels, and the
    map from schema labels to the unified schema's (:data:`UNIFIED`, documented in
    ``docs/labels.md``)."""

    name: str
    schema: EntitySchema
    label_map: dict[str, str]
    #: Schema label -> unified label (:data:`GENERAL_SCHEMA` or :data:`GENERAL_ZH_SCHEMA`, by
    #: the schema's language). A label left out has no unified counterpart: its spans leave
    #: the unified view, and the unified type is not asked of this dataset unless another of
    #: its labels maps to it.
    unified: dict[str, str] = field(default_factory=dict)
    #: Unified labels this dataset annotates only in part (BioNLP13CG annotates cancers, not
    #: every disease): never scored on it, and completed before training asks them.
    partial: tuple[str, ...] = ()
    #: Raw source labels whose spans are left out on reading (no schema label stands for them).
    ignored: frozenset[str] = frozenset()

    def map_label(self, raw: str) -> str | None:
        """Canonical label of a raw source label; None if the dataset does not use it."""
        if raw in self.label_map:
            return self.label_map[raw]
        return self.schema.resolve(raw)

    @property
    def unified_schema(self) -> EntitySchema:
        """The unified schema of this dataset's language."""
        return UNIFIED_SCHEMAS[self.schema.language]

    @property
    def unified_types(self) -> tuple[str, ...]:
        """The unified labels this dataset annotates, in the unified schema's order."""
        mapped = set(self.unified.values())
        return tuple(label for label in self.unified_schema.labels if label in mapped)

    @property
    def scored_types(self) -> tuple[str, ...]:
        """The unified labels an evaluation scores on this dataset: those it annotates whole."""
        return tuple(label for label in self.unified_types if label not in self.partial)

    def unified_request(self) -> EntitySchema:
        """The part of the unified schema a training example of this dataset asks for."""
        return self.unified_schema.restrict(self.unified_types)


def _t(label: str, header: str, definition: str, *aliases: str) -> EntityType:
    return EntityType(label, header, definition, aliases)


DISEASE = _t("Disease", "Disease", "diseases, disorders, syndromes, and their abnormal signs")
CHEMICAL = _t("Chemical", "Chemical", "chemicals and drugs, including their abbreviations")

NCBI_SCHEMA = EntitySchema("ncbi", "en", (DISEASE,))
#: BC5CDR annotates no genes or proteins (its guidelines leave them out): JNLPBA's.
BC5CDR_SCHEMA = EntitySchema("bc5cdr", "en", (CHEMICAL, DISEASE), excludes=("jnlpba",))
JNLPBA_SCHEMA = EntitySchema(
    "jnlpba",
    "en",
    (
        _t("protein", "protein", "proteins, protein families, complexes and domains"),
        _t("DNA", "DNA", "genes, DNA regions, promoters and other DNA sequences"),
        _t("RNA", "RNA", "RNA molecules such as mRNAs"),
        _t("cell_type", "cell_type", "naturally occurring cell types", "cell type"),
        _t("cell_line", "cell_line", "cultured cell lines", "cell line"),
    ),
)
CMEEE_SCHEMA = EntitySchema(
    "cmeee",
    "zh",
    (
        _t("Disease", "疾病", "疾病、综合征、中毒、损伤等", "dis"),
        _t("Symptom", "临床表现", "症状、体征、异常检查结果", "sym"),
        _t("Procedure", "医疗程序", "检查、治疗、手术等医疗操作", "pro"),
        _t("Equipment", "医疗设备", "医疗器械、设备与材料", "equ"),
        _t("Drug", "药物", "药物及其通用名、商品名", "dru"),
        _t("TestItem", "医学检验项目", "检验项目与指标", "ite", "Test item"),
        _t("Body", "身体", "身体部位、器官、组织、细胞、体液", "bod"),
        _t("Department", "科室", "医院科室", "dep"),
        _t("Microorganism", "微生物类", "细菌、病毒、真菌等微生物", "mic"),
    ),
)
CMEDQANER_SCHEMA = EntitySchema(
    "cmedqaner",
    "zh",
    (
        _t("Disease", "疾病", "疾病与诊断", "disease"),
        _t("Symptom", "症状", "症状与体征", "symptom"),
        _t("Body", "身体部位", "身体部位与器官", "body"),
        _t("Drug", "药物", "药物", "drug"),
        _t("Treatment", "治疗", "治疗方法与手术", "treatment"),
        _t("Test", "检查", "检查与检验", "test"),
        _t("Department", "科室", "医院科室", "department"),
        _t("Crowd", "人群", "人群，如孕妇、儿童", "crowd"),
        _t("Physiology", "生理", "生理状态与过程", "physiology"),
        _t("Feature", "特征", "程度、性质等特征描述", "feature"),
        _t("Time", "时间", "时间与时长", "time"),
    ),
)
CEHRNER_SCHEMA = EntitySchema(
    "cehrner",
    "zh",
    (
        _t("Disease", "疾病和诊断", "疾病与诊断"),
        _t("Symptom", "症状", "症状与体征"),
        _t("Anatomy", "解剖部位", "解剖部位"),
        _t("Drug", "药物", "药物"),
        _t("Surgery", "手术", "手术"),
        _t("LabTest", "实验室检验", "实验室检验"),
        _t("ImagingTest", "影像检查", "影像检查"),
    ),
)

# The unified schema: what `bioner run`, `nightly` and `backfill` ask by default. Every type has
# training data (the datasets whose `unified` map reaches it, below) and a measured F1; the
# whole map is tabled in docs/labels.md (a test keeps the table and this code equal).
GENERAL_SCHEMA = EntitySchema(
    "general",
    "en",
    (
        CHEMICAL,
        DISEASE,
        _t(
            "Gene",
            "Gene",
            "genes and gene products: proteins, protein families and complexes, RNAs, DNA regions",
            "protein",
            "Gene/Protein",
            "Gene_or_gene_product",
        ),
        _t("Species", "Species", "organisms and species", "organism"),
        _t("Cell", "Cell", "cell types and cell lines", "CellLine", "cell line", "cell type"),
        _t("Anatomy", "Anatomy", "organs, tissues, body substances and cell components"),
    ),
)
#: Its Chinese counterpart: the same labels where a Chinese data set annotates the type (the
#: headers of CMeEE-V2, the largest Chinese set, so that a Chinese passage is asked exactly as
#: CMeEE was taught), and the Chinese clinical types no English set has. Species in Chinese is
#: what CMeEE annotates: microorganisms.
GENERAL_ZH_SCHEMA = EntitySchema(
    "general-zh",
    "zh",
    (
        _t("Disease", "疾病", "疾病、综合征、中毒、损伤等", "dis"),
        _t("Symptom", "临床表现", "症状、体征、异常检查结果", "sym"),
        _t("Procedure", "医疗程序", "检查、治疗、手术等医疗操作", "pro"),
        _t("Equipment", "医疗设备", "医疗器械、设备与材料", "equ"),
        _t("Chemical", "药物", "药物及其通用名、商品名，化学物质", "dru", "化学物质"),
        _t("TestItem", "医学检验项目", "检验项目与指标", "ite", "Test item"),
        _t("Anatomy", "身体", "身体部位、器官、组织、细胞、体液", "bod"),
        _t("Department", "科室", "医院科室", "dep"),
        _t("Species", "微生物类", "细菌、病毒、真菌等微生物", "mic"),
    ),
)
UNIFIED_SCHEMAS: dict[str, EntitySchema] = {"en": GENERAL_SCHEMA, "zh": GENERAL_ZH_SCHEMA}

#: BioNLP 2013 Cancer Genetics: its 16 types read as unified types (Cancer as Disease, which it
#: annotates only in part; the anatomical types as Anatomy; Pathological_formation, a tumour as a
#: mass, has no unified type and is left out on reading).
_BIONLP13CG_MAP = {
    "Gene_or_gene_product": "Gene",
    "Simple_chemical": "Chemical",
    "Amino_acid": "Chemical",
    "Organism": "Species",
    "Cell": "Cell",
    "Cancer": "Disease",
    **{
        raw: "Anatomy"
        for raw in (
            "Anatomical_system",
            "Organ",
            "Multi-tissue_structure",
            "Tissue",
            "Cellular_component",
            "Developing_anatomical_structure",
            "Organism_subdivision",
            "Organism_substance",
            "Immaterial_anatomical_entity",
        )
    },
}
_BIONLP11ID_MAP = {
    "Protein": "Gene",
    "Regulon-operon": "Gene",
    "Chemical": "Chemical",
    "Organism": "Species",
}

_NCBI_MAP = {
    "SpecificDisease": "Disease",
    "Modifier": "Disease",
    "DiseaseClass": "Disease",
    "CompositeMention": "Disease",
    "Disease": "Disease",
}


def _same(schema: EntitySchema) -> dict[str, str]:
    return {label: label for label in schema.labels}


_CMEEE_UNIFIED = {
    "Disease": "Disease",
    "Symptom": "Symptom",
    "Procedure": "Procedure",
    "Equipment": "Equipment",
    "Drug": "Chemical",
    "TestItem": "TestItem",
    "Body": "Anatomy",
    "Department": "Department",
    "Microorganism": "Species",
}
_JNLPBA_UNIFIED = {
    "protein": "Gene",
    "DNA": "Gene",
    "RNA": "Gene",
    "cell_type": "Cell",
    "cell_line": "Cell",
}

DATASETS: dict[str, DatasetSpec] = {
    d.name: d
    for d in (
        DatasetSpec("ncbi", NCBI_SCHEMA, _NCBI_MAP, _same(NCBI_SCHEMA)),
        DatasetSpec(
            "bc5cdr",
            BC5CDR_SCHEMA,
            {"Chemical": "Chemical", "Disease": "Disease"},
            _same(BC5CDR_SCHEMA),
        ),
        DatasetSpec("jnlpba", JNLPBA_SCHEMA, {}, _JNLPBA_UNIFIED),
        DatasetSpec("genia", JNLPBA_SCHEMA, {}, _JNLPBA_UNIFIED),
        DatasetSpec(
            "bionlp13cg",
            GENERAL_SCHEMA,
            _BIONLP13CG_MAP,
            _same(GENERAL_SCHEMA),
            partial=("Disease",),
            ignored=frozenset({"Pathological_formation"}),
        ),
        DatasetSpec(
            "bionlp11id",
            GENERAL_SCHEMA.restrict(set(_BIONLP11ID_MAP.values())),
            _BIONLP11ID_MAP,
            {label: label for label in set(_BIONLP11ID_MAP.values())},
        ),
        DatasetSpec("cmeee", CMEEE_SCHEMA, {}, _CMEEE_UNIFIED),
        DatasetSpec(
            "cmedqaner",
            CMEDQANER_SCHEMA,
            {},
            {
                "Disease": "Disease",
                "Symptom": "Symptom",
                "Body": "Anatomy",
                "Drug": "Chemical",
                "Department": "Department",
            },
        ),
        DatasetSpec(
            "cehrner",
            CEHRNER_SCHEMA,
            {},
            {"Disease": "Disease", "Symptom": "Symptom", "Anatomy": "Anatomy", "Drug": "Chemical"},
        ),
        DatasetSpec("general", GENERAL_SCHEMA, {}, _same(GENERAL_SCHEMA)),
        DatasetSpec("general-zh", GENERAL_ZH_SCHEMA, {}, _same(GENERAL_ZH_SCHEMA)),
    )
}
SCHEMAS: dict[str, EntitySchema] = {d.schema.name: d.schema for d in DATASETS.values()} | {
    d.name: d.schema for d in DATASETS.values()
}

#: Schemas with the same labels in another language: a corpus of English and Chinese documents
#: tagged with ``general`` gets Chinese headers and instructions for its Chinese passages.
_COUNTERPARTS: dict[str, dict[str, str]] = {
    "general": {"en": "general", "zh": "general-zh"},
    "general-zh": {"en": "general", "zh": "general-zh"},
}


def get_schema(name: str) -> EntitySchema:
    """The schema called ``name``: a known one, or ``base[Type,Type]`` asking only some types
    of a known one (``general[Gene,Species]``). A ValueError naming the known schemas or types
    otherwise."""
    base, bracket, rest = name.strip().partition("[")
    try:
        schema = SCHEMAS[base.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(n for n in SCHEMAS if "[" not in n))
        raise ValueError(f"unknown schema {base.strip()!r}; known: {known}") from None
    if not bracket:
        return schema
    if not rest.endswith("]"):
        raise ValueError(f"schema {name!r}: write the types as {base}[Type,Type]")
    return schema.restrict(t.strip() for t in rest[:-1].split(",") if t.strip())


def schema_for(name: str, language: str | None) -> EntitySchema:
    """Schema ``name`` (:func:`get_schema`), or its counterpart in ``language`` when it has one.

    A counterpart has the same labels where both languages have the type; a restricted schema
    (``general[Gene,Disease]``) keeps the types its counterpart has (``general-zh[Disease]``).
    A schema without a counterpart (a dataset's own, such as ``ncbi``) is returned as is.
    """
    schema = get_schema(name)
    other = _COUNTERPARTS.get(schema.base, {}).get(language or "")
    if not other or other == schema.base:
        return schema
    counterpart = SCHEMAS[other]
    if schema.name == schema.base:
        return counterpart
    labels = [label for label in schema.labels if counterpart.resolve(label) is not None]
    if not labels:
        raise ValueError(
            f"schema {schema.name}: none of its types has a {language} counterpart in {other} "
            f"({', '.join(counterpart.labels)}), so a {language} passage cannot be asked it; "
            f"add a type {other} has, or ask {schema.base}"
        )
    return counterpart.restrict(labels)


def request_parts(
    name: str, language: str | None, groups: Mapping[str, Iterable[Iterable[str]]]
) -> tuple[EntitySchema, ...]:
    """The requests a passage in ``language`` is asked for schema ``name``: its language's
    schema (:func:`schema_for`) in the parts ``groups`` gives its base
    (:meth:`EntitySchema.parts`; whole when ``groups`` has none)."""
    schema = schema_for(name, language)
    return schema.parts(groups.get(schema.base, ()))


def dataset(name: str) -> DatasetSpec:
    """The dataset spec called ``name``; a clear error listing the known ones otherwise."""
    try:
        return DATASETS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None


def label_map_rows() -> list[tuple[str, str, str]]:
    """``(dataset, source label, unified label)`` for every label of every benchmark, in
    catalogue order; ``"—"`` where a label has no unified type (its spans leave the unified
    view). Source labels are those the files write (NCBI-disease's ``SpecificDisease``,
    BioNLP13CG's ``Gene_or_gene_product``; CMeEE's ``dis`` is read as ``Disease``)."""
    rows = []
    for spec in DATASETS.values():
        if (spec.schema.base in _COUNTERPARTS and not spec.label_map) or spec.name == "genia":
            continue  # the unified schemas themselves; GENIA reads as JNLPBA
        sources = spec.label_map or {label: label for label in spec.schema.labels}
        for source, label in sources.items():
            rows.append((spec.name, source, spec.unified.get(label, "—")))
        rows += [(spec.name, source, "—") for source in sorted(spec.ignored)]
    return rows


def label_map_table() -> str:
    """:func:`label_map_rows` as the Markdown table of ``docs/labels.md``."""
    lines = ["| dataset | source label | unified label |", "| --- | --- | --- |"]
    lines += [
        f"| `{d}` | `{s}` | {'—' if u == '—' else f'`{u}`'} |" for d, s, u in label_map_rows()
    ]
    return "\n".join(lines) + "\n"
