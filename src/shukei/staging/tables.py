"""DDL of a pipeline's raw and staging tables, derived from its entity declarations.

Per entity E: `raw.E` (text, append-only, lineage), `staging.E` (the current version of each key),
`staging.E_superseded` (valid rows that lost: older versions, replaced winners, duplicates) and
`staging.E_quarantine` (rows that cannot be used, with every reason). Every raw row ends in exactly
one of the three staging tables.
"""

from __future__ import annotations

from shukei.engines.base import Engine
from shukei.pipeline.definition import Column, Entity, Pipeline
from shukei.runner.state import migrate
from shukei.sql import qualified, quote

LINEAGE = ("_batch_id", "_ingested_at", "_source_file", "_row_no")


def sql_type(col: Column) -> str:
    if col.decimal:
        p, s = col.decimal
        return f"DECIMAL({p},{s})"
    return {
        "text": "VARCHAR",
        "email": "VARCHAR",
        "integer": "BIGINT",
        "timestamp": "TIMESTAMPTZ",
        "date": "DATE",
        "boolean": "BOOLEAN",
        "json": "VARCHAR",
    }[col.type]


def typed_columns(entity: Entity, pipeline: Pipeline) -> list[tuple[str, str]]:
    cols = [(c.name, sql_type(c)) for c in entity.columns]
    if entity.partition_column:
        cols.append((entity.partition_column, "DATE"))
    return cols


def _kind(col: Column) -> str:
    """What a raw (text) column holds, for `Engine.storage`: integers and flags repeat."""
    return "few" if col.type in ("integer", "boolean") else "text"


def ensure_tables(engine: Engine, pipeline: Pipeline) -> None:
    """Create the state schema and this pipeline's raw/staging tables if they are missing."""
    migrate(engine)

    def create(schema: str, name: str, body: str) -> None:
        # Asked of the catalog first: every command calls this, and on DuckDB (whose catalog
        # shukei caches) sixteen CREATE ... IF NOT EXISTS statements cost more than one read.
        if not engine.table_exists(schema, name):
            engine.execute(f"CREATE TABLE IF NOT EXISTS {qualified(schema, name)} ({body})")

    for name, ent in pipeline.entities.items():
        raw_cols = ", ".join(f"{quote(c)} VARCHAR" for c in ent.column_names)
        # Raw holds text, but what the values are tells the engine how to store them.
        stored = ", ".join(
            f"{quote(c.name)} VARCHAR{engine.storage(_kind(c))}" for c in ent.columns
        )
        if ent.explode is not None:  # derived in staging from its parent: no raw table
            typed = ", ".join(f"{quote(c)} {t}" for c, t in typed_columns(ent, pipeline))
            create(
                "staging",
                name,
                f"{typed}, _batch_id BIGINT NOT NULL, _source_file VARCHAR NOT NULL, "
                "_row_no BIGINT NOT NULL",
            )
            engine.ensure_index(("staging", name), list(ent.key), unique=True)
            continue
        create(
            "raw",
            name,
            f"_batch_id BIGINT NOT NULL{engine.storage('constant')}, "
            f"_ingested_at TIMESTAMPTZ NOT NULL{engine.storage('constant')}, "
            f"_source_file VARCHAR NOT NULL{engine.storage('few')}, "
            f"_row_no BIGINT NOT NULL{engine.storage('sequence')}, {stored}",
        )
        typed = ", ".join(f"{quote(c)} {t}" for c, t in typed_columns(ent, pipeline))
        lineage = (
            "_batch_id BIGINT NOT NULL, _source_file VARCHAR NOT NULL, _row_no BIGINT NOT NULL"
        )
        create("staging", name, f"{typed}, {lineage}")
        create("staging", name + "_superseded", f"{typed}, {lineage}, _reason VARCHAR NOT NULL")
        create("staging", name + "_quarantine", f"{lineage}, {raw_cols}, _reason VARCHAR NOT NULL")
        engine.ensure_index(("raw", name), ["_batch_id"], appended=True)
        engine.ensure_index(("staging", name), list(ent.key), unique=True)
        for via in ent.via[:1]:
            engine.ensure_index(("staging", name), [a for a, _ in via.on])
        for t in (name, name + "_superseded", name + "_quarantine"):
            engine.ensure_index(("staging", t), ["_batch_id"], appended=True)
        if ent.partition_column:
            engine.ensure_index(("staging", name), [ent.partition_column])
