"""Extraction from an operational PostgreSQL database (issue 5), against real databases.

Each test creates its own source database (filled by `source init`'s initializer with a few
generated orders) and its own warehouse (a PostgreSQL database, or a DuckDB file where the test
runs on both engines), all dropped afterwards. Expected values come from independent queries on
the source database or from arithmetic written in the test, never from the extractor itself.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pyarrow.parquet as pq
import pytest

import pg
from conftest import Warehouse, query
from shukei.extract import TABLES
from shukei.extract.extract import ExtractFailed, extract, load_pending, prune, sync
from shukei.extract.metrics import RunMetrics
from shukei.extract.secrets import Credentials, Scrubber
from shukei.extract.settings import ExtractSettings
from shukei.extract.source_db import SELECTS, init_source
from shukei.generate.sales import generate_sales
from shukei.project import Project

START = date(2025, 12, 1)  # the generated business days: 2025-12-01 .. 2025-12-03 (Tokyo)
DAYS = 3
ORDERS_PER_DAY = 6
TOKYO = ZoneInfo("Asia/Tokyo")
COUNTED = "status NOT IN ('cancelled', 'refunded')"
# Every shukei command line of these tests: the main CLI with the extract commands registered
# (idempotent, so it keeps working once the main CLI registers them itself).
CLI = (
    "from shukei.cli import cli, main\n"
    "from shukei.extract.cli import register\n"
    "register(cli)\n"
    "main()\n"
)


# -- fixtures and helpers -------------------------------------------------------------------------
def _need_server() -> str:
    admin = pg.admin_url()
    if admin is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no PostgreSQL server or binaries are available")
        pytest.skip("no PostgreSQL server is running and no PostgreSQL binaries were found")
    return admin


def src(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """An independent statement on the source database (autocommit)."""
    with psycopg.connect(url, autocommit=True) as con:
        cur = con.execute(sql, list(params) or None)
        return [tuple(r) for r in cur.fetchall()] if cur.description else []


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith("SHUKEI_") or k.startswith("PG"):
            monkeypatch.delenv(k)


@pytest.fixture
def source_url() -> Iterator[str]:
    """A fresh source database filled by the initializer (6 orders a day for 3 days)."""
    _need_server()
    url = pg.create_database()
    try:
        init_source(
            url, Credentials(), Scrubber(), orders_per_day=ORDERS_PER_DAY, days=DAYS, start=START
        )
        yield url
    finally:
        pg.drop_database(url)


@pytest.fixture
def pg_project(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Project]:
    """A Project on a fresh PostgreSQL warehouse database."""
    _need_server()
    url = pg.create_database()
    monkeypatch.chdir(tmp_path)
    try:
        yield Project(warehouse=url, lock_timeout=5)
    finally:
        pg.drop_database(url)


def settings(source: str, tmp_path: Path, **kw: Any) -> ExtractSettings:
    base: dict[str, Any] = {
        "source": source,
        "staging_area": str(tmp_path / "stage"),
        "retry_wait_s": 0.01,
        "extract_retries": 3,
    }
    base.update(kw)
    return ExtractSettings(**base)


def wh(project: Project) -> Warehouse:
    """What conftest's `query` reads for this project."""
    url = str(project.settings.warehouse)
    return Path(url.split(":///", 1)[1]) if url.startswith("duckdb:") else url


