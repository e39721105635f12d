"""A run: merge pending batches, plan the dirty dates, rebuild them in chunks, then keyed marts.

The writer lock is held for the whole run and taken before planning, so two runs can never plan
the same work. A failing chunk is retried date by date, so exactly the failing dates are named and
keep their previous content while every other date is rebuilt.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

from shukei.engines.base import Engine
from shukei.errors import CheckFailed, EngineError, ShukeiError, TransientEngineError
from shukei.logs import context
from shukei.pipeline.definition import Pipeline
from shukei.runner.rebuild import (
    CheckOutcome,
    fill_temp,
    rebuild_dates,
    rebuild_keyed,
    record_failure,
    run_checks,
)
from shukei.runner.retry import retrying
from shukei.sql import qualified
from shukei.staging.merge import EntityCounts, merge_batch, pending_batches, set_context
from shukei.staging.tables import ensure_tables

log = logging.getLogger("shukei.runner")
Progress = Callable[[int, int], None]
T = TypeVar("T")


@dataclass
class RunReport:
    run_id: str
    pipeline: str
    status: str = "running"
    reasons: dict[date, str] = field(default_factory=dict)
    built: list[date] = field(default_factory=list)
    failed: dict[date, str] = field(default_factory=dict)
    batches: dict[int, dict[str, dict[str, int]]] = field(default_factory=dict)
    keyed: dict[str, int] = field(default_factory=dict)
    checks: list[CheckOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """One line for alerts: dates rebuilt, rows merged, the gate's pass rates."""
        rows = sum(c["rows_in"] for b in self.batches.values() for c in b.values())
        return (
            f"run {self.run_id} succeeded: {len(self.built)} date(s) rebuilt, "
            f"{len(self.batches)} batch(es) / {rows:,} row(s) merged in {self.seconds:.1f}s"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "dates": [d.isoformat() for d in sorted(self.built)],
            "reasons": {d.isoformat(): r for d, r in sorted(self.reasons.items())},
            "partitions": [
                {
                    "date": d.isoformat(),
                    "reason": r,
                    "status": "failed" if d in self.failed else "built",
                    **({"error": self.failed[d]} if d in self.failed else {}),
                }
                for d, r in sorted(self.reasons.items())
            ],
            "failed": [{"date": d.isoformat(), "error": e} for d, e in sorted(self.failed.items())],
            "batches": [{"batch_id": b, "entities": c} for b, c in sorted(self.batches.items())],
            "keyed": self.keyed,
            "checks": [c.as_dict() for c in self.checks if c.failed_rows],
            "seconds": round(self.seconds, 3),
        }


def new_run_id() -> str:
    # os.urandom, not `secrets`: that module imports hmac and hashlib, 10 ms for three bytes.
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + os.urandom(3).hex()


def chunks(dates: list[date], size: int) -> list[list[date]]:
    """Sorted dates cut into chunks of at most `size` (one transaction each)."""
    ordered = sorted(dates)
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def definition_hash(pipeline: Pipeline) -> str:
    """A fingerprint of the pipeline's files (not of shukei's code, so upgrades keep state)."""
    return pipeline.fingerprint


def _prepare(engine: Engine, p: Pipeline, timezone: str, full_refresh: bool) -> None:
    """Record the pipeline's timezone and definition; a change re-stages and rebuilds all.

    Staging is derived from raw alone, so it is dropped and every batch is merged again (a
    timestamp without an offset means local time in the *current* business timezone); every
    date built before is dirty, and the marts start empty.
    """
    row = engine.fetchone(
        "SELECT timezone, definition_hash FROM shukei.pipeline_state WHERE pipeline = ?", (p.name,)
    )
    digest = definition_hash(p)
    if row is None:
        engine.execute(
            "INSERT INTO shukei.pipeline_state VALUES (?, ?, ?)", (p.name, timezone, digest)
        )
        return
    if row[0] != timezone:
        why = f"the business timezone changed from {row[0]} to {timezone}"
    elif row[1] != digest:
        why = "the pipeline definition changed"
    elif full_refresh:
        why = "a full refresh was asked for"
    else:
        return
    log.warning("%s: re-staging every batch from raw and rebuilding every date", why)
    with engine.transaction():
        for v in p.views:
            engine.execute(f"DROP VIEW IF EXISTS {qualified('marts', v.name)}")
        for m in reversed(p.marts):
            engine.execute(f"DROP TABLE IF EXISTS {qualified('marts', m.name)}")
        for name in p.entities:
            for t in (name, name + "_superseded", name + "_quarantine"):
                engine.execute(f"DROP TABLE IF EXISTS {qualified('staging', t)}")
        for t in ("batch_counts", "dirty_keys"):
            engine.execute(f"DELETE FROM shukei.{t} WHERE pipeline = ?", (p.name,))
        engine.execute(
            "INSERT INTO shukei.dirty_dates (pipeline, partition_date) SELECT pipeline, "
            "partition_date FROM shukei.partitions WHERE pipeline = ? ON CONFLICT DO NOTHING",
            (p.name,),
        )
        engine.execute("UPDATE shukei.batches SET status = 'loaded' WHERE pipeline = ?", (p.name,))
        engine.execute(
            "UPDATE shukei.pipeline_state SET timezone = ?, definition_hash = ? WHERE pipeline = ?",
            (timezone, digest, p.name),
        )
        ensure_tables(engine, p)


