"""Every mart's and view's figures on a small hand-computed data set, in two batches.

The data (business timezone Asia/Tokyo; timestamps without offset are Tokyo time):

  batch 1  customers c1 Alice/east, c2 Bob/west; products p1 Pen/Stationery, p2 Mug/Kitchen
           orders and items below; items of o6 arrive, o6 itself does not yet
  batch 2  c1 -> Alice Smith/north; p1 -> Pen Pro/Office; o3 -> refunded; o6 arrives
           (no customer); o2 line 1 re-priced 1.00 -> 1.50

  order  day    customer status      lines (qty x price)                       counted revenue
  o1     11-30  c1   paid            2 x 1.25 (p1), 1 x 1.00 (p2)              3.50, 3 items
  o2     11-30  c2   paid            3 x 1.00 -> 1.50 (p2); line 2 qty 1e3 bad 4.50, 3 items
  o3     11-30  c1   paid->refunded  5 x 10.00 (p1)                            (50.00 in b1 only)
  o4     11-30  c2   cancelled       1 x 99.00 (p2)                            no
  o5     11-30  c1   paid            qty 0 and qty abc: no valid line          no
  o7     11-30  c4   paid            1 x 2.00 (p1); c4 is no known customer    2.00, 1 item
  o6     12-01  -    paid (batch 2)  1 x 0.10 (p9, unknown product)            0.10, 1 item
  o8     12-01  c2   paid            1 x 0.15 (p1)                             0.15, 1 item
  o10    12-02  c1   paid            created 2025-12-01T15:30:00Z = 12-02 00:30 JST
                                     1 x 1.00 (p2), 1 x 0.25 (p2)              1.25, 2 items
  o11    12-02  c1   paid            1 x 1.00 (p2)                             1.00, 1 item
  o12    12-03  c2   cancelled       1 x 5.00 (p1)                             no
  o13    12-03  c1   " Cancelled "   2 x 3.00 (p2)                             no
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import pg
from conftest import ENGINES, Warehouse, query, write_entity
from shukei.project import Project

D = Decimal
NOV30, DEC1, DEC2, DEC3 = (
    date(2025, 11, 30),
    date(2025, 12, 1),
    date(2025, 12, 2),
    date(2025, 12, 3),
)
OLD = "2025-11-01T00:00:00"
NEW = "2025-12-05T00:00:00"


def srt(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows in a fixed order that does not depend on the engine's text collation."""
    return sorted(rows, key=lambda r: [(v is None, "" if v is None else v) for v in r])


# -- the data set -------------------------------------------------------------------------------

B1_CUSTOMERS = [
    ("c1", "Alice", "alice@example.com", "east", OLD),
    ("c2", "Bob", "bob@example.com", "west", OLD),
]
B1_PRODUCTS = [("p1", "Pen", "Stationery", OLD), ("p2", "Mug", "Kitchen", OLD)]
B1_ORDERS = [
    ("o1", "c1", "paid", "east", "2025-11-30T09:00:00", "2025-11-30T09:00:00"),
    ("o2", "c2", "paid", "west", "2025-11-30T10:00:00", "2025-11-30T10:00:00"),
    ("o3", "c1", "paid", "east", "2025-11-30T11:00:00", "2025-11-30T11:00:00"),
    ("o4", "c2", "cancelled", "west", "2025-11-30T12:00:00", "2025-11-30T12:00:00"),
    ("o5", "c1", "paid", "east", "2025-11-30T13:00:00", "2025-11-30T13:00:00"),
    ("o7", "c4", "paid", "south", "2025-11-30T14:00:00", "2025-11-30T14:00:00"),
    ("o8", "c2", "paid", "west", "2025-12-01T11:00:00", "2025-12-01T11:00:00"),
    ("o10", "c1", "paid", "east", "2025-12-01T15:30:00Z", "2025-12-01T15:30:00Z"),
    ("o11", "c1", "paid", "east", "2025-12-02T09:00:00", "2025-12-02T09:00:00"),
    ("o12", "c2", "cancelled", "west", "2025-12-03T10:00:00", "2025-12-03T10:00:00"),
    ("o13", "c1", " Cancelled ", "east", "2025-12-03T11:00:00", "2025-12-03T11:00:00"),
]
T = "2025-11-30T09:00:00"
B1_ITEMS = [
    ("o1", "1", "p1", "2", "1.25", T),
    ("o1", "2", "p2", "1", "1.00", T),
    ("o2", "1", "p2", "3", "1.00", T),
    ("o2", "2", "p1", "1e3", "1.00", T),  # quarantined: o2 keeps its valid line 1
    ("o3", "1", "p1", "5", "10.00", T),
    ("o4", "1", "p2", "1", "99.00", T),
    ("o5", "1", "p1", "0", "1.00", T),  # quarantined
    ("o5", "2", "p2", "abc", "1.00", T),  # quarantined: o5 has no valid line
    ("o6", "1", "p9", "1", "0.10", T),  # before its order (batch 2); p9 is never described
    ("o7", "1", "p1", "1", "2.00", T),
    ("o8", "1", "p1", "1", "0.15", T),
    ("o10", "1", "p2", "1", "1.00", T),
    ("o10", "2", "p2", "1", "0.25", T),
    ("o11", "1", "p2", "1", "1.00", T),
    ("o12", "1", "p1", "1", "5.00", T),
    ("o13", "1", "p2", "2", "3.00", T),
]
B2_CUSTOMERS = [("c1", "Alice Smith", "alice@example.com", "north", NEW)]
B2_PRODUCTS = [("p1", "Pen Pro", "Office", NEW)]
B2_ORDERS = [
    ("o3", "c1", "refunded", "east", "2025-11-30T11:00:00", "2025-12-04T00:00:00"),
    ("o6", None, "paid", "east", "2025-12-01T10:00:00", "2025-12-01T10:00:00"),
]
B2_ITEMS = [("o2", "1", "p2", "3", "1.50", "2025-12-04T00:00:00")]


