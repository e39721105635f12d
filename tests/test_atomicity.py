"""Each date is rebuilt entirely or not at all.

A user pipeline folder (a copy of the built-in `sales` pipeline) gets a blocking check that fails
for one date once a late batch pushes that date's revenue over a threshold. The run then fails for
exactly that date: every other dirty date is rebuilt, the failing date keeps its previous content in
every mart, its partition state says `failed` (with the error), it stays dirty, and once a
correcting batch brings it back under the threshold the next plain run rebuilds it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import shukei
from conftest import Warehouse, query, run_cli, write_entity
from shukei.errors import ConfigError
from shukei.project import Project

BUILTIN = Path(shukei.__file__).resolve().parent / "pipelines" / "sales"
D1, D2, D3 = date(2025, 12, 1), date(2025, 12, 2), date(2025, 12, 3)
LATER = "2025-12-10T00:00:00"
LATER2 = "2025-12-11T00:00:00"
CAP = "dec02_revenue_cap"

# Fails (one offending row) when 2025-12-02 is rebuilt with revenue over 100.00.
CAP_CHECK = f'''
[[checks]]
name = "{CAP}"
kind = "sql"
table = "marts.daily_sales"
description = "test only: 2025-12-02 may not exceed 100.00"
sql = """
SELECT * FROM marts.daily_sales
WHERE sales_date IN @dates AND sales_date = DATE '2025-12-02' AND revenue > 100
"""
'''

# The base data: one order a day (timestamps without offset are Asia/Tokyo local time).
CUSTOMERS = [
    ("C1", "Alice", "alice@example.com", "east", "2025-11-01T00:00:00"),
    ("C2", "Bob", "bob@example.com", "west", "2025-11-01T00:00:00"),
]
PRODUCTS = [
    ("P1", "Widget", "gadgets", "2025-11-01T00:00:00"),
    ("P2", "Gizmo", "tools", "2025-11-01T00:00:00"),
]
ORDERS = [
    ("O1", "C1", "paid", "east", "2025-12-01T10:00:00", "2025-12-01T10:00:00"),
    ("O2", "C2", "paid", "west", "2025-12-02T10:00:00", "2025-12-02T10:00:00"),
    ("O3", "C1", "paid", "east", "2025-12-03T10:00:00", "2025-12-03T10:00:00"),
]
ITEMS = [
    ("O1", 1, "P1", 2, "10.00", "2025-12-01T10:00:00"),  # O1 = 2 * 10.00 = 20.00
    ("O2", 1, "P2", 1, "30.00", "2025-12-02T10:00:00"),  # O2 = 30.00
    ("O3", 1, "P1", 1, "10.00", "2025-12-03T10:00:00"),  # O3 = 10.00
]
# The late batch: D1 and D3 change harmlessly, D2 goes over the cap.
PUSH = {
    "orders": [
        ("O4", "C1", "paid", "west", "2025-12-02T12:00:00", LATER),  # a late order on D2
        ("O5", "C2", "paid", "east", "2025-12-03T12:00:00", LATER),  # a late order on D3
    ],
    "order_items": [
        ("O1", 1, "P1", 3, "10.00", LATER),  # O1: quantity 2 -> 3, 30.00
        ("O4", 1, "P2", 3, "30.00", LATER),  # O4 = 90.00 -> D2 = 30.00 + 90.00 = 120.00 > 100
        ("O5", 1, "P1", 1, "10.00", LATER),  # O5 = 10.00 -> D3 = 20.00
    ],
}
# The fix: O4's price was wrong. O4 = 3 * 10.00 = 30.00 -> D2 = 60.00 <= 100.
FIX = {"order_items": [("O4", 1, "P2", 3, "10.00", LATER2)]}

DATE_MARTS = ("order_facts", "daily_sales", "daily_sales_by_region", "daily_product_sales")


def make_pipeline(
    tmp_path: Path, extra_toml: str = "", edits: dict[str, str] | None = None
) -> Path:
    """A user pipeline folder: the built-in sales pipeline plus `extra_toml`, SQL files edited."""
    folder = tmp_path / "pipelines" / "sales"
    shutil.copytree(BUILTIN, folder)
    toml = folder / "pipeline.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + extra_toml, encoding="utf-8")
    for rel, text in (edits or {}).items():
        (folder / rel).write_text(text, encoding="utf-8")
    return folder


class Shop:
    def __init__(self, project: Project, pipeline: Path, wh: Warehouse, root: Path) -> None:
        self.project, self.pipeline, self.wh, self.root = project, str(pipeline), wh, root
        self.n = 0

    def batch(self, **rows: Sequence[Sequence[Any]]) -> Path:
        self.n += 1
        folder = self.root / f"b{self.n:02d}"
        for entity, rs in rows.items():
            write_entity(folder, entity, rs)
        self.project.ingest(self.pipeline, [folder])
        return folder

    def run(self) -> dict[str, Any]:
        return self.project.run(self.pipeline).as_dict()

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return query(self.wh, sql, params)

    def rows_of(self, d: date) -> dict[str, list[tuple[Any, ...]]]:
        """Every date-partitioned mart's rows for `d`, sorted."""
        return {
            m: sorted(self.q(f"SELECT * FROM marts.{m} WHERE sales_date = ?", [d]), key=repr)
            for m in DATE_MARTS
        }

    def revenue(self) -> dict[date, Decimal]:
        return dict(self.q("SELECT sales_date, revenue FROM marts.daily_sales ORDER BY 1"))

    def partition(self, d: date) -> tuple[Any, ...]:
        rows = self.q(
            "SELECT state, error FROM shukei.partitions WHERE pipeline = 'sales' "
            "AND partition_date = ?",
            [d],
        )
        assert len(rows) == 1
        return rows[0]

    def dirty(self) -> list[date]:
        return [
            r[0]
            for r in self.q(
                "SELECT partition_date FROM shukei.dirty_dates WHERE pipeline = 'sales' ORDER BY 1"
            )
        ]


