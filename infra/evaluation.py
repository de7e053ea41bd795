"""The test sets of ``bioner evaluate``, where their data lives, and the report files.

Each set is read as whole documents in natural text (the abstracts of NCBI-disease and BC5CDR
in PubTator, JNLPBA's brat files, CMeEE records), the units the pipeline tags after
segmentation, with gold spans in document offsets. CMeEE-V2 has no labelled test split here:
its set is the evaluation part of the dev split (:func:`infra.training.data.cmeee_eval_documents`,
a stable hash of the id), the part that training never sees.

The report is one JSON file (everything) and one Markdown file (the tables a person reads),
rendered from the same dict.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bioner.errors import InputError
from bioner.labels import DATASETS, get_schema
from bioner.readers.canonical import write_canonical
from bioner.records import AnnotatedDocument
from bioner.training.data import unified_view
from infra import storage
from infra.datasets import SPLITS, data_dir, load_split
from infra.training.data import TRAIN_SOURCES, cmeee_eval_documents, read_ids

REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
#: Per-set results and predictions: ``OUT/sets/<name>.json``, ``OUT/sets/<name>.pred.jsonl``
#: (and ``OUT/sets/<name>.tagger.jsonl``, the tagger's spans alone, of every type asked, when a
#: rule changed them: the decode rules can be applied to them again, ``bench/rules.py``).
SETS_FOLDER = "sets"


#: JNLPBA's development document ids, the ones its training source leaves out.
DEVEL_IDS = next(s.exclude_ids for s in TRAIN_SOURCES if s.dataset == "jnlpba")


@dataclass(frozen=True)
class EvalSet:
    """One test set: its dataset (schema), the split it is read from, and what it is."""

    name: str
    dataset: str  # key of bioner.labels.DATASETS
    split: str  # key of infra.datasets.SPLITS
    description: str
    eval_part: bool = False  # CMeEE: only the held-out 20% of the split
    only_ids: str = ""  # file (relative to the data folder) of the document ids to keep

    @property
    def path(self) -> str:
        """The split's file or folder, relative to the data folder."""
        return SPLITS[self.split].path


EVAL_SETS: dict[str, EvalSet] = {
    s.name: s
    for s in (
        EvalSet("ncbi", "ncbi", "ncbi/pubtator/test", "NCBI-disease test split (abstracts)"),
        EvalSet("bc5cdr", "bc5cdr", "bc5cdr/pubtator/test", "BC5CDR test split (abstracts)"),
        EvalSet("jnlpba", "jnlpba", "jnlpba/standoff/test", "JNLPBA test split (abstracts)"),
        EvalSet(
            "bionlp13cg",
            "bionlp13cg",
            "bionlp13cg/test",
            "BioNLP13CG test split (sentences, tokens re-joined as running text)",
        ),
        EvalSet(
            "bionlp11id",
            "bionlp11id",
            "bionlp11id/test",
            "BioNLP11ID test split (sentences, tokens re-joined as running text)",
        ),
        EvalSet(
            "cmeee",
            "cmeee",
            "cmeee/v2/dev",
            "CMeEE-V2 evaluation part: 20% of the dev split by a stable hash of the id, "
            "never in training",
            eval_part=True,
        ),
        # Development sets: held out of training like the test sets, for choosing settings
        # (a lexicon rule, a threshold) without looking at a test set.
        EvalSet(
            "ncbi-dev", "ncbi", "ncbi/pubtator/devel", "NCBI-disease development split (abstracts)"
        ),
        EvalSet(
            "bc5cdr-dev", "bc5cdr", "bc5cdr/pubtator/devel", "BC5CDR development split (abstracts)"
        ),
        EvalSet(
            "jnlpba-dev",
            "jnlpba",
            "jnlpba/standoff/train",
            "JNLPBA development documents: the 200 of mtl_devel_doc_ids.txt, left out of training",
            only_ids=DEVEL_IDS,
        ),
        EvalSet("bionlp13cg-dev", "bionlp13cg", "bionlp13cg/devel", "BioNLP13CG development split"),
        EvalSet("bionlp11id-dev", "bionlp11id", "bionlp11id/devel", "BioNLP11ID development split"),
        # Chinese development sets: CMeEE has none here (its evaluation part is the test set).
        EvalSet(
            "cmedqaner-dev",
            "cmedqaner",
            "cmedqaner/dev",
            "cMedQANER development split (ChineseBLUE)",
        ),
        EvalSet("cehrner-dev", "cehrner", "cehrner/dev", "cEHRNER development split (ChineseBLUE)"),
    )
}
#: The test sets, evaluated when none are named.
DEFAULT_SETS = ("ncbi", "bc5cdr", "jnlpba", "bionlp13cg", "bionlp11id", "cmeee")
#: What a set is asked with: ``general``, the unified schema (what ``bioner run`` asks), scored
#: on the unified types its dataset annotates whole; or ``dataset``, its dataset's own schema.
SCHEMA_MODES = ("general", "dataset")
DEFAULT_SCHEMA_MODE = "general"


