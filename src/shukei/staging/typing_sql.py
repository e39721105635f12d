"""The typed SELECT of one entity's raw rows: clean text, strict parsing, quarantine reasons.

Text is NFKC-normalised and trimmed; `lower` columns are lower-cased; an invalid email becomes NULL
(its row is kept). Numbers and timestamps parse strictly (no rounding, no lost digits). A row whose
key, version, required value or number cannot be used gets every reason in `_reason`.
The business timezone comes from the temp table `_shukei_ctx`, filled with a bound parameter.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from shukei.engines.base import Engine
from shukei.pipeline.definition import Column, Entity
from shukei.sql import constant, qualified, quote

TZ = "(SELECT tz FROM _shukei_ctx)"
_ISO_TS = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?"
    r"(Z|z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)?)?"
)
# An offset after a time of day (a bare date's "-01" is not one).
_OFFSET = (
    r"[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?(Z|z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)$"
)
_DATE = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_INT = r"[+-]?[0-9]{1,18}"
_EMAIL = r"[a-z0-9._%+'-]+@[a-z0-9-]+(\.[a-z0-9-]+)*\.[a-z]{2,}"
_BOOL = r"(true|false|t|f|yes|no|y|n|1|0)"


def _num(value: object) -> str:
    from decimal import Decimal

    assert isinstance(value, Decimal)
    return format(value, "f")


def clean_text(engine: Engine, col: Column, expr: str) -> str:
    """NFKC (not for JSON documents), trimmed, NULL when empty."""
    norm = expr if col.type == "json" else engine.nfkc(expr)
    return f"NULLIF({engine.trim(norm)}, '')"


def nfkc_stable_columns(
    engine: Engine,
    entity: Entity,
    where: str,
    params: Sequence[Any] = (),
    source: str | None = None,
) -> set[str]:
    """The text columns whose values in `where` NFKC leaves unchanged (ASCII, mostly).

    One cheap aggregate over the rows spares the per-value normalisation on those columns (ids,
    numbers and timestamps usually are ASCII; names usually are already NFKC)."""
    cols = [c.name for c in entity.columns if c.type != "json"]
    stable: set[str] = set()
    # ASCII first: that test is 5x cheaper than the full one, whose pattern alone costs a few
    # milliseconds to compile (measured), and it settles most columns.
    for test in (engine.is_ascii, engine.nfkc_stable):
        cols = [c for c in cols if c not in stable]
        if not cols:
            break
        checks = ", ".join(f"bool_and({test('r.' + quote(c))})" for c in cols)
        row = engine.fetchone(
            f"SELECT {checks} FROM {source or qualified('raw', entity.name)} AS r WHERE {where}",
            params,
        )
        assert row is not None
        stable |= {c for c, ok in zip(cols, row, strict=True) if ok is None or ok}
    return stable


def typed_select(
    engine: Engine,
    entity: Entity,
    where: str,
    source: str | None = None,
    nfkc_stable: Collection[str] = (),
    extra: Sequence[str] = (),
) -> str:
    """SELECT lineage, raw text, typed value per column and `_reason` from raw rows in `where`.

    `source` is the table to read (default `raw.<entity>`), e.g. an incoming batch at the gate;
    `nfkc_stable` names columns that NFKC leaves unchanged there (see `nfkc_stable_columns`);
    `extra` adds select items over the source rows (alias `r`).
    """
    e = engine
    normal: list[str] = []
    clean, typed, reasons = [], [], []
    for col in entity.columns:
        r = quote(col.name)
        t = quote(col.name + "__t")
        n = quote(col.name + "__n")
        # Normalised in its own layer: the trim tests it several times, and must not redo it.
        plain = col.type == "json" or col.name in nfkc_stable
        normal.append(f"{'r.' + r if plain else e.nfkc('r.' + r)} AS {n}")
        clean.append(f"NULLIF({e.trim(n)}, '') AS {t}")
        expr, strict = _typed(engine, col, t)
        v = quote(col.name + "__v")
        typed.append(f"{expr} AS {v}")
        required = col.required or col.name in entity.key or col.name == entity.version
        if required:
            reasons.append(f"CASE WHEN {t} IS NULL THEN {constant('missing ' + col.name)} END")
        if strict:
            # A strict type's expression is NULL exactly when present text does not parse.
            reasons.append(
                f"CASE WHEN {t} IS NOT NULL AND {v} IS NULL THEN "
                f"{constant('unparseable ' + col.name + ': ')} || left({t}, 60) END"
            )
        if col.min is not None:
            msg = f"negative {col.name}" if col.min == 0 else f"{col.name} below {_num(col.min)}"
            reasons.append(f"CASE WHEN {v} < {_num(col.min)} THEN {constant(msg)} END")
        if col.max is not None:
            msg = f"{col.name} above {_num(col.max)}"
            reasons.append(f"CASE WHEN {v} > {_num(col.max)} THEN {constant(msg)} END")
    raw_cols = ", ".join(f"r.{quote(c)}" for c in entity.column_names)
    lineage = "r._batch_id, r._source_file, r._row_no"
    base = (
        f"SELECT {lineage}, {raw_cols}, {', '.join([*normal, *extra])} "
        f"FROM {source or qualified('raw', entity.name)} AS r WHERE {where} OFFSET 0"
    )
    inner = f"SELECT *, {', '.join(clean)} FROM ({base}) AS n OFFSET 0"
    # OFFSET 0 keeps each layer a real subquery: an engine that would otherwise inline the
    # layers (PostgreSQL) copies every cleaning expression into each place that uses it.
    mid = f"SELECT *, {', '.join(typed)} FROM ({inner}) AS c OFFSET 0"
    reason = "concat_ws('; ', " + ", ".join(reasons) + ")" if reasons else "''"
    part = ""
    if entity.partition_column and entity.partition_from:
        src = quote(entity.partition_from + "__v")
        part = f", {e.local_date(src, TZ)} AS {quote(entity.partition_column)}"
    return f"SELECT *, NULLIF({reason}, '') AS _reason{part} FROM ({mid}) AS v"


def _typed(engine: Engine, col: Column, t: str) -> tuple[str, bool]:
    """(typed expression, strict): a strict expression is NULL when present text is invalid."""
    e = engine
    if col.type in ("text", "json"):
        return (f"lower({t})" if col.lower else t), False
    if col.type == "email":
        low = f"lower({t})"
        return f"CASE WHEN {e.regex_full(low, _EMAIL)} THEN {low} END", False
    if col.type == "integer":
        return f"CASE WHEN {e.regex_full(t, _INT)} THEN CAST({t} AS BIGINT) END", True
    if dec := col.decimal:
        p, s = dec
        pat = rf"[+-]?[0-9]{{1,{p - s}}}(\.[0-9]{{1,{s}}})?" if s else rf"[+-]?[0-9]{{1,{p}}}"
        return f"CASE WHEN {e.regex_full(t, pat)} THEN CAST({t} AS DECIMAL({p},{s})) END", True
    if col.type == "timestamp":
        # ISO 8601 only: the date comes first; the engine's cast rejects impossible values.
        inst = e.to_instant(t, e.regex_tail(t, _OFFSET), TZ)
        return f"CASE WHEN {e.regex_full(t, _ISO_TS)} THEN {inst} END", True
    if col.type == "date":
        return f"CASE WHEN {e.regex_full(t, _DATE)} THEN {e.try_cast(t, 'DATE')} END", True
    if col.type == "boolean":
        low = f"lower({t})"
        truthy = f"{low} IN ('true', 't', 'yes', 'y', '1')"
        return f"CASE WHEN {e.regex_full(low, _BOOL)} THEN {truthy} END", True
    raise AssertionError(col.type)


def typed_rows(
    engine: Engine, entity: Entity, where: str, nfkc_stable: Collection[str] = ()
) -> str:
    """The merge's view of `typed_select`: lineage, each column typed under its own name, the
    partition column, `_reason`, and `<col>__r`, the raw text, kept only for unusable rows (the
    quarantine keeps them; usable rows need no second copy of their text)."""
    typed = ", ".join(f"{quote(c + '__v')} AS {quote(c)}" for c in entity.column_names)
    part = f", {quote(entity.partition_column)}" if entity.partition_column else ""
    raw = ", ".join(
        f"CASE WHEN _reason IS NOT NULL THEN {quote(c)} END AS {quote(c + '__r')}"
        for c in entity.column_names
    )
    return (
        f"SELECT _batch_id, _source_file, _row_no, {typed}{part}, _reason, {raw} "
        f"FROM ({typed_select(engine, entity, where, nfkc_stable=nfkc_stable)}) AS s"
    )