def write_batch(folder: Path, batch: dict[str, list[tuple[Any, ...]]]) -> Path:
    for entity, rows in batch.items():
        write_entity(folder, entity, rows)
    return folder


@dataclass
class Built:
    wh: Warehouse
    after_b1: dict[str, list[tuple[Any, ...]]]


DAILY = (
    "SELECT sales_date, order_count, item_count, revenue, customer_count, avg_order_value "
    "FROM marts.daily_sales"
)
PRODUCT = (
    "SELECT sales_date, product_id, product_name, category, quantity, revenue, order_count "
    "FROM marts.daily_product_sales"
)
CUSTOMER = (
    "SELECT customer_id, customer_name, region, first_order_date, last_order_date, order_count, "
    "lifetime_value, avg_order_value FROM marts.customer_metrics"
)


@pytest.fixture(scope="module", params=ENGINES)
def built(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Built]:
    """Ingest and run batch 1, snapshot, then batch 2 and run again (once per engine)."""
    name = str(request.param)
    if name == "postgresql" and pg.admin_url() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no PostgreSQL server or binaries are available")
        pytest.skip("no PostgreSQL server is running and no PostgreSQL binaries were found")
    root = tmp_path_factory.mktemp(f"marts_{name}")
    if name == "duckdb":
        wh: Warehouse = root / "wh" / "shukei.duckdb"
        url = f"duckdb:///{wh}"
    else:
        url = pg.create_database()
        wh = url
    try:
        with pytest.MonkeyPatch.context() as mp:
            for k in list(os.environ):
                if k.startswith("SHUKEI_"):
                    mp.delenv(k)
            mp.chdir(root)
            project = Project(warehouse=url, lock_timeout=5)
        b1 = {
            "customers": B1_CUSTOMERS,
            "products": B1_PRODUCTS,
            "orders": B1_ORDERS,
            "order_items": B1_ITEMS,
        }
        project.ingest("sales", [write_batch(root / "b1", b1)])
        assert project.run("sales").status == "success"
        after_b1 = {
            "daily": srt(query(wh, DAILY)),
            "product": srt(query(wh, PRODUCT)),
            "customer": srt(query(wh, CUSTOMER)),
        }
        b2 = {
            "customers": B2_CUSTOMERS,
            "products": B2_PRODUCTS,
            "orders": B2_ORDERS,
            "order_items": B2_ITEMS,
        }
        project.ingest("sales", [write_batch(root / "b2", b2)])
        assert project.run("sales").status == "success"
        yield Built(wh, after_b1)
    finally:
        if name != "duckdb":
            pg.drop_database(url)


# -- the marts ----------------------------------------------------------------------------------