def plan(engine: Engine, p: Pipeline, requested: list[date] | None) -> dict[date, str]:
    """Dates to rebuild and why: requested, or dirty (stale if built before, else missing)."""
    if requested is not None:
        return {d: "requested" for d in requested}
    rows = engine.fetchall(
        "SELECT d.partition_date, pt.built_at IS NOT NULL FROM shukei.dirty_dates d "
        "LEFT JOIN shukei.partitions pt ON pt.pipeline = d.pipeline "
        "AND pt.partition_date = d.partition_date WHERE d.pipeline = ?",
        (p.name,),
    )
    return {r[0]: ("stale" if r[1] else "missing") for r in rows}


def run(
    engine: Engine,
    p: Pipeline,
    *,
    timezone: str,
    chunk_days: int,
    requested: list[date] | None = None,
    full_refresh: bool = False,
    progress: Progress | None = None,
) -> RunReport:
    started = time.perf_counter()
    report = RunReport(new_run_id(), p.name)

    def again(what: str, fn: Callable[[], T]) -> T:
        return retrying(engine, what, fn, lambda: set_context(engine, timezone))

    with engine.writer_lock(), context(run_id=report.run_id):
        ensure_tables(engine, p)
        set_context(engine, timezone)
        with engine.transaction():
            engine.execute(
                "UPDATE shukei.runs SET status = 'interrupted', finished_at = current_timestamp "
                "WHERE pipeline = ? AND status = 'running'",
                (p.name,),
            )
            engine.execute(
                "INSERT INTO shukei.runs (run_id, pipeline, started_at, status, requested, pid) "
                "VALUES (?, ?, current_timestamp, 'running', ?, ?)",
                (
                    report.run_id,
                    p.name,
                    ",".join(d.isoformat() for d in requested) if requested else None,
                    os.getpid(),
                ),
            )
        log.info("run started for pipeline %s", p.name)
        try:
            _prepare(engine, p, timezone, full_refresh)
            for batch_id in pending_batches(engine, p):
                counts, checks = again(
                    f"merging batch {batch_id}",
                    functools.partial(_merge, engine, p, batch_id, report.run_id),
                )
                report.checks += checks
                report.batches[batch_id] = {k: v.as_dict() for k, v in counts.items()}
            report.reasons = plan(engine, p, requested)
            again("creating marts", lambda: _ensure_marts(engine, p))
            _rebuild_all(engine, p, report, chunk_days, progress, again)
            report.keyed = again(
                "rebuilding keyed marts", lambda: rebuild_keyed(engine, p, report.run_id)
            )
            again("creating views", lambda: _create_views(engine, p))
        except ShukeiError as exc:
            report.status = "failed"
            message = str(exc)
            try:
                again("recording the run", lambda: _finish(engine, report, started, message))
            except ShukeiError as inner:
                log.error("could not record the failed run: %s", inner)
            raise
        report.status = "failed" if report.failed else "success"
        again("recording the run", lambda: _finish(engine, report, started, None))
    return report


def _merge(
    engine: Engine, p: Pipeline, batch_id: int, run_id: str
) -> tuple[dict[str, EntityCounts], list[CheckOutcome]]:
    """Merge one batch and run the staging checks on its rows, in one transaction."""
    with engine.transaction():
        counts = merge_batch(engine, p, batch_id)
        for name, c in counts.items():
            # Statistics for the next batches' lookups (raw by batch, staging by key); a small
            # batch leaves them as they are (see Engine.analyze).
            engine.analyze(("raw", name), c.rows_in)
            for ent in p.entities.values():  # the entity and the ones exploded from it
                if ent.name == name or (ent.explode and ent.explode.entity == name):
                    engine.analyze(("staging", ent.name), c.rows_in)
        # Staging checks look at the rows this batch brought, so they cost what the batch costs.
        checks = run_checks(engine, p, "staging", run_id, f"batch {batch_id}", [batch_id])
    return counts, checks


