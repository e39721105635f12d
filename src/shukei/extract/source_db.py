"""The operational source database: its schema, connections to it, and the demo initializer.

Schema (in the connection's default schema, normally `public`): `customers`, `products`, `orders`,
`order_items`, each with an `updated_at` kept by a trigger (set to `now()` on every update that
does not set it explicitly, so a backfill may keep its own value) and an index on it for the
incremental extract. `source init` creates it idempotently and fills it in bulk with the clean
data of `shukei.generate.sales` (COPY into temp tables, one INSERT ... ON CONFLICT DO NOTHING per
table, all in one transaction): running it twice with the same arguments changes nothing.

Extraction sessions are read-only (`default_transaction_read_only = on`, REPEATABLE READ READ
ONLY transactions) and bounded by `statement_timeout`; times travel as UTC.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from shukei.errors import ShukeiError
from shukei.extract import TABLES
from shukei.extract.secrets import Credentials, Scrubber

log = logging.getLogger("shukei.extract")

# Contract column -> SQL expression on the source table (all rendered as text by COPY).
SELECTS: dict[str, tuple[tuple[str, str], ...]] = {
    "customers": (
        ("customer_id", "customer_id"),
        ("name", "name"),
        ("email", "email"),
        ("region", "region"),
        ("updated_at", "updated_at"),
    ),
    "products": (
        ("product_id", "product_id"),
        ("name", "name"),
        ("category", "category"),
        ("updated_at", "updated_at"),
    ),
    "orders": (
        ("order_id", "order_id"),
        ("customer_id", "customer_id"),
        ("status", "status"),
        ("region", "region"),
        ("created_at", "created_at"),
        ("updated_at", "updated_at"),
    ),
    "order_items": (
        ("order_id", "order_id"),
        ("line_no", "line_no"),
        ("product_id", "product_id"),
        ("quantity", "quantity"),
        ("unit_price", "unit_price"),
        ("updated_at", "updated_at"),
    ),
}

DDL: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS customers (
        customer_id text PRIMARY KEY,
        name text,
        email text,
        region text,
        updated_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS products (
        product_id text PRIMARY KEY,
        name text,
        category text,
        updated_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS orders (
        order_id text PRIMARY KEY,
        customer_id text REFERENCES customers (customer_id),
        status text NOT NULL,
        region text,
        created_at timestamptz NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now())""",
    """CREATE TABLE IF NOT EXISTS order_items (
        order_id text NOT NULL REFERENCES orders (order_id),
        line_no integer NOT NULL,
        product_id text REFERENCES products (product_id),
        quantity integer NOT NULL CHECK (quantity >= 1),
        unit_price numeric(18,2) NOT NULL CHECK (unit_price >= 0),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (order_id, line_no))""",
    """CREATE OR REPLACE FUNCTION shukei_touch_updated_at() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                IF NEW.updated_at IS NULL THEN NEW.updated_at := now(); END IF;
            ELSIF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
                NEW.updated_at := now();
            END IF;
            RETURN NEW;
        END $$""",
    *(f"CREATE INDEX IF NOT EXISTS {t}_updated_at_idx ON {t} (updated_at)" for t in TABLES),
    *(f"DROP TRIGGER IF EXISTS {t}_touch_updated_at ON {t}" for t in TABLES),
    *(
        f"CREATE TRIGGER {t}_touch_updated_at BEFORE INSERT OR UPDATE ON {t} "
        "FOR EACH ROW EXECUTE FUNCTION shukei_touch_updated_at()"
        for t in TABLES
    ),
)

_CASTS = {
    "line_no": "::integer",
    "quantity": "::integer",
    "unit_price": "::numeric(18,2)",
    "created_at": "::timestamptz",
    "updated_at": "::timestamptz",
}
_KEYS = {
    "customers": "customer_id",
    "products": "product_id",
    "orders": "order_id",
    "order_items": "order_id, line_no",
}


class SourceError(ShukeiError):
    """The source database failed or refused. `transient`: retrying may help."""

    transient = False


class TransientSourceError(SourceError):
    transient = True


_PERMANENT = (
    "password authentication failed",
    "authentication failed",
    "no password supplied",
    "does not exist",
    "permission denied",
    "invalid",
    "pg_hba.conf",
)


def clean(exc: BaseException) -> str:
    text = str(exc).strip()
    return " ".join(text.split()) if text else type(exc).__name__