def dates(rep: dict[str, Any]) -> list[date]:
    return [date.fromisoformat(d) for d in rep["dates"]]


def reasons(rep: dict[str, Any]) -> dict[date, str]:
    return {date.fromisoformat(d): r for d, r in rep["reasons"].items()}


def built_shop(project: Project, wh: Warehouse, tmp_path: Path, pipeline: Path) -> Shop:
    s = Shop(project, pipeline, wh, tmp_path / "in")
    s.batch(customers=CUSTOMERS, products=PRODUCTS, orders=ORDERS, order_items=ITEMS)
    rep = s.run()
    assert rep["status"] == "success"
    assert dates(rep) == [D1, D2, D3]
    # D1 20.00, D2 30.00, D3 10.00: all under the cap
    assert s.revenue() == {D1: Decimal("20.00"), D2: Decimal("30.00"), D3: Decimal("10.00")}
    return s


@pytest.fixture
def capped(project: Project, warehouse_path: Warehouse, tmp_path: Path) -> Shop:
    """The base data built with the capped pipeline (the cap holds: D2 is 30.00)."""
    return built_shop(project, warehouse_path, tmp_path, make_pipeline(tmp_path, CAP_CHECK))


def test_failing_check_fails_exactly_its_date_and_keeps_its_content(capped: Shop) -> None:
    s = capped
    d2_before = s.rows_of(D2)
    s.batch(**PUSH)
    rep = s.run()

    assert rep["status"] == "failed"
    assert reasons(rep) == {D1: "stale", D2: "stale", D3: "stale"}
    assert dates(rep) == [D1, D3]
    assert [f["date"] for f in rep["failed"]] == ["2025-12-02"]
    assert CAP in rep["failed"][0]["error"]
    part = {p["date"]: p for p in rep["partitions"]}
    assert part["2025-12-02"]["status"] == "failed"
    assert CAP in part["2025-12-02"]["error"]
    assert part["2025-12-01"]["status"] == part["2025-12-03"]["status"] == "built"

    # the other dates are rebuilt: D1 = 3 * 10.00 = 30.00; D3 = O3 10.00 + O5 10.00 = 20.00
    assert s.q(
        "SELECT sales_date, order_count, item_count, revenue FROM marts.daily_sales ORDER BY 1"
    ) == [
        (D1, 1, 3, Decimal("30.00")),
        (D2, 1, 1, Decimal("30.00")),  # unchanged: O4 is not published
        (D3, 2, 2, Decimal("20.00")),
    ]
    # D2 keeps its previous content in every date mart, entirely
    assert s.rows_of(D2) == d2_before
    assert [r[1] for r in s.q("SELECT sales_date, order_id FROM marts.order_facts ORDER BY 2")] == [
        "O1",
        "O2",
        "O3",
        "O5",
    ]
    # the month and the customers agree with what is published (O4 is nowhere):
    # 30.00 + 30.00 + 20.00 = 80.00 over O1, O2, O3, O5
    assert s.q("SELECT order_count, revenue FROM marts.monthly_sales") == [(4, Decimal("80.00"))]
    # C1: O1 30.00 + O3 10.00 = 40.00 (not + O4); C2: O2 30.00 + O5 10.00 = 40.00
    assert s.q(
        "SELECT customer_id, order_count, lifetime_value FROM marts.customer_metrics ORDER BY 1"
    ) == [("C1", 2, Decimal("40.00")), ("C2", 2, Decimal("40.00"))]

    # state: D2 failed with the error, still dirty; the others built
    state, error = s.partition(D2)
    assert state == "failed"
    assert CAP in error
    assert s.partition(D1) == ("built", None)
    assert s.partition(D3) == ("built", None)
    assert s.dirty() == [D2]
    assert s.q(
        "SELECT status, dates_planned, dates_built, dates_failed FROM shukei.runs WHERE run_id = ?",
        [rep["run_id"]],
    ) == [("failed", 3, 2, 1)]
    assert s.q(
        "SELECT partition_date, status FROM shukei.run_dates WHERE run_id = ? ORDER BY 1",
        [rep["run_id"]],
    ) == [(D1, "built"), (D2, "failed"), (D3, "built")]

    # the failing check is recorded, and the run's ledger holds the built dates only
    assert s.q(
        "SELECT check_name, scope, blocking, failed_rows, status FROM shukei.check_results "
        "WHERE run_id = ? AND status = 'fail'",
        [rep["run_id"]],
    ) == [(CAP, "2025-12-02", True, 1, "fail")]
    doc = s.project.checks(s.pipeline, rep["run_id"])
    assert [r["check"] for r in doc["results"] if r["status"] == "fail"] == [CAP]
    changes = s.project.diff(s.pipeline, rep["run_id"])["changes"]
    assert {c["partition"] for c in changes if c["mart"] in DATE_MARTS} == {
        "2025-12-01",
        "2025-12-03",
    }


