"""One module per ``bioner`` sub-command; each exposes ``main`` for typer."""
