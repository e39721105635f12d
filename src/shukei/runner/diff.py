"""The diff ledger: what a rebuild changed, per partition and mart, with totals before and after.

Rows match on the partition column plus the mart's grain. Counting uses EXCEPT (set difference,
NULLs equal) rather than a null-safe FULL JOIN, which PostgreSQL cannot hash. The ledger rows are
computed and inserted by one statement inside the engine.
"""

from __future__ import annotations

from shukei.engines.base import Engine
from shukei.pipeline.definition import Mart
from shukei.sql import column_list, quote


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

    `partition` names the partition column (None: one ledger row "*" for a keyed mart).
    Returns rows_after per partition value (for the partition state).
    """
    keys = list(dict.fromkeys([*(c for c in [partition] if c), *mart.grain]))
    kl, cl = column_list(keys), column_list(columns)
    pv = f"CAST({quote(partition)} AS VARCHAR)" if partition else "'*'"
    totals = [t for t in mart.totals if t in columns]
    sums = "".join(f", sum({quote(t)}) AS t{i}" for i, t in enumerate(totals))

    def counted(sql: str) -> str:
        return f"SELECT {pv} AS p, count(*) AS n FROM ({sql}) AS x GROUP BY 1"

    engine.execute(
        f"INSERT INTO shukei.diffs WITH "
        f"b AS (SELECT {pv} AS p, count(*) AS n{sums} FROM {old} GROUP BY 1), "
        f"a AS (SELECT {pv} AS p, count(*) AS n{sums} FROM {new} GROUP BY 1), "
        f"ad AS ({counted(f'SELECT {kl} FROM {new} EXCEPT SELECT {kl} FROM {old}')}), "
        f"rm AS ({counted(f'SELECT {kl} FROM {old} EXCEPT SELECT {kl} FROM {new}')}), "
        f"df AS ({counted(f'SELECT {cl} FROM {new} EXCEPT SELECT {cl} FROM {old}')}), "
        "ps AS (SELECT p FROM b UNION SELECT p FROM a) "
        "SELECT CAST(? AS VARCHAR), CAST(? AS VARCHAR), CAST(? AS VARCHAR), ps.p, "
        "coalesce(b.n, 0), coalesce(a.n, 0), coalesce(ad.n, 0), coalesce(rm.n, 0), "
        "coalesce(df.n, 0) - coalesce(ad.n, 0), "
        f"{_json_totals('b', totals)}, {_json_totals('a', totals)} "
        "FROM ps LEFT JOIN b ON b.p = ps.p LEFT JOIN a ON a.p = ps.p "
        "LEFT JOIN ad ON ad.p = ps.p LEFT JOIN rm ON rm.p = ps.p LEFT JOIN df ON df.p = ps.p",
        (run_id, pipeline, mart.name),
    )
    return {
        str(p): int(n) for p, n in engine.fetchall(f"SELECT {pv}, count(*) FROM {new} GROUP BY 1")
    }
