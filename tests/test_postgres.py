"""The PostgreSQL warehouse on a real server: dirty text through COPY, dropped connections,
the advisory writer lock, passwords kept secret, results equal to DuckDB, and `init-db`.

Tests that only make sense on PostgreSQL get their own databases from `tests/pg.py`; the text
round-trip tests run on both engines through the parametrised `project` fixture.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

import pg
from conftest import Warehouse, query, run_cli, write_entity
from shukei.engines import connect
from shukei.errors import InputError
from shukei.generate.sales import generate_late_batch, generate_sales
from shukei.pipeline.definition import BUILTIN_DIR
from shukei.project import Project

BUILTIN_SALES = BUILTIN_DIR / "sales"
MARTS = (
    "order_facts",
    "daily_sales",
    "daily_sales_by_region",
    "daily_product_sales",
    "monthly_sales",
    "customer_metrics",
)
VIEWS = ("top_customers", "category_performance", "regional_sales_trend", "weekly_sales_summary")
ENTITIES = ("customers", "products", "orders", "order_items")
TS = "2025-12-01T10:00:00+09:00"
CUSTOMER_HEADER = ["customer_id", "name", "email", "region", "updated_at"]


# -- fixtures and helpers -------------------------------------------------------------------------
def _need_server() -> str:
    admin = pg.admin_url()
    if admin is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no PostgreSQL server or binaries are available")
        pytest.skip("no PostgreSQL server is running and no PostgreSQL binaries were found")
    return admin


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No shukei.toml or SHUKEI_* variables leak into an in-process Project."""
    for k in list(os.environ):
        if k.startswith("SHUKEI_"):
            monkeypatch.delenv(k)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def new_db() -> Iterator[Callable[[], str]]:
    """A factory of fresh PostgreSQL databases, every one dropped at the end of the test."""
    _need_server()
    made: list[str] = []

    def make() -> str:
        url = pg.create_database()
        made.append(url)
        return url

    try:
        yield make
    finally:
        for url in made:
            pg.drop_database(url)


@pytest.fixture
def pg_url(new_db: Callable[[], str]) -> str:
    return new_db()


