"""Rebuild a set of partitions of every mart, atomically, with checks, ledger and state.

One transaction replaces a chunk of dates in every partitioned mart (DELETE + INSERT through the
engine's `replace_partitions`), writes the diff ledger, runs the blocking checks on exactly those
dates, records the partition state and clears the dates' dirty marks. Any failure rolls all of it
back: each date is entirely rebuilt or keeps its previous content.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from shukei.checks.queries import DATES, KEYS, MONTHS, expand_macros, offending_rows, scope_of
from shukei.engines.base import Engine
from shukei.errors import CheckFailed
from shukei.pipeline.definition import Mart, Pipeline
from shukei.runner.diff import record_diff
from shukei.runner.state import record_checks
from shukei.sql import qualified, quote

log = logging.getLogger("shukei.runner")


@dataclass
class CheckOutcome:
    name: str
    target: str
    scope: str
    blocking: bool
    failed_rows: int
    query: str

    @property
    def status(self) -> str:
        if not self.failed_rows:
            return "pass"
        return "fail" if self.blocking else "warn"

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.name,
            "target": self.target,
            "scope": self.scope,
            "blocking": self.blocking,
            "failed_rows": self.failed_rows,
            "status": self.status,
        }


@dataclass
class ChunkResult:
    dates: list[date]
    rows: dict[date, int] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)


def fill_temp(engine: Engine, table: str, col: str, sql_type: str, values: list[Any]) -> None:
    """(Re)create a one-column temp table holding `values`, inserted as bound parameters."""
    engine.create_temp(table, f"SELECT CAST(NULL AS {sql_type}) AS {col} LIMIT 0")
    engine.insert_rows(table, [(v,) for v in values], chunk=500)
    engine.analyze((table,))


def run_checks(
    engine: Engine,
    pipeline: Pipeline,
    phase: str,
    run_id: str,
    scope_label: str,
    batches: Sequence[int] = (),
) -> list[CheckOutcome]:
    """Run the checks of one phase ('staging', 'dates', 'keyed:<mart>'); raise on a blocking one.

    Staging checks look at the rows of `batches`. Results are recorded in shukei.check_results
    in the caller's transaction.
    """
    out = []
    now = datetime.now(UTC)
    for check in pipeline.checks:
        ph, scope, scope_params = scope_of(check, pipeline, batches)
        if ph != phase or not engine.table_exists(*check.table):
            continue
        sql, params = offending_rows(check, scope, scope_params)
        if check.kind == "sql":
            sql = engine.translate(sql)
        failed = int(engine.scalar(f"SELECT count(*) FROM ({sql}) AS q", params))
        res = CheckOutcome(
            check.name, ".".join(check.table), scope_label, check.blocking, failed, sql
        )
        out.append(res)
        if failed and check.blocking:
            _record_checks(engine, pipeline, run_id, out, now)
            raise CheckFailed(check.name, failed, sql, scope_label)
        if failed:
            log.warning("check %s: %d offending row(s) (warning)", check.name, failed)
    _record_checks(engine, pipeline, run_id, out, now)
    return out


def _record_checks(
    engine: Engine, pipeline: Pipeline, run_id: str, results: list[CheckOutcome], at: datetime
) -> None:
    record_checks(
        engine,
        [
            (run_id, None, pipeline.name, r.name, r.target, r.scope, r.blocking, r.failed_rows)
            + (r.status, r.query, at)
            for r in results
        ],
    )


def create_mart(engine: Engine, mart: Mart, select_sql: str) -> None:
    """Create a mart's table from a query's columns, with the indexes BI queries need."""
    t = ("marts", mart.name)
    engine.create_table_from(t, select_sql)
    keys = list(dict.fromkeys([*(c for c in [mart.partition, mart.keyed_by] if c), *mart.grain]))
    engine.ensure_index(t, keys, unique=True)
    for c in keys:
        engine.ensure_index(t, [c])


def _ensure_mart(engine: Engine, mart: Mart) -> list[str]:
    if not engine.table_exists("marts", mart.name):
        create_mart(engine, mart, "SELECT * FROM _shukei_new")
    return [c for c, _ in engine.columns("marts", mart.name)]


def _replace(
    engine: Engine,
    pipeline: Pipeline,
    run_id: str,
    mart: Mart,
    column: str,
    keys_sql: str,
    ledger_partition: str | None,
) -> dict[str, int]:
    """Replace one mart's partitions in `keys_sql` by its query; ledger; keys for keyed marts."""
    # The last ledger's view of the rows that differ reads _shukei_new and _shukei_prev:
    # PostgreSQL drops no table a view depends on.
    engine.execute("DROP VIEW IF EXISTS _shukei_delta")
    engine.create_temp("_shukei_new", engine.translate(expand_macros(mart.sql)))
    columns = _ensure_mart(engine, mart)
    t = qualified("marts", mart.name)
    engine.create_temp("_shukei_prev", f"SELECT * FROM {t} WHERE {quote(column)} IN {keys_sql}")
    cl = ", ".join(quote(c) for c in columns)
    engine.replace_partitions(
        ("marts", mart.name), column, keys_sql, f"SELECT {cl} FROM _shukei_new"
    )
    after = record_diff(
        engine,
        run_id,
        pipeline.name,
        mart,
        "_shukei_prev",
        "_shukei_new",
        columns,
        ledger_partition,
    )
    # Keyed marts fed by this mart: the keys of every row that changed are now dirty.
    for km in pipeline.marts:
        if km.keyed_by and mart.name in km.keys_from and km.keyed_by in columns:
            k = quote(km.keyed_by)
            engine.execute(
                "INSERT INTO shukei.dirty_keys (pipeline, mart, key_value) "
                "SELECT DISTINCT CAST(? AS VARCHAR), CAST(? AS VARCHAR), "
                f"CAST({k} AS VARCHAR) FROM _shukei_delta WHERE {k} IS NOT NULL",
                (pipeline.name, km.name),
            )
    return after


