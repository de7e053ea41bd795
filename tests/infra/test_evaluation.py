"""The test-set catalogue of ``bioner evaluate``, its data checks and the report files."""

from __future__ import annotations

import json

import pytest

from bioner.errors import InputError
from bioner.readers.canonical import read_canonical
from bioner.records import AnnotatedDocument, Document, Span
from bioner.training.data import cmeee_part
from infra import evaluation as ev


def test_set_names_are_parsed_in_order_once_each():
    assert ev.parse_sets("ncbi, BC5CDR,ncbi,,cmeee") == ["ncbi", "bc5cdr", "cmeee"]
    assert ev.parse_sets(["jnlpba"]) == ["jnlpba"]
    assert ev.DEFAULT_SETS == ("ncbi", "bc5cdr", "jnlpba", "bionlp13cg", "bionlp11id", "cmeee")


@pytest.mark.parametrize("text", ["ncbi,genia", "", " , "])
def test_an_unknown_or_empty_set_list_is_an_input_error_naming_the_known(text):
    with pytest.raises(
        InputError, match="known: ncbi, bc5cdr, jnlpba, bionlp13cg, bionlp11id, cmeee"
    ):
        ev.parse_sets(text)


def test_missing_data_names_the_path_and_the_setting(tmp_path):
    problem = ev.missing_data("bc5cdr", tmp_path)
    assert problem is not None
    assert str(tmp_path / "bc5cdr/pubtator/CDR_TestSet.PubTator.txt") in problem
    assert "BIONER_DATA_DIR" in problem
    with pytest.raises(InputError, match="no such file"):
        ev.load_eval_set("ncbi", tmp_path)


def test_every_set_is_asked_with_its_datasets_schema():
    assert {n: ev.schema_name(n) for n in ev.EVAL_SETS} == {
        "ncbi": "ncbi",
        "bc5cdr": "bc5cdr",
        "jnlpba": "jnlpba",
        "cmeee": "cmeee",
        "ncbi-dev": "ncbi",
        "bc5cdr-dev": "bc5cdr",
        "jnlpba-dev": "jnlpba",
        "cmedqaner-dev": "cmedqaner",
        "cehrner-dev": "cehrner",
        # Read straight into unified types: their own schema is the unified one (in part).
        "bionlp13cg": "general",
        "bionlp13cg-dev": "general",
        "bionlp11id": "general[Chemical,Gene,Species]",
        "bionlp11id-dev": "general[Chemical,Gene,Species]",
    }


def test_the_unified_request_asks_general_and_scores_what_each_dataset_annotates_whole():
    assert ev.request_of("ncbi") == ("general", ("Disease",))
    assert ev.request_of("jnlpba") == ("general", ("Gene", "Cell"))
    # BioNLP13CG annotates only cancers as diseases: Disease is not scored on it.
    assert ev.request_of("bionlp13cg") == (
        "general",
        ("Chemical", "Gene", "Species", "Cell", "Anatomy"),
    )
    assert ev.request_of("cmeee")[1] == (
        "Disease",
        "Symptom",
        "Procedure",
        "Equipment",
        "Chemical",
        "TestItem",
        "Anatomy",
        "Department",
        "Species",
    )
    assert ev.request_of("jnlpba", "dataset") == (
        "jnlpba",
        ("protein", "DNA", "RNA", "cell_type", "cell_line"),
    )
    with pytest.raises(InputError, match="known: general, dataset"):
        ev.request_of("ncbi", "unified")


@pytest.mark.data
@pytest.mark.parametrize("name", list(ev.EVAL_SETS))
def test_each_set_reads_the_first_documents_in_file_order(shared_data, name):
    if ev.missing_data(name, shared_data):
        pytest.skip(ev.missing_data(name, shared_data))
    three = ev.load_eval_set(name, shared_data, limit=3)
    assert len(three) == 3
    assert [d.id for d in ev.load_eval_set(name, shared_data, limit=2)] == [d.id for d in three[:2]]
    assert any(d.spans for d in three)  # sentence-level sets have sentences without mentions


@pytest.mark.data
def test_the_cmeee_set_is_the_held_out_part_only(shared_data):
    if ev.missing_data("cmeee", shared_data):
        pytest.skip(ev.missing_data("cmeee", shared_data))
    docs = ev.load_eval_set("cmeee", shared_data)
    assert 500 < len(docs) < 1500  # about 20% of 5000
    assert {cmeee_part(d.id) for d in docs} == {"eval"}


@pytest.mark.data
def test_the_jnlpba_dev_set_is_the_200_documents_training_leaves_out(shared_data):
    from infra.training.data import TRAIN_SOURCES

    ids = (shared_data / ev.DEVEL_IDS).read_text().split()
    docs = ev.load_eval_set("jnlpba-dev", shared_data)
    assert sorted(d.id for d in docs) == sorted(ids) and len(ids) == 200
    jnlpba = next(s for s in TRAIN_SOURCES if s.dataset == "jnlpba")
    assert jnlpba.exclude_ids == ev.DEVEL_IDS and jnlpba.split == ev.EVAL_SETS["jnlpba-dev"].split