def test_order_facts_one_row_per_counted_order(built: Built) -> None:
    got = srt(
        query(
            built.wh,
            "SELECT order_id, sales_date, customer_id, region, line_count, item_count, revenue "
            "FROM marts.order_facts",
        )
    )
    assert got == srt(
        [
            ("o1", NOV30, "c1", "east", 2, 3, D("3.50")),  # 2 x 1.25 + 1 x 1.00
            ("o2", NOV30, "c2", "west", 1, 3, D("4.50")),  # 3 x 1.50 (latest line version)
            ("o6", DEC1, None, "east", 1, 1, D("0.10")),
            ("o7", NOV30, "c4", "south", 1, 1, D("2.00")),
            ("o8", DEC1, "c2", "west", 1, 1, D("0.15")),
            ("o10", DEC2, "c1", "east", 2, 2, D("1.25")),  # 1.00 + 0.25
            ("o11", DEC2, "c1", "east", 1, 1, D("1.00")),
        ]
    )
    # o3 refunded, o4/o12/o13 cancelled, o5 without a valid line: absent


def test_daily_sales_after_the_first_batch(built: Built) -> None:
    assert built.after_b1["daily"] == [
        # 11-30: o1 3.50 + o2 3 x 1.00 + o3 5 x 10.00 + o7 2.00 = 58.50 over 4 orders;
        # items 3 + 3 + 5 + 1 = 12; customers c1, c2, c4; 58.50 / 4 = 14.625 -> 14.63
        (NOV30, 4, 12, D("58.50"), 3, D("14.63")),
        # 12-01: only o8 (o6's items wait for their order)
        (DEC1, 1, 1, D("0.15"), 1, D("0.15")),
        # 12-02: o10 1.25 + o11 1.00 = 2.25 over 2 orders -> 1.125 -> 1.13
        (DEC2, 2, 3, D("2.25"), 1, D("1.13")),
    ]


def test_daily_sales(built: Built) -> None:
    assert srt(query(built.wh, DAILY)) == [
        # 11-30: o1 3.50 + o2 4.50 + o7 2.00 = 10.00; 3 orders (o3 refunded now, o4 cancelled,
        # o5 no valid line); items 3 + 3 + 1 = 7; customers c1, c2, c4 = 3;
        # avg 10.00 / 3 = 3.333... -> 3.33
        (NOV30, 3, 7, D("10.00"), 3, D("3.33")),
        # 12-01: o6 0.10 + o8 0.15 = 0.25 over 2 orders; items 1 + 1; customers: c2 only (o6
        # has none); avg 0.25 / 2 = 0.125 -> 0.13 (half away from zero, not to even)
        (DEC1, 2, 2, D("0.25"), 1, D("0.13")),
        # 12-02: o10 1.25 + o11 1.00 = 2.25; items 2 + 1 = 3; c1; 2.25 / 2 = 1.125 -> 1.13
        (DEC2, 2, 3, D("2.25"), 1, D("1.13")),
    ]


def test_a_date_with_only_cancelled_orders_has_no_rows(built: Built) -> None:
    # 12-03 holds o12 (cancelled) and o13 (" Cancelled " -> cancelled) only
    for table in ("daily_sales", "daily_sales_by_region", "daily_product_sales", "order_facts"):
        assert query(
            built.wh, f"SELECT count(*) FROM marts.{table} WHERE sales_date = ?", (DEC3,)
        ) == [(0,)], table


def test_daily_sales_by_region(built: Built) -> None:
    got = srt(
        query(
            built.wh,
            "SELECT sales_date, region, order_count, item_count, revenue, customer_count "
            "FROM marts.daily_sales_by_region",
        )
    )
    assert got == srt(
        [
            (NOV30, "east", 1, 3, D("3.50"), 1),  # o1
            (NOV30, "west", 1, 3, D("4.50"), 1),  # o2 (o4 cancelled)
            (NOV30, "south", 1, 1, D("2.00"), 1),  # o7
            (DEC1, "east", 1, 1, D("0.10"), 0),  # o6: no customer
            (DEC1, "west", 1, 1, D("0.15"), 1),  # o8
            (DEC2, "east", 2, 3, D("2.25"), 1),  # o10 + o11, both c1
        ]
    )


