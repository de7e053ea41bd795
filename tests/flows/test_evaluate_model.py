"""``bioner evaluate``: the evaluate flow on a few documents of each test set, tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bioner.labels import SCHEMAS
from bioner.metrics import evaluate
from bioner.readers.canonical import read_canonical
from flows.cli import app
from infra import evaluation as ev

runner = CliRunner()
FAST = ["--limit", "1", "--max-new-tokens", "8", "--threads", "1"]


def available_sets() -> list[str]:
    """The test sets whose data is here; the others are skipped with the reason printed."""
    found = []
    for name in ev.EVAL_SETS:
        if problem := ev.missing_data(name):
            print(f"skipping the {name} set: {problem}")
        else:
            found.append(name)
    return found


@pytest.fixture(scope="module")
def evaluated(prefect_backend, tiny_model, tmp_path_factory) -> tuple[Path, list[str], str]:
    """One run over the first document of every available set: (out, sets, stdout)."""
    sets = available_sets()
    if not sets:
        pytest.skip(f"no test set data under {ev.data_dir()} (set BIONER_DATA_DIR)")
    out = tmp_path_factory.mktemp("evaluate") / "report"
    args = ["evaluate", "--model", str(tiny_model), "--sets", ",".join(sets), "--out", str(out)]
    result = runner.invoke(app, [*args, *FAST])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return out, sets, result.stdout


def test_the_report_files_have_every_set_and_the_provenance(evaluated):
    out, sets, stdout = evaluated
    report = json.loads((out / "report.json").read_text())
    assert list(report["sets"]) == sets
    assert report["model_id"].startswith("tiny@") and report["untrained"] is True
    assert report["prompt_version"] == "symbolic-v1"
    assert report["constraint_version"].startswith("copy-")
    assert report["engine"]["backend"] == "transformers"
    assert report["limit"] == 1
    for name, r in report["sets"].items():
        assert r["set"] == name and r["documents"] == 1 and r["limit"] == 1
        assert r["passages"] >= 1 and r["requests"] >= r["passages"]
        asked, scored = ev.request_of(name)  # the unified schema, by default
        assert r["schema"] == asked == "general" and r["schema_mode"] == "general"
        assert r["scored_types"] == list(scored)
        assert r["model_id"] == report["model_id"]
        assert set(r["speed"]) >= {"seconds", "passages_per_s", "tokens_per_s", "output_tokens"}
        assert r["speed"]["output_tokens"] > 0 and r["speed"]["tokens_per_s"] > 0
        assert set(r["decode_issues"]) == {"total", "by_kind", "lossy_passages"}
        assert r["decode_issues"]["total"] == sum(r["decode_issues"]["by_kind"].values())
        labels = list(scored)
        for kind in ("strict", "relaxed"):
            assert list(r["metrics"][kind]["per_type"])[: len(labels)] == labels
            assert r["metrics"][kind]["macro"]["labels"] == labels
        assert (out / "sets" / f"{name}.json").is_file()
    md = (out / "report.md").read_text()
    assert md.startswith("# bioner evaluation")
    for name in sets:
        assert f"\n| {name} | 1 | " in md and f"\n## {name}: " in md
    assert report["outputs"]["json"] == str(out / "report.json")
    # The table at the end names every set; the reports' paths follow it.
    assert "bioner evaluate" in stdout and all(name in stdout for name in sets)
    assert str(out / "report.md") in stdout.replace("\n", "")


def test_the_metrics_are_bioner_metrics_on_the_decoded_spans(evaluated, shared_data):
    out, sets, _ = evaluated
    report = json.loads((out / "report.json").read_text())
    for name in sets:
        gold = ev.load_eval_set(name, shared_data, limit=1, mode="general")
        labels = ev.request_of(name)[1]
        pred = read_canonical((out / "sets" / f"{name}.pred.jsonl").read_text())
        assert [d.id for d in pred] == [d.id for d in gold]
        assert [d.text for d in pred] == [d.text for d in gold]
        for d in pred:
            for s in d.spans:  # every predicted span is a real substring of its document
                assert s.end <= len(d.text)
        for d in pred:  # only the types the set is scored on are kept
            assert {s.label for s in d.spans} <= set(labels)
        expected = evaluate(
            {d.id: [s for s in d.spans if s.label in labels] for d in gold},
            {d.id: d.spans for d in pred},
            labels=labels,
        )
        assert report["sets"][name]["metrics"] == expected.to_dict()
        assert report["sets"][name]["predicted_spans"] == sum(len(d.spans) for d in pred)


def test_no_constrain_and_json_output(prefect_backend, tiny_model, tmp_path):
    name = next(iter(available_sets()), None)
    if name is None:
        pytest.skip(f"no test set data under {ev.data_dir()}")
    args = ["evaluate", "--model", str(tiny_model), "--sets", name, "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, *FAST, "--no-constrain", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["constraint_version"] == "off"
    assert list(report["sets"]) == [name]


@pytest.mark.data
def test_a_models_lexicon_fills_gaps_and_the_report_scores_the_tagger_alone(
    prefect_backend, tiny_model, shared_data, tmp_path
):
    import shutil

    from bioner.lexicon import Entry, Lexicon
    from infra.lexicon import write_lexicon

    if ev.missing_data("ncbi", shared_data):
        pytest.skip(ev.missing_data("ncbi", shared_data))
    gold = ev.load_eval_set("ncbi", shared_data, limit=1)[0]
    model = shutil.copytree(tiny_model, tmp_path / "model")
    mentions = {s.text(gold.text) for s in gold.spans}
    entries = {m: Entry(m, "Disease", 2, 2) for m in mentions}
    write_lexicon({"general": Lexicon("general", entries)}, model, {"data": "gold"})
    out = tmp_path / "out"
    args = ["evaluate", "--model", str(model), "--sets", "ncbi", "--out", str(out), *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    r = json.loads((out / "report.json").read_text())["sets"]["ncbi"]
    assert r["lexicon"]["source"] == {"data": "gold"} and r["lexicon_added"] > 0
    assert r["metrics"]["strict"]["micro"]["tp"] > r["tagger_metrics"]["strict"]["micro"]["tp"]
    assert "F1 tagger" in result.stdout and "lexicon" in result.stdout
    # The tagger's spans alone are written beside the predictions, and score as reported.
    alone = read_canonical((out / "sets/ncbi.tagger.jsonl").read_text())
    scored = evaluate({gold.id: gold.spans}, {d.id: d.spans for d in alone})
    assert scored.strict.micro.tp == r["tagger_metrics"]["strict"]["micro"]["tp"]
    plain = runner.invoke(app, [*args, "--no-lexicon", "--out", str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    r = json.loads((tmp_path / "plain/report.json").read_text())["sets"]["ncbi"]
    assert r["lexicon"] is None and r["tagger_metrics"] is None and r["lexicon_added"] == 0
    assert not (tmp_path / "plain/sets/ncbi.tagger.jsonl").exists()


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_an_unknown_set_is_one_line(tiny_model, tmp_path):
    result = runner.invoke(
        app, ["evaluate", "--model", str(tiny_model), "--sets", "ncbi,genia", "-o", str(tmp_path)]
    )
    line = _one_line_error(result)
    assert "'genia'" in line and "known: ncbi, bc5cdr, jnlpba, bionlp13cg, bionlp11id" in line


def test_an_unknown_schema_or_rule_is_one_line(tiny_model, tmp_path):
    base = ["evaluate", "--model", str(tiny_model), "--sets", "ncbi", "-o", str(tmp_path)]
    line = _one_line_error(runner.invoke(app, [*base, "--schema", "unified"]))
    assert "'unified'" in line and "known: general, dataset" in line
    line = _one_line_error(runner.invoke(app, [*base, "--rules", "-nosuch"]))
    assert "'nosuch'" in line and "abbreviation-uses" in line


def test_the_dataset_schema_asks_each_set_its_own(prefect_backend, tiny_model, tmp_path):
    if ev.missing_data("jnlpba"):
        pytest.skip(ev.missing_data("jnlpba"))
    args = ["evaluate", "--model", str(tiny_model), "--sets", "jnlpba", "--out", str(tmp_path)]
    result = runner.invoke(app, [*args, *FAST, "--schema", "dataset", "--no-abbreviations"])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "report.json").read_text())
    r = report["sets"]["jnlpba"]
    assert r["schema"] == "jnlpba" and r["schema_mode"] == "dataset"
    assert r["metrics"]["strict"]["macro"]["labels"] == list(SCHEMAS["jnlpba"].labels)
    assert "abbreviation-uses" in r["decode_rules"]


def test_a_missing_model_folder_is_one_line(tmp_path):
    result = runner.invoke(app, ["evaluate", "--model", str(tmp_path / "nope"), "--sets", "ncbi"])
    assert "no such model folder" in _one_line_error(result)


def test_missing_data_is_one_line(tiny_model, tmp_path, monkeypatch):
    monkeypatch.setenv("BIONER_DATA_DIR", str(tmp_path / "empty"))
    result = runner.invoke(app, ["evaluate", "--model", str(tiny_model), "--sets", "jnlpba"])
    line = _one_line_error(result)
    assert "jnlpba" in line and "BIONER_DATA_DIR" in line
    assert not (tmp_path / "out").exists()