def test_a_dev_set_without_its_id_list_names_the_missing_file(tmp_path):
    split = tmp_path / ev.EVAL_SETS["jnlpba-dev"].path
    split.mkdir(parents=True)
    problem = ev.missing_data("jnlpba-dev", tmp_path)
    assert problem is not None and str(tmp_path / ev.DEVEL_IDS) in problem


def _result(name: str) -> dict:
    score = {"tp": 1, "fp": 1, "fn": 0, "support": 1, "precision": 0.5, "recall": 1.0, "f1": 2 / 3}
    macro = {"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "labels": ["Disease"]}
    scores = {"per_type": {"Disease": score}, "micro": score, "macro": macro}
    return {
        "set": name,
        "description": "a set",
        "split": "ncbi/pubtator/test",
        "documents": 1,
        "passages": 2,
        "requests": 2,
        "predicted_spans": 2,
        "gold_spans_across_passages": 0,
        "truncated": 0,
        "decode_issues": {"total": 1, "by_kind": {"truncated": 1}, "lossy_passages": 1},
        "speed": {"seconds": 2.0, "passages_per_s": 1.0, "tokens_per_s": 10.0, "output_tokens": 20},
        "metrics": {"strict": scores, "relaxed": scores},
    }


def test_a_set_result_and_its_predictions_round_trip(tmp_path):
    out = str(tmp_path / "report")
    pred = [AnnotatedDocument(Document("a", "Cancer."), (Span(0, 6, "Disease"),))]
    uri = ev.write_set_result(_result("ncbi"), pred, out)
    assert uri == ev.set_result_uri(out, "ncbi") == str(tmp_path / "report/sets/ncbi.json")
    assert ev.read_set_result(uri) == _result("ncbi")
    text = (tmp_path / "report/sets/ncbi.pred.jsonl").read_text()
    assert [d.spans for d in read_canonical(text)] == [pred[0].spans]


def test_the_markdown_report_has_a_summary_row_and_a_type_table_per_set(tmp_path):
    report = {
        "model": "m",
        "model_id": "m@abc",
        "untrained": True,
        "engine": {"backend": "transformers", "constrained": "copy-v3"},
        "prompt_version": "symbolic-v1",
        "constraint_version": "copy-v3",
        "limit": 5,
        "data_dir": "/data",
        "code_version": "0",
        "sets": {"ncbi": _result("ncbi"), "cmeee": _result("cmeee")},
    }
    uris = ev.write_report(report, str(tmp_path))
    assert uris == ev.report_uris(str(tmp_path))
    assert json.loads((tmp_path / "report.json").read_text()) == report
    md = (tmp_path / "report.md").read_text()
    assert "UNTRAINED" in md and "`symbolic-v1`" in md and "`copy-v3`" in md
    assert "- limit: 5" in md
    assert (
        "| ncbi | 1 | 2 | 1 | 2 | 50.00 | 100.00 | 66.67 | 50.00 | 100.00 | 66.67 | 1 | 1.00 | 10.0 |"
        in md
    )
    assert md.count("| Disease | 1 | 50.00 | 100.00 | 66.67 |") == 2
    assert "## cmeee: a set" in md and "truncated 1" in md
    assert "- lexicon: none" in md


def test_the_markdown_report_shows_the_tagger_alone_beside_the_lexicon(tmp_path):
    with_lexicon = _result("ncbi")
    tagger = json.loads(json.dumps(with_lexicon["metrics"]))
    tagger["strict"]["micro"]["f1"] = 0.5
    with_lexicon |= {
        "tagger_metrics": tagger,
        "lexicon_added": 7,
        "abbreviations_added": 2,
        "abbreviations_dropped": 3,
    }
    report = {
        "model": "m",
        "model_id": "m@abc",
        "untrained": False,
        "engine": {"backend": "transformers"},
        "prompt_version": "symbolic-v1",
        "constraint_version": "copy-v3",
        "lexicon": {"digest": "0123abcd", "min_ratio": 0.5, "min_count": 1},
        "limit": None,
        "data_dir": "/data",
        "code_version": "0",
        "sets": {"ncbi": with_lexicon},
    }
    ev.write_report(report, str(tmp_path))
    md = (tmp_path / "report.md").read_text()
    assert (
        "`0123abcd`, an entry (also with a capital first letter training never writes) becomes a span at ratio ≥ 0.5 and count ≥ 1"
        in md
    )
    assert "or only the lexicon of a schema its own excludes knows it" in md
    assert "a lone word training never holds takes the label its ending gives" in md
    assert "a lone code the label its shape gives" in md
    assert "| P | R | F1 | F1 tagger | lexicon +/− | abbreviations +/− | P relaxed |" in md
    assert "| 50.00 | 100.00 | 66.67 | 50.00 | +7 −0 | +2 −3 | 50.00 |" in md
