"""The diff ledger: what a rebuild changed, per partition and mart, with totals before and after.

Rows match on the partition column plus the mart's grain. The rows that differ are found once,
by EXCEPT both ways (set difference, NULLs equal; a null-safe FULL JOIN PostgreSQL cannot hash),
into `_shukei_delta`: a key there on the old side only was removed, on the new side only added,
on both changed. The ledger rows are then computed and inserted by one statement, and the caller
reads the keys of keyed marts fed by this one from the same delta.
"""

from __future__ import annotations

from shukei.engines.base import Engine
from shukei.pipeline.definition import Mart
from shukei.sql import column_list, quote

# Rows (before and after) up to which the rows that differ are materialised (see record_diff).
DELTA_ROWS = 200_000


def _json_totals(alias: str, totals: list[str]) -> str:
    """A JSON object of decimal strings, built with plain SQL string functions (any engine)."""
    if not totals:
        return "'{}'"
    parts = []
    for i, t in enumerate(totals):
        value = f"coalesce('\"' || CAST({alias}.t{i} AS VARCHAR) || '\"', 'null')"
        parts.append(f"'\"{t}\": ' || {value}")
    return "'{' || " + " || ', ' || ".join(parts) + " || '}'"


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

    `partition` names the partition column (None: one ledger row "*" for a keyed mart). Leaves
    the rows that differ in `_shukei_delta`. Returns rows_after per partition value (for the
    partition state).
    """
    keys = list(dict.fromkeys([*(c for c in [partition] if c), *mart.grain]))
    kl, cl = column_list(keys), column_list(columns)
    pv = f"CAST({quote(partition)} AS VARCHAR)" if partition else "'*'"
    totals = [t for t in mart.totals if t in columns]
    sums = "".join(f", sum({quote(t)}) AS t{i}" for i, t in enumerate(totals))

    delta = (
        f"SELECT x.*, 1 AS _old FROM (SELECT {cl} FROM {old} EXCEPT SELECT {cl} FROM {new}) AS x "
        f"UNION ALL "
        f"SELECT y.*, 0 AS _old FROM (SELECT {cl} FROM {new} EXCEPT SELECT {cl} FROM {old}) AS y"
    )
    engine.execute("DROP VIEW IF EXISTS _shukei_delta")
    engine.execute("DROP TABLE IF EXISTS _shukei_delta_rows")
    sizes = engine.fetchone(f"SELECT (SELECT count(*) FROM {old}), (SELECT count(*) FROM {new})")
    if sizes is not None and int(sizes[0]) + int(sizes[1]) <= DELTA_ROWS:
        # Small (a late batch): the difference is computed once and read twice.
        engine.execute(f"CREATE TEMP TABLE _shukei_delta_rows AS {delta}")
        delta = "SELECT * FROM _shukei_delta_rows"
    # Large (a first build: every row is new): a view, which the engine streams each time it
    # is read, instead of a copy of every row.
    engine.execute(f"CREATE TEMP VIEW _shukei_delta AS {delta}")
    engine.execute(
        f"INSERT INTO shukei.diffs WITH "
        f"b AS (SELECT {pv} AS p, count(*) AS n{sums} FROM {old} GROUP BY 1), "
        f"a AS (SELECT {pv} AS p, count(*) AS n{sums} FROM {new} GROUP BY 1), "
        f"k AS (SELECT {pv} AS p, max(_old) AS o, min(_old) AS m FROM _shukei_delta "
        f"GROUP BY {kl}), "
        "d AS (SELECT p, sum(CASE WHEN o = 0 THEN 1 ELSE 0 END) AS ad, "
        "sum(CASE WHEN o = 1 AND m = 1 THEN 1 ELSE 0 END) AS rm, "
        "sum(CASE WHEN o = 1 AND m = 0 THEN 1 ELSE 0 END) AS ch FROM k GROUP BY p), "
        "ps AS (SELECT p FROM b UNION SELECT p FROM a) "
        "SELECT CAST(? AS VARCHAR), CAST(? AS VARCHAR), CAST(? AS VARCHAR), ps.p, "
        "coalesce(b.n, 0), coalesce(a.n, 0), coalesce(d.ad, 0), coalesce(d.rm, 0), "
        "coalesce(d.ch, 0), "
        f"{_json_totals('b', totals)}, {_json_totals('a', totals)} "
        "FROM ps LEFT JOIN b ON b.p = ps.p LEFT JOIN a ON a.p = ps.p "
        "LEFT JOIN d ON d.p = ps.p",
        (run_id, pipeline, mart.name),
    )
    return {
        str(p): int(n) for p, n in engine.fetchall(f"SELECT {pv}, count(*) FROM {new} GROUP BY 1")
    }