def rebuild_dates(
    engine: Engine, pipeline: Pipeline, run_id: str, dates: list[date], reasons: dict[date, str]
) -> ChunkResult:
    """Rebuild `dates` in every partitioned mart in ONE transaction (see module docstring)."""
    result = ChunkResult(dates)
    now = datetime.now(UTC)
    with engine.transaction():
        fill_temp(engine, "_shukei_dates", "d", "DATE", dates)
        months = sorted({d.replace(day=1) for d in dates})
        fill_temp(engine, "_shukei_months", "d", "DATE", months)
        rows: dict[str, int] = {}
        for mart in pipeline.marts:
            if mart.keyed_by:
                continue
            assert mart.partition
            macro = MONTHS if mart.partition_grain == "month" else DATES
            after = _replace(engine, pipeline, run_id, mart, mart.partition, macro, mart.partition)
            if mart.partition_grain == "date":
                for p, n in after.items():
                    rows[p] = rows.get(p, 0) + n
        label = f"{dates[0]}..{dates[-1]}" if len(dates) > 1 else str(dates[0])
        result.checks = run_checks(engine, pipeline, "dates", run_id, label)
        for d in dates:
            result.rows[d] = rows.get(str(d), 0)
        engine.insert_rows(
            "shukei.partitions (pipeline, partition_date, state, run_id, built_at, mart_rows)",
            [(pipeline.name, d, "built", run_id, now, n) for d, n in result.rows.items()],
            "ON CONFLICT (pipeline, partition_date) DO UPDATE SET state = 'built', "
            "run_id = excluded.run_id, built_at = excluded.built_at, "
            "mart_rows = excluded.mart_rows, error = NULL",
        )
        engine.insert_rows(
            "shukei.run_dates",
            [(run_id, d, reasons.get(d, "requested"), "built", None) for d in dates],
        )
        engine.execute(
            f"DELETE FROM shukei.dirty_dates WHERE pipeline = ? AND partition_date IN {DATES}",
            (pipeline.name,),
        )
    return result


def rebuild_keyed(engine: Engine, pipeline: Pipeline, run_id: str) -> dict[str, int]:
    """Rebuild the dirty keys of every keyed mart, one transaction per mart."""
    done = {}
    for mart in pipeline.marts:
        if not mart.keyed_by:
            continue
        with engine.transaction():
            engine.create_temp(
                "_shukei_keys",
                "SELECT DISTINCT key_value AS k "
                "FROM shukei.dirty_keys WHERE pipeline = ? AND mart = ?",
                (pipeline.name, mart.name),
            )
            n_keys = int(engine.scalar("SELECT count(*) FROM _shukei_keys"))
            if not n_keys:
                continue
            _replace(engine, pipeline, run_id, mart, mart.keyed_by, KEYS, None)
            run_checks(engine, pipeline, f"keyed:{mart.name}", run_id, f"{n_keys} keys")
            # The writer lock is held, so every dirty key of this mart was just rebuilt.
            engine.execute(
                "DELETE FROM shukei.dirty_keys WHERE pipeline = ? AND mart = ?",
                (pipeline.name, mart.name),
            )
            done[mart.name] = n_keys
            log.info("rebuilt %s for %d key(s)", mart.name, n_keys)
    return done


def record_failure(
    engine: Engine,
    pipeline: Pipeline,
    run_id: str,
    dates: list[date],
    reasons: dict[date, str],
    error: str,
    check: CheckFailed | None,
) -> None:
    """After a rollback: remember which dates failed and why (their content is unchanged)."""
    with engine.transaction():
        for d in dates:
            engine.execute(
                "INSERT INTO shukei.partitions (pipeline, partition_date, state, error) "
                "VALUES (?, ?, 'failed', ?) ON CONFLICT (pipeline, partition_date) DO UPDATE SET "
                "state = 'failed', error = excluded.error",
                (pipeline.name, d, error),
            )
            engine.execute(
                "INSERT INTO shukei.run_dates VALUES (?, ?, ?, 'failed', ?)",
                (run_id, d, reasons.get(d, "requested"), error),
            )
        if check is not None:
            scope = ", ".join(map(str, dates))
            record_checks(
                engine,
                [
                    (run_id, None, pipeline.name, check.check, None, scope, True, check.failed)
                    + ("fail", check.query, datetime.now(UTC))
                ],
            )