def source_counts(url: str) -> dict[str, int]:
    return {t: src(url, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}


def parquet_rows(paths: Sequence[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for p in paths:
        rows += pq.read_table(p).to_pylist()
    return rows


def source_daily_sales(url: str) -> list[tuple[date, int, Decimal]]:
    """daily_sales computed straight from the source tables (the rules: Tokyo business date,
    counted orders only, revenue = sum(quantity * unit_price) over the lines)."""
    return [
        (d, int(n), Decimal(r))
        for d, n, r in src(
            url,
            "SELECT (o.created_at AT TIME ZONE 'Asia/Tokyo')::date, count(DISTINCT o.order_id), "
            "sum(i.quantity * i.unit_price) FROM orders o JOIN order_items i USING (order_id) "
            f"WHERE o.{COUNTED} GROUP BY 1 ORDER BY 1",
        )
    ]


def mart_daily_sales(project: Project) -> list[tuple[date, int, Decimal]]:
    return [
        (d, int(n), Decimal(r))
        for d, n, r in query(
            wh(project),
            "SELECT sales_date, order_count, revenue FROM marts.daily_sales ORDER BY sales_date",
        )
    ]


def kill_the_extract_session(url: str) -> int:
    """Terminate the extractor's session on the source and wait until it is gone; its pid."""
    (pid,) = src(url, "SELECT pid FROM pg_stat_activity WHERE application_name = 'shukei-extract'")[
        0
    ]
    assert src(url, "SELECT pg_terminate_backend(%s)", [pid]) == [(True,)]
    deadline = time.monotonic() + 10
    while src(url, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid]):
        assert time.monotonic() < deadline, "the backend outlived its termination"
        time.sleep(0.02)
    return int(pid)


def extract_and_load(project: Project, es: ExtractSettings, **kw: Any) -> Any:
    rep = extract(project, es, **kw)
    m = rep.metrics
    assert m is not None
    load_pending(project, "sales", m)
    return rep


def run_shukei(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("SHUKEI_") and k[:2] != "PG"}
    full.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", CLI, *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def captured_logs() -> Iterator[list[str]]:
    handler = _Records()
    logger = logging.getLogger("shukei.extract")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """The Lambda handler configures shukei's loggers, as it should; undo that afterwards."""
    root = logging.getLogger("shukei")
    saved = (list(root.handlers), root.propagate, root.level)
    try:
        yield
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved[0]:
            root.addHandler(h)
        root.propagate, root.level = saved[1], saved[2]


@pytest.fixture
def readonly_role(source_url: str) -> Iterator[str]:
    """A login role with nothing but SELECT on the four tables; yields its source URL."""
    role = "shukei_ro_" + uuid.uuid4().hex[:8]
    src(source_url, f"CREATE ROLE {role} LOGIN")
    src(source_url, f"GRANT SELECT ON customers, products, orders, order_items TO {role}")
    parts = source_url.split("://", 1)[1].split("@", 1)[1]
    try:
        yield f"postgresql://{role}@{parts}"
    finally:
        src(source_url, f"REVOKE ALL ON customers, products, orders, order_items FROM {role}")
        src(pg.admin_url() or "", f"DROP ROLE IF EXISTS {role}")


# -- the initializer -------------------------------------------------------------------------------
def test_source_init_is_idempotent_and_maintains_updated_at(
    source_url: str, tmp_path: Path
) -> None:
    before = source_counts(source_url)
    # 6 orders a day for 3 days; customers = max(50, 6 * 3 // 8) = 50; products = max(20, 6 // 5)
    assert before["orders"] == 18
    assert before["customers"] == 50
    assert before["products"] == 20
    # Exactly the rows of the clean generated data set, line for line.
    gen = generate_sales(
        tmp_path / "gen",
        start=START,
        days=DAYS,
        orders_per_day=ORDERS_PER_DAY,
        seed=0,
        late_rate=0,
        correction_rate=0,
        dirty_rate=0,
    )
    assert before == gen.rows
    again = init_source(
        source_url, Credentials(), Scrubber(), orders_per_day=ORDERS_PER_DAY, days=DAYS, start=START
    )
    assert again.inserted == dict.fromkeys(TABLES, 0)
    assert source_counts(source_url) == before
    # The trigger stamps an update that does not set updated_at, and keeps an explicit one.
    src(source_url, "UPDATE orders SET status = 'paid' WHERE order_id = 'O20251201-000001'")
    src(
        source_url,
        "UPDATE orders SET status = 'shipped', updated_at = '2025-12-05T00:00:00Z' "
        "WHERE order_id = 'O20251201-000002'",
    )
    (stamped, explicit) = (
        r[0]
        for r in src(
            source_url,
            "SELECT updated_at > now() - interval '1 minute' FROM orders "
            "WHERE order_id IN ('O20251201-000001', 'O20251201-000002') ORDER BY order_id",
        )
    )
    assert stamped is True
    assert explicit is False


# -- first full extract --------------------------------------------------------------------------
def test_first_full_extract_with_a_read_only_role(
    project: Project, source_url: str, readonly_role: str, tmp_path: Path
) -> None:
    # The role can read but not write: extraction needs nothing more.
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        src(readonly_role, "UPDATE orders SET status = 'paid'")
    es = settings(readonly_role, tmp_path)
    rep = extract(project, es)
    counts = source_counts(source_url)
    assert {t: r.rows for t, r in rep.tables.items()} == counts
    today = datetime.now(TOKYO).date().isoformat()
    for table in TABLES:
        files = rep.tables[table].files
        assert len(files) == 1
        path = Path(files[0].location)
        assert path.parent == tmp_path / "stage" / "etl-data" / today
        assert path.name == f"{table}-{rep.run_id}-0001.parquet"
        assert pq.read_metadata(path).num_rows == counts[table]
    assert not list((tmp_path / "stage").rglob(".*"))  # no temporary file left behind
    # The staged text is the source's: every order with its instants in UTC.
    staged = {r["order_id"]: r for r in parquet_rows([rep.tables["orders"].files[0].location])}
    truth = src(source_url, "SELECT order_id, status, created_at, updated_at FROM orders")
    assert set(staged) == {r[0] for r in truth}
    for oid, status, created, updated in truth:
        assert staged[oid]["status"] == status
        assert datetime.fromisoformat(staged[oid]["created_at"]) == created
        assert datetime.fromisoformat(staged[oid]["updated_at"]) == updated
    # The watermarks are the latest updated_at per table, stored in the warehouse.
    marks = dict(query(wh(project), "SELECT table_name, watermark FROM shukei.extract_watermarks"))
    for table in TABLES:
        latest = src(source_url, f"SELECT max(updated_at) FROM {table}")[0][0]
        assert marks[table] == latest, table
    tracked = query(
        wh(project),
        "SELECT table_name, rows_out, ingested_at FROM shukei.extract_files ORDER BY table_name",
    )
    assert sorted((t, n) for t, n, _ in tracked) == sorted(counts.items())
    assert all(i is None for _, _, i in tracked)  # staged, not ingested yet


# -- incremental, late commits and the overlap window ---------------------------------------------
def test_incremental_after_updates_and_a_late_commit(
    pg_project: Project, source_url: str, tmp_path: Path
) -> None:
    project = pg_project
    first = extract(project, settings(source_url, tmp_path))
    wm1 = first.watermarks_after["orders"]
    # Orders an incremental extract re-reads anyway: those inside the overlap window.
    overlap = {
        r[0]
        for r in src(
            source_url,
            "SELECT order_id FROM orders WHERE updated_at >= %s",
            [wm1 - timedelta(minutes=10)],
        )
    }
    # A long transaction L updates order 3 first (updated_at = L's start T0) ...
    late = psycopg.connect(source_url)
    late.execute("UPDATE orders SET status = 'paid' WHERE order_id = 'O20251202-000003'")
    time.sleep(0.05)
    # ... another commits an update of order 4 (T1 > T0), and one of order 1 ...
    src(source_url, "UPDATE orders SET status = 'shipped' WHERE order_id = 'O20251201-000001'")
    src(source_url, "UPDATE orders SET status = 'shipped' WHERE order_id = 'O20251202-000004'")
    second = extract(project, settings(source_url, tmp_path))
    got = {r["order_id"] for r in parquet_rows([f.location for f in second.tables["orders"].files])}
    assert got == overlap | {"O20251201-000001", "O20251202-000004"}
    wm2 = second.watermarks_after["orders"]
    t1 = src(source_url, "SELECT updated_at FROM orders WHERE order_id = 'O20251202-000004'")[0][0]
    assert wm2 == t1
    # ... and L commits only now, with an updated_at before the watermark.
    late.commit()
    late.close()
    t0 = src(source_url, "SELECT updated_at FROM orders WHERE order_id = 'O20251202-000003'")[0][0]
    assert t0 < wm2
    # An explicit backfill stamped 2 minutes before the watermark is a late row too.
    src(
        source_url,
        "UPDATE orders SET status = 'delivered', updated_at = %s WHERE order_id = "
        "'O20251203-000005'",
        [wm2 - timedelta(minutes=2)],
    )
    # Without an overlap both would be missed ...
    blind = extract(project, settings(source_url, tmp_path, overlap_minutes=0))
    blind_ids = {
        r["order_id"] for r in parquet_rows([f.location for f in blind.tables["orders"].files])
    }
    assert "O20251202-000003" not in blind_ids
    assert "O20251203-000005" not in blind_ids
    assert blind.watermarks_after["orders"] == wm2  # nothing newer was seen
    # ... the default 10-minute overlap picks them up.
    third = extract(project, settings(source_url, tmp_path))
    rows = {
        r["order_id"]: r for r in parquet_rows([f.location for f in third.tables["orders"].files])
    }
    assert rows["O20251202-000003"]["status"] == "paid"
    assert rows["O20251203-000005"]["status"] == "delivered"
    assert third.watermarks_after["orders"] == wm2
    # Untouched tables re-read only their overlap window.
    for table in ("customers", "products"):
        wm = first.watermarks_after[table]
        n = src(
            source_url,
            f"SELECT count(*) FROM {table} WHERE updated_at >= %s",
            [wm - timedelta(minutes=10)],
        )[0][0]
        assert third.tables[table].rows == n


# -- a correction that moves an order's date reaches the marts ------------------------------------
def test_a_moved_order_rebuilds_its_old_and_new_date(
    project: Project, source_url: str, tmp_path: Path
) -> None:
    es = settings(source_url, tmp_path)
    extract_and_load(project, es)
    project.run("sales")
    assert mart_daily_sales(project) == source_daily_sales(source_url)
    before = {d: (n, r) for d, n, r in mart_daily_sales(project)}
    oid = src(
        source_url,
        "SELECT order_id FROM orders WHERE (created_at AT TIME ZONE 'Asia/Tokyo')::date = "
        f"'2025-12-02' AND {COUNTED} ORDER BY order_id LIMIT 1",
    )[0][0]
    revenue = src(
        source_url, "SELECT sum(quantity * unit_price) FROM order_items WHERE order_id = %s", [oid]
    )[0][0]
    src(
        source_url,
        "UPDATE orders SET created_at = created_at + interval '1 day' WHERE order_id = %s",
        [oid],
    )
    extract_and_load(project, es)
    rep = project.run("sales")
    assert {date(2025, 12, 2), date(2025, 12, 3)} <= set(rep.built)
    after = {d: (n, r) for d, n, r in mart_daily_sales(project)}
    # 12-02 loses the order and its revenue, 12-03 gains them; 12-01 is unchanged.
    assert after[date(2025, 12, 2)] == (
        before[date(2025, 12, 2)][0] - 1,
        before[date(2025, 12, 2)][1] - revenue,
    )
    assert after[date(2025, 12, 3)] == (
        before[date(2025, 12, 3)][0] + 1,
        before[date(2025, 12, 3)][1] + revenue,
    )
    assert after[date(2025, 12, 1)] == before[date(2025, 12, 1)]
    assert mart_daily_sales(project) == source_daily_sales(source_url)
    # Lineage: raw rows name the staged file (a path, the entity in its name), never a URL.
    files = query(wh(project), "SELECT DISTINCT _source_file FROM raw.orders")
    assert files and all(
        Path(f).name.startswith("orders-") and "://" not in f and "@" not in f for (f,) in files
    )


# -- re-extracting a window gives identical marts --------------------------------------------------
def test_reextracting_a_window_gives_identical_marts(
    pg_project: Project, source_url: str, tmp_path: Path
) -> None:
    project = pg_project
    es = settings(source_url, tmp_path)
    extract_and_load(project, es)
    project.run("sales")
    marts_sql = {
        "daily_sales": "SELECT * FROM marts.daily_sales ORDER BY 1",
        "by_region": "SELECT * FROM marts.daily_sales_by_region ORDER BY 1, 2",
        "order_facts": "SELECT * FROM marts.order_facts ORDER BY order_id",
        "customers": "SELECT * FROM marts.customer_metrics ORDER BY customer_id",
    }
    snapshot = {k: query(wh(project), q) for k, q in marts_sql.items()}
    marks = query(wh(project), "SELECT * FROM shukei.extract_watermarks ORDER BY table_name")
    rep = extract_and_load(project, es, since=date(2025, 12, 1), until=date(2025, 12, 2))
    # The window is [12-01 00:00, 12-03 00:00) Tokyo time, on updated_at.
    lo = datetime(2025, 12, 1, tzinfo=TOKYO)
    hi = datetime(2025, 12, 3, tzinfo=TOKYO)
    for table in TABLES:
        n = src(
            source_url,
            f"SELECT count(*) FROM {table} WHERE updated_at >= %s AND updated_at < %s",
            [lo, hi],
        )[0][0]
        assert rep.tables[table].rows == n, table
    assert rep.tables["orders"].rows > 0
    assert rep.mode == "window"
    assert (
        query(wh(project), "SELECT * FROM shukei.extract_watermarks ORDER BY table_name") == marks
    )
    project.run("sales", full_refresh=True)
    assert {k: query(wh(project), q) for k, q in marts_sql.items()} == snapshot


# -- a connection killed mid-extract, then the retry -----------------------------------------------
def test_a_killed_connection_is_retried_and_the_files_are_complete(
    pg_project: Project, source_url: str, tmp_path: Path
) -> None:
    es = settings(source_url, tmp_path, extract_retries=3)
    locker = psycopg.connect(source_url)
    locker.execute("LOCK TABLE order_items IN ACCESS EXCLUSIVE MODE")  # held until rollback
    out: dict[str, Any] = {}

    def work() -> None:
        try:
            out["report"] = extract(pg_project, es)
        except BaseException as exc:  # reported to the test thread
            out["error"] = exc

    with captured_logs() as lines:
        worker = threading.Thread(target=work)
        worker.start()
        pid = None
        deadline = time.monotonic() + 20
        while pid is None and time.monotonic() < deadline:
            rows = src(
                source_url,
                "SELECT pid FROM pg_stat_activity WHERE application_name = 'shukei-extract' "
                "AND wait_event_type = 'Lock'",
            )
            pid = rows[0][0] if rows else None
            time.sleep(0.05)
        assert pid is not None, "the extract never reached order_items"
        # customers, products and orders are staged; order_items is being read: kill it.
        assert src(source_url, "SELECT pg_terminate_backend(%s)", [pid]) == [(True,)]
        locker.rollback()
        locker.close()
        worker.join(30)
    assert "error" not in out, out.get("error")
    rep = out["report"]
    assert rep.tables["order_items"].attempts == 2
    assert rep.tables["customers"].attempts == 1
    assert rep.metrics.db_connection_errors == 1
    assert any("extract of order_items" in s and "(attempt 1 of 3)" in s for s in lines), lines
    counts = source_counts(source_url)
    for table in TABLES:
        staged = sum(pq.read_metadata(f.location).num_rows for f in rep.tables[table].files)
        assert staged == counts[table] == rep.tables[table].rows, table
    assert not list((tmp_path / "stage").rglob(".*"))  # no partial file anywhere
    assert len(list((tmp_path / "stage").rglob("*.parquet"))) == 4


# -- loading each file as it is staged (sync) ----------------------------------------------------
@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_files_are_loaded_as_they_are_staged_into_one_batch(
    project: Project, source_url: str, tmp_path: Path, fmt: str
) -> None:
    import hashlib

    rep = extract(
        project, settings(source_url, tmp_path, file_rows=7, staging_format=fmt), load=True
    )
    counts = source_counts(source_url)
    assert rep.ingested.batch_id == 1
    assert rep.ingested.rows == sum(counts.values())
    for table in TABLES:
        files = rep.tables[table].files
        assert len(files) == -(-counts[table] // 7)  # files of 7 rows, the last one fewer
        # Every staged file's rows are in raw under its location, numbered 1..n.
        lineage = query(
            wh(project),
            f"SELECT _source_file, count(*), min(_row_no), max(_row_no), "
            f"count(DISTINCT _row_no) FROM raw.{table} WHERE _batch_id = 1 GROUP BY 1",
        )
        assert {r[0]: tuple(r[1:]) for r in lineage} == {
            f.location: (f.rows, 1, f.rows, f.rows) for f in files
        }
    # The batch's files, by content, and the staged files marked as ingested by that batch.
    ingested = query(
        wh(project), "SELECT path, sha256, rows_in FROM shukei.files WHERE batch_id = 1"
    )
    assert sorted(ingested) == sorted(
        (f.location, hashlib.sha256(Path(f.location).read_bytes()).hexdigest(), f.rows)
        for f in rep.files
    )
    marked = query(wh(project), "SELECT DISTINCT batch_id FROM shukei.extract_files")
    assert marked == [(1,)]
    assert load_pending(project, "sales", rep.metrics)["batch_id"] is None  # nothing left
    project.run("sales")
    assert mart_daily_sales(project) == source_daily_sales(source_url)


def test_a_file_loaded_before_its_table_is_retried_is_taken_back(
    project: Project, source_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shukei.ingest.stream import StreamedBatch, StreamedFile

    real_add = StreamedBatch.add
    killed: list[int] = []
    changed: list[tuple[str, str]] = []

    def add(self: StreamedBatch, f: StreamedFile) -> None:
        real_add(self, f)
        if f.entity == "order_items" and not killed:
            # The first order_items file is staged and on its way into raw; the source
            # connection dies before the table is complete (its max(updated_at) is still due).
            killed.append(kill_the_extract_session(source_url))
            # A row of that file changes before the retry reads the table again, so the
            # retried file differs from the one already loaded.
            first = pq.read_table(f.path).to_pylist()[0]
            src(
                source_url,
                "UPDATE order_items SET quantity = quantity + 1 WHERE order_id = %s "
                "AND line_no = %s",
                [first["order_id"], int(first["line_no"])],
            )
            changed.append((first["order_id"], first["line_no"]))

    monkeypatch.setattr(StreamedBatch, "add", add)
    rep = extract(project, settings(source_url, tmp_path, file_rows=7), load=True)
    assert killed and rep.tables["order_items"].attempts == 2
    counts = source_counts(source_url)
    for table in TABLES:
        n, distinct = query(
            wh(project),
            f"SELECT count(*), count(DISTINCT (_source_file, _row_no)) FROM raw.{table}",
        )[0]
        assert n == distinct == counts[table], table  # the first attempt's rows are gone
    sources = {
        r[0] for r in query(wh(project), "SELECT DISTINCT _source_file FROM raw.order_items")
    }
    assert sources == {f.location for f in rep.tables["order_items"].files}
    assert all(Path(loc).is_file() for loc in sources)
    assert len(list((tmp_path / "stage").rglob("order_items-*.parquet"))) == len(sources)
    # raw holds each line once, as the retry read it.
    lines = query(wh(project), "SELECT order_id, line_no, quantity FROM raw.order_items")
    assert sorted(lines) == sorted(
        (o, str(n), str(q))
        for o, n, q in src(source_url, "SELECT order_id, line_no, quantity FROM order_items")
    )
    assert changed


def test_parquet_files_of_whole_row_groups_are_loaded_under_their_own_names(
    project: Project, source_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shukei.extract.extract as ex

    # Row groups of 4 rows, files of at most 10 rows hold 8: every row must be loaded once,
    # under the name and number it has in its Parquet file.
    monkeypatch.setattr(ex, "ROW_GROUP_ROWS", 4)
    rep = extract(project, settings(source_url, tmp_path, file_rows=10), load=True)
    counts = source_counts(source_url)
    for table in TABLES:
        expected = {}
        for f in rep.tables[table].files:
            values = pq.read_table(f.location).to_pylist()
            first = next(iter(values[0]))
            expected[f.location] = sorted((i + 1, v[first]) for i, v in enumerate(values))
        assert all(len(v) == 8 for v in list(expected.values())[:-1]), table
        key = SELECTS[table][0][0]
        got: dict[str, list[tuple[int, str]]] = {}
        for path, row_no, value in query(
            wh(project), f"SELECT _source_file, _row_no, {key} FROM raw.{table}"
        ):
            got.setdefault(path, []).append((row_no, value))
        assert {k: sorted(v) for k, v in got.items()} == expected, table
        assert sum(len(v) for v in got.values()) == counts[table]


def test_a_table_retried_in_the_middle_of_a_file_takes_its_rows_back(
    project: Project, source_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shukei.ingest.stream import StreamedBatch, StreamedFile

    # Enough lines that the server is still sending when its connection is killed.
    src(
        source_url,
        "INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price) "
        "SELECT o.order_id, 100 + g, NULL, 1, 1.00 FROM orders o, generate_series(1, 12000) g",
    )
    real_feed = StreamedBatch.feed
    fed: list[str] = []

    def feed(self: StreamedBatch, f: StreamedFile, rows: bytes | bytearray) -> None:
        if f.entity == "order_items" and f.path not in fed:
            fed.append(f.path)
            if len(fed) == 2:  # the first file is staged, the second one half way in
                kill_the_extract_session(source_url)
        real_feed(self, f, rows)

    add_calls: list[str] = []
    real_add = StreamedBatch.add

    def add(self: StreamedBatch, f: StreamedFile) -> None:
        if f.entity == "order_items" and not self.streams and len(add_calls) == 1:
            # DuckDB is fed nothing: the kill comes once the first file is staged.
            kill_the_extract_session(source_url)
        if f.entity == "order_items":
            add_calls.append(f.path)
        real_add(self, f)

    monkeypatch.setattr(StreamedBatch, "feed", feed)
    monkeypatch.setattr(StreamedBatch, "add", add)
    rep = extract(project, settings(source_url, tmp_path, file_rows=20_000), load=True)
    assert rep.tables["order_items"].attempts == 2
    counts = source_counts(source_url)
    n, distinct = query(
        wh(project),
        "SELECT count(*), count(DISTINCT (_source_file, _row_no)) FROM raw.order_items",
    )[0]
    assert n == distinct == counts["order_items"]
    per_file = dict(
        query(wh(project), "SELECT _source_file, count(*) FROM raw.order_items GROUP BY 1")
    )
    assert per_file == {f.location: f.rows for f in rep.tables["order_items"].files}


def test_a_failed_extract_loads_nothing_of_what_it_staged(
    project: Project, source_url: str, readonly_role: str, tmp_path: Path
) -> None:
    project.init_db(["sales"])
    role = readonly_role.split("://", 1)[1].split("@", 1)[0]
    src(source_url, f"REVOKE SELECT ON order_items FROM {role}")
    with pytest.raises(ExtractFailed, match="cannot extract order_items"):
        extract(project, settings(readonly_role, tmp_path), load=True)
    # customers, products and orders were staged and loaded, inside the transaction that
    # rolled back: no raw row, batch, staged file or watermark is left.
    for table in TABLES:
        assert query(wh(project), f"SELECT count(*) FROM raw.{table}") == [(0,)], table
    for state in ("batches", "files", "extract_files", "extract_watermarks"):
        assert query(wh(project), f"SELECT count(*) FROM shukei.{state}") == [(0,)], state
    assert query(wh(project), "SELECT status FROM shukei.extract_runs") == [("failed",)]
    assert not [p for p in (tmp_path / "stage").rglob("*") if p.is_file()]


def test_every_source_query_is_bounded_by_the_statement_timeout(
    pg_project: Project, source_url: str, tmp_path: Path
) -> None:
    locker = psycopg.connect(source_url)
    locker.execute("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")  # the COPY of orders waits
    try:
        t0 = time.monotonic()
        with pytest.raises(ExtractFailed, match="canceling statement due to statement timeout"):
            extract(pg_project, settings(source_url, tmp_path, statement_timeout_s=0.3))
        assert time.monotonic() - t0 < 10
    finally:
        locker.rollback()
        locker.close()
    # A timeout is not retried (the same query would time out again), and nothing counts.
    runs = query(wh(pg_project), "SELECT status, error FROM shukei.extract_runs")
    assert len(runs) == 1 and runs[0][0] == "failed"
    assert "after 1 attempt(s)" in runs[0][1]
    assert query(wh(pg_project), "SELECT count(*) FROM shukei.extract_watermarks") == [(0,)]
    assert query(wh(pg_project), "SELECT count(*) FROM shukei.extract_files") == [(0,)]
    assert not list((tmp_path / "stage").rglob("*.parquet"))  # customers' file was removed


# -- a source that is down ------------------------------------------------------------------------
def test_a_source_that_is_down_fails_cleanly_after_bounded_retries(tmp_path: Path) -> None:
    warehouse = tmp_path / "wh.duckdb"
    prom = tmp_path / "metrics" / "extract.prom"
    t0 = time.monotonic()
    res = run_shukei(
        "--warehouse",
        f"duckdb:///{warehouse}",
        "extract",
        "sales",
        "--source",
        "postgresql://shop:Down-Pa55word@127.0.0.1:1/shop",
        "--metrics-file",
        str(prom),
        cwd=tmp_path,
        env={"SHUKEI_EXTRACT_RETRIES": "3", "SHUKEI_RETRY_WAIT_S": "0.05"},
    )
    seconds = time.monotonic() - t0
    assert res.returncode == 1, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.stderr
    assert "after 3 attempt(s)" in errors[0] and "127.0.0.1:1/shop" in errors[0]
    assert res.stderr.rstrip().splitlines()[-1] == errors[0]
    for attempt in (1, 2):
        assert f"(attempt {attempt} of 3)" in res.stderr
    assert "(attempt 3 of 3)" not in res.stderr  # the last failure is the error, not a retry
    assert "Down-Pa55word" not in res.stdout + res.stderr + prom.read_text()
    assert seconds < 60
    assert query(warehouse, "SELECT count(*) FROM shukei.extract_watermarks") == [(0,)]
    assert query(warehouse, "SELECT status FROM shukei.extract_runs") == [("failed",)]
    stored = dict(
        query(
            warehouse,
            "SELECT metric, value FROM shukei.extract_metrics WHERE table_name = ''",
        )
    )
    assert stored["DBConnectionError"] == 3
    assert not (tmp_path / "etl-data").exists() or not list((tmp_path / "etl-data").rglob("*"))


# -- the password never shows ---------------------------------------------------------------------
def test_the_password_never_appears_anywhere(tmp_path: Path) -> None:
    _need_server()
    secret = "S3cr3t-Pa55w0rd"
    source = pg.create_database()
    warehouse = pg.create_database()
    try:
        user_host = source.split("://", 1)[1]
        user, rest = user_host.split("@", 1)
        with_pw = f"postgresql://{user}:{secret}@{rest}"  # trust auth: accepted, never checked
        down = f"postgresql://{user}:{secret}@127.0.0.1:1/nowhere"
        missing = (
            f"postgresql://{user}:{secret}@{rest.split('/')[0]}/no_such_db_{uuid.uuid4().hex[:6]}"
        )
        log_file = tmp_path / "shukei.log"
        prom = tmp_path / "m.prom"
        common = ["--warehouse", warehouse, "--log-format", "json", "--log-file", str(log_file)]
        env = {"SHUKEI_EXTRACT_RETRIES": "2", "SHUKEI_RETRY_WAIT_S": "0.01"}
        runs = [
            run_shukei(*common, "source", "init", with_pw, "--orders-per-day", "3", "--days", "2",
                       "--start", "2025-12-01", "--json", cwd=tmp_path, env=env),
            run_shukei(*common, "-v", "extract", "sales", "--source", with_pw, "--json",
                       "--metrics-file", str(prom), cwd=tmp_path, env=env),
            run_shukei(*common, "sync", "sales", "--source", with_pw, "--json",
                       "--metrics-file", str(prom), cwd=tmp_path, env=env),
            run_shukei(*common, "-v", "extract", "sales", "--source", down, cwd=tmp_path, env=env),
            run_shukei(*common, "-v", "sync", "sales", "--source", missing, cwd=tmp_path, env=env),
        ]  # fmt: skip
        assert [r.returncode for r in runs] == [0, 0, 0, 1, 1], [r.stderr for r in runs]
        assert json.loads(runs[1].stdout)["status"] == "success"
        assert json.loads(runs[2].stdout)["status"] == "success"
        texts = [r.stdout + r.stderr for r in runs] + [log_file.read_text(), prom.read_text()]
        # The warehouse: every text the extractor stored, and the lineage of raw rows.
        for table in ("extract_runs", "extract_files", "extract_watermarks", "extract_metrics"):
            texts.append(repr(query(warehouse, f"SELECT * FROM shukei.{table}")))
        texts.append(repr(query(warehouse, "SELECT path FROM shukei.files")))
        for entity in TABLES:
            texts.append(repr(query(warehouse, f"SELECT DISTINCT _source_file FROM raw.{entity}")))
        for f in (tmp_path / "etl-data").rglob("*.parquet"):
            texts.append(repr(pq.read_schema(f).metadata))
        for i, text in enumerate(texts):
            assert secret not in text, f"text {i} shows the password: {text[:2000]}"
        assert "***" in runs[3].stderr or "127.0.0.1:1/nowhere" in runs[3].stderr
    finally:
        pg.drop_database(source)
        pg.drop_database(warehouse)


def test_a_password_file_supplies_the_password(
    pg_project: Project, source_url: str, tmp_path: Path
) -> None:
    pw = tmp_path / "pw"
    pw.write_text("from-a-file\n")
    es = settings(source_url, tmp_path, source_password_file=pw)
    rep = extract(pg_project, es)
    assert rep.status == "success"
    assert "from-a-file" not in json.dumps(rep.as_dict())
    bad = settings(source_url, tmp_path, source_password_file=tmp_path / "missing")
    with pytest.raises(ExtractFailed, match="cannot read source_password_file"):
        extract(pg_project, bad)
    stored = query(
        wh(pg_project),
        "SELECT value FROM shukei.extract_metrics WHERE metric = 'SecretRetrievalError' "
        "AND run_id = (SELECT run_id FROM shukei.extract_runs WHERE status = 'failed')",
    )
    assert stored == [(1.0,)]


# -- retention ------------------------------------------------------------------------------------
def test_retention_never_deletes_a_file_not_yet_ingested(
    pg_project: Project, source_url: str, tmp_path: Path
) -> None:
    project = pg_project
    es = settings(source_url, tmp_path, retention_days=0)  # everything is past the retention
    first = extract(project, es)
    a = [f.location for f in first.files]
    assert prune(project, es, "sales") == []  # not ingested: kept however old
    assert all(Path(p).is_file() for p in a)
    m = first.metrics
    assert m is not None
    load_pending(project, "sales", m)  # now ingested
    src(source_url, "UPDATE orders SET status = 'paid' WHERE order_id = 'O20251201-000002'")
    second = extract(project, es)
    b = [f.location for f in second.files]
    assert sorted(prune(project, es, "sales")) == sorted(a)
    assert not any(Path(p).exists() for p in a)
    assert all(Path(p).is_file() for p in b)
    # A file ingested by hand (`shukei ingest sales etl-data/`) counts as ingested too.
    project.ingest("sales", b)
    assert sorted(prune(project, es, "sales")) == sorted(b)
    # With the default 30 days, nothing ingested today is old enough.
    third = extract(project, settings(source_url, tmp_path))
    m3 = third.metrics
    assert m3 is not None
    load_pending(project, "sales", m3)
    assert prune(project, settings(source_url, tmp_path), "sales") == []
    assert all(Path(f.location).is_file() for f in third.files)


# -- metrics --------------------------------------------------------------------------------------
def test_metrics_file_parses_with_prometheus_parser(
    pg_project: Project, source_url: str, tmp_path: Path
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    prom = tmp_path / "textfile" / "shukei.prom"
    res = run_shukei(
        "--warehouse",
        str(pg_project.settings.warehouse),
        "sync",
        "sales",
        "--source",
        source_url,
        "--staging",
        str(tmp_path / "stage"),
        "--metrics-file",
        str(prom),
        "--json",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    samples: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(prom.read_text()):
        for s in family.samples:
            assert s.labels["pipeline"] == "sales"
            samples[(s.name, s.labels.get("table", ""))] = s.value
    counts = source_counts(source_url)
    for table in TABLES:
        assert samples[("shukei_extract_records_extracted", table)] == counts[table]
        assert samples[("shukei_extract_records_loaded", table)] == counts[table]
    for name in (
        "shukei_extract_extraction_time_seconds",
        "shukei_extract_staging_write_time_seconds",
        "shukei_extract_data_load_time_seconds",
    ):
        assert samples[(name, "")] > 0, name
    # From a local staging area, sync loads each file as it is staged: nothing is read back.
    assert samples[("shukei_extract_staging_read_time_seconds", "")] == 0
    assert samples[("shukei_extract_db_connection_errors", "")] == 0
    assert samples[("shukei_extract_secret_retrieval_errors", "")] == 0
    assert samples[("shukei_extract_success", "")] == 1
    assert [p.name for p in prom.parent.iterdir()] == ["shukei.prom"]  # temp file renamed
    # The same run's metrics are stored in the warehouse ...
    stored = {
        (metric, table): value
        for metric, table, value in query(
            wh(pg_project),
            "SELECT metric, table_name, value FROM shukei.extract_metrics WHERE run_id = ?",
            [doc["run_id"]],
        )
    }
    for table in TABLES:
        assert stored[("RecordsExtracted", table)] == counts[table]
        assert stored[("RecordsLoaded", table)] == counts[table]
    assert stored[("DataLoadTime", "")] == pytest.approx(
        samples[("shukei_extract_data_load_time_seconds", "")]
    )
    # ... and logged as one JSON line.
    lines = [ln for ln in res.stderr.splitlines() if '"event": "extract_metrics"' in ln]
    assert len(lines) == 1
    logged = json.loads(lines[0].split("shukei.extract: ", 1)[1])
    assert logged["RecordsExtracted"] == counts
    assert doc["metrics"]["RecordsLoaded"] == counts


# -- the Lambda-style entry point -----------------------------------------------------------------
def test_lambda_handler_runs_the_sync_locally(
    pg_project: Project,
    source_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    restore_logging: None,
) -> None:
    from shukei.integrations.aws_lambda import handler

    monkeypatch.setenv("SHUKEI_WAREHOUSE", str(pg_project.settings.warehouse))
    monkeypatch.setenv("SHUKEI_SOURCE", source_url)

    class Context:
        aws_request_id = "req-1"

    result = handler({"staging": str(tmp_path / "lambda-stage")}, Context())
    assert json.loads(json.dumps(result)) == result  # JSON-able as is
    assert result["status"] == "success"
    assert result["request_id"] == "req-1"
    # Previous day by default: everything generated (2025-12) is before yesterday.
    assert result["extract"]["rows"] == sum(source_counts(source_url).values())
    assert list((tmp_path / "lambda-stage" / "etl-data").rglob("orders-*.parquet"))
    assert mart_daily_sales(pg_project) == source_daily_sales(source_url)
    with pytest.raises(Exception, match="is not a date"):
        handler({"since": "yesterday"}, None)


# -- S3 staging and the secret provider on a local S3-compatible server ---------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_s3_staging_and_secrets_manager_on_a_local_moto_server(
    pg_project: Project, source_url: str, tmp_path: Path
) -> None:
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        aws = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "FSSPEC_S3_ENDPOINT_URL": endpoint,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint,
        }
        s3 = boto3.client("s3", endpoint_url=endpoint, **_creds(aws))
        s3.create_bucket(Bucket="shukei-staging")
        sm = boto3.client("secretsmanager", endpoint_url=endpoint, **_creds(aws))
        arn = sm.create_secret(
            Name="shop-db", SecretString=json.dumps({"username": "postgres", "password": "x-9Q"})
        )["ARN"]
        staging = "s3://shukei-staging/shop/prod"
        res = run_shukei(
            "--warehouse",
            str(pg_project.settings.warehouse),
            "sync",
            "sales",
            "--source",
            source_url,
            "--staging",
            staging,
            "--json",
            cwd=tmp_path,
            env={**aws, "SHUKEI_SECRET_ARN": arn},
        )
        assert res.returncode == 0, res.stderr
        assert "x-9Q" not in res.stdout + res.stderr
        doc = json.loads(res.stdout)
        keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="shukei-staging")["Contents"])
        today = datetime.now(TOKYO).date().isoformat()
        folders = {k.rsplit("/", 1)[0] for k in keys}
        assert folders == {f"shop/prod/etl-data/{today}"}
        assert sorted(k.rsplit("/", 1)[1].split("-", 1)[0] for k in keys) == sorted(TABLES)
        assert doc["ingest"]["rows"] == sum(source_counts(source_url).values())
        assert mart_daily_sales(pg_project) == source_daily_sales(source_url)
        locations = query(wh(pg_project), "SELECT location FROM shukei.extract_files")
        assert all(loc.startswith(staging + "/etl-data/") for (loc,) in locations)
        # A secret that cannot be retrieved: one clear error, exit 1, counted.
        bad = run_shukei(
            "--warehouse",
            str(pg_project.settings.warehouse),
            "extract",
            "sales",
            "--source",
            source_url,
            "--staging",
            staging,
            cwd=tmp_path,
            env={**aws, "SHUKEI_SECRET_ARN": arn + "-gone"},
        )
        assert bad.returncode == 1
        assert "Error: cannot retrieve the source password" in bad.stderr
        failed = query(
            wh(pg_project),
            "SELECT value FROM shukei.extract_metrics m JOIN shukei.extract_runs r "
            "USING (run_id) WHERE r.status = 'failed' AND m.metric = 'SecretRetrievalError'",
        )
        assert failed == [(1.0,)]
    finally:
        server.stop()


def _creds(env: dict[str, str]) -> dict[str, str]:
    return {
        "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"],
        "region_name": env["AWS_DEFAULT_REGION"],
    }


def test_sync_defaults_to_the_previous_day(
    pg_project: Project, source_url: str, tmp_path: Path
) -> None:
    # A change made now is after the end of the previous day: sync leaves it for tomorrow.
    src(source_url, "UPDATE orders SET status = 'paid' WHERE order_id = 'O20251201-000003'")
    doc = sync(pg_project, settings(source_url, tmp_path), run_metrics=RunMetrics("r1", "sales"))
    assert doc["status"] == "success"
    staged = parquet_rows(doc["extract"]["tables"]["orders"]["files"])
    assert "O20251201-000003" not in {r["order_id"] for r in staged}
    today = datetime.now(TOKYO).replace(hour=0, minute=0, second=0, microsecond=0)
    assert doc["extract"]["tables"]["orders"]["to"] == today.astimezone(UTC).isoformat()


def test_sync_ingests_files_staged_earlier_first_as_their_own_batch(
    project: Project, source_url: str, tmp_path: Path
) -> None:
    es = settings(source_url, tmp_path)
    first = extract(project, es)  # staged, not ingested
    src(source_url, "UPDATE orders SET status = 'cancelled' WHERE order_id = 'O20251201-000002'")
    # A window from the first business day through tomorrow: the update just made is in it.
    until = datetime.now(TOKYO).date() + timedelta(days=1)
    doc = sync(project, es, since=START, until=until)
    assert doc["status"] == "success"
    earlier = doc["ingest"]["earlier"]
    assert earlier["batch_id"] == 1
    assert earlier["files"] == len(first.files) == 4
    assert earlier["rows"] == sum(source_counts(source_url).values())
    assert doc["ingest"]["batch_id"] == 2
    lower = datetime.combine(START, datetime.min.time(), TOKYO)
    in_window = {
        t: src(source_url, f"SELECT count(*) FROM {t} WHERE updated_at >= %s", [lower])[0][0]
        for t in TABLES
    }
    assert doc["ingest"]["entities"] == in_window
    batches = query(wh(project), "SELECT _batch_id, count(*) FROM raw.orders GROUP BY 1 ORDER BY 1")
    assert batches == [(1, source_counts(source_url)["orders"]), (2, in_window["orders"])]
    # The later batch wins: the cancelled order no longer counts.
    status = query(
        wh(project), "SELECT status FROM staging.orders WHERE order_id = 'O20251201-000002'"
    )
    assert status == [("cancelled",)]
    assert mart_daily_sales(project) == source_daily_sales(source_url)


# -- the staged files: row groups, sizes, formats, exact text -------------------------------------
def test_parquet_files_hold_whole_row_groups_of_a_fixed_size(
    project: Project, source_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shukei.extract.extract as ex

    # DuckDB appends row groups of its own size (122,880 rows) as they are: staged row groups
    # have exactly that size and a file holds whole groups. Scaled down: groups of 4 rows,
    # files of at most 10 rows hold 8.
    monkeypatch.setattr(ex, "ROW_GROUP_ROWS", 4)
    es = settings(source_url, tmp_path, file_rows=10)
    rep = extract(project, es)
    counts = source_counts(source_url)
    for table in TABLES:
        files = rep.tables[table].files
        sizes = [pq.read_metadata(f.location).num_rows for f in files]
        assert sum(sizes) == counts[table] == rep.tables[table].rows, table
        assert [f.rows for f in files] == sizes
        assert all(n == 8 for n in sizes[:-1]) and 0 < sizes[-1] <= 8, (table, sizes)
        groups = [
            meta.row_group(i).num_rows
            for f in files
            for meta in [pq.read_metadata(f.location)]
            for i in range(meta.num_row_groups)
        ]
        assert all(n == 4 for n in groups[:-1]) and 0 < groups[-1] <= 4, (table, groups)
        assert [Path(f.location).name for f in files] == [
            f"{table}-{rep.run_id}-{i:04d}.parquet" for i in range(1, len(files) + 1)
        ]
    staged = parquet_rows([f.location for f in rep.tables["customers"].files])
    keys = {r["customer_id"] for r in staged}
    assert keys == {r[0] for r in src(source_url, "SELECT customer_id FROM customers")}
    m = rep.metrics
    assert m is not None
    load_pending(project, "sales", m)
    assert m.staging_read_time > 0  # each staged file is read back and verified first
    project.run("sales")
    assert mart_daily_sales(project) == source_daily_sales(source_url)


def test_csv_staging_writes_the_copy_output_in_files_of_file_rows(
    project: Project, source_url: str, tmp_path: Path
) -> None:
    import csv
    import hashlib

    es = settings(source_url, tmp_path, staging_format="csv", file_rows=7)
    rep = extract(project, es)
    counts = source_counts(source_url)
    tracked = {
        loc: (n, digest)
        for loc, n, digest in query(
            wh(project), "SELECT location, rows_out, sha256 FROM shukei.extract_files"
        )
    }
    for table in TABLES:
        files = rep.tables[table].files
        names = [Path(f.location).name for f in files]
        assert names == [f"{table}-{rep.run_id}-{i:04d}.csv" for i in range(1, len(files) + 1)]
        sizes = []
        for f in files:
            with open(f.location, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
            assert rows[0] == [c for c, _ in SELECTS[table]]  # the header: the contract's names
            sizes.append(len(rows) - 1)
            digest = hashlib.sha256(Path(f.location).read_bytes()).hexdigest()
            assert tracked[f.location] == (len(rows) - 1, digest)
        assert sum(sizes) == counts[table] == rep.tables[table].rows, table
        assert all(n == 7 for n in sizes[:-1]) and 0 < sizes[-1] <= 7, (table, sizes)
    assert not list((tmp_path / "stage").rglob(".*"))  # no temporary file left behind
    marks = dict(query(wh(project), "SELECT table_name, watermark FROM shukei.extract_watermarks"))
    for table in TABLES:
        assert marks[table] == src(source_url, f"SELECT max(updated_at) FROM {table}")[0][0]
    m = rep.metrics
    assert m is not None
    load = load_pending(project, "sales", m)
    assert load["entities"] == counts
    project.run("sales")
    assert mart_daily_sales(project) == source_daily_sales(source_url)
    # A window without a row stages no file at all.
    empty = extract(project, es, since=date(2000, 1, 1), until=date(2000, 1, 2))
    assert all(r.rows == 0 and r.files == [] for r in empty.tables.values())


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
@pytest.mark.parametrize("as_staged", [False, True], ids=["staged-then-ingested", "as-staged"])
def test_awkward_text_reaches_raw_exactly(
    pg_project: Project, source_url: str, tmp_path: Path, fmt: str, as_staged: bool
) -> None:
    # Quotes, a delimiter, line breaks, an empty string next to a NULL, non-ASCII text.
    odd = {
        "C000001": ('Ann "the" Ann, Jr.\nsecond line\r\nthird', "", None),
        "C000002": ("東京 ｶﾀｶﾅ ①", None, ""),
        "C000003": ('"', ",", "\n"),
    }
    for cid, (name, email, region) in odd.items():
        src(
            source_url,
            "UPDATE customers SET name = %s, email = %s, region = %s WHERE customer_id = %s",
            [name, email, region, cid],
        )
    es = settings(source_url, tmp_path, staging_format=fmt)
    # As staged, PostgreSQL takes the COPY text itself as a stream, not the staged file.
    rep = extract(pg_project, es, load=True) if as_staged else extract_and_load(pg_project, es)
    assert rep.tables["customers"].rows == source_counts(source_url)["customers"]
    raw = {
        cid: (name, email, region)
        for cid, name, email, region in query(
            wh(pg_project), "SELECT customer_id, name, email, region FROM raw.customers"
        )
    }
    truth = src(source_url, "SELECT customer_id, name, email, region FROM customers")
    assert raw == {cid: (name, email, region) for cid, name, email, region in truth}
    for cid, values in odd.items():
        assert raw[cid] == values
    if fmt == "parquet":
        staged = {
            r["customer_id"]: (r["name"], r["email"], r["region"])
            for r in parquet_rows([f.location for f in rep.tables["customers"].files])
        }
        assert staged == raw


def test_copy_out_streams_whole_rows_in_bounded_blocks(source_url: str) -> None:
    from shukei.extract.source_db import copy_out

    query_ = "COPY (SELECT * FROM order_items ORDER BY order_id, line_no) TO STDOUT (FORMAT csv)"
    with psycopg.connect(source_url, autocommit=True) as con:
        with con.cursor() as cur, cur.copy(query_) as cp:
            truth = [bytes(row) for row in cp]
        blocks: list[tuple[bytes, int]] = []
        n = copy_out(con, query_.encode(), lambda b, r: blocks.append((bytes(b), r)), 200, cut=5)
        assert n == len(truth) == sum(r for _, r in blocks)
        assert b"".join(b for b, _ in blocks) == b"".join(truth)
        start = 0
        for data, rows in blocks:
            assert data == b"".join(truth[start : start + rows])  # whole rows only
            assert start // 5 == (start + rows - 1) // 5  # no block spans a multiple of 5 rows
            assert len(data) - len(truth[start + rows - 1]) < 200  # cut once over 200 bytes
            start += rows
        # A failing COPY raises the driver's error for its SQLSTATE; the connection stays usable.
        with pytest.raises(psycopg.errors.UndefinedTable):
            copy_out(con, b"COPY (SELECT * FROM no_such_table) TO STDOUT", lambda b, r: None, 1)
        assert con.execute("SELECT 1").fetchone() == (1,)
        # An empty result: no block at all.
        empty = b"COPY (SELECT * FROM orders WHERE false) TO STDOUT (FORMAT csv)"
        assert copy_out(con, empty, lambda b, r: blocks.append((bytes(b), r)), 1) == 0
        assert con.execute("SELECT 2").fetchone() == (2,)


def test_staging_format_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    from shukei.errors import ConfigError
    from shukei.extract.settings import load_extract_settings

    monkeypatch.setenv("SHUKEI_STAGING_FORMAT", "csv")
    assert load_extract_settings().staging_format == "csv"
    monkeypatch.setenv("SHUKEI_STAGING_FORMAT", "xml")
    with pytest.raises(ConfigError, match=r"staging_format \(environment SHUKEI_STAGING_FORMAT\)"):
        load_extract_settings()
    assert load_extract_settings(staging_format="parquet").staging_format == "parquet"