def db_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHUKEI_")}
    env.update(extra)
    return env


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Every process started through the yielded list is killed and reaped at the end."""
    procs: list[subprocess.Popen[str]] = []
    try:
        yield procs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            with contextlib.suppress(Exception):
                p.communicate(timeout=30)


def start_cli(
    procs: list[subprocess.Popen[str]], *args: str, cwd: Path, **env: str
) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-m", "shukei", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(**env),
        cwd=cwd,
    )
    procs.append(p)
    return p


def error_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("Error:")]


def norm(v: Any) -> Any:
    """One spelling per value across engines: numbers as normalised Decimals, dates as ISO."""
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int | float | Decimal):
        d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
        return int(d) if d == d.to_integral_value() else d.normalize()
    if isinstance(v, datetime | date):
        return v.isoformat()
    return v


def rows_of(wh: Warehouse, table: str) -> list[tuple[Any, ...]]:
    """Every row of `table`, values normalised, sorted."""
    rows = [tuple(norm(v) for v in r) for r in query(wh, f"SELECT * FROM {table}")]
    return sorted(rows, key=repr)


def columns_of(wh: Warehouse, schema: str, table: str) -> list[str]:
    catalog = "" if isinstance(wh, str) else " AND table_catalog = 'warehouse'"
    return [
        r[0]
        for r in query(
            wh,
            "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
            f"AND table_name = ?{catalog} ORDER BY ordinal_position",
            (schema, table),
        )
    ]


def marts_snapshot(wh: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    return {t: rows_of(wh, f"marts.{t}") for t in (*MARTS, *VIEWS)}


def small_sales(folder: Path) -> Path:
    """Two counted orders (Asia/Tokyo):
    2025-12-01: O1 = 2 x 100.50 + 1 x 50.00 = 251.00 (3 items)
    2025-12-02: O2 = 3 x 10.00 = 30.00 (3 items)
    """
    write_entity(
        folder,
        "orders",
        [
            ("O1", "C1", "paid", "東京", "2025-12-01T10:00:00+09:00", "2025-12-01T10:00:00+09:00"),
            ("O2", "C2", "paid", "大阪", "2025-12-02T10:00:00+09:00", "2025-12-02T10:00:00+09:00"),
        ],
    )
    write_entity(
        folder,
        "order_items",
        [
            ("O1", "1", "P1", "2", "100.50", TS),
            ("O1", "2", "P2", "1", "50.00", TS),
            ("O2", "1", "P1", "3", "10.00", TS),
        ],
    )
    return folder


SMALL_DAILY = [("2025-12-01", 1, 3, 251, 1, 251), ("2025-12-02", 1, 3, 30, 1, 30)]


def slow_pipeline(tmp_path: Path) -> Path:
    """The built-in sales pipeline plus a blocking date check that sleeps 1.5 s on the server.

    (`... WHERE false` would not do: PostgreSQL folds a constant-false filter and never calls
    pg_sleep, so the sleep sits in the filter itself.)
    """
    folder = tmp_path / "slow_sales"
    shutil.copytree(BUILTIN_SALES, folder)
    with open(folder / "pipeline.toml", "a", encoding="utf-8") as fh:
        fh.write(
            "\n[[checks]]\n"
            'name = "slow_probe"\n'
            'kind = "sql"\n'
            'table = "marts.daily_sales"\n'
            "sql = \"SELECT 1 WHERE CAST(pg_sleep(1.5) AS VARCHAR) = 'x'\"\n"
        )
    return folder


def reference_marts(url: str, data: Path) -> dict[str, list[tuple[Any, ...]]]:
    """One untouched full build of the same files in another database."""
    p = Project(warehouse=url, lock_timeout=5)
    p.ingest("sales", [data])
    assert p.run("sales").status == "success"
    return marts_snapshot(url)


# -- 1. dirty text survives COPY exactly (both engines) --------------------------------------------
DIRTY = [
    'He said "hi"',
    "a,b,c",
    "line1\nline2",
    "line1\r\nline2",
    "\r\nlead",
    "tab\there",
    "back\\slash",
    "\\N",
    "\\0",
    "\\x00",
    "\\\\",
    "\\.",
    "x\n\\.\ny",
    '\\"',
    "NULL",
    '"',
    '""',
    "'",
    "x'); DROP TABLE orders; --",
    "ＡＢＣ１２３",
    "ﾃｽﾄ",
    "東京都",
    "㍻①ﬁ",
    "Cafe\u0301",
    "\u3000全角\u3000",
    "  padded\t",
    "😀",
    "👨\u200d👩\u200d👧\u200d👦",
    "🏳\ufe0f\u200d🌈",
    "𠮷野家",
    "ctl\x01\x02\x7f",
    "\t",
]
# Staging by hand: NFKC, then spaces/tabs/CR/LF trimmed at both ends; empty -> NULL.
BY_HAND = {
    "ＡＢＣ１２３": "ABC123",  # full-width Latin and digits -> ASCII
    "ﾃｽﾄ": "テスト",  # half-width katakana -> full-width
    "㍻①ﬁ": "平成1fi",  # era square, circled digit, ligature
    "Cafe\u0301": "Caf\u00e9",  # e + combining acute -> é
    "\u3000全角\u3000": "全角",  # ideographic space -> space, then trimmed
    "  padded\t": "padded",
    "\r\nlead": "lead",
    "\t": None,
    "line1\r\nline2": "line1\r\nline2",  # inside the value: kept
    "\\N": "\\N",
    'He said "hi"': 'He said "hi"',
    "👨\u200d👩\u200d👧\u200d👦": "👨\u200d👩\u200d👧\u200d👦",
    "𠮷野家": "𠮷野家",
}


def write_dirty_customers(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "customers.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(CUSTOMER_HEADER)
        for i, v in enumerate(DIRTY):
            w.writerow([f"C{i:02d}", v, "a@example.jp", v, TS])
    jsonl_path = folder / "customers.jsonl"
    with open(jsonl_path, "w", encoding="utf-8") as fh:
        for i, v in enumerate(DIRTY):
            doc = {
                "customer_id": f"J{i:02d}",
                "name": v,
                "email": "a@example.jp",
                "region": v,
                "updated_at": TS,
            }
            # Both spellings: \uXXXX escapes (surrogate pairs for emoji) and raw UTF-8.
            fh.write(json.dumps(doc, ensure_ascii=i % 2 == 0) + "\n")
    return csv_path, jsonl_path


def test_dirty_text_round_trips_exactly_through_raw_and_staging(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    csv_path, jsonl_path = write_dirty_customers(tmp_path / "in")
    rep = project.ingest("sales", [tmp_path / "in"])
    assert rep.rows == 2 * len(DIRTY)
    assert project.run("sales").status == "success"

    raw = query(
        warehouse_path,
        "SELECT _source_file, _row_no, customer_id, name, region FROM raw.customers",
    )
    got = {(Path(f).name, n): (c, name, region) for f, n, c, name, region in raw}
    want = {}
    for i, v in enumerate(DIRTY):
        want[("customers.csv", i + 1)] = (f"C{i:02d}", v, v)
        want[("customers.jsonl", i + 1)] = (f"J{i:02d}", v, v)
    assert got == want

    staged = {
        c: (name, region)
        for c, name, region in query(
            warehouse_path, "SELECT customer_id, name, region FROM staging.customers"
        )
    }
    assert len(staged) == 2 * len(DIRTY)
    for i, v in enumerate(DIRTY):
        # Independently of shukei: Python's NFKC and strip of the same four characters.
        expected = unicodedata.normalize("NFKC", v).strip(" \t\r\n") or None
        assert staged[f"C{i:02d}"] == (expected, expected), v
        assert staged[f"J{i:02d}"] == (expected, expected), v
        if v in BY_HAND:
            assert staged[f"C{i:02d}"] == (BY_HAND[v], BY_HAND[v]), v
    assert query(warehouse_path, "SELECT count(*) FROM staging.customers_quarantine") == [(0,)]


def _nul_file(folder: Path, fmt: str) -> Path:
    """customers.<fmt> whose row 2 holds a real NUL byte in `name` (rows 1 and 3 are clean)."""
    folder.mkdir(parents=True, exist_ok=True)
    values = ["ok", "nul\x00inside", "after"]
    path = folder / f"customers.{fmt}"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        if fmt == "csv":
            w = csv.writer(fh)
            w.writerow(CUSTOMER_HEADER)
            for i, v in enumerate(values):
                w.writerow([f"C{i}", v, "a@example.jp", "r", TS])
        else:
            for i, v in enumerate(values):
                line = json.dumps({"customer_id": f"C{i}", "name": v, "updated_at": TS})
                fh.write(line.replace("\\u0000", "\x00") + "\n")
    assert path.read_bytes().count(b"\x00") == 1
    return path


def _nothing_loaded(wh: Warehouse) -> None:
    for sql in (
        "SELECT count(*) FROM raw.customers",
        "SELECT count(*) FROM raw.orders",
        "SELECT count(*) FROM shukei.batches",
        "SELECT count(*) FROM shukei.files",
    ):
        assert query(wh, sql) == [(0,)], sql


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_real_nul_byte(
    project: Project,
    engine_name: str,
    warehouse_url: str,
    warehouse_path: Warehouse,
    tmp_path: Path,
    fmt: str,
) -> None:
    folder = tmp_path / "in"
    path = _nul_file(folder, fmt).resolve()
    small_sales(folder)  # a clean file in the same batch: all or nothing
    if engine_name == "postgresql" or fmt == "jsonl":
        # PostgreSQL text cannot hold NUL; a raw control byte inside a JSON string is not JSON.
        with pytest.raises(InputError) as exc:
            project.ingest("sales", [folder])
        msg = str(exc.value)
        assert str(path) in msg and "\n" not in msg, msg
        _nothing_loaded(warehouse_path)
        res = run_cli("--warehouse", warehouse_url, "ingest", "sales", str(folder), cwd=tmp_path)
        assert res.returncode == 1, res.stderr
        assert "Traceback" not in res.stderr
        assert [ln for ln in res.stderr.splitlines() if ln.strip()] == error_lines(res.stderr)
        assert len(error_lines(res.stderr)) == 1 and str(path) in res.stderr, res.stderr
        _nothing_loaded(warehouse_path)
        return
    # DuckDB and CSV: the value loads and round-trips, NUL included; its neighbours are intact.
    project.ingest("sales", [folder])
    assert project.run("sales").status == "success"
    raw = query(warehouse_path, "SELECT _row_no, customer_id, name FROM raw.customers ORDER BY 1")
    assert raw == [(1, "C0", "ok"), (2, "C1", "nul\x00inside"), (3, "C2", "after")]
    staged = query(warehouse_path, "SELECT customer_id, name FROM staging.customers ORDER BY 1")
    assert staged == [("C0", "ok"), ("C1", "nul\x00inside"), ("C2", "after")]


def test_json_escaped_nul_is_a_clear_input_error_or_round_trips(
    project: Project, engine_name: str, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    """`"\\u0000"` in a JSON line is a NUL character in the value."""
    folder = tmp_path / "in"
    folder.mkdir()
    path = (folder / "customers.jsonl").resolve()
    with open(path, "w", encoding="utf-8") as fh:
        for i, v in enumerate(["ok", "nul\x00inside", "after"]):
            fh.write(json.dumps({"customer_id": f"C{i}", "name": v, "updated_at": TS}) + "\n")
    assert b"\\u0000" in path.read_bytes()
    if engine_name == "postgresql":
        with pytest.raises(InputError) as exc:
            project.ingest("sales", [folder])
        msg = str(exc.value)
        assert str(path) in msg and "\n" not in msg, msg
        _nothing_loaded(warehouse_path)
        return
    project.ingest("sales", [folder])
    raw = query(warehouse_path, "SELECT _row_no, name FROM raw.customers ORDER BY 1")
    assert raw == [(1, "ok"), (2, "nul\x00inside"), (3, "after")]


def _lineage_files(folder: Path) -> dict[str, list[tuple[str, str]]]:
    """Customer files of every layout: (customer_id, name) per row, in file order, per file name.

    CSVs of 0..24 rows (columns in contract order or reversed, one with a column outside the
    contract, one gzipped, names holding quoted newlines, commas and quotes), a Parquet file and
    a JSON-lines file: one batch, numbered per file.
    """
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    want: dict[str, list[tuple[str, str]]] = {}
    for i in range(25):
        rows = [
            (f"F{i:02d}-{r:03d}", f'line one\nline "two", {r}' if r % 4 == 1 else f"n{r}")
            for r in range(i)
        ]
        header = list(CUSTOMER_HEADER) + (["note"] if i == 5 else [])
        if i % 3 == 1:
            header.reverse()
        name = f"customers_{i:02d}.csv" + (".gz" if i == 7 else "")
        want[name] = rows
        with (
            gzip.open(folder / name, "wt", newline="", encoding="utf-8")
            if name.endswith(".gz")
            else open(folder / name, "w", newline="", encoding="utf-8")
        ) as fh:
            w = csv.writer(fh)
            w.writerow(header)
            for cid, nm in rows:
                rec = {"customer_id": cid, "name": nm, "email": "a@example.jp", "region": "r"}
                w.writerow([{**rec, "updated_at": TS, "note": "x"}[h] for h in header])
    rows = [(f"P-{r:03d}", f"p\n{r}") for r in range(4)]
    want["customers_p.parquet"] = rows
    pq.write_table(
        pa.table(
            {
                "customer_id": [c for c, _ in rows],
                "name": [n for _, n in rows],
                "email": ["a@example.jp"] * 4,
                "region": ["r"] * 4,
                "updated_at": [TS] * 4,
            }
        ),
        folder / "customers_p.parquet",
    )
    rows = [(f"J-{r:03d}", f"j\n{r}") for r in range(3)]
    want["customers_j.jsonl"] = rows
    with open(folder / "customers_j.jsonl", "w", encoding="utf-8") as fh:
        for cid, nm in rows:
            fh.write(json.dumps({"customer_id": cid, "name": nm, "updated_at": TS}) + "\n")
    return want


def test_row_numbers_and_lineage_are_exact_across_many_files_of_one_batch(
    project: Project, engine_name: str, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    """`_row_no` is each row's 1-based position in its own file (a CSV record, not a physical
    line), whatever the file's layout or format and however many files share the batch."""
    want = _lineage_files(tmp_path / "in")
    rep = project.ingest("sales", [tmp_path / "in"])
    assert {Path(str(f["path"])).name: f["rows"] for f in rep.files} == {
        n: len(r) for n, r in want.items()
    }
    (ingested_at,) = query(warehouse_path, "SELECT ingested_at FROM shukei.batches")[0]
    raw = query(
        warehouse_path,
        "SELECT _batch_id, _ingested_at, _source_file, _row_no, customer_id, name "
        "FROM raw.customers",
    )
    assert {(b, t) for b, t, *_ in raw} == {(1, ingested_at)}
    got: dict[str, list[tuple[int, str, str]]] = {}
    for _, _, path, row_no, cid, name in raw:
        got.setdefault(Path(path).name, []).append((row_no, cid, name))
    assert {n: sorted(r) for n, r in got.items()} == {
        n: [(k, c, v) for k, (c, v) in enumerate(r, start=1)] for n, r in want.items() if r
    }
    # A second batch is numbered afresh.
    write_entity(
        tmp_path / "late", "customers", [("L1", "a", "", "r", TS), ("L2", "b", "", "r", TS)]
    )
    project.ingest("sales", [tmp_path / "late"])
    assert query(
        warehouse_path,
        "SELECT _batch_id, _row_no, customer_id FROM raw.customers WHERE _batch_id = 2 ORDER BY 2",
    ) == [(2, 1, "L1"), (2, 2, "L2")]
    assert project.run("sales").status == "success"
    if engine_name == "postgresql":
        # Outside a load, a row that leaves its lineage out is refused, not silently filled.
        assert isinstance(warehouse_path, str)
        with psycopg.connect(warehouse_path) as con, pytest.raises(psycopg.errors.NotNullViolation):
            con.execute("INSERT INTO raw.customers (customer_id) VALUES ('X')")


