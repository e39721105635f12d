"""One writer at a time, and a run killed with SIGKILL leaves every date whole or untouched.

Real processes on real DuckDB files: a holder process keeps the warehouse open, `shukei run`
processes compete for it, and a run is killed with kill -9 in the middle of its rebuilds.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import duckdb

from conftest import run_cli, write_entity

PER_DATE_MARTS = ("order_facts", "daily_sales", "daily_sales_by_region", "daily_product_sales")

HOLDER = """
import sys
from shukei.engines import connect
engine = connect(sys.argv[1])
print("ready", flush=True)
sys.stdin.readline()
engine.close()
"""


def url(path: Path) -> str:
    return f"duckdb:///{path}"


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHUKEI_")}
    env.update(extra)
    return env


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Every process started through the yielded list is killed and waited for at the end."""
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


def start_cli(procs: list[subprocess.Popen[str]], *args: str, **env: str) -> subprocess.Popen[str]:
    p = subprocess.Popen(
        [sys.executable, "-m", "shukei", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(**env),
    )
    procs.append(p)
    return p


def start_holder(procs: list[subprocess.Popen[str]], wh: Path) -> subprocess.Popen[str]:
    """A process that opens the warehouse for writing and holds it until told (a stdin line)."""
    p = subprocess.Popen(
        [sys.executable, "-c", HOLDER, url(wh)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
    )
    procs.append(p)
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.strip() == "ready", p.stderr.read() if p.stderr else line
    return p


def release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.wait(timeout=30) == 0


def read(path: Path, sql: str) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def marts_snapshot(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every table and view in schema marts, all rows, sorted."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        names = [
            r[0]
            for r in con.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'marts' "
                "ORDER BY 1"
            ).fetchall()
        ]
        return {n: con.execute(f'SELECT * FROM marts."{n}" ORDER BY ALL').fetchall() for n in names}
    finally:
        con.close()


def ingest(wh: Path, folder: Path) -> None:
    res = run_cli("--warehouse", url(wh), "ingest", "sales", str(folder))
    assert res.returncode == 0, res.stderr


def reference(tmp_path: Path, folder: Path, name: str = "ref") -> Path:
    """A fresh, single full build of the same files in another warehouse."""
    ref = tmp_path / name / "ref.duckdb"
    ingest(ref, folder)
    res = run_cli("--warehouse", url(ref), "run", "sales")
    assert res.returncode == 0, res.stderr
    return ref


# Small data: three counted orders on three dates (Asia/Tokyo, no offset = local time).
#   2025-03-01: o1 2 * 10.00 = 20.00;  2025-03-02: o2 1 * 5.50;  2025-03-03: o3 3 * 1.25 = 3.75
def small_data(folder: Path) -> Path:
    write_entity(
        folder,
        "orders",
        [
            ("o1", "c1", "paid", "east", "2025-03-01T10:00:00", "2025-03-01T10:00:00"),
            ("o2", "c2", "paid", "west", "2025-03-02T10:00:00", "2025-03-02T10:00:00"),
            ("o3", "c1", "paid", "east", "2025-03-03T10:00:00", "2025-03-03T10:00:00"),
        ],
    )
    write_entity(
        folder,
        "order_items",
        [
            ("o1", 1, "p1", 2, "10.00", "2025-03-01T10:00:00"),
            ("o2", 1, "p1", 1, "5.50", "2025-03-02T10:00:00"),
            ("o3", 1, "p2", 3, "1.25", "2025-03-03T10:00:00"),
        ],
    )
    return folder


SMALL_DATES = ["2025-03-01", "2025-03-02", "2025-03-03"]


# -- the writer lock -----------------------------------------------------------------------------
def test_second_writer_fails_after_lock_timeout(tmp_path: Path) -> None:
    wh = tmp_path / "wh" / "wh.duckdb"
    ingest(wh, small_data(tmp_path / "data"))
    with processes() as procs:
        holder = start_holder(procs, wh)
        t0 = time.monotonic()
        # The subprocess timeout bounds the wait: a hang fails the test.
        res = run_cli(
            "--warehouse", url(wh), "run", "sales", env={"SHUKEI_LOCK_TIMEOUT": "1"}, timeout=60
        )
        waited = time.monotonic() - t0
        assert res.returncode == 1, (res.stdout, res.stderr)
        assert "Traceback" not in res.stderr
        errors = [ln for ln in res.stderr.splitlines() if ln.startswith("Error:")]
        assert len(errors) == 1, res.stderr
        assert "another process" in errors[0]
        assert f"PID {holder.pid}" in errors[0]
        assert waited >= 1.0, "it gives up only after lock_timeout seconds"
        assert res.stdout == ""
        release(holder)
    # The failed attempt changed nothing: no run was recorded, the batch is still pending.
    assert read(wh, "SELECT count(*) FROM shukei.batches WHERE status = 'loaded'") == [(1,)]
    tables = read(
        wh, "SELECT table_name FROM information_schema.tables WHERE table_schema='shukei'"
    )
    if ("runs",) in tables:
        assert read(wh, "SELECT count(*) FROM shukei.runs") == [(0,)]


def test_lock_timeout_zero_fails_at_once_for_ingest(tmp_path: Path) -> None:
    wh = tmp_path / "wh" / "wh.duckdb"
    folder = small_data(tmp_path / "data")
    ingest(wh, folder)
    write_entity(
        tmp_path / "more", "orders", [("o9", "c9", "paid", "east", "2025-03-09", "2025-03-09")]
    )
    with processes() as procs:
        holder = start_holder(procs, wh)
        res = run_cli(
            "--warehouse",
            url(wh),
            "ingest",
            "sales",
            str(tmp_path / "more"),
            env={"SHUKEI_LOCK_TIMEOUT": "0"},
            timeout=60,
        )
        assert res.returncode == 1, res.stderr
        assert "Traceback" not in res.stderr
        assert f"PID {holder.pid}" in res.stderr
        release(holder)
    assert read(wh, "SELECT count(*) FROM shukei.batches") == [(1,)]


def test_second_writer_waits_then_succeeds(tmp_path: Path) -> None:
    wh = tmp_path / "wh" / "wh.duckdb"
    ingest(wh, small_data(tmp_path / "data"))
    with processes() as procs:
        holder = start_holder(procs, wh)
        runner = start_cli(
            procs, "--warehouse", url(wh), "run", "sales", "--json", SHUKEI_LOCK_TIMEOUT="60"
        )
        time.sleep(2.0)
        assert runner.poll() is None, "the run must wait for the holder, not fail or proceed"
        release(holder)
        out, err = runner.communicate(timeout=60)
        assert runner.returncode == 0, err
        doc = json.loads(out)
        assert doc["status"] == "success"
        assert doc["dates"] == SMALL_DATES
    rows = read(wh, "SELECT CAST(sales_date AS VARCHAR), revenue FROM marts.daily_sales ORDER BY 1")
    assert rows == [
        ("2025-03-01", Decimal("20.00")),
        ("2025-03-02", Decimal("5.50")),
        ("2025-03-03", Decimal("3.75")),
    ]


def test_two_concurrent_runs_both_finish_without_duplicates(tmp_path: Path) -> None:
    folder = small_data(tmp_path / "data")
    wh = tmp_path / "wh" / "wh.duckdb"
    ingest(wh, folder)
    with processes() as procs:
        a = start_cli(
            procs, "--warehouse", url(wh), "run", "sales", "--json", SHUKEI_LOCK_TIMEOUT="60"
        )
        b = start_cli(
            procs, "--warehouse", url(wh), "run", "sales", "--json", SHUKEI_LOCK_TIMEOUT="60"
        )
        out_a, err_a = a.communicate(timeout=90)
        out_b, err_b = b.communicate(timeout=90)
    assert a.returncode == 0, err_a
    assert b.returncode == 0, err_b
    docs = [json.loads(out_a), json.loads(out_b)]
    assert all(d["status"] == "success" for d in docs)
    # The runs never overlap: one planned and built everything, the other found nothing to do.
    assert sorted(len(d["dates"]) for d in docs) == [0, 3]
    assert sorted(d for doc in docs for d in doc["dates"]) == SMALL_DATES
    # No duplicates: exactly one order_facts row per counted order.
    assert read(wh, "SELECT order_id, count(*) FROM marts.order_facts GROUP BY 1 ORDER BY 1") == [
        ("o1", 1),
        ("o2", 1),
        ("o3", 1),
    ]
    assert read(wh, "SELECT count(*), list(DISTINCT status) FROM shukei.runs") == [(2, ["success"])]
    assert marts_snapshot(wh) == marts_snapshot(reference(tmp_path, folder))


def test_concurrent_ingest_and_run(tmp_path: Path) -> None:
    """An ingest and a run racing: both finish; after one more run the marts hold both batches."""
    first = small_data(tmp_path / "data")
    late = tmp_path / "late"
    # Late delivery: o4 on 2025-03-03, 4 * 2.00 = 8.00.
    write_entity(
        late, "orders", [("o4", "c2", "paid", "west", "2025-03-03T11:00:00", "2025-03-03T11:00:00")]
    )
    write_entity(late, "order_items", [("o4", 1, "p1", 4, "2.00", "2025-03-03T11:00:00")])
    wh = tmp_path / "wh" / "wh.duckdb"
    ingest(wh, first)
    with processes() as procs:
        r = start_cli(procs, "--warehouse", url(wh), "run", "sales", SHUKEI_LOCK_TIMEOUT="60")
        i = start_cli(
            procs, "--warehouse", url(wh), "ingest", "sales", str(late), SHUKEI_LOCK_TIMEOUT="60"
        )
        _, err_r = r.communicate(timeout=90)
        _, err_i = i.communicate(timeout=90)
    assert r.returncode == 0, err_r
    assert i.returncode == 0, err_i
    final = run_cli("--warehouse", url(wh), "run", "sales")
    assert final.returncode == 0, final.stderr
    # 2025-03-03: o3 3.75 + o4 8.00 = 11.75
    assert read(
        wh, "SELECT CAST(sales_date AS VARCHAR), revenue FROM marts.daily_sales ORDER BY 1"
    ) == [
        ("2025-03-01", Decimal("20.00")),
        ("2025-03-02", Decimal("5.50")),
        ("2025-03-03", Decimal("11.75")),
    ]


# -- kill -9 in the middle of a run --------------------------------------------------------------
START = date(2025, 3, 1)
DAYS = 60  # 2025-03-01 .. 2025-04-29


def many_days(folder: Path) -> Path:
    """One order per day: order o<i> on START + i, customer c<i % 3>, 1 line of 1 * (i + 1).00."""
    orders = []
    items = []
    for i in range(DAYS):
        d = START + timedelta(days=i)
        ts = f"{d.isoformat()}T12:00:00"
        orders.append((f"o{i}", f"c{i % 3}", "paid", ("east", "west")[i % 2], ts, ts))
        items.append((f"o{i}", 1, f"p{i % 4}", 1, f"{i + 1}.00", ts))
    write_entity(folder, "orders", orders)
    write_entity(folder, "order_items", items)
    write_entity(
        folder,
        "customers",
        [
            (f"c{k}", f"Customer {k}", f"c{k}@example.com", "east", "2025-01-01T00:00:00")
            for k in range(3)
        ],
    )
    write_entity(
        folder,
        "products",
        [(f"p{k}", f"Product {k}", "food", "2025-01-01T00:00:00") for k in range(4)],
    )
    return folder


ALL_DATES = [(START + timedelta(days=i)).isoformat() for i in range(DAYS)]


def _pump(stream: IO[str], q: queue.Queue[str | None]) -> None:
    for line in stream:
        q.put(line)
    q.put(None)


def run_and_kill(wh: Path, after_rebuilt: int) -> tuple[int, int]:
    """Start `shukei run sales` (one date per transaction) and SIGKILL it after `after_rebuilt`
    per-date "rebuilt" log lines. Returns (its return code, rebuilt lines seen)."""
    with processes() as procs:
        p = start_cli(
            procs,
            "--log-format",
            "json",
            "--warehouse",
            url(wh),
            "run",
            "sales",
            SHUKEI_CHUNK_DAYS="1",
        )
        assert p.stderr is not None
        q: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=_pump, args=(p.stderr, q), daemon=True).start()
        seen = 0
        deadline = time.monotonic() + 120
        while seen < after_rebuilt:
            line = q.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                break
            if not line.startswith("{"):
                continue  # not a log line (e.g. a library warning)
            doc = json.loads(line)
            if doc["message"].startswith("rebuilt (") and doc["date"]:
                seen += 1
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=30)
        return p.returncode, seen


