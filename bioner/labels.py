"""Entity schemas and the per-dataset label maps, all in one place.

A schema fixes the entity types a tagger is asked for, their order in the symbolic output
(one line per type, schema order), the header written before ``:`` on each line, and a
one-line definition used by prompts. A dataset spec maps the raw labels of a source
format onto the canonical labels of its schema.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class DatasetSpec:
    """A benchmark: its schema and the map from the source's raw labels to schema labels."""

    name: str
    schema: EntitySchema
    label_map: dict[str, str]

    def map_label(self, raw: str) -> str | None:
        """Canonical label of a raw source label; None if the dataset does not use it."""
        if raw in self.label_map:
            return self.label_map[raw]
        return self.schema.resolve(raw)


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
GENERAL_SCHEMA = EntitySchema(
    "general",
    "en",
    (
        CHEMICAL,
        DISEASE,
        _t("Gene", "Gene", "genes and gene products (proteins, RNAs)", "protein", "Gene/Protein"),
        _t("Species", "Species", "organisms and species"),
        _t("CellLine", "CellLine", "cell lines and cell types", "cell line"),
        _t("Variant", "Variant", "sequence variants and mutations", "mutation"),
    ),
)

GENERAL_ZH_SCHEMA = EntitySchema(
    "general-zh",
    "zh",
    (
        _t("Chemical", "化学物质", "化学物质和药物，包括其缩写", "药物"),
        _t("Disease", "疾病", "疾病、障碍、综合征及其异常体征"),
        _t("Gene", "基因", "基因及其产物（蛋白质、RNA）", "蛋白质", "基因/蛋白"),
        _t("Species", "物种", "生物体和物种"),
        _t("CellLine", "细胞系", "细胞系和细胞类型"),
        _t("Variant", "变异", "序列变异和突变", "突变"),
    ),
)

_NCBI_MAP = {
    "SpecificDisease": "Disease",
    "Modifier": "Disease",
    "DiseaseClass": "Disease",
    "CompositeMention": "Disease",
    "Disease": "Disease",
}

DATASETS: dict[str, DatasetSpec] = {
    d.name: d
    for d in (
        DatasetSpec("ncbi", NCBI_SCHEMA, _NCBI_MAP),
        DatasetSpec("bc5cdr", BC5CDR_SCHEMA, {"Chemical": "Chemical", "Disease": "Disease"}),
        DatasetSpec("jnlpba", JNLPBA_SCHEMA, {}),
        DatasetSpec("genia", JNLPBA_SCHEMA, {}),
        DatasetSpec("cmeee", CMEEE_SCHEMA, {}),
        DatasetSpec("cmedqaner", CMEDQANER_SCHEMA, {}),
        DatasetSpec("cehrner", CEHRNER_SCHEMA, {}),
        DatasetSpec("general", GENERAL_SCHEMA, {}),
        DatasetSpec("general-zh", GENERAL_ZH_SCHEMA, {}),
    )
}
SCHEMAS: dict[str, EntitySchema] = {d.name: d.schema for d in DATASETS.values()}

#: Schemas with the same labels in another language: a corpus of English and Chinese documents
#: tagged with ``general`` gets Chinese headers and instructions for its Chinese passages.
_COUNTERPARTS: dict[str, dict[str, str]] = {
    "general": {"en": "general", "zh": "general-zh"},
    "general-zh": {"en": "general", "zh": "general-zh"},
}


def schema_for(name: str, language: str | None) -> EntitySchema:
    """Schema ``name``, or its counterpart in ``language`` when it has one (same labels).

    A schema without a counterpart (a dataset's own, such as ``ncbi``) is returned as is.
    """
    try:
        schema = SCHEMAS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown schema {name!r}; known: {', '.join(sorted(SCHEMAS))}") from None
    other = _COUNTERPARTS.get(schema.name, {}).get(language or "")
    return SCHEMAS[other] if other else schema


def dataset(name: str) -> DatasetSpec:
    """The dataset spec called ``name``; a clear error listing the known ones otherwise."""
    try:
        return DATASETS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None