def test_failed_date_is_retried_until_fixed(capped: Shop) -> None:
    s = capped
    d2_before = s.rows_of(D2)
    s.batch(**PUSH)
    assert s.run()["status"] == "failed"

    # a plain run with nothing new retries exactly the failed date, which fails again
    rep = s.run()
    assert rep["status"] == "failed"
    assert reasons(rep) == {D2: "stale"}
    assert rep["dates"] == []
    assert [f["date"] for f in rep["failed"]] == ["2025-12-02"]
    assert s.rows_of(D2) == d2_before
    assert s.dirty() == [D2]

    # the fix brings D2 under the cap: the next plain run rebuilds it, and only it
    s.batch(**FIX)
    rep = s.run()
    assert rep["status"] == "success"
    assert dates(rep) == [D2]
    assert reasons(rep) == {D2: "stale"}
    assert rep["failed"] == []
    # D2: O2 30.00 + O4 3 * 10.00 = 60.00; items 1 + 3 = 4; C2, C1; 60.00 / 2 = 30.00
    assert s.q(
        "SELECT order_count, item_count, revenue, customer_count, avg_order_value "
        "FROM marts.daily_sales WHERE sales_date = ?",
        [D2],
    ) == [(2, 4, Decimal("60.00"), 2, Decimal("30.00"))]
    assert s.q(
        "SELECT region, revenue FROM marts.daily_sales_by_region WHERE sales_date = ? ORDER BY 1",
        [D2],
    ) == [("west", Decimal("60.00"))]  # O2 and O4 are both west
    assert s.partition(D2) == ("built", None)
    assert s.dirty() == []
    # month: 30.00 + 60.00 + 20.00 = 110.00 over 5 orders; C1: 30.00 + 10.00 + 30.00 = 70.00
    assert s.q("SELECT order_count, revenue FROM marts.monthly_sales") == [(5, Decimal("110.00"))]
    assert s.q(
        "SELECT order_count, lifetime_value FROM marts.customer_metrics WHERE customer_id = 'C1'"
    ) == [(3, Decimal("70.00"))]
    assert s.run()["dates"] == []


