"""The ``bioner`` command line: typer for parsing, rich for output, one module per command.

Commands end a user-caused failure with one ``error: ...`` line themselves
(:mod:`flows.commands._common`); anything that still escapes them ends the same way, with its
traceback only under ``bioner --debug`` (or ``BIONER_DEBUG=1``).
"""

from __future__ import annotations

from typing import Any

import typer

from flows.commands import (
    _common,
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


class _App(typer.Typer):
    """The typer app, ending an exception that escaped a command with one line and exit 1:
    a storage failure as such, anything else with its type."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().__call__(*args, **kwargs)
        except OSError as e:  # storage: S3 unreachable or denied, a file that went away
            if _common.debug:
                raise
            _common.error(_common.os_error_line(e))
            raise SystemExit(1) from None
        except Exception as e:
            if _common.debug:
                raise
            text = " ".join(str(e).split()) or "no message"
            _common.error(f"{type(e).__name__}: {text} (bioner --debug shows the traceback)")
            raise SystemExit(1) from None


app = _App(
    name="bioner",
    help="Biomedical NER pipeline: symbolic-tagging LLMs from PubMed/CNKI to entity tables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def options(
    debug: bool = typer.Option(
        False, "--debug", envvar="BIONER_DEBUG", help="Show the traceback of an error."
    ),
) -> None:
    """Biomedical NER pipeline: symbolic-tagging LLMs from PubMed/CNKI to entity tables."""
    _common.debug = debug


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
