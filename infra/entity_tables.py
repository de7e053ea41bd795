"""Reading entity tables of every version as today's columns.

Decode writes ``entities/3`` and the selector ``entities/4``; folders written before hold
``entities/1`` and ``entities/2``. Readers ask :func:`read_entities` for the columns they need:
a ``source`` missing from an older table reads as ``tagger`` (there was no lexicon then), a
``reason`` missing from a table no selector wrote reads as null.
"""

from __future__ import annotations

import pyarrow as pa

from infra import storage
from schemas import ENTITIES_V1, ENTITIES_V2, ENTITIES_V3, ENTITIES_V4, SCHEMA_KEY, schema_version

READABLE = {schema_version(s): s for s in (ENTITIES_V1, ENTITIES_V2, ENTITIES_V3, ENTITIES_V4)}


def entities_schema(uri: str, what: str = "entities") -> pa.Schema:
    """The entities schema a file declares, or a ValueError naming the file and what it is
    (``what``: the file's role in messages, e.g. ``candidates``)."""
    try:
        found = storage.read_metadata(uri).get(SCHEMA_KEY.decode(), "")
    except FileNotFoundError:
        raise FileNotFoundError(f"{uri}: no such {what} table") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"{uri}: not a Parquet table ({e})") from None
    if found not in READABLE:
        raise ValueError(
            f"{uri}: expected an entities table ({', '.join(READABLE)}), "
            f"found {found or 'no schema tag'}"
        )
    return READABLE[found]


def read_entities(uri: str, columns: list[str] | None = None, what: str = "entities") -> pa.Table:
    """The entities table at ``uri`` (any version) with ``columns`` of ENTITIES_V4, in order
    (all of them by default), older tables filled in as the module doc says; ``what`` as in
    :func:`entities_schema`."""
    schema = entities_schema(uri, what)
    columns = columns or ENTITIES_V4.names
    unknown = [c for c in columns if c not in ENTITIES_V4.names]
    if unknown:
        raise ValueError(f"no entity column {unknown[0]!r}; known: {', '.join(ENTITIES_V4.names)}")
    have = [c for c in columns if c in schema.names]
    table = storage.read_table(uri, schema, have)
    out = {}
    for c in columns:
        field = ENTITIES_V4.field(c)
        if c in have:
            out[c] = table.column(c).cast(field.type)
        elif c == "source":
            out[c] = pa.array(["tagger"] * table.num_rows, field.type)
        else:  # reason: no selector wrote this table
            out[c] = pa.nulls(table.num_rows, field.type)
    return pa.table(out, schema=pa.schema([ENTITIES_V4.field(c) for c in columns]))