Again = Callable[[str, Callable[[], Any]], Any]


def _rebuild_all(
    engine: Engine,
    p: Pipeline,
    report: RunReport,
    chunk_days: int,
    progress: Progress | None,
    again: Again,
) -> None:
    todo = chunks(list(report.reasons), chunk_days)
    total = len(report.reasons)
    done = 0
    for chunk in todo:
        try:
            res = again(
                f"rebuilding {chunk[0]}..{chunk[-1]}",
                functools.partial(rebuild_dates, engine, p, report.run_id, chunk, report.reasons),
            )
            report.built += chunk
            report.checks += res.checks
            for m in p.marts:  # later chunks and runs read these marts
                if not m.keyed_by:
                    engine.analyze(("marts", m.name), sum(res.rows.values()))
            for d in chunk:
                with context(date=d.isoformat()):
                    log.info("rebuilt (%s, %d mart rows)", report.reasons[d], res.rows.get(d, 0))
        except TransientEngineError:
            raise  # the warehouse is unreachable: the run fails, the next one finishes the job
        except (CheckFailed, EngineError) as exc:
            if len(chunk) > 1:
                log.warning(
                    "chunk %s..%s failed (%s); retrying date by date", chunk[0], chunk[-1], exc
                )
                _rebuild_one_by_one(engine, p, report, chunk, again)
            else:
                _fail(engine, p, report, chunk[0], exc)
        done += len(chunk)
        if progress:
            progress(done, total)


def _rebuild_one_by_one(
    engine: Engine, p: Pipeline, report: RunReport, chunk: list[date], again: Again
) -> None:
    for d in chunk:
        try:
            res = again(
                f"rebuilding {d}",
                functools.partial(rebuild_dates, engine, p, report.run_id, [d], report.reasons),
            )
            report.built.append(d)
            report.checks += res.checks
            with context(date=d.isoformat()):
                log.info("rebuilt (%s, %d mart rows)", report.reasons[d], res.rows.get(d, 0))
        except TransientEngineError:
            raise  # the warehouse is unreachable: the run fails, the next one finishes the job
        except (CheckFailed, EngineError) as exc:
            _fail(engine, p, report, d, exc)


def _fail(engine: Engine, p: Pipeline, report: RunReport, d: date, exc: ShukeiError) -> None:
    report.failed[d] = str(exc)
    with context(date=d.isoformat()):
        log.error("failed, keeping its previous content: %s", exc)
    record_failure(
        engine,
        p,
        report.run_id,
        [d],
        report.reasons,
        str(exc),
        exc if isinstance(exc, CheckFailed) else None,
    )


def _ensure_marts(engine: Engine, p: Pipeline) -> None:
    """Create every mart that does not exist yet, empty, so any mart may read any other."""
    from shukei.checks.queries import expand_macros
    from shukei.runner.rebuild import create_mart

    for m in p.marts:
        if not engine.table_exists("marts", m.name):
            fill_temp(engine, "_shukei_dates", "d", "DATE", [])
            fill_temp(engine, "_shukei_months", "d", "DATE", [])
            fill_temp(engine, "_shukei_keys", "k", "VARCHAR", [])
            create_mart(engine, m, engine.translate(expand_macros(m.sql)))


def _create_views(engine: Engine, p: Pipeline) -> None:
    from shukei.checks.queries import expand_macros

    # A view is created once: its text is part of the definition, and a changed definition
    # drops every view first (see _prepare). Recreating them each run would rewrite the catalog.
    for v in p.views:
        if not engine.table_exists("marts", v.name):
            engine.execute(
                f"CREATE VIEW {qualified('marts', v.name)} AS "
                f"{engine.translate(expand_macros(v.sql))}"
            )


def _finish(engine: Engine, report: RunReport, started: float, error: str | None) -> None:
    report.seconds = time.perf_counter() - started
    with engine.transaction():
        engine.execute(
            "UPDATE shukei.runs SET status = ?, finished_at = current_timestamp, dates_planned = ?,"
            " dates_built = ?, dates_failed = ?, error = ? WHERE run_id = ?",
            (
                report.status,
                len(report.reasons),
                len(report.built),
                len(report.failed),
                error or ("; ".join(f"{d}: {e}" for d, e in sorted(report.failed.items())) or None),
                report.run_id,
            ),
        )
    if report.status == "success":
        log.info("run succeeded: %d date(s) rebuilt", len(report.built))
    elif report.failed:
        log.error("run failed: %d date(s) failed", len(report.failed))
    else:
        log.error("run failed: %s", error)
