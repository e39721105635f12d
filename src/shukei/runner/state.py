"""The `shukei` schema: run state in the warehouse, with numbered migrations.

Each migration runs in one transaction together with its version row, so a warehouse is always at
exactly one schema version. Later releases append to MIGRATIONS; they never edit a shipped one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shukei.engines.base import Engine

# Types are spelled so that DuckDB and PostgreSQL both accept them.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "initial state tables",
        [
            "CREATE SCHEMA IF NOT EXISTS raw",
            "CREATE SCHEMA IF NOT EXISTS staging",
            "CREATE SCHEMA IF NOT EXISTS marts",
            # ingestion: one batch per `ingest` call, one row per file seen
            """CREATE TABLE shukei.batches (
                pipeline VARCHAR NOT NULL, batch_id BIGINT NOT NULL, ingested_at TIMESTAMPTZ,
                files INTEGER, skipped_files INTEGER, status VARCHAR,
                PRIMARY KEY (pipeline, batch_id))""",
            """CREATE TABLE shukei.files (
                pipeline VARCHAR NOT NULL, batch_id BIGINT NOT NULL, entity VARCHAR NOT NULL,
                path VARCHAR NOT NULL, sha256 VARCHAR NOT NULL, rows_in BIGINT)""",
            # per batch and entity: rows in = used + superseded + duplicate + quarantined
            """CREATE TABLE shukei.batch_counts (
                pipeline VARCHAR NOT NULL, batch_id BIGINT NOT NULL, entity VARCHAR NOT NULL,
                rows_in BIGINT, rows_used BIGINT, rows_superseded BIGINT, rows_duplicate BIGINT,
                rows_quarantined BIGINT, PRIMARY KEY (pipeline, batch_id, entity))""",
            # what needs rebuilding: partition dates, and keys of keyed marts
            """CREATE TABLE shukei.dirty_dates (
                pipeline VARCHAR NOT NULL, partition_date DATE NOT NULL, batch_id BIGINT,
                PRIMARY KEY (pipeline, partition_date))""",
            """CREATE TABLE shukei.dirty_keys (
                pipeline VARCHAR NOT NULL, mart VARCHAR NOT NULL, key_value VARCHAR NOT NULL)""",
            # what was built
            """CREATE TABLE shukei.partitions (
                pipeline VARCHAR NOT NULL, partition_date DATE NOT NULL, state VARCHAR NOT NULL,
                run_id VARCHAR, built_at TIMESTAMPTZ, mart_rows BIGINT, error VARCHAR,
                PRIMARY KEY (pipeline, partition_date))""",
            """CREATE TABLE shukei.runs (
                run_id VARCHAR PRIMARY KEY, pipeline VARCHAR NOT NULL, started_at TIMESTAMPTZ,
                finished_at TIMESTAMPTZ, status VARCHAR NOT NULL, requested VARCHAR,
                dates_planned INTEGER, dates_built INTEGER, dates_failed INTEGER, pid INTEGER,
                error VARCHAR)""",
            """CREATE TABLE shukei.run_dates (
                run_id VARCHAR NOT NULL, partition_date DATE NOT NULL, reason VARCHAR NOT NULL,
                status VARCHAR NOT NULL, error VARCHAR, PRIMARY KEY (run_id, partition_date))""",
            # the diff ledger: per run, partition and mart
            """CREATE TABLE shukei.diffs (
                run_id VARCHAR NOT NULL, pipeline VARCHAR NOT NULL, mart VARCHAR NOT NULL,
                partition_value VARCHAR NOT NULL, rows_before BIGINT, rows_after BIGINT,
                rows_added BIGINT, rows_removed BIGINT, rows_changed BIGINT,
                totals_before VARCHAR, totals_after VARCHAR)""",
            """CREATE TABLE shukei.check_results (
                run_id VARCHAR, batch_id BIGINT, pipeline VARCHAR NOT NULL,
                check_name VARCHAR NOT NULL, target VARCHAR, scope VARCHAR, blocking BOOLEAN,
                failed_rows BIGINT, status VARCHAR NOT NULL, query VARCHAR,
                checked_at TIMESTAMPTZ)""",
            """CREATE TABLE shukei.pipeline_state (
                pipeline VARCHAR PRIMARY KEY, timezone VARCHAR NOT NULL,
                definition_hash VARCHAR)""",
        ],
    ),
]

MIGRATIONS.append(
    (
        2,
        "quality log of gated batches",
        [
            """CREATE TABLE shukei.quality_log (
                pipeline VARCHAR NOT NULL, batch_id BIGINT NOT NULL, check_name VARCHAR NOT NULL,
                checked BIGINT, failed BIGINT, pass_rate DOUBLE PRECISION, passed BOOLEAN,
                batch_status VARCHAR NOT NULL, threshold DOUBLE PRECISION,
                checked_at TIMESTAMPTZ)""",
        ],
    )
)

SCHEMA_VERSION = MIGRATIONS[-1][0]


def migrate(engine: Engine) -> int:
    """Bring the `shukei` schema to SCHEMA_VERSION; idempotent. Returns the version."""
    engine.execute("CREATE SCHEMA IF NOT EXISTS shukei")
    engine.execute(
        "CREATE TABLE IF NOT EXISTS shukei.schema_version ("
        "version INTEGER PRIMARY KEY, description VARCHAR, applied_at TIMESTAMPTZ)"
    )
    current = int(engine.scalar("SELECT coalesce(max(version), 0) FROM shukei.schema_version"))
    start = current
    for version, description, statements in MIGRATIONS:
        if version <= current:
            continue
        with engine.transaction():
            for stmt in statements:
                engine.execute(stmt)
            engine.execute(
                "INSERT INTO shukei.schema_version VALUES (?, ?, current_timestamp)",
                (version, description),
            )
        current = version
    if current != start:
        # With the tables, so a reader (status) never rewrites them under a running writer.
        engine.install_functions()
    return current


CheckRow = tuple[Any, ...]  # the columns of shukei.check_results, in their order


def record_checks(engine: Engine, rows: Sequence[CheckRow]) -> None:
    """Append check results in one statement (each INSERT costs a statement's overhead).

    A row: run_id, batch_id, pipeline, check_name, target, scope, blocking, failed_rows,
    status, query, checked_at.
    """
    engine.insert_rows(
        "shukei.check_results (run_id, batch_id, pipeline, check_name, target, scope, blocking, "
        "failed_rows, status, query, checked_at)",
        list(rows),
    )
