"""The diff ledger: what a rebuild changed, per partition and mart, with totals before and after.

Rows match on the partition column plus the mart's grain. Counting uses EXCEPT (set difference,
NULLs equal) rather than a null-safe FULL JOIN, which PostgreSQL cannot hash.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from shukei.engines.base import Engine
from shukei.pipeline.definition import Mart
from shukei.sql import column_list, quote


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
    partition: str | None,
) -> dict[str, int]:
    """Compare temp tables `old` and `new` (same columns) and append one ledger row per partition.

    `partition` names the partition column (None: one ledger row "*" for a keyed mart).
    Returns rows_after per partition value (for the partition state).
    """
    keys = list(dict.fromkeys([*(c for c in [partition] if c), *mart.grain]))
    kl, cl = column_list(keys), column_list(columns)
    pv = f"CAST({quote(partition)} AS VARCHAR)" if partition else "'*'"
    totals = [t for t in mart.totals if t in columns]
    sums = "".join(f", sum({quote(t)})" for t in totals)

    def per_partition(sql: str) -> dict[str, tuple[Any, ...]]:
        return {str(r[0]): tuple(r[1:]) for r in engine.fetchall(sql)}

    def count_of(sql: str) -> dict[str, int]:
        return {
            p: int(v[0])
            for p, v in per_partition(f"SELECT {pv}, count(*) FROM ({sql}) AS x GROUP BY 1").items()
        }

    before = per_partition(f"SELECT {pv}, count(*){sums} FROM {old} GROUP BY 1")
    after = per_partition(f"SELECT {pv}, count(*){sums} FROM {new} GROUP BY 1")
    added = count_of(f"SELECT {kl} FROM {new} EXCEPT SELECT {kl} FROM {old}")
    removed = count_of(f"SELECT {kl} FROM {old} EXCEPT SELECT {kl} FROM {new}")
    differing = count_of(f"SELECT {cl} FROM {new} EXCEPT SELECT {cl} FROM {old}")
    rows_after: dict[str, int] = {}
    for p in sorted(set(before) | set(after)):
        b = before.get(p, (0, *([None] * len(totals))))
        a = after.get(p, (0, *([None] * len(totals))))
        rows_after[p] = int(a[0])
        engine.execute(
            "INSERT INTO shukei.diffs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run_id,
                pipeline,
                mart.name,
                p,
                int(b[0]),
                int(a[0]),
                added.get(p, 0),
                removed.get(p, 0),
                differing.get(p, 0) - added.get(p, 0),
                json.dumps({t: _jsonable(b[1 + i]) for i, t in enumerate(totals)}),
                json.dumps({t: _jsonable(a[1 + i]) for i, t in enumerate(totals)}),
            ),
        )
    return rows_after
