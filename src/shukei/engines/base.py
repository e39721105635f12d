"""The small protocol every warehouse engine speaks.

The runner, ingest and staging code talk only to this interface. An engine differs from the base by
its capability flags, its dialect helpers (SQL fragments for the few functions the engines spell
differently) and a handful of overrides: how files are bulk-loaded, how the writer lock is
taken, and
how a set of partitions of a mart is replaced. Values always travel as bound parameters written `?`
in the SQL handed to an engine; an engine translates them to its driver's style.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from shukei.sql import qualified

Params = Sequence[Any]


@dataclass(frozen=True)
class RawFile:
    """One input file to load into a raw table: where it is and how to read it."""

    path: str
    fmt: str  # csv | parquet | jsonl
    columns: tuple[str, ...]  # the entity's columns, all present in the file (validated before)
    header: tuple[str, ...] = ()  # a CSV's own header, in file order


class RawStream(Protocol):
    """Rows on their way into a raw table (see `Engine.raw_stream`)."""

    def write(self, rows: bytes | bytearray) -> None: ...

    def close(self) -> int: ...


class Engine(ABC):
    """A connection to one warehouse, owned by one shukei process."""

    NAME = "base"
    # A column numbering a table's rows in insertion order, if the engine has one (DuckDB's
    # rowid); else the row numbers shukei needs come from a window.
    ROWID: str | None = None
    DIALECT = "duckdb"  # sqlglot dialect the engine speaks
    SUPPORTS_TRANSACTIONS = True
    CONCURRENT_READERS = False  # can a reader work beside the writer without its lock?

    def __init__(self, url: str) -> None:
        self.url = url

    # -- statements --------------------------------------------------------------------------
    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> None:
        """Run one statement with bound parameters."""

    @abstractmethod
    def fetchall(self, sql: str, params: Params = ()) -> list[tuple[Any, ...]]:
        """Run a query with bound parameters and return every row."""

    def fetchone(self, sql: str, params: Params = ()) -> tuple[Any, ...] | None:
        rows = self.fetchall(sql, params)
        return rows[0] if rows else None

    def scalar(self, sql: str, params: Params = ()) -> Any:
        row = self.fetchone(sql, params)
        return None if row is None else row[0]

    def create_temp(
        self, name: str, select_sql: str, params: Params = (), view: bool = False
    ) -> None:
        """(Re)create shukei's scratch temp table (or view) `name` (a `_shukei_*` constant)."""
        kind = "VIEW" if view else "TABLE"
        self.execute(f"DROP {kind} IF EXISTS {name}")
        self.execute(f"CREATE TEMP {kind} {name} AS {select_sql}", params)

    @abstractmethod
    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """A transaction owned by Python: commit on success, roll back on any exception."""

    @abstractmethod
    def close(self) -> None: ...

    # -- bulk --------------------------------------------------------------------------------
    @abstractmethod
    def load_raw(
        self, table: tuple[str, ...], files: Sequence[RawFile], lineage: Params
    ) -> dict[str, int]:
        """Append every row of `files` as text to raw `table`, with lineage columns.

        The raw table's columns are `_batch_id, _ingested_at, _source_file, _row_no` followed by
        the entity's columns; `lineage` binds (batch_id, ingested_at). Returns rows per file path.
        """

    def replace_partitions(
        self,
        table: tuple[str, str],
        column: str,
        keys_sql: str,
        select_sql: str,
        params: Params = (),
    ) -> None:
        """Replace the rows of `table` whose `column` is in `keys_sql` by the rows of `select_sql`.

        One engine operation, so an engine without multi-statement transactions (Spark) can
        implement it as a partition overwrite. Here: DELETE + INSERT inside the caller's
        transaction.
        """
        t = qualified(*table)
        self.execute(f"DELETE FROM {t} WHERE {qualified(column)} IN ({keys_sql})")
        self.execute(f"INSERT INTO {t} {select_sql}", params)

    def insert_rows(
        self, table: str, rows: Sequence[Sequence[Any]], suffix: str = "", chunk: int = 200
    ) -> None:
        """Insert many small rows (state, ledger) with few statements, every value bound.

        `table` is already-quoted SQL such as `shukei.diffs` or `"t" (a, b)`; `suffix` may add
        an ON CONFLICT clause.
        """
        if not rows:
            return
        width = len(rows[0])
        mark = "(" + ", ".join("?" for _ in range(width)) + ")"
        for i in range(0, len(rows), chunk):
            part = rows[i : i + chunk]
            self.execute(
                f"INSERT INTO {table} VALUES {', '.join(mark for _ in part)} {suffix}",
                [v for r in part for v in r],
            )

    # -- catalog -----------------------------------------------------------------------------
    @abstractmethod
    def table_exists(self, schema: str, name: str) -> bool: ...

    @abstractmethod
    def columns(self, schema: str, name: str) -> list[tuple[str, str]]:
        """(name, type) of a table's columns, in order."""

    @abstractmethod
    def install_functions(self) -> None:
        """Create shukei's SQL helpers in schema `shukei`: div_round2(a, b), div_round4(a, b),
        exact division rounded half away from zero, NULL when b is 0."""

    def analyze(  # noqa: B027 - optional hook
        self, table: tuple[str, ...], changed_rows: int | None = None
    ) -> None:
        """Refresh the planner's statistics of a table after `changed_rows` rows changed (None:
        always), where the engine does not keep them itself."""

    @contextlib.contextmanager
    def staged(self, files: Sequence[RawFile]) -> Iterator[None]:
        """Read `files` ahead of the transaction that loads them, where that is faster."""
        yield

    def create_table_from(self, table: tuple[str, str], select_sql: str) -> None:
        """Create an empty table with the columns (names and types) of a query."""
        self.execute(
            f"CREATE TABLE {qualified(*table)} AS SELECT * FROM ({select_sql}) AS q WHERE 1 = 0"
        )

    def ensure_index(  # noqa: B027 - optional hook
        self,
        table: tuple[str, str],
        columns: Sequence[str],
        unique: bool = False,
        appended: bool = False,
    ) -> None:
        """Create an index if the engine benefits from one (DuckDB: zone maps suffice).

        `appended`: the column's values only grow as rows are appended (a batch id)."""

    STREAMS_RAW = False  # whether `raw_stream` is implemented

    def prepare_raw(self, table: tuple[str, ...]) -> None:  # noqa: B027 - optional hook
        """Whatever loading into raw `table` needs first (DDL): called in a short transaction
        of its own before a long one loads rows, so no lock of it is held meanwhile."""

    def raw_stream(
        self, table: tuple[str, ...], path: str, columns: Sequence[str], lineage: Params
    ) -> RawStream:
        """Append rows to raw `table` as they come, as `load_raw` would load them from `path`
        (its lineage: `path`, rows numbered from 1): CSV text without a header, `columns` in
        order, written in pieces of whole rows; `close()` returns the row count. Inside the
        caller's transaction; nothing else may use the engine until it is closed."""
        raise NotImplementedError(f"{self.NAME} loads raw rows from files only")

    def storage(self, kind: str) -> str:
        """A column definition's storage clause for what the column holds, where the engine
        lets a table say it: `constant` (one value per load), `sequence` (row numbers), `few`
        (few distinct values) or `text` (many distinct strings). Empty by default."""
        return ""

    def reconnect(self) -> None:  # noqa: B027 - optional hook
        """Re-open a dropped connection (and the writer lock); temp tables are gone after it."""

    # -- lock --------------------------------------------------------------------------------
    @abstractmethod
    def writer_lock(self) -> contextlib.AbstractContextManager[None]:
        """Hold the warehouse's single-writer lock for the duration of the block."""

    # -- dialect helpers: SQL fragments around an expression ---------------------------------
    def nfkc(self, expr: str) -> str:
        """Unicode NFKC normalisation of a text expression."""
        raise NotImplementedError

    def is_ascii(self, expr: str) -> str:
        """True when a text expression holds only ASCII (which NFKC leaves unchanged)."""
        raise NotImplementedError

    def nfkc_stable(self, expr: str) -> str:
        """True when NFKC leaves a text expression unchanged (cheaply decided, may say False)."""
        return self.is_ascii(expr)

    def trim(self, expr: str) -> str:
        """Strip spaces, tabs and line breaks at both ends.

        Most values have none, and testing the two end characters costs far less than trim().
        """
        ws = "' \t\r\n'"  # a literal holding the four characters themselves
        return (
            f"(CASE WHEN position(left({expr}, 1) IN {ws}) > 0 "
            f"OR position(right({expr}, 1) IN {ws}) > 0 THEN trim({expr}, {ws}) ELSE {expr} END)"
        )

    def translate(self, sql: str) -> str:
        """Pipeline SQL is written in DuckDB's dialect; engines speaking another translate it."""
        return sql

    def regex_full(self, expr: str, pattern: str) -> str:
        """True when the whole of `expr` matches `pattern` (a core constant, not a user value)."""
        raise NotImplementedError

    def regex_tail(self, expr: str, pattern: str) -> str:
        """True when `expr` contains a match of `pattern` (anchor it with `$` to test the end)."""
        raise NotImplementedError

    def bucket(self, exprs: Sequence[str], n: str) -> str:
        """A bucket number in [0, n) for the values of `exprs` (n is SQL, e.g. `?`)."""
        raise NotImplementedError

    def row_hash(self, exprs: Sequence[str]) -> str:
        """A 64-bit hash of the values of `exprs`, to be summed exactly (a multiset checksum)."""
        raise NotImplementedError

    def json_elements(self, expr: str) -> tuple[str, Callable[[str], str], str]:
        """Rows of the JSON array in text `expr` (anything else gives no rows).

        Returns (a `CROSS JOIN LATERAL ...` clause to put after the FROM item, a function giving
        an element field's text, the element's ordinal from 1).
        """
        raise NotImplementedError

    def to_instant(self, expr: str, has_offset: str, tz: str) -> str:
        """Text ISO timestamp -> instant; without an offset it is local time in zone `tz` (SQL)."""
        raise NotImplementedError

    def local_date(self, expr: str, tz: str) -> str:
        """The date of an instant in zone `tz` (an SQL expression)."""
        raise NotImplementedError

    def try_cast(self, expr: str, sql_type: str) -> str:
        return f"TRY_CAST({expr} AS {sql_type})"