def test_daily_product_sales_uses_the_latest_product_version(built: Built) -> None:
    # after batch 1 p1 was still Pen / stationery: o1 2 x 1.25 + o3 5 x 10.00 + o7 1 x 2.00
    assert (NOV30, "p1", "Pen", "stationery", 8, D("54.50"), 3) in built.after_b1["product"]
    assert srt(query(built.wh, PRODUCT)) == srt(
        [
            # p1 (now Pen Pro / office): o1 2 x 1.25 = 2.50, o7 1 x 2.00 = 2.00
            (NOV30, "p1", "Pen Pro", "office", 3, D("4.50"), 2),
            # p2: o1 1 x 1.00 = 1.00, o2 3 x 1.50 = 4.50
            (NOV30, "p2", "Mug", "kitchen", 4, D("5.50"), 2),
            (DEC1, "p1", "Pen Pro", "office", 1, D("0.15"), 1),  # o8
            (DEC1, "p9", None, None, 1, D("0.10"), 1),  # unknown product: still counted
            # p2: o10 1.00 + 0.25 (two lines, one order), o11 1.00 -> 3 items, 2 orders
            (DEC2, "p2", "Mug", "kitchen", 3, D("2.25"), 2),
        ]
    )


def test_monthly_sales_month_is_its_first_day(built: Built) -> None:
    got = srt(
        query(
            built.wh,
            "SELECT month, order_count, item_count, revenue, customer_count "
            "FROM marts.monthly_sales",
        )
    )
    assert got == [
        # November: the 11-30 figures
        (date(2025, 11, 1), 3, 7, D("10.00"), 3),
        # December: o6, o8, o10, o11 = 4 orders; items 1 + 1 + 2 + 1 = 5;
        # revenue 0.10 + 0.15 + 1.25 + 1.00 = 2.50; customers c2, c1 = 2
        (date(2025, 12, 1), 4, 5, D("2.50"), 2),
    ]


def test_customer_metrics(built: Built) -> None:
    assert built.after_b1["customer"] == [
        # c1 after batch 1: o1 3.50 + o3 50.00 + o10 1.25 + o11 1.00 = 55.75 / 4 = 13.9375
        ("c1", "Alice", "east", NOV30, DEC2, 4, D("55.75"), D("13.94")),
        # c2: o2 3.00 + o8 0.15 = 3.15 / 2 = 1.575 -> 1.58
        ("c2", "Bob", "west", NOV30, DEC1, 2, D("3.15"), D("1.58")),
        ("c4", None, None, NOV30, NOV30, 1, D("2.00"), D("2.00")),
    ]
    assert srt(query(built.wh, CUSTOMER)) == [
        # c1: o1 3.50 + o10 1.25 + o11 1.00 = 5.75 / 3 = 1.9166... -> 1.92; name and region
        # from the batch 2 version; o3 refunded, o5 no valid line, o13 cancelled
        ("c1", "Alice Smith", "north", NOV30, DEC2, 3, D("5.75"), D("1.92")),
        # c2: o2 4.50 + o8 0.15 = 4.65 / 2 = 2.325 -> 2.33 (half away from zero)
        ("c2", "Bob", "west", NOV30, DEC1, 2, D("4.65"), D("2.33")),
        # c4 ordered but was never described: NULL name and region
        ("c4", None, None, NOV30, NOV30, 1, D("2.00"), D("2.00")),
    ]
    # o6 has no customer: no customer_metrics row stands for "no customer"
    assert query(
        built.wh, "SELECT count(*) FROM marts.customer_metrics WHERE customer_id IS NULL"
    ) == [(0,)]


# -- the views ----------------------------------------------------------------------------------


def test_top_customers_view(built: Built) -> None:
    assert query(
        built.wh,
        "SELECT customer_id, customer_name, region, order_count, lifetime_value, "
        "avg_order_value, revenue_rank FROM marts.top_customers",
    ) == [
        ("c1", "Alice Smith", "north", 3, D("5.75"), D("1.92"), 1),
        ("c2", "Bob", "west", 2, D("4.65"), D("2.33"), 2),
        ("c4", None, None, 1, D("2.00"), D("2.00"), 3),
    ]


def test_category_performance_view(built: Built) -> None:
    assert query(
        built.wh,
        "SELECT category, products, quantity, revenue, order_lines FROM marts.category_performance",
    ) == [
        # kitchen (p2): 11-30 4 items 5.50 in 2 orders + 12-02 3 items 2.25 in 2 orders
        ("kitchen", 1, 7, D("7.75"), 4),
        # office (p1): 11-30 3 items 4.50 in 2 orders + 12-01 1 item 0.15 in 1 order
        ("office", 1, 4, D("4.65"), 3),
        # unknown product p9: 12-01 1 item 0.10
        (None, 1, 1, D("0.10"), 1),
    ]