def classify(exc: BaseException, what: str, scrub: Scrubber) -> SourceError:
    """A driver error as a SourceError: connection-level failures are transient."""
    import psycopg

    msg = scrub(f"{what}: {clean(exc)}")
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return SourceError(msg + " (statement_timeout_s bounds every query on the source)")
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        low = msg.lower()
        if isinstance(exc, psycopg.errors.AdminShutdown) or not any(p in low for p in _PERMANENT):
            return TransientSourceError(msg)
    return SourceError(msg)


def copy_out(
    conn: Any,
    query: bytes,
    sink: Callable[[bytearray, int], None],
    block: int,
    cut: int = 0,
) -> int:
    """Stream `COPY (...) TO STDOUT` into `sink(rows_bytes, row_count)` in blocks of whole rows.

    Drives libpq through psycopg's public `pgconn`: one `PQgetCopyData` call per row, appended to
    a block that goes to `sink` once it holds `block` bytes (or, with `cut`, once the rows so far
    reach a multiple of `cut`: no block spans such a boundary). psycopg's `Copy` iterator runs two
    generators per row, which costs the client as much CPU as the server spends producing the
    rows; this loop costs well under half of that. Waiting for data happens in `poll`, without the
    GIL. A server error is raised as the psycopg exception of its SQLSTATE (`QueryCanceled`,
    `AdminShutdown`, ...); a broken connection as `OperationalError`. Returns the number of rows.
    """
    import selectors

    from psycopg import pq

    pg = conn.pgconn
    with selectors.DefaultSelector() as sel:
        sel.register(pg.socket, selectors.EVENT_READ)

        def wait() -> None:
            sel.select()
            pg.consume_input()  # raises OperationalError when the connection is gone

        pg.send_query(query)  # raises OperationalError on failure
        while pg.flush():  # nonblocking mode: the (short) query may need more than one write
            sel.modify(pg.socket, selectors.EVENT_WRITE)
            sel.select()
            sel.modify(pg.socket, selectors.EVENT_READ)
        first = _next_result(pg, wait)
        if first is None or first.status != pq.ExecStatus.COPY_OUT:
            _drain(pg, wait)
            raise _result_error(pg, first)
        total = rows = size = 0
        limit = cut or -1  # rows at which the current block must end
        buf = bytearray()
        get = pg.get_copy_data
        while True:
            n, data = get(1)
            if n > 0:
                buf += data
                rows += 1
                size += n
                if size >= block or rows == limit:
                    sink(buf, rows)
                    total += rows
                    if cut:
                        limit = cut - total % cut
                    buf = bytearray()
                    rows = size = 0
            elif n == 0:
                wait()
            else:  # -1: the COPY is over; -2: the connection failed (its result says why)
                break
        last = _next_result(pg, wait)
        _drain(pg, wait)
        if last is None or last.status != pq.ExecStatus.COMMAND_OK:
            raise _result_error(pg, last)
        if buf:
            sink(buf, rows)
            total += rows
        return total


def _next_result(pg: Any, wait: Callable[[], None]) -> Any:
    while pg.is_busy():
        wait()
    return pg.get_result()


def _drain(pg: Any, wait: Callable[[], None]) -> None:
    """Read the remaining results, so that the connection is ready for the next statement."""
    from psycopg import pq

    while pg.status == pq.ConnStatus.OK and _next_result(pg, wait) is not None:
        pass


def _pq_message(raw: bytes | None) -> str:
    return (raw or b"").decode("utf-8", "replace").strip() or "the connection failed"


def _result_error(pg: Any, res: Any) -> Exception:
    """The psycopg exception for a failed result (by SQLSTATE), or for a lost connection."""
    import psycopg
    from psycopg import pq

    if res is None:
        return psycopg.OperationalError(_pq_message(pg.error_message))
    state = res.error_field(pq.DiagnosticField.SQLSTATE)
    message = res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or res.error_message
    cls: type[psycopg.Error] = psycopg.OperationalError
    if state:
        try:
            cls = psycopg.errors.lookup(state.decode("ascii"))
        except KeyError:
            cls = psycopg.DatabaseError
    return cls(_pq_message(message or pg.error_message))


