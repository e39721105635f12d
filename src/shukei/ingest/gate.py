"""The quality gate: a batch of a gated entity is checked in the engine before it reaches raw.

The incoming rows are loaded into a temp table, typed like staging, and every gate check (a query
for the offending `_row_id`s of `@batch`) runs on them. The batch's pass rate is the share of rows
no check flags. Below the threshold the batch is blocked: nothing of it is loaded and its files are
not remembered, so it can be sent again once fixed. Otherwise the passing rows go to raw and each
failing row to quarantine with every check it failed. Every check's result is logged per batch.

`check_batch` only reads and fills temp tables, so it runs before the loading transaction;
`load_batch`, inside it, records the verdict and loads raw and the quarantine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shukei.engines.base import Engine, RawFile
from shukei.pipeline.definition import Gate, Pipeline
from shukei.sql import column_list, qualified, quote
from shukei.staging.merge import explode_select
from shukei.staging.typing_sql import nfkc_stable_columns, typed_select

log = logging.getLogger("shukei.gate")

BATCH = "_shukei_gate"
CONTEXT = "(SELECT {0} FROM _shukei_gate_ctx)"


@dataclass
class GateResult:
    batch_id: int
    rows: int
    failed: int
    threshold: float
    file_rows: list[int] = field(default_factory=list)  # rows received per file
    checks: list[dict[str, Any]] = field(default_factory=list)

    @property
    def pass_rate(self) -> float:
        return 1.0 if not self.rows else (self.rows - self.failed) / self.rows

    @property
    def blocked(self) -> bool:
        return self.pass_rate < self.threshold

    def summary(self) -> str:
        worst = ", ".join(f"{c['check']} {c['failed']}" for c in self.checks if c["failed"])
        state = "BLOCKED" if self.blocked else "passed"
        return (
            f"batch {self.batch_id} {state}: {self.rows - self.failed:,} of {self.rows:,} rows "
            f"pass ({100 * self.pass_rate:.2f}%, threshold {100 * self.threshold:.2f}%)"
            + (f"; failing: {worst}" if worst else "")
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "rows": self.rows,
            "failed": self.failed,
            "pass_rate": round(self.pass_rate, 6),
            "threshold": self.threshold,
            "status": "blocked" if self.blocked else "passed",
            "checks": self.checks,
        }


def expand(sql: str, children: list[str]) -> str:
    for child in sorted(children, key=len, reverse=True):
        sql = sql.replace(f"@batch_{child}", f"{BATCH}_{child}")
    return (
        sql.replace("@batch", BATCH)
        .replace("@min_time", CONTEXT.format("min_time"))
        .replace("@max_time", CONTEXT.format("max_time"))
    )


def check_batch(
    engine: Engine,
    p: Pipeline,
    gate: Gate,
    files: list[RawFile],
    batch_id: int,
    ingested_at: datetime,
    threshold: float,
    min_time: datetime,
    max_time: datetime,
) -> GateResult:
    """Read and check one batch into temp tables; it writes nothing else, so it may run before
    the transaction that loads it (`load_batch`), where the engine scans faster."""
    ent = p.entities[gate.entity]
    cols = list(ent.column_names)
    engine.execute("DROP TABLE IF EXISTS _shukei_incoming")
    engine.execute(
        f"CREATE TEMP TABLE _shukei_incoming AS SELECT * FROM {qualified('raw', ent.name)} "
        "WHERE 1 = 0"
    )
    per_file = engine.load_raw(("_shukei_incoming",), files, (batch_id, ingested_at))
    typed = ", ".join(
        f"{quote(c + '__v')} AS {quote(c)}, {quote(c + '__t')} AS {quote(c + '_text')}"
        for c in cols
    )
    part = f", {quote(ent.partition_column)}" if ent.partition_column else ""
    nfkc_stable = nfkc_stable_columns(engine, ent, "TRUE", (), "_shukei_incoming")
    engine.execute(f"DROP TABLE IF EXISTS {BATCH}")
    # Rows are numbered in arrival order (file, then row): by the engine's own row id where it
    # has one (a window over the whole batch runs on one thread).
    rid = f"r.{engine.ROWID} + 1" if engine.ROWID else "row_number() OVER ()"
    typed_sql = typed_select(
        engine, ent, "TRUE", "_shukei_incoming", nfkc_stable, [f"{rid} AS _row_id"]
    )
    engine.execute(
        f"CREATE TEMP TABLE {BATCH} AS SELECT _row_id, _source_file, "
        f"_row_no, {typed}{part}, _reason AS _type_reason FROM ({typed_sql}) AS t"
    )
    engine.execute("DROP TABLE IF EXISTS _shukei_gate_ctx")
    engine.execute(
        "CREATE TEMP TABLE _shukei_gate_ctx AS SELECT CAST(? AS TIMESTAMPTZ) AS min_time, "
        "CAST(? AS TIMESTAMPTZ) AS max_time",
        (min_time, max_time),
    )
    total = int(engine.scalar(f"SELECT count(*) FROM {BATCH}"))
    children = [c for c in p.entities.values() if c.explode and c.explode.entity == ent.name]
    for child in children:
        # The batch's derived rows (e.g. a purchase's items), keyed by the parent's _row_id.
        rows = explode_select(engine, p, ent, child, BATCH)
        engine.execute(f"DROP TABLE IF EXISTS {BATCH}_{child.name}")
        engine.execute(
            f"CREATE TEMP TABLE {BATCH}_{child.name} AS "
            + rows.replace("SELECT ", "SELECT p._row_id, ", 1)
        )
    engine.execute("DROP TABLE IF EXISTS _shukei_gate_fail")
    engine.execute("CREATE TEMP TABLE _shukei_gate_fail (_row_id BIGINT, check_name VARCHAR)")
    result = GateResult(batch_id, total, 0, threshold, [per_file.get(f.path, 0) for f in files])
    for check in gate.checks:
        sql = engine.translate(expand(check.sql, [c.name for c in children]))
        engine.execute(
            "INSERT INTO _shukei_gate_fail SELECT DISTINCT q._row_id, CAST(? AS VARCHAR) "
            f"FROM ({sql}) AS q",
            (check.name,),
        )
        failed = int(
            engine.scalar(
                "SELECT count(*) FROM _shukei_gate_fail WHERE check_name = ?", (check.name,)
            )
        )
        rate = 1.0 if not total else (total - failed) / total
        result.checks.append(
            {"check": check.name, "checked": total, "failed": failed, "pass_rate": round(rate, 6)}
        )
    result.failed = int(engine.scalar("SELECT count(DISTINCT _row_id) FROM _shukei_gate_fail"))
    return result


def load_batch(
    engine: Engine, p: Pipeline, gate: Gate, result: GateResult, ingested_at: datetime
) -> None:
    """Record the verdict of `check_batch`; unless blocked, load raw and the quarantine."""
    ent = p.entities[gate.entity]
    cols = list(ent.column_names)
    batch_id, total, threshold = result.batch_id, result.rows, result.threshold
    status = "blocked" if result.blocked else "loaded"
    engine.insert_rows(
        "shukei.quality_log",
        [
            (
                p.name,
                batch_id,
                c["check"],
                c["checked"],
                c["failed"],
                c["pass_rate"],
                c["pass_rate"] >= threshold,
                status,
                threshold,
                ingested_at,
            )
            for c in [
                *result.checks,
                {
                    "check": "*",
                    "checked": total,
                    "failed": result.failed,
                    "pass_rate": result.pass_rate,
                },
            ]
        ],
    )
    log.info("%s", result.summary())
    if result.blocked:
        return
    cl = column_list(cols)
    lineage = "_batch_id, _ingested_at, _source_file, _row_no"
    if engine.ROWID:  # an incoming row's id is its row id: no join back on (file, row)
        src, row_id = "_shukei_incoming AS i", f"i.{engine.ROWID} + 1"
    else:
        src, row_id = (
            f"_shukei_incoming AS i JOIN {BATCH} AS g ON g._source_file = i._source_file "
            "AND g._row_no = i._row_no",
            "g._row_id",
        )
    engine.execute(
        f"INSERT INTO {qualified('raw', ent.name)} ({lineage}, {cl}) SELECT "
        f"{', '.join('i.' + c for c in lineage.split(', '))}, {column_list(cols, 'i')} "
        f"FROM {src} WHERE NOT EXISTS (SELECT 1 FROM _shukei_gate_fail AS x "
        f"WHERE x._row_id = {row_id})"
    )
    engine.execute(
        f"INSERT INTO {qualified('staging', ent.name + '_quarantine')} "
        f"(_batch_id, _source_file, _row_no, {cl}, _reason) SELECT i._batch_id, i._source_file, "
        f"i._row_no, {column_list(cols, 'i')}, f.reasons FROM {src} "
        "JOIN (SELECT _row_id, string_agg(check_name, '; ' ORDER BY check_name) AS reasons "
        f"FROM _shukei_gate_fail GROUP BY _row_id) AS f ON f._row_id = {row_id}"
    )
