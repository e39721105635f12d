"""PostgreSQL as a real warehouse: psycopg 3, COPY for bulk loads, an advisory lock per warehouse.

Connection settings are the ones PostgreSQL users expect: a URL, the PG* environment variables,
~/.pgpass or PGPASSFILE (all read by libpq), or a password file named by the `password_file`
setting (Docker/Kubernetes secrets). A password never reaches a log line or an error message.
Driver errors are classified here: transient ones (connection dropped, serialization failure,
deadlock) may be retried by the caller; the rest are terminal.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from shukei.engines.base import Engine, Params, RawFile
from shukei.errors import EngineError, InputError, LockTimeout, TransientEngineError
from shukei.settings import redact_url
from shukei.sql import column_list, constant, qualified, quote

log = logging.getLogger("shukei.engine")

_LOCK_KEY = 0x5348554B  # "SHUK": one writer per database
_COPY_CHUNK = 1 << 20

# A load COPYs a file straight into its raw table, whose lineage columns are filled by DEFAULTs.
# Settings local to the load's transaction carry the batch, its time and the file; a sequence
# reset before each file numbers its rows from 1 (COPY evaluates defaults row by row, in file
# order, in this backend). The sequence is shukei's own and only the writer, who holds the advisory
# lock, uses it. The settings are read by functions declared IMMUTABLE on purpose: the planner
# folds them into constants once per statement (each COPY starts after its file's settings), so
# no row pays for reading and parsing a setting. They are only ever planned by one-shot statements
# (never a prepared one), and outside a load they return NULL, so a statement that leaves lineage
# out fails on NOT NULL. Column -> (the function, its type).
_ROW_SEQ = qualified("shukei", "lineage_row_no")
_LINEAGE = {
    "_batch_id": ("lineage_batch_id", "BIGINT"),
    "_ingested_at": ("lineage_ingested_at", "TIMESTAMPTZ"),
    "_source_file": ("lineage_source_file", "TEXT"),
}


def _lineage_default(column: str) -> str:
    if column == "_row_no":
        return f"nextval({constant(_ROW_SEQ)})"
    return f"{qualified('shukei', _LINEAGE[column][0])}()"


def to_psycopg(sql: str) -> str:
    """`?` placeholders -> `%s`, outside string literals; literal `%` doubled (psycopg style)."""
    out, in_str = [], False
    for ch in sql:
        if ch == "'":
            in_str = not in_str
            out.append(ch)
        elif ch == "%":
            out.append("%%")
        elif ch == "?" and not in_str:
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


class PostgresEngine(Engine):
    NAME = "postgresql"
    DIALECT = "postgres"
    CONCURRENT_READERS = True

    def __init__(
        self,
        url: str,
        *,
        lock_timeout: float = 0.0,
        read_only: bool = False,
        password_file: Path | None = None,
        connect_retries: int = 3,
    ) -> None:
        super().__init__(url)
        import psycopg

        self._psycopg = psycopg
        self._password_file = password_file
        self._lock_timeout = lock_timeout
        self._read_only = read_only
        self._retries = connect_retries
        self._tx_depth = 0
        self._conn: Any = None
        self._connect()

    # -- connection --------------------------------------------------------------------------
    def _connect(self) -> None:
        from tenacity import (
            RetryCallState,
            retry,
            retry_if_exception_type,
            stop_after_attempt,
            wait_exponential_jitter,
        )

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning(
                "cannot reach the warehouse %s (attempt %d of %d): %s; retrying",
                redact_url(self.url),
                state.attempt_number,
                self._retries,
                exc,
            )

        @retry(
            retry=retry_if_exception_type(TransientEngineError),
            stop=stop_after_attempt(self._retries),
            wait=wait_exponential_jitter(multiplier=0.2, max=3),
            before_sleep=before_sleep,
            reraise=True,
        )
        def attempt() -> Any:
            # Client-side binding: the driver quotes every value, and PostgreSQL also accepts
            # values in utility statements (CREATE TABLE AS) that server-side binding refuses.
            kwargs: dict[str, Any] = {
                "autocommit": True,
                "cursor_factory": self._psycopg.ClientCursor,
                "application_name": "shukei",
            }
            if self._password_file is not None:
                try:
                    kwargs["password"] = Path(self._password_file).read_text().strip()
                except OSError as exc:
                    raise EngineError(
                        f"cannot read password_file {self._password_file}: {exc.strerror}"
                    ) from None
            try:
                return self._psycopg.connect(self.url, **kwargs)
            except self._psycopg.OperationalError as exc:
                msg = _clean(exc)
                if _permanent_connect_error(msg):
                    raise EngineError(f"cannot connect to {redact_url(self.url)}: {msg}") from None
                raise TransientEngineError(
                    f"cannot connect to {redact_url(self.url)}: {msg}"
                ) from None
            except self._psycopg.ProgrammingError as exc:  # a malformed URL
                raise EngineError(
                    f"invalid warehouse URL {redact_url(self.url)}: {_clean(exc)}"
                ) from None

        self._conn = attempt()
        self._tx_depth = 0
        if not self._read_only:
            self._acquire_lock()

    def _acquire_lock(self) -> None:
        deadline = time.monotonic() + self._lock_timeout
        while not self.scalar("SELECT pg_try_advisory_lock(?)", (_LOCK_KEY,)):
            if time.monotonic() >= deadline:
                holder = self.scalar(
                    "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = ? "
                    "AND granted AND database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database()) LIMIT 1",
                    (_LOCK_KEY,),
                )
                raise LockTimeout(
                    f"another shukei process (backend PID {holder}) is writing to the warehouse "
                    f"{redact_url(self.url)}; waited {self._lock_timeout:g}s "
                    "(raise lock_timeout to wait longer)"
                )
            time.sleep(0.2)

    def reconnect(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()
        self._connect()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()

    # -- statements --------------------------------------------------------------------------
    def _run(self, sql: str, params: Params) -> Any:
        try:
            cur = self._conn.cursor()
            if params:
                cur.execute(to_psycopg(sql), list(params))
            else:
                cur.execute(sql)
            return cur
        except self._psycopg.Error as exc:
            raise self._classify(exc) from None

    def _classify(self, exc: BaseException) -> EngineError:
        errors = self._psycopg.errors
        msg = _clean(exc)
        if (
            isinstance(
                exc,
                self._psycopg.OperationalError
                | errors.SerializationFailure
                | errors.DeadlockDetected
                | errors.AdminShutdown,
            )
            or self._conn.closed
        ):
            return TransientEngineError(f"the warehouse connection failed: {msg}")
        return EngineError(f"the warehouse rejected a statement: {msg}")

    def execute(self, sql: str, params: Params = ()) -> None:
        self._run(sql, params).close()

    def fetchall(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        cur = self._run(sql, params)
        try:
            return [tuple(r) for r in cur.fetchall()]
        finally:
            cur.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        if self._tx_depth:
            self._tx_depth += 1
            try:
                yield
            finally:
                self._tx_depth -= 1
            return
        self.execute("BEGIN")
        self._tx_depth = 1
        try:
            yield
        except BaseException:
            self._tx_depth = 0
            with contextlib.suppress(Exception):
                self._conn.execute("ROLLBACK")
            raise
        self._tx_depth = 0
        self.execute("COMMIT")

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        # Taken at connect time (session advisory lock), held until the connection closes.
        yield

    # -- bulk --------------------------------------------------------------------------------
    def load_raw(
        self, table: tuple[str, ...], files: Sequence[RawFile], lineage: Params
    ) -> dict[str, int]:
        # Each row is written once, by COPY straight into `table`, when a file's columns are the
        # entity's (CSV in any column order, Parquet): the lineage columns come from DEFAULTs
        # (see _LINEAGE). JSON lines, and CSVs with columns outside the contract, go through a
        # temp table first, numbered the same way, and one INSERT picks the columns from it.
        with self.transaction():
            self._start_batch(table, lineage)
            counts: dict[str, int] = {}
            staged: dict[tuple[str, tuple[str, ...]], list[RawFile]] = {}
            target = qualified(*table)
            for f in files:
                cols = list(f.columns)
                header = list(f.header) or (_csv_header(Path(f.path)) if f.fmt == "csv" else [])
                if f.fmt == "parquet":
                    copy = f"COPY {target} ({column_list(cols)}) FROM STDIN (FORMAT csv)"
                    self._start_file(f.path)
                    counts[f.path] = self._copy_parquet(copy, Path(f.path), cols)
                elif f.fmt == "csv" and sorted(header) == sorted(cols):
                    copy = (
                        f"COPY {target} ({column_list(header)}) FROM STDIN "
                        "(FORMAT csv, HEADER true)"
                    )
                    self._start_file(f.path)
                    counts[f.path] = self._copy_file(copy, Path(f.path))
                elif f.fmt in ("csv", "jsonl"):
                    staged.setdefault((f.fmt, tuple(header)), []).append(f)
                else:
                    raise InputError(f"{f.path}: unsupported input format {f.fmt!r}")
            for (fmt, names), group in staged.items():
                counts.update(self._load_staged(target, fmt, names, group, lineage))
        return {f.path: counts.get(f.path, 0) for f in files}

    def _ensure_lineage_defaults(self, table: tuple[str, ...]) -> None:
        """Give `table`'s lineage columns the DEFAULTs a load fills them with (once per table)."""
        missing = self.scalar(
            "SELECT to_regclass(?) IS NULL OR to_regprocedure(?) IS NULL",
            ("shukei.lineage_row_no", "shukei.lineage_source_file()"),
        )
        if missing:
            # CACHE: numbers are fetched 1,000 at a time (setval discards the cached ones).
            self.execute(f"CREATE SEQUENCE IF NOT EXISTS {_ROW_SEQ} CACHE 1000")
            for column, (name, typ) in _LINEAGE.items():
                setting = constant("shukei." + column.lstrip("_"))
                self.execute(
                    f"CREATE OR REPLACE FUNCTION {qualified('shukei', name)}() RETURNS {typ} "
                    f"LANGUAGE sql IMMUTABLE AS $$ SELECT CAST(nullif(current_setting("
                    f"{setting}, true), '') AS {typ}) $$"
                )
        have = dict(
            self.fetchall(
                "SELECT a.attname, pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
                "JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
                "WHERE a.attrelid = CAST(? AS regclass) AND NOT a.attisdropped",
                (qualified(*table),),
            )
        )
        columns = [*_LINEAGE, "_row_no"]
        marks = [*(name for name, _ in _LINEAGE.values()), "lineage_row_no"]
        if all(m in str(have.get(c, "")) for c, m in zip(columns, marks, strict=True)):
            return
        self.execute(
            f"ALTER TABLE {qualified(*table)} "
            + ", ".join(
                f"ALTER COLUMN {quote(c)} SET DEFAULT {_lineage_default(c)}" for c in columns
            )
        )

    def _start_batch(self, table: tuple[str, ...], lineage: Params) -> None:
        """The next rows COPYed into `table` belong to batch `lineage` = (id, ingested at)."""
        batch_id, ingested_at = lineage
        self._ensure_lineage_defaults(table)
        self.execute(
            "SELECT set_config('shukei.batch_id', CAST(CAST(? AS BIGINT) AS TEXT), true), "
            "set_config('shukei.ingested_at', ?, true)",
            (batch_id, _instant_text(ingested_at)),
        )

    def _load_error(self, exc: Exception, path: object) -> Exception:
        """A failed COPY of a file's rows: transient (retried by the caller) or the file's."""
        err = self._classify(exc)
        return err if err.transient else InputError(f"{path}: cannot load: {_clean(exc)}")

    def _start_file(self, path: str) -> None:
        """The next rows COPYed come from `path` and are numbered from 1."""
        self.execute(
            "SELECT set_config('shukei.source_file', ?, true), "
            f"setval({constant(_ROW_SEQ)}, 1, false)",
            (path,),
        )

    def _load_staged(
        self,
        target: str,
        fmt: str,
        header: tuple[str, ...],
        group: list[RawFile],
        lineage: Params,
    ) -> dict[str, int]:
        cols = list(group[0].columns)
        fixed = (
            f"_source_file TEXT DEFAULT {_lineage_default('_source_file')}, "
            f"_row_no BIGINT DEFAULT {_lineage_default('_row_no')}"
        )
        self.execute("DROP TABLE IF EXISTS _shukei_load")
        if fmt == "jsonl":
            self.execute(f"CREATE TEMP TABLE _shukei_load ({fixed}, line TEXT)")
            # One JSON document per line, copied verbatim: delimiter and quote never occur in text.
            copy = (
                "COPY _shukei_load (line) FROM STDIN (FORMAT csv, DELIMITER E'\\x01', "
                "QUOTE E'\\x02')"
            )
        else:
            # Only the entity's (validated) names reach the SQL; other columns are not read.
            names = [c if c in cols else f"_ignored_{i}" for i, c in enumerate(header)]
            defs = ", ".join(f"{quote(h)} TEXT" for h in names)
            self.execute(f"CREATE TEMP TABLE _shukei_load ({fixed}, {defs})")
            copy = f"COPY _shukei_load ({column_list(names)}) FROM STDIN (FORMAT csv, HEADER true)"
        counts: dict[str, int] = {}
        for f in group:
            self._start_file(f.path)
            counts[f.path] = self._copy_file(copy, Path(f.path))
        insert = (
            f"INSERT INTO {target} (_batch_id, _ingested_at, _source_file, _row_no, "
            f"{column_list(cols)}) SELECT ?, ?, l._source_file, l._row_no, "
        )
        if fmt == "jsonl":
            self._insert_json(insert, cols, group, lineage)
            counts = dict.fromkeys(counts, 0)
            counts.update(
                self.fetchall(
                    "SELECT _source_file, count(*) FROM _shukei_load WHERE btrim(line) <> '' "
                    "GROUP BY _source_file"
                )
            )
        else:
            self.execute(insert + f"{column_list(cols, 'l')} FROM _shukei_load l", lineage)
        self.execute("DROP TABLE _shukei_load")
        return {p: int(n) for p, n in counts.items()}

    def _insert_json(
        self, insert: str, cols: list[str], group: list[RawFile], lineage: Params
    ) -> None:
        """Append the staged JSON lines (each parsed once); name the first one that is not JSON."""
        picks = ", ".join(
            f"CASE WHEN jsonb_typeof(l.j -> {constant(c)}) IN ('object', 'array') "
            f"THEN (l.j -> {constant(c)})::text ELSE l.j ->> {constant(c)} END"
            for c in cols
        )
        # OFFSET 0 keeps the subquery whole, so each line is parsed once, not once per column.
        sql = insert + (
            f"{picks} FROM (SELECT _source_file, _row_no, CAST(line AS jsonb) AS j "
            "FROM _shukei_load WHERE btrim(line) <> '' OFFSET 0) AS l"
        )
        self.execute("SAVEPOINT _shukei_json")
        try:
            with self._conn.cursor() as cur:
                cur.execute(to_psycopg(sql), list(lineage))
        except self._psycopg.DataError as exc:
            failure = exc
        except self._psycopg.Error as exc:
            raise self._classify(exc) from None
        else:
            self.execute("RELEASE SAVEPOINT _shukei_json")
            return
        self.execute("ROLLBACK TO SAVEPOINT _shukei_json")
        bad = dict(
            self.fetchall(
                "SELECT _source_file, min(_row_no) FROM _shukei_load WHERE btrim(line) <> '' "
                "AND shukei.try_jsonb(line) IS NULL GROUP BY _source_file"
            )
        )
        for f in group:
            if f.path in bad:
                raise InputError(
                    f"{f.path}: line {bad[f.path]} is not a JSON object PostgreSQL can store "
                    "(malformed, or holding a \\u0000 escape)"
                )
        raise self._classify(failure) from None

    def _copy_file(self, copy_sql: str, path: Path) -> int:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        try:
            with self._conn.cursor() as cur:
                with cur.copy(copy_sql) as cp, opener(path, "rb") as fh:
                    while chunk := fh.read(_COPY_CHUNK):
                        cp.write(chunk)
                return max(int(cur.rowcount), 0)
        except self._psycopg.Error as exc:
            raise self._load_error(exc, path) from None

    STREAMS_RAW = True

    def prepare_raw(self, table: tuple[str, ...]) -> None:
        self._ensure_lineage_defaults(table)

    def raw_stream(
        self, table: tuple[str, ...], path: str, columns: Sequence[str], lineage: Params
    ) -> _RawCopy:
        self._start_batch(table, lineage)
        self._start_file(path)
        copy = f"COPY {qualified(*table)} ({column_list(list(columns))}) FROM STDIN (FORMAT csv)"
        return _RawCopy(self, copy, path)

    def _copy_parquet(self, copy_sql: str, path: Path, cols: list[str]) -> int:
        import io

        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        try:
            with self._conn.cursor() as cur:
                with cur.copy(copy_sql) as cp:
                    for batch in pq.ParquetFile(path).iter_batches(columns=cols, batch_size=65536):
                        text = pa.Table.from_batches([batch]).cast(
                            pa.schema([(c, pa.string()) for c in cols])
                        )
                        buf = io.BytesIO()
                        pcsv.write_csv(text, buf, pcsv.WriteOptions(include_header=False))
                        cp.write(buf.getvalue())
                return max(int(cur.rowcount), 0)
        except self._psycopg.Error as exc:
            raise self._load_error(exc, path) from None

    # -- catalog -----------------------------------------------------------------------------
    def table_exists(self, schema: str, name: str) -> bool:
        return bool(
            self.scalar(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
                "AND table_name = ?",
                (schema, name),
            )
        )

    def columns(self, schema: str, name: str) -> list[tuple[str, str]]:
        rows = self.fetchall(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ?"
            " AND table_name = ? ORDER BY ordinal_position",
            (schema, name),
        )
        return [(str(a), str(b)) for a, b in rows]

    def install_functions(self) -> None:
        for scale in (2, 4):
            self.execute(
                f"CREATE OR REPLACE FUNCTION shukei.div_round{scale}(a numeric, b numeric) "
                f"RETURNS numeric LANGUAGE sql IMMUTABLE AS $$ SELECT CASE WHEN b = 0 THEN NULL "
                f"ELSE round(a / b, {scale}) END $$"
            )
        # Safe casts: PostgreSQL 15 has no TRY_CAST nor pg_input_is_valid.
        for name, typ in (
            ("timestamptz", "timestamptz"),
            ("timestamp", "timestamp"),
            ("date", "date"),
            ("jsonb", "jsonb"),
        ):
            self.execute(
                f"CREATE OR REPLACE FUNCTION shukei.try_{name}(v text) RETURNS {typ} "
                f"LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN v::{typ}; "
                "EXCEPTION WHEN others THEN RETURN NULL; END $$"
            )

    def ensure_index(
        self,
        table: tuple[str, str],
        columns: Sequence[str],
        unique: bool = False,
        appended: bool = False,
    ) -> None:
        name = quote(("ux_" if unique else "ix_") + "_".join([table[1], *columns])[:55])
        kind = "UNIQUE INDEX" if unique else "INDEX"
        nulls = " NULLS NOT DISTINCT" if unique else ""
        # A column that only grows as rows are appended (a batch id) needs no B-tree: a BRIN
        # index costs almost nothing to maintain during bulk loads.
        using = " USING brin" if appended and not unique else ""
        self.execute(
            f"CREATE {kind} IF NOT EXISTS {name} ON {qualified(*table)}{using} "
            f"({column_list(list(columns))}){nulls}"
        )

    # -- dialect -----------------------------------------------------------------------------
    def nfkc(self, expr: str) -> str:
        # ASCII text is already NFKC; testing that costs far less than normalize().
        return f"(CASE WHEN {self.is_ascii(expr)} THEN {expr} ELSE normalize({expr}, NFKC) END)"

    def analyze(self, table: tuple[str, ...], changed_rows: int | None = None) -> None:
        # Without statistics the planner guesses: a fresh bulk load or a temp table of 23 dates
        # then gets hash joins over whole tables where an index lookup per key is 4x faster.
        # Refreshed when a tenth of the table changed (ANALYZE samples, so it costs little).
        t = qualified(*table)
        if changed_rows is not None:
            est = self.scalar("SELECT reltuples FROM pg_class WHERE oid = to_regclass(?)", (t,))
            if est is not None and float(est) >= 0 and changed_rows < 0.1 * float(est):
                return
        self.execute(f"ANALYZE {t}")
        # BRIN ranges filled since the last summary match every value until summarised: a
        # lookup of the newest batch would read the whole table.
        self.fetchall(
            "SELECT brin_summarize_new_values(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam "
            "WHERE i.indrelid = to_regclass(?) AND a.amname = 'brin'",
            (t,),
        )

    def is_ascii(self, expr: str) -> str:
        return f"octet_length({expr}) = char_length({expr})"

    def regex_full(self, expr: str, pattern: str) -> str:
        return f"({expr} ~ {constant('^(?:' + pattern + ')$')})"

    def row_hash(self, exprs: Sequence[str]) -> str:
        # bigint; its sum is a numeric, exact
        return f"hashtextextended(concat_ws(chr(31), {', '.join(exprs)}), 0)"

    def bucket(self, exprs: Sequence[str], n: str) -> str:
        joined = "concat_ws(chr(31), " + ", ".join(exprs) + ")"
        return f"((hashtext({joined})::bigint & 2147483647) % CAST({n} AS BIGINT))"

    def json_elements(self, expr: str) -> tuple[str, Callable[[str], str], str]:
        doc = f"shukei.try_jsonb({expr})"
        lateral = (
            f"CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof({doc}) = 'array' "
            f"THEN {doc} ELSE '[]'::jsonb END) WITH ORDINALITY AS x(v, n)"
        )
        return lateral, lambda name: f"(x.v ->> {constant(name)})", "x.n"

    def regex_tail(self, expr: str, pattern: str) -> str:
        return f"({expr} ~ {constant(pattern)})"

    def to_instant(self, expr: str, has_offset: str, tz: str) -> str:
        return (
            f"(CASE WHEN {has_offset} THEN shukei.try_timestamptz({expr}) "
            f"ELSE shukei.try_timestamp({expr}) AT TIME ZONE {tz} END)"
        )

    def local_date(self, expr: str, tz: str) -> str:
        return f"CAST(({expr} AT TIME ZONE {tz}) AS DATE)"

    def try_cast(self, expr: str, sql_type: str) -> str:
        return f"shukei.try_{sql_type.lower()}({expr})"

    def translate(self, sql: str) -> str:
        import sqlglot

        return ";\n".join(sqlglot.transpile(sql, read="duckdb", write="postgres"))