def source_label(url: str) -> str:
    """`host:port/dbname` of a source URL or keyword string: no user, no password."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        info = conninfo_to_dict(url)
    except Exception:
        return "the source database"
    host = str(info.get("host") or "local")
    port = str(info.get("port") or "5432")
    db = str(info.get("dbname") or info.get("user") or "postgres")
    return f"{host}:{port}/{db}"


def connect(
    url: str,
    creds: Credentials,
    scrub: Scrubber,
    *,
    application_name: str,
    statement_timeout_s: float | None,
    read_only: bool = True,
    timezone: str = "UTC",
) -> Any:
    """An autocommit psycopg connection; a failure is a classified, scrubbed SourceError."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    opts = [f"-c TimeZone={timezone}", "-c DateStyle=ISO"]
    if statement_timeout_s is not None:
        opts.append(f"-c statement_timeout={int(statement_timeout_s * 1000)}")
    if read_only:
        opts.append("-c default_transaction_read_only=on")
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "application_name": application_name,
        "connect_timeout": 10,
        "options": " ".join(opts),
        "client_encoding": "UTF8",  # staged files are UTF-8 whatever the database's encoding
    }
    if creds.password is not None:
        kwargs["password"] = creds.password
    if creds.user is not None:
        try:
            has_user = bool(conninfo_to_dict(url).get("user"))
        except Exception:
            has_user = False
        if not has_user:
            kwargs["user"] = creds.user
    label = source_label(url)
    try:
        return psycopg.connect(url, **kwargs)
    except psycopg.Error as exc:
        raise classify(exc, f"cannot connect to the source {label}", scrub) from None


@dataclass(frozen=True)
class InitReport:
    source: str
    start: date
    days: int
    orders_per_day: int
    seed: int
    inserted: dict[str, int]
    rows: dict[str, int]
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "start": self.start.isoformat(),
            "days": self.days,
            "orders_per_day": self.orders_per_day,
            "seed": self.seed,
            "inserted": self.inserted,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
        }


def init_source(
    url: str,
    creds: Credentials,
    scrub: Scrubber,
    *,
    orders_per_day: int,
    days: int,
    start: date | None = None,
    seed: int = 0,
) -> InitReport:
    """Create the operational schema (idempotent) and fill it with generated clean data."""
    import time
    from zoneinfo import ZoneInfo

    from shukei.generate.sales import generate_sales

    if start is None:
        from datetime import datetime

        start = datetime.now(ZoneInfo("Asia/Tokyo")).date() - timedelta(days=days)
    t0 = time.perf_counter()
    label = source_label(url)
    # The generator writes Tokyo-local timestamps without an offset: read them in that zone.
    conn = connect(
        url,
        creds,
        scrub,
        application_name="shukei-source-init",
        statement_timeout_s=None,
        read_only=False,
        timezone="Asia/Tokyo",
    )
    import psycopg

    inserted: dict[str, int] = {}
    rows: dict[str, int] = {}
    try:
        with conn.transaction(), tempfile.TemporaryDirectory(prefix="shukei-src-") as tmp:
            for stmt in DDL:
                conn.execute(stmt)
            generate_sales(
                Path(tmp),
                start=start,
                days=days,
                orders_per_day=orders_per_day,
                seed=seed,
                late_rate=0.0,
                correction_rate=0.0,
                dirty_rate=0.0,
                fmt="csv",
            )
            for table in TABLES:
                inserted[table] = _load_table(
                    conn, table, sorted(Path(tmp).rglob(f"{table}_*.csv"))
                )
        for table in TABLES:
            conn.execute(f"ANALYZE {table}")
            rows[table] = int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    except psycopg.Error as exc:
        raise classify(exc, f"cannot initialise the source {label}", scrub) from None
    finally:
        conn.close()
    rep = InitReport(
        label, start, days, orders_per_day, seed, inserted, rows, time.perf_counter() - t0
    )
    log.info(
        "source %s ready: %s",
        label,
        ", ".join(f"{t} {rows[t]:,} (+{inserted[t]:,})" for t in TABLES),
    )
    return rep


def _load_table(conn: Any, table: str, files: list[Path]) -> int:
    cols = [c for c, _ in SELECTS[table]]
    tmp = f"_shukei_load_{table}"
    conn.execute(f"CREATE TEMP TABLE {tmp} ({', '.join(c + ' text' for c in cols)}) ON COMMIT DROP")
    with conn.cursor() as cur:
        for f in files:
            with (
                cur.copy(
                    f"COPY {tmp} ({', '.join(cols)}) FROM STDIN (FORMAT csv, HEADER true)"
                ) as cp,
                open(f, "rb") as fh,
            ):
                while chunk := fh.read(1 << 20):
                    cp.write(chunk)
        picks = ", ".join(c + _CASTS.get(c, "") for c in cols)
        cur.execute(
            f"INSERT INTO {table} ({', '.join(cols)}) SELECT {picks} FROM {tmp} "
            f"ON CONFLICT ({_KEYS[table]}) DO NOTHING"
        )
        return int(cur.rowcount)
