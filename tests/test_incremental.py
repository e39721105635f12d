"""A plain `run` rebuilds exactly the dates whose mart rows could have changed, and no other date.

Every scenario starts from the same hand-made five-day shop (`shop` fixture: built once per engine,
then copied into each test's warehouse by file copy or PostgreSQL TEMPLATE, to keep the suite fast),
ingests small late batches and asserts the planned dates, their reasons, and the marts. The
expected numbers are computed by hand in comments; the engine itself is used as an oracle only in
the incremental == full-rebuild test (a second, fresh warehouse).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

import pg
from conftest import Warehouse, query, write_entity
from shukei.errors import UsageError
from shukei.project import Project

D1, D2, D3, D4, D5 = (date(2025, 12, d) for d in range(1, 6))
ALL = [D1, D2, D3, D4, D5]
LATER = "2025-12-10T00:00:00"  # the updated_at of every correction below (after all base rows)
LATER2 = "2025-12-11T00:00:00"

PARTITIONED = (
    "order_facts",
    "daily_sales",
    "daily_sales_by_region",
    "daily_product_sales",
    "monthly_sales",
)
MARTS = (*PARTITIONED, "customer_metrics")
VIEWS = ("top_customers", "category_performance", "regional_sales_trend", "weekly_sales_summary")

# The base shop. Timestamps without an offset are Asia/Tokyo local time, so each order's
# sales_date is the calendar day of its created_at.
CUSTOMERS = [
    ("C1", "Alice", "alice@example.com", "east", "2025-11-01T00:00:00"),
    ("C2", "Bob", "bob@example.com", "west", "2025-11-01T00:00:00"),
    ("C3", "Carol", "carol@example.com", "north", "2025-11-01T00:00:00"),
]
PRODUCTS = [
    ("P1", "Widget", "gadgets", "2025-11-01T00:00:00"),
    ("P2", "Gizmo", "tools", "2025-11-01T00:00:00"),
    ("P3", "Doohickey", "misc", "2025-11-01T00:00:00"),
]
ORDERS = [
    ("O1", "C1", "paid", "east", "2025-12-01T10:00:00", "2025-12-01T10:00:00"),
    ("O2", "C2", "paid", "west", "2025-12-01T11:00:00", "2025-12-01T11:00:00"),
    ("O3", "C1", "paid", "east", "2025-12-02T09:00:00", "2025-12-02T09:00:00"),
    ("O4", "C3", "shipped", "north", "2025-12-03T09:00:00", "2025-12-03T09:00:00"),
    ("O5", "C2", "paid", "west", "2025-12-04T09:00:00", "2025-12-04T09:00:00"),
    ("O6", "C3", "paid", "north", "2025-12-05T09:00:00", "2025-12-05T09:00:00"),
]
ITEMS = [
    ("O1", 1, "P1", 2, "10.00", "2025-12-01T10:00:00"),  # 2 * 10.00 = 20.00
    ("O1", 2, "P2", 1, "5.50", "2025-12-01T10:00:00"),  # 1 * 5.50 = 5.50 -> O1 25.50, 3 items
    ("O2", 1, "P1", 1, "10.00", "2025-12-01T11:00:00"),  # O2 10.00, 1 item
    ("O3", 1, "P2", 3, "5.50", "2025-12-02T09:00:00"),  # O3 16.50, 3 items
    ("O4", 1, "P3", 1, "100.00", "2025-12-03T09:00:00"),  # O4 100.00, 1 item
    ("O5", 1, "P1", 4, "10.00", "2025-12-04T09:00:00"),  # O5 40.00, 4 items
    ("O6", 1, "P2", 2, "5.50", "2025-12-05T09:00:00"),  # O6 11.00, 2 items
]


def dec(s: str) -> Decimal:
    return Decimal(s)


# daily_sales of the base shop: (order_count, item_count, revenue, customer_count, aov)
BASE_DAILY = {
    D1: (2, 4, dec("35.50"), 2, dec("17.75")),  # O1 25.50 + O2 10.00; 3 + 1 items; 35.50 / 2
    D2: (1, 3, dec("16.50"), 1, dec("16.50")),  # O3
    D3: (1, 1, dec("100.00"), 1, dec("100.00")),  # O4
    D4: (1, 4, dec("40.00"), 1, dec("40.00")),  # O5
    D5: (1, 2, dec("11.00"), 1, dec("11.00")),  # O6
}


@dataclass
class Shop:
    """A warehouse plus the batch folders ingested into it, in order."""

    project: Project
    wh: Warehouse
    root: Path
    folders: list[Path] = field(default_factory=list)

    def batch(self, **rows: Sequence[Sequence[Any]]) -> Path:
        """Write one folder with a CSV per entity given, and ingest it as one batch."""
        folder = self.root / f"b{len(self.folders):02d}"
        for entity, rs in rows.items():
            write_entity(folder, entity, rs)
        self.project.ingest("sales", [folder])
        self.folders.append(folder)
        return folder

    def run(self, **kw: Any) -> dict[str, Any]:
        return self.project.run("sales", **kw).as_dict()

    def q(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return query(self.wh, sql, params)

    def daily(self) -> dict[date, tuple[Any, ...]]:
        rows = self.q(
            "SELECT sales_date, order_count, item_count, revenue, customer_count, "
            "avg_order_value FROM marts.daily_sales ORDER BY 1"
        )
        return {r[0]: tuple(r[1:]) for r in rows}

    def facts(self) -> dict[str, tuple[Any, ...]]:
        """order_id -> (sales_date, customer_id, region, line_count, item_count, revenue)."""
        rows = self.q(
            "SELECT order_id, sales_date, customer_id, region, line_count, item_count, revenue "
            "FROM marts.order_facts ORDER BY order_id"
        )
        return {r[0]: tuple(r[1:]) for r in rows}

    def snapshot(self, tables: Sequence[str] = MARTS) -> dict[str, list[tuple[Any, ...]]]:
        """Every mart's full content, sorted (a value-by-value comparable picture)."""
        return {t: sorted(self.q(f"SELECT * FROM marts.{t}"), key=repr) for t in tables}