def test_cli_run_exits_1_naming_the_failed_date(
    capped: Shop, warehouse_url: str, tmp_path: Path
) -> None:
    s = capped
    s.batch(**PUSH)
    res = run_cli("--warehouse", warehouse_url, "run", s.pipeline, cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, res.stderr
    assert "2025-12-02" in errors[0]
    assert CAP in errors[0]
    assert "2025-12-01" not in errors[0] and "2025-12-03" not in errors[0]
    assert "Traceback" not in res.stderr
    # with --json, the report is still printed on stdout, and the exit code is still 1
    res = run_cli("--warehouse", warehouse_url, "run", s.pipeline, "--json", cwd=tmp_path)
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "failed"
    assert doc["reasons"] == {"2025-12-02": "stale"}
    assert [f["date"] for f in doc["failed"]] == ["2025-12-02"]


# A mart whose SQL fails (a conversion error) for any order in region 'boom': an engine error in
# the 4th mart of the rebuild, after order_facts, daily_sales and the region mart were replaced.
BOOM_SQL = (
    (BUILTIN / "sql" / "daily_product_sales.sql")
    .read_text(encoding="utf-8")
    .replace(
        "        sum(i.quantity * i.unit_price) AS revenue\n",
        "        sum(i.quantity * i.unit_price) AS revenue,\n"
        "        max(CASE WHEN f.region = 'boom' THEN CAST(f.order_id AS INTEGER) END) AS boom\n",
    )
    .replace(
        "    count(*) AS order_count\n", "    count(*) AS order_count,\n    max(o.boom) AS boom\n"
    )
)


def test_engine_error_mid_rebuild_fails_only_that_date(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    assert "AS boom" in BOOM_SQL and "max(o.boom)" in BOOM_SQL
    pipeline = make_pipeline(tmp_path, edits={"sql/daily_product_sales.sql": BOOM_SQL})
    s = built_shop(project, warehouse_path, tmp_path, pipeline)
    d2_before = s.rows_of(D2)
    s.batch(
        orders=[("O4", "C1", "paid", "boom", "2025-12-02T12:00:00", LATER)],
        order_items=[
            ("O4", 1, "P2", 1, "5.00", LATER),
            ("O3", 1, "P1", 2, "10.00", LATER),  # D3: O3 2 * 10.00 = 20.00
        ],
    )
    rep = s.run()
    assert rep["status"] == "failed"
    assert reasons(rep) == {D2: "stale", D3: "stale"}
    assert dates(rep) == [D3]
    assert [f["date"] for f in rep["failed"]] == ["2025-12-02"]
    # everything of D2 stays as it was, including the marts replaced before the failing one
    assert s.rows_of(D2) == d2_before
    assert s.revenue() == {D1: Decimal("20.00"), D2: Decimal("30.00"), D3: Decimal("20.00")}
    assert s.partition(D2)[0] == "failed"
    assert s.dirty() == [D2]
    # the fix: O4's region was a typo
    s.batch(orders=[("O4", "C1", "paid", "south", "2025-12-02T12:00:00", LATER2)])
    rep = s.run()
    assert rep["status"] == "success"
    assert dates(rep) == [D2]
    # D2: O2 30.00 + O4 5.00 = 35.00
    assert s.revenue()[D2] == Decimal("35.00")
    assert s.partition(D2) == ("built", None)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("columns.email = ", "columns._email = "),  # shukei's lineage columns start with _
        ("columns.email = ", "columns.rowid = "),  # DuckDB's row id
        ("columns.email = ", "columns.email__v = "),  # shukei's typed copies end in __v
        ('column = "sales_date"', 'column = "_sales_date"'),  # a derived partition column
    ],
)
def test_column_names_cannot_take_shukeis_own(clean_env: Path, old: str, new: str) -> None:
    tmp_path = clean_env
    toml = (BUILTIN / "pipeline.toml").read_text(encoding="utf-8")
    assert toml.count(old) == 1
    folder = make_pipeline(tmp_path, edits={"pipeline.toml": toml.replace(old, new)})
    wh = tmp_path / "wh" / "shukei.duckdb"
    with pytest.raises(ConfigError) as exc:
        Project(warehouse=f"duckdb:///{wh}", lock_timeout=5).run(str(folder))
    name = new.split("=")[-1].strip(' "') if "column =" in new else new.split(".")[1].split()[0]
    assert f"{name!r}: a column name may not" in str(exc.value)
    assert not wh.exists()  # rejected before the warehouse is touched


@pytest.mark.parametrize(
    ("rel", "tail"),
    [
        ("sql/daily_sales.sql", "\n;\nCOMMIT;\n"),
        ("sql/order_facts.sql", "\n; begin ;\n"),
        ("sql/views/top_customers.sql", "\n;ROLLBACK;"),
    ],
)
def test_sql_files_hold_no_transaction_control(clean_env: Path, rel: str, tail: str) -> None:
    tmp_path = clean_env
    original = (BUILTIN / rel).read_text(encoding="utf-8")
    folder = make_pipeline(tmp_path, edits={rel: original + tail})
    wh = tmp_path / "wh" / "shukei.duckdb"
    project = Project(warehouse=f"duckdb:///{wh}", lock_timeout=5)
    with pytest.raises(ConfigError) as exc:
        project.run(str(folder))
    assert "BEGIN/COMMIT" in str(exc.value)
    assert Path(rel).name in str(exc.value)
    assert not wh.exists()  # rejected before the warehouse is touched
    res = run_cli("--warehouse", f"duckdb:///{wh}", "run", str(folder), cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "BEGIN/COMMIT" in errors[0], res.stderr
