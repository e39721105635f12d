"""Read-side views of the state: status, the diff ledger, check results."""

from __future__ import annotations

import json
from typing import Any

from shukei.engines.base import Engine
from shukei.errors import UsageError
from shukei.pipeline.definition import Pipeline
from shukei.staging.tables import ensure_tables


def _rows(
    engine: Engine, sql: str, params: tuple[Any, ...], names: list[str]
) -> list[dict[str, Any]]:
    return [dict(zip(names, r, strict=True)) for r in engine.fetchall(sql, params)]


def status(engine: Engine, p: Pipeline, limit: int = 10) -> dict[str, Any]:
    ensure_tables(engine, p)
    parts = _rows(
        engine,
        "SELECT partition_date, state, run_id, built_at, mart_rows, error FROM shukei.partitions "
        "WHERE pipeline = ? ORDER BY partition_date",
        (p.name,),
        ["date", "state", "run_id", "built_at", "mart_rows", "error"],
    )
    dirty = [
        r[0]
        for r in engine.fetchall(
            "SELECT partition_date FROM shukei.dirty_dates WHERE pipeline = ? ORDER BY 1", (p.name,)
        )
    ]
    runs = _rows(
        engine,
        "SELECT run_id, status, started_at, finished_at, dates_planned, dates_built, dates_failed,"
        " error FROM shukei.runs WHERE pipeline = ? ORDER BY started_at DESC LIMIT ?",
        (p.name, limit),
        [
            "run_id",
            "status",
            "started_at",
            "finished_at",
            "dates_planned",
            "dates_built",
            "dates_failed",
            "error",
        ],
    )
    batches = _rows(
        engine,
        "SELECT b.batch_id, b.ingested_at, b.status, c.entity, c.rows_in, c.rows_used, "
        "c.rows_superseded, c.rows_duplicate, c.rows_quarantined FROM shukei.batches b "
        "LEFT JOIN shukei.batch_counts c ON c.pipeline = b.pipeline AND c.batch_id = b.batch_id "
        "WHERE b.pipeline = ? ORDER BY b.batch_id DESC, c.entity LIMIT ?",
        (p.name, limit * len(p.entities)),
        [
            "batch_id",
            "ingested_at",
            "status",
            "entity",
            "rows_in",
            "rows_used",
            "rows_superseded",
            "rows_duplicate",
            "rows_quarantined",
        ],
    )
    pending = int(
        engine.scalar(
            "SELECT count(*) FROM shukei.batches WHERE pipeline = ? AND status = 'loaded'",
            (p.name,),
        )
    )
    built = [x for x in parts if x["state"] == "built"]
    return {
        "pipeline": p.name,
        "partitions": {
            "built": len(built),
            "failed": [x for x in parts if x["state"] == "failed"],
            "first": parts[0]["date"] if parts else None,
            "last": parts[-1]["date"] if parts else None,
            "dirty": dirty,
            "list": parts,
        },
        "pending_batches": pending,
        "batches": batches,
        "runs": runs,
    }


def _last_run(engine: Engine, p: Pipeline) -> str:
    rid = engine.scalar(
        "SELECT run_id FROM shukei.runs WHERE pipeline = ? ORDER BY started_at DESC LIMIT 1",
        (p.name,),
    )
    if rid is None:
        raise UsageError(f"pipeline {p.name!r} has no runs yet: run `shukei run {p.name}`")
    return str(rid)


def diff(engine: Engine, p: Pipeline, run_id: str | None) -> dict[str, Any]:
    ensure_tables(engine, p)
    rid = run_id or _last_run(engine, p)
    run = engine.fetchone("SELECT status, started_at FROM shukei.runs WHERE run_id = ?", (rid,))
    if run is None:
        raise UsageError(f"no run {rid!r}; `shukei status {p.name}` lists the last runs")
    rows = _rows(
        engine,
        "SELECT mart, partition_value, rows_before, rows_after, rows_added, rows_removed, "
        "rows_changed, totals_before, totals_after FROM shukei.diffs WHERE run_id = ? "
        "ORDER BY partition_value, mart",
        (rid,),
        [
            "mart",
            "partition",
            "rows_before",
            "rows_after",
            "added",
            "removed",
            "changed",
            "totals_before",
            "totals_after",
        ],
    )
    for r in rows:
        r["totals_before"] = json.loads(r["totals_before"] or "{}")
        r["totals_after"] = json.loads(r["totals_after"] or "{}")
    return {"run_id": rid, "status": run[0], "started_at": run[1], "changes": rows}


def checks(engine: Engine, p: Pipeline, run_id: str | None) -> dict[str, Any]:
    ensure_tables(engine, p)
    params: tuple[Any, ...] = (p.name,)
    where = "pipeline = ?"
    if run_id:
        where += " AND run_id = ?"
        params += (run_id,)
    rows = _rows(
        engine,
        "SELECT checked_at, run_id, batch_id, check_name, target, scope, blocking, failed_rows, "
        f"status, query FROM shukei.check_results WHERE {where} ORDER BY checked_at DESC, "
        "check_name LIMIT 200",
        params,
        [
            "checked_at",
            "run_id",
            "batch_id",
            "check",
            "target",
            "scope",
            "blocking",
            "failed_rows",
            "status",
            "query",
        ],
    )
    return {"pipeline": p.name, "results": rows}


def quality(engine: Engine, p: Pipeline, limit: int = 20) -> dict[str, Any]:
    """The gate's history per batch and check, newest first, with each check's trend."""
    ensure_tables(engine, p)
    rows = _rows(
        engine,
        "SELECT batch_id, check_name, checked, failed, pass_rate, passed, batch_status, "
        "threshold, checked_at FROM shukei.quality_log WHERE pipeline = ? AND batch_id IN "
        "(SELECT DISTINCT batch_id FROM shukei.quality_log WHERE pipeline = ? "
        "ORDER BY batch_id DESC LIMIT ?) ORDER BY batch_id DESC, check_name",
        (p.name, p.name, limit),
        [
            "batch_id",
            "check",
            "checked",
            "failed",
            "pass_rate",
            "passed",
            "batch_status",
            "threshold",
            "checked_at",
        ],
    )
    trend: dict[str, dict[str, Any]] = {}
    for r in rows:  # newest first: the first two rates of a check give its trend
        t = trend.setdefault(r["check"], {"check": r["check"], "rates": []})
        t["rates"].append(r["pass_rate"])
    for t in trend.values():
        rates = t["rates"]
        t["latest"] = rates[0]
        t["mean"] = sum(rates) / len(rates)
        t["trend"] = (
            "flat"
            if len(rates) < 2 or abs(rates[0] - rates[1]) < 1e-9
            else ("up" if rates[0] > rates[1] else "down")
        )
    return {"pipeline": p.name, "batches": rows, "trend": list(trend.values())}