def _clean(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.split()) if text else type(exc).__name__


def _permanent_connect_error(msg: str) -> bool:
    low = msg.lower()
    return any(
        s in low
        for s in (
            "password authentication failed",
            "does not exist",
            "no password supplied",
            "authentication failed",
            "role",
            "permission denied",
            "invalid",
        )
    )


def _instant_text(value: Any) -> str:
    """A timestamp as text PostgreSQL reads back exactly (ISO 8601, microseconds, offset)."""
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _csv_header(path: Path) -> list[str]:
    import csv
    import io

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        first = fh.readline().decode("utf-8-sig")
    return [h.strip() for h in next(csv.reader(io.StringIO(first)))]


class _RawCopy:
    """One COPY FROM STDIN into a raw table, kept open while its rows arrive (`raw_stream`)."""

    def __init__(self, engine: PostgresEngine, copy_sql: str, path: str) -> None:
        self._engine, self._path = engine, path
        self._cur = engine._conn.cursor()
        self._cm = self._cur.copy(copy_sql)
        try:
            self._copy = self._cm.__enter__()
        except engine._psycopg.Error as exc:
            self._cur.close()
            raise self._error(exc) from None

    def write(self, rows: bytes | bytearray) -> None:
        try:
            self._copy.write(rows)
        except self._engine._psycopg.Error as exc:
            raise self._error(exc) from None

    def close(self) -> int:
        try:
            self._cm.__exit__(None, None, None)
            return max(int(self._cur.rowcount), 0)
        except self._engine._psycopg.Error as exc:
            raise self._error(exc) from None
        finally:
            self._cur.close()

    def _error(self, exc: Exception) -> Exception:
        return self._engine._load_error(exc, self._path)
