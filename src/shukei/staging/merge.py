"""Merge a raw batch into staging and record exactly what it made dirty.

For each entity (in definition order) the batch's rows are typed; unusable rows go to quarantine;
the batch's latest version of each key is compared with the current one. A winner whose business
content differs replaces it, and both the old and the new row are "changed": following the entity's
`via` path to the fact, their partition dates (old and new: the OLD date of a moved order too) are
dirty, and keyed marts fed by this entity get their keys dirty. A re-sent row, an exact duplicate or
a version-only bump changes no content and makes nothing dirty. Cost follows the batch, not history.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from shukei.engines.base import Engine
from shukei.errors import CheckFailed
from shukei.pipeline.definition import Entity, Pipeline
from shukei.runner.state import CheckRow, record_checks
from shukei.sql import column_list, qualified, quote
from shukei.staging.tables import typed_columns
from shukei.staging.typing_sql import clean_text, nfkc_stable_columns, typed_rows

log = logging.getLogger("shukei.staging")

SLICE_ROWS = 50_000_000  # raw rows merged at once, at most about (the merge spills beyond memory)


@dataclass
class EntityCounts:
    rows_in: int = 0
    rows_used: int = 0
    rows_superseded: int = 0
    rows_duplicate: int = 0
    rows_quarantined: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def set_context(engine: Engine, timezone: str) -> None:
    """Bind run-wide values (the business timezone) into a temp table the SQL reads from."""
    engine.create_temp("_shukei_ctx", "SELECT CAST(? AS VARCHAR) AS tz", (timezone,))


def pending_batches(engine: Engine, pipeline: Pipeline) -> list[int]:
    rows = engine.fetchall(
        "SELECT batch_id FROM shukei.batches WHERE pipeline = ? AND status = 'loaded' "
        "ORDER BY batch_id",
        (pipeline.name,),
    )
    return [int(r[0]) for r in rows]


def merge_batch(engine: Engine, pipeline: Pipeline, batch_id: int) -> dict[str, EntityCounts]:
    """Merge one batch; the caller owns the transaction (and `set_context` was called)."""
    counts = {}
    for name in pipeline.input_entities:
        ent = pipeline.entities[name]
        c = _merge_entity(engine, pipeline, ent, batch_id)
        if c.rows_in:
            counts[ent.name] = c
            engine.execute(
                "INSERT INTO shukei.batch_counts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    pipeline.name,
                    batch_id,
                    ent.name,
                    c.rows_in,
                    c.rows_used,
                    c.rows_superseded,
                    c.rows_duplicate,
                    c.rows_quarantined,
                ),
            )
    _check_conservation(engine, pipeline, batch_id)
    engine.execute(
        "UPDATE shukei.batches SET status = 'merged' WHERE pipeline = ? AND batch_id = ?",
        (pipeline.name, batch_id),
    )
    return counts


def _eq(cols: tuple[str, ...], a: str, b: str) -> str:
    return (
        " AND ".join(f"{a}.{quote(c)} IS NOT DISTINCT FROM {b}.{quote(c)}" for c in cols) or "TRUE"
    )


def _merge_entity(engine: Engine, p: Pipeline, ent: Entity, batch_id: int) -> EntityCounts:
    e = engine
    n = ent.name
    rows_in = int(
        e.scalar(f"SELECT count(*) FROM {qualified('raw', n)} WHERE _batch_id = ?", (batch_id,))
    )
    if not rows_in:
        return EntityCounts()
    # A big batch is merged in slices of whole keys (a hash of the cleaned key), so every version
    # of a key meets in one slice while memory stays bounded; all slices share the transaction.
    slices = max(1, -(-rows_in // SLICE_ROWS))
    total = EntityCounts(rows_in)
    for i in range(slices):
        where, params = "r._batch_id = ?", [batch_id]
        if slices > 1:
            cleaned = [clean_text(e, ent.column(k), f"r.{quote(k)}") for k in ent.key]
            where += f" AND {e.bucket(cleaned, '?')} = ?"
            params += [slices, i]
        c = _merge_slice(e, p, ent, batch_id, where, params)
        total.rows_used += c.rows_used
        total.rows_superseded += c.rows_superseded
        total.rows_duplicate += c.rows_duplicate
        total.rows_quarantined += c.rows_quarantined
    log.info("merged batch %d %s: %s", batch_id, ent.name, total.as_dict())
    return total


def _merge_slice(
    e: Engine, p: Pipeline, ent: Entity, batch_id: int, where: str, params: list[Any]
) -> EntityCounts:
    """Merge the raw rows of one batch matching `where` (whole keys); see the module docstring."""
    n = ent.name
    key, ver = ent.key, quote(ent.version)
    cols = [c for c, _ in typed_columns(ent, p)]
    cl = column_list(cols)
    lineage = "_batch_id, _source_file, _row_no"
    staging, sup, quar = (
        qualified("staging", n),
        qualified("staging", n + "_superseded"),
        qualified("staging", n + "_quarantine"),
    )
    keys_on = " AND ".join(f"a.{quote(k)} = b.{quote(k)}" for k in key)
    keys_on_m = keys_on.replace("b.", "m.")
    part = column_list(list(key))

    # One pass over raw: typed values, reasons, and the raw text of unusable rows only; every
    # valid row starts as its key's winner (_rn = 1). It streams (and spills) at any size. Only
    # the keys with several valid candidates in the batch, usually few, are then ranked by a
    # window (latest version, later file, later row), and their losers' _rn updated.
    nfkc_stable = nfkc_stable_columns(e, ent, where, params)
    e.create_temp(
        "_shukei_t",
        "SELECT *, CASE WHEN _reason IS NULL THEN 1 END AS _rn "
        f"FROM ({typed_rows(e, ent, where, nfkc_stable)}) AS t",
        params,
    )
    e.create_temp(
        "_shukei_k",
        f"SELECT {part} FROM _shukei_t WHERE _reason IS NULL GROUP BY {part} HAVING count(*) > 1",
    )
    k_on = " AND ".join(f"k.{quote(c)} = t.{quote(c)}" for c in key)
    e.create_temp(
        "_shukei_tm",
        f"SELECT t.*, row_number() OVER (PARTITION BY "
        f"{column_list(list(key), 't')} ORDER BY t.{ver} DESC, t._source_file DESC, "
        f"t._row_no DESC) AS _r FROM _shukei_t t JOIN _shukei_k k ON {k_on} "
        "WHERE t._reason IS NULL",
    )
    e.execute(
        "UPDATE _shukei_t SET _rn = m._r FROM _shukei_tm AS m WHERE m._r > 1 "
        "AND _shukei_t._source_file = m._source_file AND _shukei_t._row_no = m._row_no"
    )
    raw_cols = column_list(list(ent.column_names))
    raw_kept = ", ".join(quote(c + "__r") for c in ent.column_names)
    e.execute(
        f"INSERT INTO {quar} ({lineage}, {raw_cols}, _reason) "
        f"SELECT {lineage}, {raw_kept}, _reason FROM _shukei_t WHERE _reason IS NOT NULL"
    )

    # In-batch losers: exact copies of their winner are duplicates, the rest superseded.
    same_all = _eq((*ent.content_columns, ent.version), "a", "b")
    e.create_temp(
        "_shukei_l",
        f"SELECT {column_list(cols, 'a')}, a._batch_id, "
        f"a._source_file, a._row_no, CASE WHEN {same_all} THEN 'duplicate' ELSE 'superseded' "
        f"END AS _reason FROM _shukei_tm a JOIN _shukei_tm b ON {keys_on} AND b._r = 1 "
        "WHERE a._r > 1",
    )
    e.execute(f"INSERT INTO {sup} ({cl}, {lineage}, _reason) SELECT * FROM _shukei_l")

    # Winners whose key already has a current version (none on a first load): older, an exact
    # re-send, or a replacement. Every other winner is a new key, inserted as it is.
    # Each such key's current row comes along (one per known key of the batch), so staging is
    # read once here, not again for the rows being replaced; on DuckDB with its row id, which
    # the DELETE uses. Column names cannot clash: the user's may not start with "_".
    same_content = _eq(ent.content_columns, "a", "b")
    rid = f", b.{e.ROWID} AS _rid" if e.ROWID else ""
    e.create_temp(
        "_shukei_m",
        f"SELECT {column_list(cols, 'b')}, b._batch_id, "
        f"b._source_file, b._row_no{rid}, CASE "
        f"WHEN a.{ver} < b.{ver} THEN 'older' "
        f"WHEN a.{ver} = b.{ver} AND {same_content} THEN 'duplicate' "
        f"ELSE 'replace' END AS _action, NOT ({same_content}) AS _changed "
        f"FROM _shukei_t a JOIN {staging} b ON {keys_on} WHERE a._rn = 1",
    )
    row = e.fetchone(
        "SELECT (SELECT count(*) FROM _shukei_t WHERE _reason IS NOT NULL), "
        "(SELECT count(*) FROM _shukei_t WHERE _rn = 1), "
        "(SELECT count(*) FROM _shukei_l), "
        "(SELECT count(*) FROM _shukei_l WHERE _reason = 'duplicate'), "
        "(SELECT count(*) FROM _shukei_m WHERE _action = 'older'), "
        "(SELECT count(*) FROM _shukei_m WHERE _action = 'duplicate'), "
        "(SELECT count(*) FROM _shukei_m)"
    )
    assert row is not None
    quarantined, winners, lost_in_batch, dup_in_batch, older, dup, known = (int(x) for x in row)

    e.create_temp("_shukei_old", "SELECT * FROM _shukei_m WHERE _action = 'replace'")
    winner = "a._rn = 1"
    if known:  # else every winner is a new key: no anti-joins
        e.execute(
            f"INSERT INTO {sup} ({cl}, {lineage}, _reason) SELECT {cl}, {lineage}, 'replaced' "
            "FROM _shukei_old"
        )
        if e.ROWID:
            e.execute(f"DELETE FROM {staging} WHERE {e.ROWID} IN (SELECT _rid FROM _shukei_old)")
        else:
            e.execute(
                f"DELETE FROM {staging} AS a USING _shukei_m AS m WHERE {keys_on_m} "
                "AND m._action = 'replace'"
            )
        e.execute(
            f"INSERT INTO {sup} ({cl}, {lineage}, _reason) SELECT {column_list(cols, 'a')}, "
            "a._batch_id, a._source_file, a._row_no, CASE m._action WHEN 'older' THEN "
            f"'superseded' ELSE 'duplicate' END FROM _shukei_t a JOIN _shukei_m m ON {keys_on_m} "
            "WHERE a._rn = 1 AND m._action <> 'replace'"
        )
        winner += (
            f" AND NOT EXISTS (SELECT 1 FROM _shukei_m m WHERE {keys_on_m} "
            "AND m._action <> 'replace')"
        )
    e.execute(
        f"INSERT INTO {staging} ({cl}, {lineage}) SELECT {cl}, {lineage} FROM _shukei_t a "
        f"WHERE {winner}"
    )

    # Changed rows, old and new sides: what reaches the marts. A view: a first load changes
    # every row, and copying them all once more would cost more than reading them twice.
    changed = "a._rn = 1"
    if known:
        changed += (
            f" AND NOT EXISTS (SELECT 1 FROM _shukei_m m WHERE {keys_on_m} "
            "AND (m._action <> 'replace' OR NOT m._changed))"
        )
    e.create_temp(
        "_shukei_chg",
        f"SELECT {cl} FROM _shukei_old WHERE _changed "
        f"UNION ALL SELECT {column_list(cols, 'a')} FROM _shukei_t a WHERE {changed}",
        view=True,
    )
    _mark_dirty(e, p, ent, batch_id)
    for child in p.entities.values():
        if child.explode is not None and child.explode.entity == ent.name:
            _explode(e, p, ent, child)
    e.execute("DROP VIEW IF EXISTS _shukei_chg")
    for t in ("_shukei_t", "_shukei_tm", "_shukei_k", "_shukei_l", "_shukei_m", "_shukei_old"):
        e.execute(f"DROP TABLE IF EXISTS {t}")
    return EntityCounts(
        0,
        winners - older - dup,
        lost_in_batch - dup_in_batch + older,
        dup_in_batch + dup,
        quarantined,
    )


def explode_select(e: Engine, p: Pipeline, parent: Entity, child: Entity, source: str) -> str:
    """SELECT the child rows of the parent rows in `source` (aliased p), without lineage.

    The parent's key columns, its partition column and the explode's `inherit` columns are
    copied from the parent row; the ordinal numbers the array elements from 1; every other column
    is read from the element's field of that name, cleaned and typed like staging text.
    """
    from shukei.staging.typing_sql import _typed, clean_text

    ex = child.explode
    assert ex is not None
    lateral, field, ordinal = e.json_elements(f"p.{quote(ex.column)}")
    inherited = {*parent.key, *(c for c in [parent.partition_column] if c), *ex.inherit}
    picks = []
    for col in child.columns:
        if col.name == ex.ordinal:
            picks.append(f"{ordinal} AS {quote(col.name)}")
        elif col.name in inherited:
            picks.append(f"p.{quote(col.name)}")
        else:
            expr = _typed(e, col, f"({clean_text(e, col, field(col.name))})")[0]
            picks.append(f"{expr} AS {quote(col.name)}")
    where = f" WHERE {ex.where}" if ex.where else ""
    return f"SELECT {', '.join(picks)} FROM (SELECT * FROM {source}{where}) AS p {lateral}"


def _explode(e: Engine, p: Pipeline, parent: Entity, child: Entity) -> None:
    """Re-derive `child`'s rows of every changed parent key from the parent's JSON array."""
    pk = parent.key
    changed = f"(SELECT DISTINCT {column_list(list(pk))} FROM _shukei_chg)"
    on_t = " AND ".join(f"c.{quote(k)} = t.{quote(k)}" for k in pk)
    e.execute(
        f"DELETE FROM {qualified('staging', child.name)} AS t USING {changed} AS c WHERE {on_t}"
    )
    on_p = " AND ".join(f"c.{quote(k)} = p.{quote(k)}" for k in pk)
    source = (
        f"(SELECT p.* FROM {qualified('staging', parent.name)} AS p JOIN {changed} AS c "
        f"ON {on_p}) AS s"
    )
    rows = explode_select(e, p, parent, child, source)
    # Lineage: the parent row's (the select copies it as p._batch_id etc.).
    rows = rows.replace("SELECT ", "SELECT p._batch_id, p._source_file, p._row_no, ", 1)
    e.execute(
        f"INSERT INTO {qualified('staging', child.name)} (_batch_id, _source_file, _row_no, "
        f"{column_list(list(child.column_names))}) {rows}"
    )


def _fact_rows_reached(p: Pipeline, ent: Entity) -> str | None:
    """SQL for the fact rows (current staging) that changed rows of `ent` contribute to."""
    if ent.name == p.fact:
        return "SELECT * FROM _shukei_chg"
    if not ent.via:
        return None
    joins, prev = [], "h0"
    for i, hop in enumerate(ent.via, start=1):
        on = " AND ".join(f"{prev}.{quote(a)} = h{i}.{quote(b)}" for a, b in hop.on)
        joins.append(f"JOIN {qualified('staging', hop.entity)} AS h{i} ON {on}")
        prev = f"h{i}"
    # No DISTINCT here: the caller keeps distinct dates, which is far cheaper than whole rows.
    return f"SELECT {prev}.* FROM _shukei_chg AS h0 {' '.join(joins)}"


def _mark_dirty(e: Engine, p: Pipeline, ent: Entity, batch_id: int) -> None:
    reached = _fact_rows_reached(p, ent)
    if reached is not None:
        counted = p.fact_entity.counted or "TRUE"
        pc = quote(p.partition_column)
        e.execute(
            "INSERT INTO shukei.dirty_dates (pipeline, partition_date, batch_id) "
            f"SELECT DISTINCT CAST(? AS VARCHAR), f.{pc}, CAST(? AS BIGINT) FROM ({reached}) AS f "
            f"WHERE f.{pc} IS NOT NULL AND ({counted}) ON CONFLICT DO NOTHING",
            (p.name, batch_id),
        )
    for mart in p.marts:
        if mart.keyed_by and ent.name in mart.keys_from and mart.keyed_by in ent.column_names:
            k = quote(mart.keyed_by)
            e.execute(
                "INSERT INTO shukei.dirty_keys (pipeline, mart, key_value) "
                f"SELECT DISTINCT CAST(? AS VARCHAR), CAST(? AS VARCHAR), CAST({k} AS VARCHAR) "
                f"FROM _shukei_chg WHERE {k} IS NOT NULL",
                (p.name, mart.name),
            )


def _check_conservation(e: Engine, p: Pipeline, batch_id: int) -> None:
    """Every raw row of the batch sits in exactly one of current, superseded, quarantine."""
    results: list[CheckRow] = []  # recorded in one statement
    now = datetime.now(UTC)
    for n in p.input_entities:
        places = " UNION ALL ".join(
            f"SELECT _source_file, _row_no FROM {qualified('staging', t)} WHERE _batch_id = ?"
            for t in (n, n + "_superseded", n + "_quarantine")
        )
        sql = (
            f"SELECT r._source_file, r._row_no, count(x._row_no) AS places "
            f"FROM {qualified('raw', n)} AS r LEFT JOIN ({places}) AS x "
            "ON x._source_file = r._source_file AND x._row_no = r._row_no "
            "WHERE r._batch_id = ? GROUP BY r._source_file, r._row_no HAVING count(x._row_no) <> 1"
        )
        # Fast proof first: equal row counts and equal sums of a 64-bit hash of (file, row)
        # over raw and over the places. A lost or duplicated row changes a sum (a miss needs a
        # 64-bit collision); only then is the row-level query run, to count them. A gate's
        # quarantine holds rows raw never received, so gated entities always take that path.
        h = e.row_hash(["_source_file", "_row_no"])
        sums = " UNION ALL ".join(
            f"SELECT {sign}, count(*), sum({h}) FROM {t} WHERE _batch_id = ?"
            for sign, t in (
                (1, qualified("raw", n)),
                (-1, qualified("staging", n)),
                (-1, qualified("staging", n + "_superseded")),
                (-1, qualified("staging", n + "_quarantine")),
            )
        )
        totals = e.fetchall(sums, (batch_id,) * 4)
        rows = sum(sign * int(n_rows) for sign, n_rows, _ in totals)
        hashes = sum(sign * int(total or 0) for sign, _, total in totals)
        bad = 0
        if rows or hashes:
            bad = int(e.scalar(f"SELECT count(*) FROM ({sql}) AS q", (batch_id,) * 4))
        results.append(
            (None, batch_id, p.name, "row_count_conservation", f"raw.{n}", f"batch {batch_id}")
            + (True, bad, "fail" if bad else "pass", sql, now)
        )
        if bad:
            record_checks(e, results)
            raise CheckFailed("row_count_conservation", bad, sql, f"batch {batch_id} {n}")
    record_checks(e, results)