def test_impossible_utc_offsets_are_unparseable_on_both_engines(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    """ISO 8601 offsets are +-hh:mm with hh < 24 and mm < 60: +25:00 and +09:60 name no instant.

    (The sales generator writes `2025-12-03T10:00:00+25:00` as one of its bad timestamps.)
    """
    write_entity(
        tmp_path / "in",
        "orders",
        [
            ("O1", "C1", "paid", "r", "2025-12-03T10:00:00+09:00", "2025-12-03T10:00:00+09:00"),
            ("O2", "C1", "paid", "r", "2025-12-03T10:00:00+09:00", "2025-12-03T10:00:00+25:00"),
            ("O3", "C1", "paid", "r", "2025-12-03T10:00:00+09:60", "2025-12-03T10:00:00+09:00"),
        ],
    )
    project.ingest("sales", [tmp_path / "in"])
    project.run("sales")
    assert query(warehouse_path, "SELECT order_id FROM staging.orders") == [("O1",)]
    assert query(
        warehouse_path, "SELECT order_id, _reason FROM staging.orders_quarantine ORDER BY 1"
    ) == [
        ("O2", "unparseable updated_at: 2025-12-03T10:00:00+25:00"),
        ("O3", "unparseable created_at: 2025-12-03T10:00:00+09:60"),
    ]


# -- 2. a connection dropped mid-run ---------------------------------------------------------------
def _terminate(admin: Any, db: str, *, sleeping_only: bool) -> list[int]:
    """pg_terminate_backend on the run's backends (those in the sleeping check, or all)."""
    cond = " AND state = 'active' AND query ILIKE '%%pg_sleep%%'" if sleeping_only else ""
    rows = admin.execute(
        "SELECT pid, pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE application_name = 'shukei' AND datname = %s{cond}",
        [db],
    ).fetchall()
    return [int(r[0]) for r in rows]


def _assert_whole_dates(url: str, run_id: str) -> None:
    """Each date was written by exactly one committed attempt: ledger and state once per date."""
    parts = query(url, "SELECT partition_date, state, run_id FROM shukei.partitions")
    assert parts and all(s == "built" and r == run_id for _, s, r in parts), parts
    run_dates = query(
        url, "SELECT partition_date FROM shukei.run_dates WHERE run_id = ?", (run_id,)
    )
    assert sorted(run_dates) == sorted((d,) for d, _, _ in parts)
    assert (
        query(
            url,
            "SELECT mart, partition_value, count(*) FROM shukei.diffs WHERE run_id = ? "
            "GROUP BY 1, 2 HAVING count(*) > 1",
            (run_id,),
        )
        == []
    )
    assert query(url, "SELECT count(*) FROM shukei.dirty_dates") == [(0,)]
    assert query(
        url,
        "SELECT count(*) FROM shukei.check_results WHERE run_id = ? AND check_name = 'slow_probe'",
        (run_id,),
    ) == [(1,)]


def test_dropped_connection_mid_rebuild_is_retried_and_the_run_succeeds(
    new_db: Callable[[], str], tmp_path: Path, clean_env: None
) -> None:
    data = tmp_path / "data"
    generate_sales(data, start=date(2025, 12, 1), days=4, orders_per_day=30, seed=5)
    url, ref = new_db(), new_db()
    slow = slow_pipeline(tmp_path)
    res = run_cli("--warehouse", url, "ingest", "sales", str(data), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    killed: list[int] = []
    with processes() as procs, psycopg.connect(_need_server(), autocommit=True) as admin:
        run = start_cli(procs, "--warehouse", url, "run", str(slow), "--json", cwd=tmp_path)
        deadline = time.monotonic() + 30
        while not killed and run.poll() is None and time.monotonic() < deadline:
            killed += _terminate(admin, db_name(url), sleeping_only=True)
            time.sleep(0.05)
        out, err = run.communicate(timeout=60)
    assert len(killed) == 1, (killed, err)
    assert run.returncode == 0, err
    rep = json.loads(out)
    assert rep["status"] == "success" and rep["failed"] == []
    retry = [ln for ln in err.splitlines() if "WARNING" in ln and "retrying" in ln]
    assert len(retry) == 1, err
    assert re.search(r"rebuilding \S+ failed \(attempt 1 of \d+\)", retry[0]), retry
    assert "Traceback" not in err and not error_lines(err)
    _assert_whole_dates(url, rep["run_id"])
    assert marts_snapshot(url) == reference_marts(ref, data)


def test_connection_killed_again_and_again_fails_cleanly_then_next_run_finishes(
    new_db: Callable[[], str], tmp_path: Path, clean_env: None
) -> None:
    data = tmp_path / "data"
    generate_sales(data, start=date(2025, 12, 1), days=4, orders_per_day=30, seed=5)
    url, ref = new_db(), new_db()
    slow = slow_pipeline(tmp_path)
    res = run_cli("--warehouse", url, "ingest", "sales", str(data), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    killed: list[int] = []
    with processes() as procs, psycopg.connect(_need_server(), autocommit=True) as admin:
        t0 = time.monotonic()
        run = start_cli(procs, "--warehouse", url, "run", str(slow), "--json", cwd=tmp_path)
        # Once it is inside the sleeping check, kill every shukei backend that appears, ~10 s.
        first: float | None = None
        while run.poll() is None and time.monotonic() - t0 < 40:
            killed += _terminate(admin, db_name(url), sleeping_only=first is None)
            if killed and first is None:
                first = time.monotonic()
            if first is not None and time.monotonic() - first > 10:
                break
            time.sleep(0.05)
        out, err = run.communicate(timeout=60)
        elapsed = time.monotonic() - t0
    assert len(killed) >= 5, (killed, err)
    assert run.returncode == 1, (out, err)
    assert elapsed < 40, elapsed
    assert "Traceback" not in err
    errors = error_lines(err)
    assert len(errors) == 1 and err.rstrip().splitlines()[-1] == errors[0], err
    assert "connection" in errors[0], errors
    attempts = re.findall(r"rebuilding \S+ failed \(attempt (\d+) of (\d+)\)", err)
    assert attempts and attempts[-1][0] == str(int(attempts[-1][1]) - 1), err  # all tries used
    # Nothing of the rebuild was committed: no date built, every mart still empty.
    assert query(url, "SELECT count(*) FROM shukei.partitions WHERE state = 'built'") == [(0,)]
    for mart in MARTS:
        if query(
            url,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'marts' AND tablename = ?",
            (mart,),
        ) != [(0,)]:
            assert query(url, f"SELECT count(*) FROM marts.{mart}") == [(0,)], mart

    # A normal run afterwards finishes the job.
    res = run_cli("--warehouse", url, "run", "sales", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    rep = json.loads(res.stdout)
    assert rep["status"] == "success" and rep["dates"]
    assert set(rep["reasons"].values()) == {"missing"}
    statuses = query(url, "SELECT status FROM shukei.runs ORDER BY started_at")
    assert len(statuses) == 2 and statuses[0][0] in ("failed", "interrupted"), statuses
    assert statuses[1] == ("success",)
    assert marts_snapshot(url) == reference_marts(ref, data)


# -- 3. two concurrent writers ---------------------------------------------------------------------
def test_advisory_lock_makes_a_second_writer_fail_or_wait(pg_url: str, tmp_path: Path) -> None:
    data = small_sales(tmp_path / "data")
    holder = connect(pg_url, lock_timeout=0)
    try:
        holder_pid = holder.scalar("SELECT pg_backend_pid()")
        for cmd in (["ingest", "sales", str(data)], ["run", "sales", "--json"]):
            t0 = time.monotonic()
            res = run_cli(
                "--warehouse", pg_url, *cmd, env={"SHUKEI_LOCK_TIMEOUT": "1"}, cwd=tmp_path
            )
            waited = time.monotonic() - t0
            assert res.returncode == 1, (res.stdout, res.stderr)
            assert 1.0 <= waited < 15, waited
            assert "Traceback" not in res.stderr and res.stdout == ""
            errors = error_lines(res.stderr)
            assert len(errors) == 1, res.stderr
            assert "another shukei process" in errors[0]
            assert f"backend PID {holder_pid}" in errors[0], errors
        with processes() as procs:
            waiting = start_cli(
                procs,
                "--warehouse",
                pg_url,
                "ingest",
                "sales",
                str(data),
                cwd=tmp_path,
                SHUKEI_LOCK_TIMEOUT="30",
            )
            time.sleep(1.5)
            assert waiting.poll() is None, waiting.communicate()
            holder.close()
            t0 = time.monotonic()
            out, err = waiting.communicate(timeout=30)
            assert waiting.returncode == 0, err
            assert time.monotonic() - t0 < 15
            assert "batch 1" in out
    finally:
        holder.close()
    assert query(pg_url, "SELECT batch_id FROM shukei.batches") == [(1,)]


def test_concurrent_cli_writers_both_finish_without_duplicates(pg_url: str, tmp_path: Path) -> None:
    data = small_sales(tmp_path / "data")
    with processes() as procs:
        ingests = [
            start_cli(
                procs,
                "--warehouse",
                pg_url,
                "ingest",
                "sales",
                str(data),
                "--json",
                cwd=tmp_path,
                SHUKEI_LOCK_TIMEOUT="30",
            )
            for _ in range(2)
        ]
        docs = []
        for p in ingests:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            docs.append(json.loads(out))
    # One batch took both files; the other saw their content and skipped them.
    assert sorted(str(d["batch_id"]) for d in docs) == ["1", "None"]
    assert query(pg_url, "SELECT count(*) FROM raw.orders") == [(2,)]
    assert query(pg_url, "SELECT count(*) FROM raw.order_items") == [(3,)]

    with processes() as procs:
        runs = [
            start_cli(
                procs,
                "--warehouse",
                pg_url,
                "run",
                "sales",
                "--json",
                cwd=tmp_path,
                SHUKEI_LOCK_TIMEOUT="30",
            )
            for _ in range(2)
        ]
        reports = []
        for p in runs:
            out, err = p.communicate(timeout=60)
            assert p.returncode == 0, err
            reports.append(json.loads(out))
    assert all(r["status"] == "success" for r in reports)
    # The lock serialises them: one rebuilt both dates, the other found nothing to do.
    assert sorted(len(r["dates"]) for r in reports) == [0, 2]
    for mart in MARTS:
        grain = {
            "order_facts": "order_id",
            "daily_sales": "sales_date",
            "daily_sales_by_region": "sales_date, region",
            "daily_product_sales": "sales_date, product_id",
            "monthly_sales": "month",
            "customer_metrics": "customer_id",
        }[mart]
        dupes = f"SELECT {grain} FROM marts.{mart} GROUP BY {grain} HAVING count(*) > 1"
        assert query(pg_url, dupes) == [], mart
    assert rows_of(pg_url, "marts.daily_sales") == SMALL_DAILY
    # monthly: 251.00 + 30.00 = 281.00 over 2 orders, 6 items, 2 customers
    assert rows_of(pg_url, "marts.monthly_sales") == [("2025-12-01", 2, 6, 281, 2)]


# -- 4. the password never appears -----------------------------------------------------------------
SECRET = "Sup3rS3cretPW"


def with_password(
    url: str, password: str | None, *, db: str | None = None, port: int | None = None
) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    user = parts.username or "postgres"
    netloc = f"{user}{':' + password if password else ''}@{host}:{port or parts.port or 5432}"
    path = "/" + (db if db is not None else parts.path.lstrip("/"))
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


def dump_all_tables(url: str) -> str:
    """Every row of every table and view in raw, staging, marts and shukei, as text."""
    tables = query(
        url,
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema IN ('raw', 'staging', 'marts', 'shukei') ORDER BY 1, 2",
    )
    assert len(tables) > 20, tables
    out = []
    for schema, name in tables:
        out += [r[0] for r in query(url, f'SELECT t::text FROM "{schema}"."{name}" AS t')]
    return "\n".join(out)


def test_password_never_appears(pg_url: str, tmp_path: Path) -> None:
    data = small_sales(tmp_path / "data")
    secret_url = with_password(pg_url, SECRET)
    plain_url = with_password(pg_url, None)
    pw_file = tmp_path / "secret" / "pgpass.txt"
    pw_file.parent.mkdir()
    pw_file.write_text(SECRET + "\n")
    log_file = tmp_path / "logs" / "shukei.jsonl"
    seen: list[str] = []

    def cli(
        *args: str, rc: int = 0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        t0 = time.monotonic()
        res = run_cli(*args, env=env, cwd=tmp_path, timeout=60)
        seen.extend([res.stdout, res.stderr])
        assert res.returncode == rc, (args, res.stdout, res.stderr)
        assert time.monotonic() - t0 < 30, args
        if rc and "-v" not in args:  # -v adds the traceback on purpose
            assert "Traceback" not in res.stderr
            assert len(error_lines(res.stderr)) == 1, res.stderr
            assert res.stderr.rstrip().splitlines()[-1].startswith("Error:"), res.stderr
        return res

    w = ("--warehouse", secret_url)
    verbose = ("-v", "--log-format", "json", "--log-file", str(log_file))
    init = cli(*w, "init-db", "sales")
    assert "***" in init.stdout  # the URL is printed, redacted
    cli(*w, *verbose, "ingest", "sales", str(data))
    cli(*w, *verbose, "run", "sales", "--json")
    cli(*w, *verbose, "status", "sales", "--json")
    cli(*w, *verbose, "diff", "sales")
    cli(*w, *verbose, "check", "sales")
    # The password from a file (Docker/Kubernetes secret), the URL without one.
    file_env = {"SHUKEI_PASSWORD_FILE": str(pw_file)}
    write_entity(tmp_path / "late", "orders", [("O3", "C1", "paid", "東京", TS, TS)])
    write_entity(tmp_path / "late", "order_items", [("O3", "1", "P1", "1", "5.00", TS)])
    cli("--warehouse", plain_url, *verbose, "ingest", "sales", str(tmp_path / "late"), env=file_env)
    cli("--warehouse", plain_url, *verbose, "run", "sales", "--json", env=file_env)
    cli("--warehouse", plain_url, "status", "sales", "--json", env=file_env)
    # Errors: a missing database, an unreachable port, another writer holding the lock.
    missing = with_password(pg_url, SECRET, db="no_such_db_xyz")
    res = cli("--warehouse", missing, "run", "sales", rc=1)
    assert "no_such_db_xyz" in error_lines(res.stderr)[0]
    unreachable = with_password(pg_url, SECRET, port=1)
    res = cli("--warehouse", unreachable, "ingest", "sales", str(data), rc=1)
    assert "postgres:***@127.0.0.1:1/" in error_lines(res.stderr)[0], res.stderr
    missing = with_password(pg_url, None, db="no_such_db_xyz")
    cli("--warehouse", missing, *verbose, "run", "sales", rc=1, env=file_env)
    holder = connect(pg_url, lock_timeout=0)
    try:
        res = cli(*w, "run", "sales", rc=1, env={"SHUKEI_LOCK_TIMEOUT": "0.5"})
        assert "***" in error_lines(res.stderr)[0]
    finally:
        holder.close()

    for text in seen:
        assert SECRET not in text, text
    log_text = log_file.read_text(encoding="utf-8")
    assert "run succeeded" in log_text and SECRET not in log_text
    assert SECRET not in dump_all_tables(pg_url)


@pytest.mark.parametrize(
    ("label", "rc"),
    [
        pytest.param("query-missing-db", 1, id="query-missing-db"),
        pytest.param("keyword-dsn", 2, id="keyword-dsn"),
    ],
)
def test_password_in_other_connection_string_forms_never_appears(
    pg_url: str, tmp_path: Path, label: str, rc: int
) -> None:
    """libpq also takes the password as a URL query parameter (and in key=value strings)."""
    parts = urlsplit(pg_url)
    host, port = parts.hostname, parts.port or 5432
    warehouse = {
        "query-missing-db": f"postgresql://postgres@{host}:{port}/no_such_db_xyz?password={SECRET}",
        "keyword-dsn": f"host={host} port={port} dbname={db_name(pg_url)} password={SECRET}",
    }[label]
    t0 = time.monotonic()
    res = run_cli("--warehouse", warehouse, "status", "sales", cwd=tmp_path, timeout=60)
    assert time.monotonic() - t0 < 30
    assert res.returncode == rc, res.stderr
    assert len(error_lines(res.stderr)) == 1, res.stderr
    assert SECRET not in res.stdout + res.stderr, res.stderr


# -- 5. results equal to DuckDB on the same generated data -----------------------------------------
def _quarantine(wh: Warehouse) -> dict[str, dict[tuple[str, int], str]]:
    return {
        e: {
            (str(f), int(n)): str(r)
            for f, n, r in query(
                wh, f"SELECT _source_file, _row_no, _reason FROM staging.{e}_quarantine"
            )
        }
        for e in ENTITIES
    }


def test_postgresql_results_equal_duckdb_on_generated_data(
    pg_url: str, tmp_path: Path, clean_env: None
) -> None:
    shape: dict[str, Any] = {"start": date(2025, 12, 1), "days": 10, "orders_per_day": 150}
    generate_sales(tmp_path / "base", seed=3, **shape)
    generate_late_batch(tmp_path / "late", seed=3, batch_seed=2, lines=300, corrections=40, **shape)
    duck_file = tmp_path / "duck" / "warehouse.duckdb"
    engines: dict[str, tuple[str, Warehouse]] = {
        "duckdb": (f"duckdb:///{duck_file}", duck_file),
        "postgresql": (pg_url, pg_url),
    }
    reports: dict[str, list[dict[str, Any]]] = {}
    for name, (url, _) in engines.items():
        p = Project(warehouse=url, lock_timeout=5)
        p.ingest("sales", [tmp_path / "base"])
        first = p.run("sales").as_dict()
        p.ingest("sales", [tmp_path / "late"])
        second = p.run("sales").as_dict()
        reports[name] = [first, second]
    duck, post = engines["duckdb"][1], engines["postgresql"][1]

    problems: list[str] = []
    for i in range(2):
        d, q = reports["duckdb"][i], reports["postgresql"][i]
        assert d["status"] == q["status"] == "success"
        if (d["dates"], d["reasons"]) != (q["dates"], q["reasons"]):
            problems.append(f"run {i + 1} rebuilt {d['reasons']} on DuckDB, {q['reasons']} on PG")
    assert reports["duckdb"][1]["dates"], "the late batch made some dates stale"
    dq, pq = _quarantine(duck), _quarantine(post)
    for e in ENTITIES:
        for key in sorted(set(dq[e]) | set(pq[e])):
            if dq[e].get(key) != pq[e].get(key):
                problems.append(
                    f"{e} quarantine {Path(key[0]).name} row {key[1]}: DuckDB "
                    f"{dq[e].get(key)!r}, PostgreSQL {pq[e].get(key)!r}"
                )
    for t in (*MARTS, *VIEWS):
        assert columns_of(duck, "marts", t) == columns_of(post, "marts", t), t
        d_rows, q_rows = rows_of(duck, f"marts.{t}"), rows_of(post, f"marts.{t}")
        assert d_rows, t
        if d_rows != q_rows:
            only_d = [r for r in d_rows if r not in q_rows][:2]
            only_q = [r for r in q_rows if r not in d_rows][:2]
            problems.append(f"marts.{t}: only on DuckDB {only_d}; only on PostgreSQL {only_q}")
    assert not problems, "\n".join(problems)


# -- 6. init-db and the mart indexes ---------------------------------------------------------------
def test_init_db_is_idempotent_and_marts_have_unique_indexes(pg_url: str, tmp_path: Path) -> None:
    docs = []
    for _ in range(2):
        res = run_cli("--warehouse", pg_url, "init-db", "sales", "--json", cwd=tmp_path)
        assert res.returncode == 0, res.stderr
        docs.append(json.loads(res.stdout))
    # Version 1 (the initial state tables), then any later migration, each applied exactly once.
    versions = [r[0] for r in query(pg_url, "SELECT version FROM shukei.schema_version ORDER BY 1")]
    assert versions[0] == 1 and versions == list(range(1, len(versions) + 1)), versions
    assert docs[0] == docs[1] == {"schema_version": versions[-1], "pipelines": ["sales"]}
    for t in ("batches", "files", "runs", "partitions", "diffs", "pipeline_state"):
        assert query(
            pg_url,
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'shukei' AND tablename = ?",
            (t,),
        ) == [(1,)], t
    res = run_cli(
        "--warehouse", pg_url, "ingest", "sales", str(small_sales(tmp_path / "d")), cwd=tmp_path
    )
    assert res.returncode == 0, res.stderr
    res = run_cli("--warehouse", pg_url, "run", "sales", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert [
        r[0] for r in query(pg_url, "SELECT version FROM shukei.schema_version ORDER BY 1")
    ] == versions

    def unique_indexes(table: str) -> list[str]:
        rows = query(
            pg_url,
            "SELECT indexdef FROM pg_indexes WHERE schemaname = 'marts' AND tablename = ?",
            (table,),
        )
        return [r[0] for r in rows if r[0].startswith("CREATE UNIQUE INDEX")]

    region = unique_indexes("daily_sales_by_region")
    assert any(re.search(r"\(sales_date, region\)", d) for d in region), region
    customers = unique_indexes("customer_metrics")
    assert any(re.search(r"\(customer_id\)", d) for d in customers), customers
    # The index is enforced: a second row for the same date and region is refused.
    with psycopg.connect(pg_url) as con, pytest.raises(psycopg.errors.UniqueViolation):
        con.execute(
            "INSERT INTO marts.daily_sales_by_region SELECT * FROM marts.daily_sales_by_region "
            "LIMIT 1"
        )