def test_regional_sales_trend_view(built: Built) -> None:
    got = srt(
        query(
            built.wh,
            "SELECT date, region, order_count, revenue, revenue_7d FROM marts.regional_sales_trend",
        )
    )
    assert got == srt(
        [
            (NOV30, "east", 1, D("3.50"), D("3.50")),
            (DEC1, "east", 1, D("0.10"), D("3.60")),  # 3.50 + 0.10
            (DEC2, "east", 2, D("2.25"), D("5.85")),  # 3.50 + 0.10 + 2.25
            (NOV30, "west", 1, D("4.50"), D("4.50")),
            (DEC1, "west", 1, D("0.15"), D("4.65")),  # 4.50 + 0.15
            (NOV30, "south", 1, D("2.00"), D("2.00")),
        ]
    )


def test_weekly_sales_summary_view(built: Built) -> None:
    assert query(
        built.wh,
        "SELECT week_start, order_count, item_count, revenue FROM marts.weekly_sales_summary",
    ) == [
        # 2025-11-30 is a Sunday: its ISO week starts on Monday 2025-11-24
        (date(2025, 11, 24), 3, 7, D("10.00")),
        # Monday 2025-12-01 + Tuesday 12-02: 2 + 2 orders, 2 + 3 items, 0.25 + 2.25
        (date(2025, 12, 1), 4, 5, D("2.50")),
    ]


# -- types ----------------------------------------------------------------------------------------

MONEY = {
    "order_facts": ("revenue",),
    "daily_sales": ("revenue", "avg_order_value"),
    "daily_sales_by_region": ("revenue",),
    "daily_product_sales": ("revenue",),
    "monthly_sales": ("revenue",),
    "customer_metrics": ("lifetime_value", "avg_order_value"),
    "top_customers": ("lifetime_value", "avg_order_value"),
    "category_performance": ("revenue",),
    "regional_sales_trend": ("revenue", "revenue_7d"),
    "weekly_sales_summary": ("revenue",),
}


def test_money_columns_are_decimal_not_double(built: Built) -> None:
    rows = query(
        built.wh,
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'marts'",
    )
    types = {(t, c): str(ty).upper() for t, c, ty in rows}
    for table, cols in MONEY.items():
        for col in cols:
            ty = types[(table, col)]
            # DuckDB says DECIMAL(p,s), PostgreSQL says NUMERIC
            assert ty.startswith("DECIMAL") or ty == "NUMERIC", (table, col, ty)
            values = [r[0] for r in query(built.wh, f"SELECT {col} FROM marts.{table}")]
            assert values and all(isinstance(v, Decimal) for v in values), (table, col, values)
    # and a scale of 2 where DuckDB tells it
    for (table, col), ty in types.items():
        if ty.startswith("DECIMAL") and col in MONEY.get(table, ()):
            assert ty.endswith(",2)"), (table, col, ty)


# -- settings and view semantics, on their own warehouses ------------------------------------------


