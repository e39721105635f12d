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
from pathlib import Path
from typing import Any

from shukei.engines.base import Engine, Params, RawFile
from shukei.errors import EngineError, InputError, LockTimeout, TransientEngineError
from shukei.settings import redact_url
from shukei.sql import column_list, constant, qualified, quote

log = logging.getLogger("shukei.engine")

_LOCK_KEY = 0x5348554B  # "SHUK": one writer per database
_COPY_CHUNK = 1 << 20


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
        # One temp table per format and header layout; each file is COPYed into it with its
        # index in a column whose DEFAULT reads a session setting, then one INSERT numbers the
        # rows per file and appends them all to raw.
        groups: dict[tuple[str, tuple[str, ...]], list[RawFile]] = {}
        for f in files:
            groups.setdefault((f.fmt, f.header), []).append(f)
        counts: dict[str, int] = {}
        for (fmt, header), group in groups.items():
            counts.update(self._load_group(table, fmt, header, group, lineage))
        return counts

    def _load_group(
        self,
        table: tuple[str, ...],
        fmt: str,
        header: tuple[str, ...],
        group: list[RawFile],
        lineage: Params,
    ) -> dict[str, int]:
        cols = list(group[0].columns)
        self.execute("DROP TABLE IF EXISTS _shukei_load")
        fixed = (
            "_n BIGINT GENERATED ALWAYS AS IDENTITY, "
            "_f INTEGER DEFAULT current_setting('shukei.file')::integer"
        )
        if fmt == "jsonl":
            self.execute(f"CREATE TEMP TABLE _shukei_load ({fixed}, line TEXT)")
            # One JSON document per line, copied verbatim: delimiter and quote never occur in text.
            copy = (
                "COPY _shukei_load (line) FROM STDIN (FORMAT csv, DELIMITER E'\\x01', "
                "QUOTE E'\\x02')"
            )
            picks = ", ".join(
                f"CASE WHEN jsonb_typeof(line::jsonb -> {constant(c)}) IN ('object', 'array') "
                f"THEN (line::jsonb -> {constant(c)})::text ELSE line::jsonb ->> {constant(c)} END"
                for c in cols
            )
            where = " WHERE btrim(l.line) <> ''"
        elif fmt == "csv":
            # Only the entity's (validated) names reach the SQL; other columns are not read.
            names = [c if c in cols else f"_ignored_{i}" for i, c in enumerate(header)]
            defs = ", ".join(f"{quote(h)} TEXT" for h in names)
            self.execute(f"CREATE TEMP TABLE _shukei_load ({fixed}, {defs})")
            copy = f"COPY _shukei_load ({column_list(names)}) FROM STDIN (FORMAT csv, HEADER true)"
            picks, where = column_list(cols, "l"), ""
        elif fmt == "parquet":
            defs = ", ".join(f"{quote(c)} TEXT" for c in cols)
            self.execute(f"CREATE TEMP TABLE _shukei_load ({fixed}, {defs})")
            copy = f"COPY _shukei_load ({column_list(cols)}) FROM STDIN (FORMAT csv)"
            picks, where = column_list(cols, "l"), ""
        else:
            raise InputError(f"unsupported input format {fmt!r}")
        for idx, f in enumerate(group):
            self.execute("SELECT set_config('shukei.file', ?, false)", (str(idx),))
            if fmt == "parquet":
                self._copy_parquet(copy, Path(f.path), cols)
            else:
                self._copy_file(copy, Path(f.path))
        self.execute("DROP TABLE IF EXISTS _shukei_files")
        self.execute("CREATE TEMP TABLE _shukei_files (_f INTEGER, path TEXT)")
        self.insert_rows("_shukei_files", [(i, f.path) for i, f in enumerate(group)])
        if fmt == "jsonl":
            picks = picks.replace("line::jsonb", "l.line::jsonb")
            bad = self.fetchone(
                "SELECT f.path, l._n - m.first + 1 FROM _shukei_load l JOIN _shukei_files f "
                "ON f._f = l._f JOIN (SELECT _f, min(_n) AS first FROM _shukei_load GROUP BY _f) m "
                "ON m._f = l._f WHERE btrim(l.line) <> '' AND shukei.try_jsonb(l.line) IS NULL "
                "ORDER BY l._n LIMIT 1"
            )
            if bad is not None:
                raise InputError(
                    f"{bad[0]}: line {bad[1]} is not a JSON object PostgreSQL can store "
                    "(malformed, or holding a \\u0000 escape)"
                )
        self.execute(
            f"INSERT INTO {qualified(*table)} (_batch_id, _ingested_at, _source_file, _row_no, "
            f"{column_list(cols)}) SELECT ?, ?, f.path, l._n - m.first + 1, {picks} "
            "FROM _shukei_load l JOIN _shukei_files f ON f._f = l._f "
            "JOIN (SELECT _f, min(_n) AS first FROM _shukei_load GROUP BY _f) m ON m._f = l._f"
            + where,
            lineage,
        )
        per_file = dict(
            self.fetchall(
                f"SELECT f.path, count(*) FROM _shukei_load l JOIN _shukei_files f "
                f"ON f._f = l._f{where} GROUP BY f.path"
            )
        )
        self.execute("DROP TABLE _shukei_load")
        self.execute("DROP TABLE _shukei_files")
        return {f.path: int(per_file.get(f.path, 0)) for f in group}

    def _copy_file(self, copy_sql: str, path: Path) -> None:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        try:
            with self._conn.cursor() as cur, cur.copy(copy_sql) as cp, opener(path, "rb") as fh:
                while chunk := fh.read(_COPY_CHUNK):
                    cp.write(chunk)
        except self._psycopg.Error as exc:
            err = self._classify(exc)
            if err.transient:
                raise err from None
            raise InputError(f"{path}: cannot load: {_clean(exc)}") from None

    def _copy_parquet(self, copy_sql: str, path: Path, cols: list[str]) -> None:
        import io

        import pyarrow as pa
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        try:
            with self._conn.cursor() as cur, cur.copy(copy_sql) as cp:
                for batch in pq.ParquetFile(path).iter_batches(columns=cols, batch_size=65536):
                    text = pa.Table.from_batches([batch]).cast(
                        pa.schema([(c, pa.string()) for c in cols])
                    )
                    buf = io.BytesIO()
                    pcsv.write_csv(text, buf, pcsv.WriteOptions(include_header=False))
                    cp.write(buf.getvalue())
        except self._psycopg.Error as exc:
            raise InputError(f"{path}: cannot load: {_clean(exc)}") from None

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
        return (
            f"(CASE WHEN octet_length({expr}) = char_length({expr}) THEN {expr} "
            f"ELSE normalize({expr}, NFKC) END)"
        )

    def regex_full(self, expr: str, pattern: str) -> str:
        return f"({expr} ~ {constant('^(?:' + pattern + ')$')})"

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


def _csv_header(path: Path) -> list[str]:
    import csv
    import io

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rb") as fh:
        first = fh.readline().decode("utf-8-sig")
    return [h.strip() for h in next(csv.reader(io.StringIO(first)))]