def dates(rep: dict[str, Any]) -> list[date]:
    return [date.fromisoformat(d) for d in rep["dates"]]


def reasons(rep: dict[str, Any]) -> dict[date, str]:
    return {date.fromisoformat(d): r for d, r in rep["reasons"].items()}


def new_shop(project: Project, wh: Warehouse, root: Path) -> Shop:
    shop = Shop(project, wh, root)
    shop.batch(customers=CUSTOMERS, products=PRODUCTS, orders=ORDERS, order_items=ITEMS)
    return shop


def fresh_warehouse(engine_name: str, folder: Path) -> tuple[str, Warehouse]:
    """A new empty warehouse on the same engine: (url, what `query` reads)."""
    if engine_name == "duckdb":
        path = folder / "shukei.duckdb"
        return f"duckdb:///{path}", path
    url = pg.create_database()
    return url, url


def clone_warehouse(engine_name: str, src: str, dst: str) -> None:
    """Replace the (empty) warehouse `dst` by a copy of `src` (file copy / TEMPLATE database)."""
    if engine_name == "duckdb":
        a, b = Path(src.split(":///", 1)[1]), Path(dst.split(":///", 1)[1])
        b.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(a, b)
        if Path(f"{a}.wal").exists():
            shutil.copyfile(f"{a}.wal", f"{b}.wal")
        return
    import psycopg

    admin = pg.admin_url()
    assert admin is not None
    name, template = (urlsplit(u).path.lstrip("/") for u in (dst, src))
    with psycopg.connect(admin, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        con.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')


@pytest.fixture(scope="module")
def base_builds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Per engine, one warehouse holding the base shop built once; tests start from a copy."""
    cache: dict[str, Any] = {"root": tmp_path_factory.mktemp("base")}
    yield cache
    if "postgresql" in cache:
        pg.drop_database(cache["postgresql"][0])


@pytest.fixture
def shop(
    project: Project,
    engine_name: str,
    warehouse_url: str,
    warehouse_path: Warehouse,
    tmp_path: Path,
    base_builds: dict[str, Any],
) -> Shop:
    """The base shop, ingested and built (all five dates), in this test's own warehouse."""
    if engine_name not in base_builds:
        root = base_builds["root"] / engine_name
        url, wh = fresh_warehouse(engine_name, root)
        s = new_shop(Project(warehouse=url, lock_timeout=5), wh, root / "in")
        rep = s.run()
        assert rep["status"] == "success"
        assert dates(rep) == ALL
        base_builds[engine_name] = (url, s.folders[0])
    url, base_folder = base_builds[engine_name]
    clone_warehouse(engine_name, url, warehouse_url)
    s = Shop(project, warehouse_path, tmp_path / "in", [base_folder])
    assert s.daily() == BASE_DAILY
    return s


# -- planning: which dates, and why --------------------------------------------------------------


def test_first_run_builds_every_date_as_missing(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    s = new_shop(project, warehouse_path, tmp_path / "in")
    rep = s.run()
    assert rep["status"] == "success"
    assert dates(rep) == ALL
    assert reasons(rep) == {d: "missing" for d in ALL}
    assert rep["failed"] == []
    assert s.daily() == BASE_DAILY
    # monthly: 35.50 + 16.50 + 100.00 + 40.00 + 11.00 = 203.00 over 6 orders, 3 customers
    assert s.q("SELECT month, order_count, revenue, customer_count FROM marts.monthly_sales") == [
        (date(2025, 12, 1), 6, dec("203.00"), 3)
    ]


def test_second_run_with_nothing_new_rebuilds_nothing(shop: Shop) -> None:
    before = shop.snapshot()
    rep = shop.run()
    assert rep["status"] == "success"
    assert rep["dates"] == []
    assert rep["reasons"] == {}
    assert rep["batches"] == []
    assert rep["keyed"] == {}
    assert shop.snapshot() == before


def test_late_order_for_an_old_date_rebuilds_only_that_date(shop: Shop) -> None:
    shop.batch(
        orders=[("O7", "C2", "paid", "west", "2025-12-02T15:00:00", LATER)],
        order_items=[("O7", 1, "P3", 2, "7.25", LATER)],  # 2 * 7.25 = 14.50
    )
    rep = shop.run()
    assert dates(rep) == [D2]
    assert reasons(rep) == {D2: "stale"}
    daily = shop.daily()
    # D2: O3 16.50 + O7 14.50 = 31.00; items 3 + 2 = 5; customers C1, C2; 31.00 / 2 = 15.50
    assert daily[D2] == (2, 5, dec("31.00"), 2, dec("15.50"))
    assert {d: v for d, v in daily.items() if d != D2} == {
        d: v for d, v in BASE_DAILY.items() if d != D2
    }
    # a late order for a date never built before: that date only, `missing`
    d7 = date(2025, 12, 7)
    shop.batch(
        orders=[("O9", "C1", "paid", "east", "2025-12-07T08:00:00", LATER)],
        order_items=[("O9", 1, "P1", 1, "10.00", LATER)],
    )
    rep = shop.run()
    assert dates(rep) == [d7]
    assert reasons(rep) == {d7: "missing"}
    assert shop.daily()[d7] == (1, 1, dec("10.00"), 1, dec("10.00"))


def test_several_pending_batches_rebuild_the_union_of_their_dates(shop: Shop) -> None:
    shop.batch(order_items=[("O3", 1, "P2", 5, "5.50", LATER)])  # D2: O3 3 -> 5 items
    shop.batch(order_items=[("O5", 1, "P1", 1, "10.00", LATER)])  # D4: O5 4 -> 1 item
    shop.batch(order_items=[("O3", 1, "P2", 3, "5.50", LATER2)])  # D2: back to 3 items
    rep = shop.run()
    assert [b["batch_id"] for b in rep["batches"]] == [2, 3, 4]
    assert dates(rep) == [D2, D4]
    daily = shop.daily()
    assert daily[D2] == BASE_DAILY[D2]  # the last version wins: 3 * 5.50 = 16.50
    assert daily[D4] == (1, 1, dec("10.00"), 1, dec("10.00"))  # 1 * 10.00


def test_quantity_correction_rebuilds_only_its_orders_date(shop: Shop) -> None:
    shop.batch(order_items=[("O1", 1, "P1", 3, "10.00", LATER)])  # quantity 2 -> 3
    rep = shop.run()
    assert dates(rep) == [D1]
    assert reasons(rep) == {D1: "stale"}
    # D1: O1 = 3 * 10.00 + 5.50 = 35.50, O2 = 10.00 -> 45.50; items 3 + 1 + 1 = 5; 45.50 / 2
    assert shop.daily()[D1] == (2, 5, dec("45.50"), 2, dec("22.75"))
    # P1 on D1: quantity 3 (O1) + 1 (O2) = 4, revenue 40.00, 2 orders
    assert shop.q(
        "SELECT quantity, revenue, order_count FROM marts.daily_product_sales "
        "WHERE sales_date = ? AND product_id = 'P1'",
        [D1],
    ) == [(4, dec("40.00"), 2)]


def test_moved_order_rebuilds_old_and_new_date_without_double_counting(shop: Shop) -> None:
    # O1 was created on D1; the correction says D3.
    shop.batch(orders=[("O1", "C1", "paid", "east", "2025-12-03T10:00:00", LATER)])
    rep = shop.run()
    assert dates(rep) == [D1, D3]
    assert reasons(rep) == {D1: "stale", D3: "stale"}
    facts = shop.facts()
    assert facts["O1"] == (D3, "C1", "east", 2, 3, dec("25.50"))
    assert shop.q("SELECT count(*) FROM marts.order_facts WHERE order_id = 'O1'") == [(1,)]
    daily = shop.daily()
    # D1 keeps only O2: 1 order, 1 item, 10.00
    assert daily[D1] == (1, 1, dec("10.00"), 1, dec("10.00"))
    # D3: O4 100.00 + O1 25.50 = 125.50; items 1 + 3 = 4; customers C3, C1; 125.50 / 2 = 62.75
    assert daily[D3] == (2, 4, dec("125.50"), 2, dec("62.75"))
    assert shop.q(
        "SELECT sales_date, region, order_count, revenue FROM marts.daily_sales_by_region "
        "WHERE sales_date IN (?, ?) ORDER BY 1, 2",
        [D1, D3],
    ) == [
        (D1, "west", 1, dec("10.00")),
        (D3, "east", 1, dec("25.50")),
        (D3, "north", 1, dec("100.00")),
    ]
    assert shop.q(
        "SELECT sales_date, product_id, quantity, revenue FROM marts.daily_product_sales "
        "WHERE sales_date IN (?, ?) ORDER BY 1, 2",
        [D1, D3],
    ) == [
        (D1, "P1", 1, dec("10.00")),  # O2 only
        (D3, "P1", 2, dec("20.00")),  # O1 line 1
        (D3, "P2", 1, dec("5.50")),  # O1 line 2
        (D3, "P3", 1, dec("100.00")),  # O4
    ]
    # the month total is unchanged: the order moved inside December (203.00, 6 orders)
    assert shop.q("SELECT order_count, revenue FROM marts.monthly_sales") == [(6, dec("203.00"))]
    # C1: O3 (D2, 16.50) and O1 (now D3, 25.50) -> first D2, last D3, 42.00, 42.00 / 2 = 21.00
    assert shop.q(
        "SELECT first_order_date, last_order_date, order_count, lifetime_value, avg_order_value "
        "FROM marts.customer_metrics WHERE customer_id = 'C1'"
    ) == [(D2, D3, 2, dec("42.00"), dec("21.00"))]


def test_cancellation_rebuilds_its_date_and_removes_the_order(shop: Shop) -> None:
    shop.batch(orders=[("O5", "C2", "cancelled", "west", "2025-12-04T09:00:00", LATER)])
    rep = shop.run()
    assert dates(rep) == [D4]
    assert reasons(rep) == {D4: "stale"}
    assert "O5" not in shop.facts()
    daily = shop.daily()
    assert D4 not in daily  # no counted order left on D4: no row
    assert daily == {d: v for d, v in BASE_DAILY.items() if d != D4}
    assert shop.q(
        "SELECT count(*) FROM marts.daily_sales_by_region WHERE sales_date = ?", [D4]
    ) == [(0,)]
    assert shop.q("SELECT count(*) FROM marts.daily_product_sales WHERE sales_date = ?", [D4]) == [
        (0,)
    ]
    # month: 203.00 - 40.00 = 163.00 over 5 orders
    assert shop.q("SELECT order_count, revenue FROM marts.monthly_sales") == [(5, dec("163.00"))]
    # C2 keeps only O2 (D1, 10.00)
    assert shop.q(
        "SELECT first_order_date, last_order_date, order_count, lifetime_value "
        "FROM marts.customer_metrics WHERE customer_id = 'C2'"
    ) == [(D1, D1, 1, dec("10.00"))]
    # the cancellation is itself withdrawn: D4 again, and O5 counts again
    shop.batch(orders=[("O5", "C2", "paid", "west", "2025-12-04T09:00:00", LATER2)])
    rep = shop.run()
    assert dates(rep) == [D4]
    assert shop.daily() == BASE_DAILY


def test_order_arriving_already_cancelled_rebuilds_nothing(shop: Shop) -> None:
    before = shop.snapshot()
    shop.batch(
        orders=[("O9", "C1", "cancelled", "east", "2025-12-03T12:00:00", LATER)],
        order_items=[("O9", 1, "P1", 5, "10.00", LATER)],
    )
    rep = shop.run()
    assert rep["dates"] == []
    assert shop.snapshot() == before
    # and its items arriving later (or corrected) reach no date either
    shop.batch(order_items=[("O9", 2, "P2", 1, "5.50", LATER2)])
    assert shop.run()["dates"] == []
    assert shop.snapshot() == before


def test_move_to_another_month_rebuilds_both_dates_and_both_months(shop: Shop) -> None:
    nov30 = date(2025, 11, 30)
    shop.batch(orders=[("O6", "C3", "paid", "north", "2025-11-30T12:00:00", LATER)])
    rep = shop.run()
    assert dates(rep) == [nov30, D5]
    assert reasons(rep) == {nov30: "missing", D5: "stale"}
    daily = shop.daily()
    assert D5 not in daily
    assert daily[nov30] == (1, 2, dec("11.00"), 1, dec("11.00"))  # O6: 2 * 5.50
    # November: O6 11.00; December: 203.00 - 11.00 = 192.00 over 5 orders
    assert shop.q("SELECT month, order_count, revenue FROM marts.monthly_sales ORDER BY 1") == [
        (date(2025, 11, 1), 1, dec("11.00")),
        (date(2025, 12, 1), 5, dec("192.00")),
    ]


def test_order_given_to_another_customer_updates_both_customers(shop: Shop) -> None:
    shop.batch(orders=[("O3", "C2", "paid", "east", "2025-12-02T09:00:00", LATER)])  # was C1
    rep = shop.run()
    assert dates(rep) == [D2]
    assert rep["keyed"] == {"customer_metrics": 2}
    assert shop.q(
        "SELECT customer_id, first_order_date, last_order_date, order_count, lifetime_value, "
        "avg_order_value FROM marts.customer_metrics WHERE customer_id IN ('C1', 'C2') "
        "ORDER BY 1"
    ) == [
        ("C1", D1, D1, 1, dec("25.50"), dec("25.50")),  # O1 only
        # O2 10.00 + O3 16.50 + O5 40.00 = 66.50; 66.50 / 3 = 22.1666... -> 22.17
        ("C2", D1, D4, 3, dec("66.50"), dec("22.17")),
    ]


def test_same_values_spelled_differently_rebuild_nothing(shop: Shop) -> None:
    before = shop.snapshot()
    shop.batch(
        # 09:00 Tokyo is 00:00 UTC; padded, upper-cased and full-width text normalise back
        orders=[("O3", " C1 ", "PAID", "ｅａｓｔ", "2025-12-02T00:00:00Z", LATER)],
        order_items=[("O1", " 1", "P1", " 2 ", "10.0", LATER)],
        products=[("P1", "Widget ", "GADGETS", LATER)],
        customers=[("C1", "Alice", "ALICE@Example.COM", "east", LATER)],
    )
    rep = shop.run()
    assert rep["dates"] == []
    assert rep["keyed"] == {}
    assert shop.snapshot() == before


def test_resent_file_and_copies_of_current_rows_rebuild_nothing(shop: Shop) -> None:
    before = shop.snapshot()
    # the very same files again: ingest skips them all, no batch
    ing = shop.project.ingest("sales", [shop.folders[0]])
    assert ing.batch_id is None
    assert len(ing.skipped) == 4
    rep = shop.run()
    assert rep["dates"] == [] and rep["batches"] == []
    # a different file (other rows, other order) holding exact copies of current rows
    shop.batch(
        orders=[ORDERS[3], ORDERS[0]],
        order_items=[ITEMS[2], ITEMS[0]],
        products=[PRODUCTS[1]],
        customers=[CUSTOMERS[2]],
    )
    rep = shop.run()
    assert len(rep["batches"]) == 1
    assert rep["dates"] == []
    assert rep["reasons"] == {}
    assert rep["keyed"] == {}
    assert shop.snapshot() == before


def test_version_only_bump_rebuilds_nothing(shop: Shop) -> None:
    before = shop.snapshot()
    shop.batch(
        orders=[("O3", "C1", "paid", "east", "2025-12-02T09:00:00", LATER)],
        order_items=[("O4", 1, "P3", 1, "100.00", LATER)],
        products=[("P1", "Widget", "gadgets", LATER)],
        customers=[("C1", "Alice", "alice@example.com", "east", LATER)],
    )
    rep = shop.run()
    assert len(rep["batches"]) == 1
    assert rep["dates"] == []
    assert rep["reasons"] == {}
    assert rep["keyed"] == {}
    assert shop.snapshot() == before


def test_older_version_arriving_late_rebuilds_nothing(shop: Shop) -> None:
    before = shop.snapshot()
    shop.batch(
        # older than the current O3 (2025-12-02T09:00): loses, even though it says cancelled
        orders=[("O3", "C1", "cancelled", "east", "2025-12-02T09:00:00", "2025-12-02T08:00:00")],
        # older than the current O1/1 (2025-12-01T10:00)
        order_items=[("O1", 1, "P1", 9, "10.00", "2025-12-01T09:00:00")],
        products=[("P2", "Old Gizmo", "tools", "2025-10-01T00:00:00")],
        customers=[("C3", "Old Carol", "carol@example.com", "north", "2025-10-01T00:00:00")],
    )
    rep = shop.run()
    assert rep["dates"] == []
    assert rep["keyed"] == {}
    assert shop.snapshot() == before


def test_quarantined_correction_rebuilds_nothing(shop: Shop) -> None:
    before = shop.snapshot()
    # quantity 0 is below the minimum 1: quarantined, it never wins over the current O1/1
    shop.batch(order_items=[("O1", 1, "P1", 0, "10.00", LATER)])
    rep = shop.run()
    assert rep["dates"] == []
    assert shop.snapshot() == before


def test_items_before_their_order_wait_then_rebuild_its_date(shop: Shop) -> None:
    shop.batch(
        order_items=[
            ("O7", 1, "P2", 2, "5.50", LATER),  # 11.00
            ("O7", 2, "P3", 1, "100.00", LATER),  # 100.00 -> O7 111.00, 3 items
        ]
    )
    rep = shop.run()
    assert rep["dates"] == []
    assert "O7" not in shop.facts()
    shop.batch(orders=[("O7", "C3", "paid", "north", "2025-12-04T12:00:00", LATER)])
    rep = shop.run()
    assert dates(rep) == [D4]
    assert reasons(rep) == {D4: "stale"}
    # D4: O5 40.00 + O7 111.00 = 151.00; items 4 + 3 = 7; C2, C3; 151.00 / 2 = 75.50
    assert shop.daily()[D4] == (2, 7, dec("151.00"), 2, dec("75.50"))


def test_product_rename_rebuilds_every_date_it_was_sold_on(shop: Shop) -> None:
    # P1 was sold on D1 (O1, O2) and D4 (O5), nowhere else
    shop.batch(products=[("P1", "Widget Pro", "gadgets", LATER)])
    rep = shop.run()
    assert dates(rep) == [D1, D4]
    assert reasons(rep) == {D1: "stale", D4: "stale"}
    assert shop.q(
        "SELECT sales_date, product_name FROM marts.daily_product_sales "
        "WHERE product_id = 'P1' ORDER BY 1"
    ) == [(D1, "Widget Pro"), (D4, "Widget Pro")]
    # a new product never sold reaches no date
    shop.batch(products=[("P9", "Unsold", "misc", LATER)])
    assert shop.run()["dates"] == []


def test_product_of_only_a_cancelled_order_rebuilds_nothing(shop: Shop) -> None:
    shop.batch(orders=[("O4", "C3", "cancelled", "north", "2025-12-03T09:00:00", LATER)])
    assert dates(shop.run()) == [D3]
    # P3 is only on O4, now cancelled: its rename reaches no mart row
    shop.batch(products=[("P3", "Thingamajig", "misc", LATER)])
    assert shop.run()["dates"] == []


def test_customer_rename_rebuilds_no_date_but_updates_customer_metrics(shop: Shop) -> None:
    before = shop.snapshot()
    shop.batch(customers=[("C2", "Robert", "bob@example.com", "south", LATER)])
    rep = shop.run()
    assert rep["dates"] == []
    assert rep["reasons"] == {}
    assert rep["keyed"] == {"customer_metrics": 1}
    # C2: O2 (D1, 10.00) + O5 (D4, 40.00) = 50.00 over 2 orders, 25.00 each
    assert shop.q(
        "SELECT customer_name, region, first_order_date, last_order_date, order_count, "
        "lifetime_value, avg_order_value FROM marts.customer_metrics WHERE customer_id = 'C2'"
    ) == [("Robert", "south", D1, D4, 2, dec("50.00"), dec("25.00"))]
    after = shop.snapshot()
    for m in PARTITIONED:
        assert after[m] == before[m], m


def test_change_to_an_item_of_a_cancelled_order_rebuilds_nothing(shop: Shop) -> None:
    shop.batch(orders=[("O2", "C2", "cancelled", "west", "2025-12-01T11:00:00", LATER)])
    rep = shop.run()
    assert dates(rep) == [D1]
    # D1 keeps O1 only: 25.50, 3 items
    assert shop.daily()[D1] == (1, 3, dec("25.50"), 1, dec("25.50"))
    before = shop.snapshot()
    shop.batch(order_items=[("O2", 1, "P1", 7, "10.00", LATER2)])
    rep = shop.run()
    assert rep["dates"] == []
    assert shop.snapshot() == before


def test_requested_date_rebuilds_only_it(shop: Shop) -> None:
    rep = shop.run(dates=[D3])
    assert dates(rep) == [D3]
    assert reasons(rep) == {D3: "requested"}
    # a late batch dirties D2 and D5; asking for D2 rebuilds only D2, D5 stays dirty
    shop.batch(
        order_items=[
            ("O3", 1, "P2", 4, "5.50", LATER),  # O3: 3 -> 4 items, 22.00
            ("O6", 1, "P2", 1, "5.50", LATER),  # O6: 2 -> 1 item, 5.50
        ]
    )
    rep = shop.run(dates=[D2])
    assert dates(rep) == [D2]
    assert reasons(rep) == {D2: "requested"}
    assert shop.daily()[D2] == (1, 4, dec("22.00"), 1, dec("22.00"))
    assert shop.daily()[D5] == BASE_DAILY[D5]
    assert shop.project.status("sales")["partitions"]["dirty"] == [D5]
    rep = shop.run()
    assert dates(rep) == [D5]
    assert reasons(rep) == {D5: "stale"}
    assert shop.daily()[D5] == (1, 1, dec("5.50"), 1, dec("5.50"))


def test_start_end_range_rebuilds_exactly_the_range(shop: Shop) -> None:
    rep = shop.run(start=D2, end=D4)
    assert dates(rep) == [D2, D3, D4]
    assert reasons(rep) == {D2: "requested", D3: "requested", D4: "requested"}
    # a one-day range
    rep = shop.run(start=D5, end=D5)
    assert dates(rep) == [D5]
    assert reasons(rep) == {D5: "requested"}


def test_rebuilding_any_date_any_number_of_times_gives_identical_marts(shop: Shop) -> None:
    # a late batch first (a move D1 -> D3 and a correction on D4), so the marts are not just
    # the first build
    shop.batch(
        orders=[("O1", "C1", "paid", "east", "2025-12-03T10:00:00", LATER)],
        order_items=[("O5", 1, "P1", 5, "10.00", LATER)],
    )
    assert dates(shop.run()) == [D1, D3, D4]
    before = shop.snapshot()
    for kw in ({"dates": [D1]}, {"dates": [D1, D4]}, {"start": D1, "end": D5}):
        rep = shop.run(**kw)
        assert rep["status"] == "success", kw
        assert shop.snapshot() == before, kw
        # nothing changed, and the ledger says so
        changes = shop.project.diff("sales", rep["run_id"])["changes"]
        assert changes, kw
        assert all(c["added"] == c["removed"] == c["changed"] == 0 for c in changes), kw
    assert shop.run()["dates"] == []
    assert shop.snapshot() == before


# -- the engine as oracle: incremental == full rebuild ------------------------------------------

# A sequence of late batches, with a plain incremental run after each.
LATE_BATCHES: list[dict[str, Sequence[Sequence[Any]]]] = [
    {  # a late order on D2, and a quantity correction on D1
        "orders": [("O7", "C2", "paid", "west", "2025-12-02T15:00:00", LATER)],
        "order_items": [("O7", 1, "P3", 2, "7.25", LATER), ("O1", 1, "P1", 3, "10.00", LATER)],
    },
    {  # a move D1 -> D3, a cancellation on D4, items before their order
        "orders": [
            ("O1", "C1", "paid", "east", "2025-12-03T10:00:00", LATER2),
            ("O5", "C2", "cancelled", "west", "2025-12-04T09:00:00", LATER),
        ],
        "order_items": [("O8", 1, "P2", 6, "5.50", LATER)],
    },
    {  # the waiting items' order; a product rename (category lower-cased); a customer rename
        "orders": [("O8", "C1", "pending", "east", "2025-12-05T20:00:00", LATER)],
        "products": [("P2", "Gizmo 2", "Tools", LATER)],
        "customers": [("C3", "Caroline", "caroline@example.com", "north", LATER)],
    },
    {  # an older version, a version-only bump, an item of a cancelled order: no mart change
        "orders": [("O3", "C2", "refunded", "west", "2025-12-02T09:00:00", "2025-11-30")],
        "order_items": [
            ("O4", 1, "P3", 1, "100.00", LATER),
            ("O5", 1, "P1", 9, "10.00", LATER2),
        ],
    },
    {  # a move across the month boundary and back in one batch (the latest version wins)
        "orders": [
            ("O6", "C3", "paid", "north", "2025-11-30T23:00:00", LATER),
            ("O6", "C3", "paid", "north", "2025-12-01T00:30:00", LATER2),
        ]
    },
]


def test_incremental_equals_full_rebuild_from_scratch(
    shop: Shop, engine_name: str, tmp_path: Path
) -> None:
    planned = []
    for rows in LATE_BATCHES:
        shop.batch(**rows)
        rep = shop.run()
        assert rep["status"] == "success"
        planned.append(dates(rep))
    assert planned == [
        [D1, D2],  # O1 corrected, O7 new
        [D1, D3, D4],  # O1 moved D1 -> D3, O5 cancelled; O8's items wait
        # O8 arrives (D5); P2 is now sold on D2 (O3), D3 (O1 line 2, moved) and D5 (O6, O8);
        # the customer rename reaches no date
        [D2, D3, D5],
        [],  # nothing reaches a mart
        [D1, D5],  # O6 moved D5 -> D1 (its intermediate 11-30 version never won)
    ]
    inc = shop.snapshot((*MARTS, *VIEWS))

    # fresh warehouses on the same engine, the same files, then ONE run:
    # (a) ingested batch by batch as above, (b) every file in one single batch
    oracles: list[Warehouse] = []
    try:
        for i, by_batch in enumerate((True, False)):
            url, wh = fresh_warehouse(engine_name, tmp_path / f"oracle{i}")
            oracles.append(wh)
            o = Project(warehouse=url, lock_timeout=5)
            for group in [[f] for f in shop.folders] if by_batch else [shop.folders]:
                o.ingest("sales", group)
            assert o.run("sales").status == "success"
            full = Shop(o, wh, tmp_path).snapshot((*MARTS, *VIEWS))
            for t in (*MARTS, *VIEWS):
                assert inc[t] == full[t], (t, by_batch)
    finally:
        for wh in oracles:
            if isinstance(wh, str):
                pg.drop_database(wh)

    # and hand-computed anchors of the final state
    daily = shop.daily()
    # D1: O2 10.00 + O6 (moved to 12-01 00:30 Tokyo) 11.00 = 21.00; items 1 + 2; C2, C3
    assert daily[D1] == (2, 3, dec("21.00"), 2, dec("10.50"))
    # D2: O3 16.50 + O7 14.50 = 31.00; items 3 + 2
    assert daily[D2] == (2, 5, dec("31.00"), 2, dec("15.50"))
    # D3: O4 100.00 + O1 (3 * 10.00 + 5.50 = 35.50) = 135.50; items 1 + 4; 135.50 / 2 = 67.75
    assert daily[D3] == (2, 5, dec("135.50"), 2, dec("67.75"))
    assert D4 not in daily  # O5 cancelled
    # D5: O8 6 * 5.50 = 33.00 (O6 moved away)
    assert daily[D5] == (1, 6, dec("33.00"), 1, dec("33.00"))
    # November holds nothing; December: 21.00 + 31.00 + 135.50 + 33.00 = 220.50 over 7 orders
    assert shop.q("SELECT month, order_count, revenue FROM marts.monthly_sales") == [
        (date(2025, 12, 1), 7, dec("220.50"))
    ]
    assert shop.q(
        "SELECT product_name, category FROM marts.daily_product_sales WHERE product_id = 'P2' "
        "AND sales_date = ?",
        [D5],
    ) == [("Gizmo 2", "tools")]


# -- the diff ledger -----------------------------------------------------------------------------


def changes_of(doc: dict[str, Any], mart: str, partition: date | str) -> list[dict[str, Any]]:
    return [c for c in doc["changes"] if c["mart"] == mart and c["partition"] == str(partition)]


@pytest.fixture(params=["materialised", "streamed"])
def delta_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The ledger's two ways to the rows that differ: a temp table (small), a view (large)."""
    if request.param == "streamed":
        import shukei.runner.diff

        monkeypatch.setattr(shukei.runner.diff, "DELTA_ROWS", 0)
    return str(request.param)


def test_diff_after_a_correction_shows_the_changed_row_and_totals(
    shop: Shop, delta_path: str
) -> None:
    shop.batch(order_items=[("O1", 1, "P1", 3, "10.00", LATER)])  # quantity 2 -> 3
    rep = shop.run()
    doc = shop.project.diff("sales")
    assert doc["run_id"] == rep["run_id"]
    assert {c["partition"] for c in doc["changes"] if c["mart"] in PARTITIONED[:4]} == {
        "2025-12-01"
    }
    [ds] = changes_of(doc, "daily_sales", D1)
    assert (ds["rows_before"], ds["rows_after"]) == (1, 1)
    assert (ds["added"], ds["removed"], ds["changed"]) == (0, 0, 1)
    # revenue 35.50 -> 45.50 (+1 * 10.00); item_count 4 -> 5; order_count 2 -> 2
    assert Decimal(ds["totals_before"]["revenue"]) == dec("35.50")
    assert Decimal(ds["totals_after"]["revenue"]) == dec("45.50")
    assert int(ds["totals_before"]["item_count"]) == 4
    assert int(ds["totals_after"]["item_count"]) == 5
    assert int(ds["totals_before"]["order_count"]) == int(ds["totals_after"]["order_count"]) == 2
    [of] = changes_of(doc, "order_facts", D1)
    # O1 changed (25.50 -> 35.50), O2 did not
    assert (of["rows_before"], of["rows_after"], of["added"], of["removed"], of["changed"]) == (
        2,
        2,
        0,
        0,
        1,
    )
    assert Decimal(of["totals_before"]["revenue"]) == dec("35.50")
    assert Decimal(of["totals_after"]["revenue"]) == dec("45.50")
    [mo] = changes_of(doc, "monthly_sales", "2025-12-01")
    # month 203.00 -> 213.00
    assert Decimal(mo["totals_before"]["revenue"]) == dec("203.00")
    assert Decimal(mo["totals_after"]["revenue"]) == dec("213.00")
    # the keyed mart: only C1 was rebuilt; lifetime value O1 + O3 = 25.50 + 16.50 = 42.00 -> 52.00
    [cm] = changes_of(doc, "customer_metrics", "*")
    assert (cm["rows_before"], cm["rows_after"], cm["changed"]) == (1, 1, 1)
    assert Decimal(cm["totals_before"]["lifetime_value"]) == dec("42.00")
    assert Decimal(cm["totals_after"]["lifetime_value"]) == dec("52.00")


def test_diff_of_a_moved_order_shows_removed_and_added_rows(shop: Shop, delta_path: str) -> None:
    shop.batch(orders=[("O1", "C1", "paid", "east", "2025-12-03T10:00:00", LATER)])
    shop.run()
    doc = shop.project.diff("sales")
    [d1] = changes_of(doc, "order_facts", D1)
    # D1 had O1 and O2, keeps O2: one row removed
    assert (d1["rows_before"], d1["rows_after"], d1["added"], d1["removed"], d1["changed"]) == (
        2,
        1,
        0,
        1,
        0,
    )
    assert Decimal(d1["totals_before"]["revenue"]) == dec("35.50")
    assert Decimal(d1["totals_after"]["revenue"]) == dec("10.00")
    [d3] = changes_of(doc, "order_facts", D3)
    # D3 had O4, gets O1: one row added; 100.00 -> 125.50
    assert (d3["rows_before"], d3["rows_after"], d3["added"], d3["removed"], d3["changed"]) == (
        1,
        2,
        1,
        0,
        0,
    )
    assert Decimal(d3["totals_before"]["revenue"]) == dec("100.00")
    assert Decimal(d3["totals_after"]["revenue"]) == dec("125.50")
    [s1] = changes_of(doc, "daily_sales", D1)
    assert s1["changed"] == 1
    assert Decimal(s1["totals_after"]["revenue"]) == dec("10.00")


def test_diff_of_an_earlier_run_and_of_an_unknown_run(shop: Shop) -> None:
    shop.batch(order_items=[("O1", 1, "P1", 3, "10.00", LATER)])
    first = shop.run()
    shop.batch(orders=[("O5", "C2", "cancelled", "west", "2025-12-04T09:00:00", LATER)])
    second = shop.run()
    assert shop.project.diff("sales")["run_id"] == second["run_id"]
    doc = shop.project.diff("sales", run_id=first["run_id"])
    assert doc["run_id"] == first["run_id"]
    assert doc["status"] == "success"
    [ds] = changes_of(doc, "daily_sales", D1)
    assert Decimal(ds["totals_after"]["revenue"]) == dec("45.50")
    assert changes_of(doc, "daily_sales", D4) == []
    later = shop.project.diff("sales", run_id=second["run_id"])
    [d4] = changes_of(later, "daily_sales", D4)
    # D4 lost its only order: its one row removed, 40.00 -> nothing
    assert (d4["rows_before"], d4["rows_after"], d4["removed"]) == (1, 0, 1)
    assert Decimal(d4["totals_before"]["revenue"]) == dec("40.00")
    assert d4["totals_after"]["revenue"] is None
    with pytest.raises(UsageError):
        shop.project.diff("sales", run_id="20990101T000000-nosuch")