def test_business_timezone_setting_changes_the_sales_date(
    project: Project, warehouse_url: str, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    utc_project = Project(warehouse=warehouse_url, lock_timeout=5, timezone="UTC")
    d = tmp_path / "in"
    write_entity(
        d,
        "orders",
        [
            # 20:00 UTC on 1 Dec: 1 Dec in UTC (it would be 05:00 on 2 Dec in Tokyo)
            ("a", "c1", "paid", "east", "2025-12-01T20:00:00Z", "2025-12-01T20:00:00Z"),
            # the same instant written with +09:00
            ("b", "c1", "paid", "east", "2025-12-02T05:00:00+09:00", "2025-12-02T05:00:00+09:00"),
            # no offset: local time in the business timezone, now UTC -> 2 Dec
            ("c", "c2", "paid", "east", "2025-12-02T05:00:00", "2025-12-02T05:00:00"),
        ],
    )
    write_entity(
        d,
        "order_items",
        [
            ("a", "1", "p1", "1", "1.00", "2025-12-01T00:00:00Z"),
            ("b", "1", "p1", "1", "2.00", "2025-12-01T00:00:00Z"),
            ("c", "1", "p1", "1", "4.00", "2025-12-01T00:00:00Z"),
        ],
    )
    utc_project.ingest("sales", [d])
    utc_project.run("sales")
    assert srt(query(warehouse_path, "SELECT order_id, sales_date FROM staging.orders")) == [
        ("a", DEC1),
        ("b", DEC1),
        ("c", DEC2),
    ]
    assert srt(query(warehouse_path, DAILY)) == [
        # a 1.00 + b 2.00 = 3.00 over 2 orders of c1 -> avg 1.50
        (DEC1, 2, 2, D("3.00"), 1, D("1.50")),
        (DEC2, 1, 1, D("4.00"), 1, D("4.00")),
    ]
    # (in Tokyo all three would fall on 2 Dec: a and b at 05:00 JST, c at 05:00 JST)


def test_switching_the_business_timezone_matches_a_fresh_warehouse(
    project: Project, warehouse_url: str, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    """Same inputs, same settings, same marts: a warehouse first run in Tokyo and then switched
    to UTC must equal one built in UTC from the start (the previous test's figures)."""
    d = tmp_path / "in"
    write_entity(
        d,
        "orders",
        [
            ("a", "c1", "paid", "east", "2025-12-01T20:00:00Z", "2025-12-01T20:00:00Z"),
            ("b", "c1", "paid", "east", "2025-12-02T05:00:00+09:00", "2025-12-02T05:00:00+09:00"),
            ("c", "c2", "paid", "east", "2025-12-02T05:00:00", "2025-12-02T05:00:00"),
        ],
    )
    write_entity(
        d,
        "order_items",
        [
            ("a", "1", "p1", "1", "1.00", "2025-12-01T00:00:00Z"),
            ("b", "1", "p1", "1", "2.00", "2025-12-01T00:00:00Z"),
            ("c", "1", "p1", "1", "4.00", "2025-12-01T00:00:00Z"),
        ],
    )
    project.ingest("sales", [d])
    project.run("sales")
    # Tokyo: a and b are 05:00 JST on 2 Dec; c is 05:00 JST on 2 Dec: 1.00 + 2.00 + 4.00
    assert srt(query(warehouse_path, DAILY)) == [(DEC2, 3, 3, D("7.00"), 2, D("2.33"))]
    Project(warehouse=warehouse_url, lock_timeout=5, timezone="UTC").run("sales")
    # c has no offset: in UTC it means 05:00 UTC on 2 Dec, as in a fresh UTC warehouse
    assert srt(query(warehouse_path, "SELECT order_id, sales_date FROM staging.orders")) == [
        ("a", DEC1),
        ("b", DEC1),
        ("c", DEC2),
    ]
    assert srt(query(warehouse_path, DAILY)) == [
        (DEC1, 2, 2, D("3.00"), 1, D("1.50")),
        (DEC2, 1, 1, D("4.00"), 1, D("4.00")),
    ]


def test_regional_trend_revenue_7d_spans_seven_days_not_seven_rows(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    d = tmp_path / "in"
    write_entity(
        d,
        "orders",
        [
            ("o1", "c1", "paid", "east", "2025-12-01T10:00:00", "2025-12-01T10:00:00"),
            ("o2", "c1", "paid", "east", "2025-12-05T10:00:00", "2025-12-05T10:00:00"),
            ("o3", "c1", "paid", "east", "2025-12-20T10:00:00", "2025-12-20T10:00:00"),
        ],
    )
    write_entity(
        d,
        "order_items",
        [
            ("o1", "1", "p1", "1", "1.00", "2025-12-01T10:00:00"),
            ("o2", "1", "p1", "1", "2.00", "2025-12-01T10:00:00"),
            ("o3", "1", "p1", "1", "4.00", "2025-12-01T10:00:00"),
        ],
    )
    project.ingest("sales", [d])
    project.run("sales")
    got = srt(
        query(warehouse_path, "SELECT date, revenue, revenue_7d FROM marts.regional_sales_trend")
    )
    assert got == [
        (DEC1, D("1.00"), D("1.00")),
        (date(2025, 12, 5), D("2.00"), D("3.00")),  # 12-01..12-05 are within 7 days
        # 12-14..12-20 holds no other sale: the 1.00 of 12-01 and 2.00 of 12-05 are out
        (date(2025, 12, 20), D("4.00"), D("4.00")),
    ]