def check_schema_mode(mode: str) -> str:
    """The base of ``mode`` (one of :data:`SCHEMA_MODES`; ``general[Gene,Cell]`` asks only some
    unified types and has base ``general``), else an InputError naming them."""
    base = mode.partition("[")[0].strip()
    if base not in SCHEMA_MODES or (base != mode and base != "general"):
        raise InputError(
            f"unknown schema {mode!r} for evaluate; known: {', '.join(SCHEMA_MODES)}, "
            "general[Type,Type]"
        )
    if base != mode:
        try:
            get_schema(mode)
        except ValueError as e:
            raise InputError(str(e)) from None
    return base


def request_of(name: str, mode: str = DEFAULT_SCHEMA_MODE) -> tuple[str, tuple[str, ...]]:
    """The schema set ``name`` is asked with under ``mode`` (:data:`SCHEMA_MODES`; a Chinese
    set asked ``general`` gets its counterpart per passage) and the labels scored: the types
    its dataset annotates whole, in the unified or its own labels."""
    base = check_schema_mode(mode)
    spec = DATASETS[EVAL_SETS[name].dataset]
    if base == "general":
        if mode == base:
            return mode, spec.scored_types
        asked = get_schema(mode).labels
        return mode, tuple(lb for lb in spec.scored_types if lb in asked)
    return spec.schema.name, tuple(lb for lb in spec.schema.labels if lb not in spec.partial)


def parse_sets(text: str | Sequence[str]) -> list[str]:
    """Set names from ``"ncbi,bc5cdr"`` (or a list), in order, once each; InputError for an
    unknown or empty list."""
    items = text.split(",") if isinstance(text, str) else list(text)
    names = list(dict.fromkeys(n.strip().lower() for n in items if n.strip()))
    if not names:
        raise InputError(f"no test set named; known: {', '.join(EVAL_SETS)}")
    unknown = [n for n in names if n not in EVAL_SETS]
    if unknown:
        raise InputError(f"unknown test set {unknown[0]!r}; known: {', '.join(EVAL_SETS)}")
    return names


def missing_data(name: str, root: Path | None = None) -> str | None:
    """Why set ``name`` cannot be read from the data folder, or None when its data is there."""
    root = root or data_dir()
    s = EVAL_SETS[name]
    for path in [root / s.path] + ([root / s.only_ids] if s.only_ids else []):
        if not path.exists():
            return f"{path}: no such file; the {name} set needs it (set BIONER_DATA_DIR)"
    return None


def load_eval_set(
    name: str, root: Path | None = None, limit: int | None = None, mode: str = "dataset"
) -> list[AnnotatedDocument]:
    """The documents of set ``name`` with gold spans, the first ``limit`` in file order; under
    ``mode`` ``general``, the spans in unified labels (the dataset's unified map; spans of a
    label it does not map leave).

    InputError when the data is missing or two documents share an id (their spans would mix).
    """
    base = check_schema_mode(mode)
    if problem := missing_data(name, root):
        raise InputError(problem)
    s = EVAL_SETS[name]
    docs = cmeee_eval_documents(root) if s.eval_part else load_split(s.split, root)
    if s.only_ids:
        keep = read_ids((root or data_dir()) / s.only_ids)
        docs = [d for d in docs if d.id in keep]
    docs = docs[:limit] if limit is not None else docs
    if base == "general":
        spec = DATASETS[s.dataset]
        docs = [unified_view(d, spec) for d in docs]
    seen: set[str] = set()
    for d in docs:
        if d.id in seen:
            raise InputError(f"{name}: document id {d.id!r} appears twice", record=d.id)
        seen.add(d.id)
    return docs


