"""The ``bioner`` command line: typer for parsing, rich for output, one module per command."""

from __future__ import annotations

import typer

from flows.commands import (
    convert,
    decode,
    evaluate,
    evaluate_model,
    ingest,
    nightly,
    publish,
    run,
    select,
    tag,
    train,
)

app = typer.Typer(
    name="bioner",
    help="Biomedical NER pipeline: symbolic-tagging LLMs from PubMed/CNKI to entity tables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("convert")(convert.main)
app.command("decode")(decode.main)
app.command("eval")(evaluate.main)
app.command("evaluate")(evaluate_model.main)
app.command("ingest")(ingest.main)
app.command("run")(run.main)
app.command("nightly")(nightly.nightly)
app.command("backfill")(nightly.backfill)
app.command("publish")(publish.main)
app.command("export")(publish.export_main)
app.command("tag")(tag.main)
app.command("train-data")(train.train_data)
app.command("init-model")(train.init_model)
app.command("train")(train.train)
app.command("export-checkpoint")(train.export_checkpoint)
app.command("superfilter")(train.superfilter)
app.command("lexicon")(train.lexicon)
app.command("select")(select.main)
app.command("train-selector")(select.train_main)


if __name__ == "__main__":
    app()