def test_kill_9_mid_run_leaves_each_date_whole_or_untouched(tmp_path: Path) -> None:
    folder = many_days(tmp_path / "data")
    ref = reference(tmp_path, folder)
    ref_rows = {m: read(ref, f"SELECT * FROM marts.{m} ORDER BY ALL") for m in PER_DATE_MARTS}

    wh = None
    for attempt, n in enumerate((5, 2, 1)):
        wh = tmp_path / f"wh{attempt}" / "wh.duckdb"
        ingest(wh, folder)
        rc, seen = run_and_kill(wh, n)
        if rc == -signal.SIGKILL:
            break
    assert wh is not None
    assert rc == -signal.SIGKILL, "the run always finished before it could be killed"
    assert seen >= 1

    # Every date is either built (and equal to the full build) or untouched and still dirty.
    built = {
        r[0]
        for r in read(
            wh,
            "SELECT CAST(partition_date AS VARCHAR) FROM shukei.partitions WHERE state = 'built'",
        )
    }
    dirty = {
        r[0] for r in read(wh, "SELECT CAST(partition_date AS VARCHAR) FROM shukei.dirty_dates")
    }
    assert built & dirty == set()
    assert built | dirty == set(ALL_DATES)
    assert len(built) >= seen  # at least every date logged as rebuilt was committed
    assert dirty, "the kill came before the last date"
    for m in PER_DATE_MARTS:
        rows = read(wh, f"SELECT * FROM marts.{m} ORDER BY ALL")
        # sales_date is the first column of every per-date mart
        got = {d: [r for r in rows if r[0].isoformat() == d] for d in ALL_DATES}
        want = {d: [r for r in ref_rows[m] if r[0].isoformat() == d] for d in ALL_DATES}
        for d in ALL_DATES:
            if d in built:
                assert got[d] == want[d], (m, d)
            else:
                assert got[d] == [], (m, d)
    killed = read(wh, "SELECT run_id, status FROM shukei.runs")
    assert len(killed) == 1 and killed[0][1] == "running"
    killed_id = killed[0][0]

    # The next run marks the killed run interrupted and rebuilds exactly the remaining dates.
    res = run_cli("--warehouse", url(wh), "run", "sales", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "success"
    assert doc["dates"] == sorted(dirty)
    assert doc["reasons"] == {d: "missing" for d in sorted(dirty)}
    assert doc["batches"] == [], "the batch was merged by the killed run already"
    runs = dict(read(wh, "SELECT run_id, status FROM shukei.runs"))
    assert runs == {killed_id: "interrupted", doc["run_id"]: "success"}
    assert read(wh, "SELECT count(*) FROM shukei.dirty_dates") == [(0,)]
    assert read(wh, "SELECT count(*) FROM shukei.dirty_keys") == [(0,)]
    assert marts_snapshot(wh) == marts_snapshot(ref)
    # Hand check of one total: revenue over all 60 days = 1 + 2 + ... + 60 = 60 * 61 / 2 = 1830.
    assert read(wh, "SELECT sum(revenue) FROM marts.daily_sales") == [(Decimal("1830.00"),)]
    assert read(wh, "SELECT sum(revenue) FROM marts.monthly_sales") == [(Decimal("1830.00"),)]