def schema_name(name: str, mode: str = "dataset") -> str:
    """The entity schema set ``name`` is asked with under ``mode`` (:func:`request_of`)."""
    return request_of(name, mode)[0]


def set_threads(threads: int | None) -> None:
    """Use ``threads`` CPU threads for torch in this process (None: leave torch's default)."""
    if threads:
        import torch  # only when asked: loading the engine imports it anyway

        torch.set_num_threads(threads)


# --------------------------------------------------------------------------- per-set files


def set_result_uri(out: str, name: str) -> str:
    """Where the result of set ``name`` is written under the report folder ``out``."""
    return storage.join(out, SETS_FOLDER, f"{name}.json")


def predictions_uri(out: str, name: str) -> str:
    """Where the decoded predictions of set ``name`` go (canonical JSON lines)."""
    return storage.join(out, SETS_FOLDER, f"{name}.pred.jsonl")


def tagger_predictions_uri(out: str, name: str) -> str:
    """Where the tagger's own spans of set ``name`` go when a decode rule changed them."""
    return storage.join(out, SETS_FOLDER, f"{name}.tagger.jsonl")


def write_set_result(
    result: dict[str, Any],
    predictions: Sequence[AnnotatedDocument],
    out: str,
    tagger: Sequence[AnnotatedDocument] | None = None,
) -> str:
    """Write one set's result JSON, its predictions and, when given, the tagger's spans alone
    (before the lexicon and abbreviations); returns the result's URI."""
    name = result["set"]
    storage.write_text(write_canonical(predictions), predictions_uri(out, name))
    if tagger is not None:
        storage.write_text(write_canonical(tagger), tagger_predictions_uri(out, name))
    return storage.write_text(
        json.dumps(result, indent=2, ensure_ascii=False) + "\n", set_result_uri(out, name)
    )


def read_set_result(uri: str) -> dict[str, Any]:
    """A set's result as :func:`write_set_result` wrote it."""
    return json.loads(storage.read_text(uri))


# --------------------------------------------------------------------------- the report


def report_uris(out: str) -> dict[str, str]:
    """Where :func:`write_report` writes under ``out``, by kind (``json``, ``markdown``)."""
    return {"json": storage.join(out, REPORT_JSON), "markdown": storage.join(out, REPORT_MARKDOWN)}


def write_report(report: dict[str, Any], out: str) -> dict[str, str]:
    """Write ``report.json`` and ``report.md`` under ``out``; their URIs by kind."""
    uris = report_uris(out)
    storage.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", uris["json"])
    storage.write_text(render_markdown(report), uris["markdown"])
    return uris


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def _prf(score: dict[str, Any]) -> list[str]:
    return [_pct(score["precision"]), _pct(score["recall"]), _pct(score["f1"])]


