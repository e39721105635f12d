"""The diff ledger: what a rebuild changed, per partition and mart, with totals before and after."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from shukei.engines.base import Engine
from shukei.pipeline.definition import Mart
from shukei.sql import quote


def _jsonable(v: Any) -> Any:
    if isinstance(v, Decimal):
        return str(v)
    if v is None or isinstance(v, int | float | str):
        return v
    return str(v)


def record_diff(
    engine: Engine,
    run_id: str,
    pipeline: str,
    mart: Mart,
    old: str,
    new: str,
    columns: list[str],
    partition_expr: str | None,
) -> dict[str, int]:
    """Compare temp tables `old` and `new` (same columns) and append ledger rows.

    Rows match on the partition column plus the mart's grain; a matched row whose other values
    differ is "changed". `partition_expr` names the partition column (None: one ledger row "*").
    Returns rows_after per partition value (for the partition state).
    """
    keys = list(dict.fromkeys([*(c for c in [mart.partition] if c), *mart.grain]))
    others = [c for c in columns if c not in keys]
    on = " AND ".join(f"o.{quote(k)} IS NOT DISTINCT FROM n.{quote(k)}" for k in keys)
    same = " AND ".join(f"o.{quote(c)} IS NOT DISTINCT FROM n.{quote(c)}" for c in others) or "TRUE"
    pv = (
        f"CAST(coalesce(o.{quote(partition_expr)}, n.{quote(partition_expr)}) AS VARCHAR)"
        if partition_expr
        else "'*'"
    )
    sums = "".join(f", sum(o.{quote(t)}), sum(n.{quote(t)})" for t in mart.totals if t in columns)
    rows = engine.fetchall(
        f"SELECT {pv} AS p, count(o._m), count(n._m), "
        "count(*) FILTER (WHERE o._m IS NULL), count(*) FILTER (WHERE n._m IS NULL), "
        f"count(*) FILTER (WHERE o._m IS NOT NULL AND n._m IS NOT NULL AND NOT ({same})){sums} "
        f"FROM (SELECT *, 1 AS _m FROM {old}) AS o FULL OUTER JOIN "
        f"(SELECT *, 1 AS _m FROM {new}) AS n ON {on} GROUP BY 1"
    )
    totals = [t for t in mart.totals if t in columns]
    after: dict[str, int] = {}
    for r in rows:
        p, before_n, after_n, added, removed, changed = r[:6]
        tb = {t: _jsonable(r[6 + 2 * i]) for i, t in enumerate(totals)}
        ta = {t: _jsonable(r[7 + 2 * i]) for i, t in enumerate(totals)}
        after[str(p)] = int(after_n)
        engine.execute(
            "INSERT INTO shukei.diffs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                pipeline,
                mart.name,
                str(p),
                before_n,
                after_n,
                added,
                removed,
                changed,
                json.dumps(tb),
                json.dumps(ta),
            ),
        )
    return after