def derived_cells(result: dict[str, Any]) -> list[str]:
    """A set's report cells for what the decode rules did: the tagger's F1 alone (blank when
    no rule changed a span), the lexicon's spans given and dropped, the abbreviations' spans
    given and dropped."""
    tagger = result.get("tagger_metrics")
    return [
        _pct(tagger["strict"]["micro"]["f1"]) if tagger else "",
        f"+{result['lexicon_added']} −{result.get('lexicon_dropped', 0)}",
        f"+{result.get('abbreviations_added', 0)} −{result.get('abbreviations_dropped', 0)}",
    ]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    right = ["---"] + ["---:"] * (len(header) - 1)
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(right) + " |"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: provenance, a summary row per set, then per-type tables."""
    lexicon = report.get("lexicon")
    lines = [
        "# bioner evaluation",
        "",
        f"- model: `{report['model']}` (id `{report['model_id']}`)"
        + (" — UNTRAINED weights, scores are meaningless" if report.get("untrained") else ""),
        f"- engine: {', '.join(f'{k}={v}' for k, v in report['engine'].items())}",
        f"- prompt version: `{report['prompt_version']}`, constraint version: "
        f"`{report['constraint_version']}`",
        "- lexicon: "
        + (
            f"`{lexicon['digest']}`, an entry (also with a capital first letter training never "
            f"writes) becomes a span at ratio ≥ {lexicon['min_ratio']} "
            f"and count ≥ {lexicon['min_count']}; a tagger span is dropped where training holds "
            f"its string ≥ {lexicon.get('veto_count', 0)} times and never annotates it (0: never), "
            "or only the lexicon of a schema its own excludes knows it"
            + (
                f", and trimmed to the strings it contains that the rule accepts where each unit "
                f"it loses lies inside a mention in ≤ {lexicon['trim_ratio']} of its training "
                "occurrences"
                if lexicon.get("trim_ratio") is not None
                else ""
            )
            + "; a lone word training never holds takes the label its ending gives, and a lone "
            "code the label its shape gives"
            if lexicon
            else "none"
        )
        + "; F1 tagger: the tagger's spans alone, before the lexicon and the abbreviations "
        "(later uses of a defined short form, and spans on it relabelled by its definition; "
        "spans on a short form defined on no mention dropped)",
        f"- limit: {report['limit'] if report['limit'] is not None else 'none (whole sets)'}",
        f"- data: `{report['data_dir']}`, code version {report['code_version']}",
        "",
        "## Summary (micro, percent)",
        "",
    ]
    header = ["set", "documents", "passages", "gold", "predicted"]
    header += ["P", "R", "F1"]
    derived = bool(lexicon) or any(r.get("tagger_metrics") for r in report["sets"].values())
    header += ["F1 tagger", "lexicon +/−", "abbreviations +/−"] if derived else []
    header += ["P relaxed", "R relaxed", "F1 relaxed"]
    header += ["decode issues", "passages/s", "tokens/s"]
    rows = []
    for name, r in report["sets"].items():
        m = r["metrics"]
        rows.append(
            [
                name,
                str(r["documents"]),
                str(r["passages"]),
                str(m["strict"]["micro"]["support"]),
                str(r["predicted_spans"]),
                *_prf(m["strict"]["micro"]),
                *(derived_cells(r) if derived else []),
                *_prf(m["relaxed"]["micro"]),
                str(r["decode_issues"]["total"]),
                f"{r['speed']['passages_per_s']:.2f}",
                f"{r['speed']['tokens_per_s']:.1f}",
            ]
        )
    lines += _table(header, rows)
    for name, r in report["sets"].items():
        m = r["metrics"]
        lines += ["", f"## {name}: {r['description']}", ""]
        lines.append(
            f"Source `{r['split']}`; {r['documents']} documents, {r['passages']} passages "
            f"({r['requests']} requests), {r['gold_spans_across_passages']} gold spans cross a "
            f"passage boundary; {r['truncated']} answers cut at their token limit; "
            f"{r['speed']['seconds']:.1f} s of generation, {r['speed']['output_tokens']} output "
            "tokens."
        )
        lines.append("")
        type_rows = []
        for label, s in m["strict"]["per_type"].items():
            relaxed = m["relaxed"]["per_type"][label]
            type_rows.append([label, str(s["support"]), *_prf(s), *_prf(relaxed)])
        for avg in ("micro", "macro"):
            support = str(m["strict"]["micro"]["support"])
            type_rows.append(
                [f"**{avg}**", support, *_prf(m["strict"][avg]), *_prf(m["relaxed"][avg])]
            )
        lines += _table(
            ["type", "support", "P", "R", "F1", "P relaxed", "R relaxed", "F1 relaxed"], type_rows
        )
        issues = r["decode_issues"]["by_kind"]
        lines += [
            "",
            "Decode issues: "
            + (", ".join(f"{k} {n}" for k, n in issues.items()) if issues else "none")
            + f" ({r['decode_issues']['lossy_passages']} passages with a lossy issue).",
        ]
    return "\n".join(lines) + "\n"
