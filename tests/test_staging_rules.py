"""Staging rules on tiny hand-made inputs: cleaning, strict typing, quarantine, versions, lineage.

Every expectation is written by hand below; the warehouse is read back with independent SQL.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import HEADERS, Warehouse, query, write_csv, write_entity
from shukei.errors import InputError
from shukei.project import Project

HOSTILE = "x'); DROP TABLE orders; --"


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    """An instant, written in UTC (compares equal to the same instant in any zone)."""
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


def srt(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows in a fixed order that does not depend on the engine's text collation."""
    return sorted(rows, key=lambda r: [(v is None, "" if v is None else v) for v in r])


def ingest_run(project: Project, folder: Path) -> None:
    project.ingest("sales", [folder])
    project.run("sales")


def reasons_by_row(wh: Warehouse, entity: str) -> dict[int, set[str]]:
    rows = query(wh, f"SELECT _row_no, _reason FROM staging.{entity}_quarantine")
    return {int(n): set(str(r).split("; ")) for n, r in rows}


# -- cleaning -------------------------------------------------------------------------------------


def test_text_is_nfkc_normalised_and_trimmed(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    d = tmp_path / "in"
    write_entity(
        d,
        "orders",
        [
            # full-width latin + digits in the key, full-width-space padded customer, half-width
            # katakana region (with a voiced mark: ｶﾞ -> ガ)
            (
                "Ｏ１",
                "\u3000c1\u3000",
                "paid",
                "ｶﾞｲｺｸ",
                "2025-12-01T10:00:00",
                "2025-12-01T10:00:00",
            ),
            # ASCII/tab padding; NBSP (U+00A0) padding becomes a space under NFKC and is trimmed
            (
                "  o2\t",
                "\u00a0c2\u00a0",
                "paid",
                " 東京 ",
                "2025-12-01T10:00:00",
                "2025-12-01T10:00",
            ),
        ],
    )
    write_entity(d, "products", [("p1", "ﾍﾟﾝ　", "Ｓｔａｔｉｏｎｅｒｙ", "2025-12-01T00:00:00")])
    write_entity(
        d, "customers", [("c1", "　Ａｌｉｃｅ　", "alice@example.com", "ｵｵｻｶ", "2025-12-01")]
    )
    ingest_run(project, d)

    assert srt(
        query(warehouse_path, "SELECT order_id, customer_id, region FROM staging.orders")
    ) == srt([("O1", "c1", "ガイコク"), ("o2", "c2", "東京")])
    # NFKC then lower for a `lower` column: Ｓｔａｔｉｏｎｅｒｙ -> Stationery -> stationery
    assert query(warehouse_path, "SELECT product_id, name, category FROM staging.products") == [
        ("p1", "ペン", "stationery")
    ]
    assert query(warehouse_path, "SELECT customer_id, name, region FROM staging.customers") == [
        ("c1", "Alice", "オオサカ")
    ]


def test_status_and_category_are_lower_cased(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    d = tmp_path / "in"
    write_entity(
        d,
        "orders",
        [
            ("o1", "c1", " Cancelled ", "East", "2025-12-01T10:00:00", "2025-12-01T10:00:00"),
            ("o2", "c1", "PAID", "East", "2025-12-01T10:00:00", "2025-12-01T10:00:00"),
            ("o3", "c1", "ＳＨＩＰＰＥＤ", "East", "2025-12-01T10:00:00", "2025-12-01T10:00:00"),
        ],
    )
    write_entity(d, "products", [("p1", "Pen", " Office Supplies ", "2025-12-01T00:00:00")])
    ingest_run(project, d)
    # status lower-cased and trimmed; region (plain text) keeps its case
    assert srt(query(warehouse_path, "SELECT order_id, status, region FROM staging.orders")) == [
        ("o1", "cancelled", "East"),
        ("o2", "paid", "East"),
        ("o3", "shipped", "East"),
    ]
    # product name keeps its case, category does not
    assert query(warehouse_path, "SELECT name, category FROM staging.products") == [
        ("Pen", "office supplies")
    ]


def test_email_lower_cased_and_invalid_email_becomes_null_row_kept(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    d = tmp_path / "in"
    write_entity(
        d,
        "customers",
        [
            ("c1", "Alice", " Alice@Example.COM ", "east", "2025-12-01T00:00:00"),
            ("c2", "Bob", "not-an-email", "west", "2025-12-01T00:00:00"),
            ("c3", "Carol", "carol@", "west", "2025-12-01T00:00:00"),
            ("c4", "Dan", "dan at example.com", "west", "2025-12-01T00:00:00"),
            # full-width email: NFKC gives DAVE@EXAMPLE.JP, lower-cased
            ("c5", "Dave", "ＤＡＶＥ＠ＥＸＡＭＰＬＥ．ＪＰ", "west", "2025-12-01T00:00:00"),
            ("c6", "Eve", "", "west", "2025-12-01T00:00:00"),
        ],
    )
    # an order too, so the run has a mart date (a customers-only run: see the test below)
    write_entity(d, "orders", [("o1", "c2", "paid", "west", "2025-12-01", "2025-12-01")])
    ingest_run(project, d)
    assert srt(query(warehouse_path, "SELECT customer_id, name, email FROM staging.customers")) == [
        ("c1", "Alice", "alice@example.com"),
        ("c2", "Bob", None),
        ("c3", "Carol", None),
        ("c4", "Dan", None),
        ("c5", "Dave", "dave@example.jp"),
        ("c6", "Eve", None),
    ]
    assert query(warehouse_path, "SELECT count(*) FROM staging.customers_quarantine") == [(0,)]


def test_a_batch_of_customers_only_is_merged(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    """Customers may arrive before any order: the run must merge them, not fail."""
    d = tmp_path / "in"
    write_entity(d, "customers", [("c1", "Alice", "Alice@Example.com", "east", "2025-12-01")])
    project.ingest("sales", [d])
    rep = project.run("sales")
    assert rep.status == "success"
    assert query(warehouse_path, "SELECT customer_id, email FROM staging.customers") == [
        ("c1", "alice@example.com")
    ]
    # no counted order, so no customer_metrics row for c1
    assert query(warehouse_path, "SELECT count(*) FROM marts.customer_metrics") == [(0,)]


# -- strict typing and quarantine -----------------------------------------------------------------


def test_strict_numbers_and_ranges_give_quarantine_reasons(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    d = tmp_path / "in"
    ts = "2025-12-01T10:00:00"
    write_entity(
        d,
        "order_items",
        [
            ("o1", "1", "p1", "12,5", "1.00", ts),  # row 1: decimal comma in an integer
            ("o1", "2", "p1", "abc", "1.00", ts),  # row 2
            ("o1", "3", "p1", "1e3", "1.00", ts),  # row 3: exponent is not an integer literal
            ("o1", "4", "p1", "1", "1.005", ts),  # row 4: 3 places for a 2-place decimal
            ("o1", "5", "p1", "1", "12,50", ts),  # row 5
            ("o1", "6", "p1", "1.5", "1.00", ts),  # row 6: a fraction is not an integer
            ("o1", "7", "p1", "0", "1.00", ts),  # row 7
            ("o1", "8", "p1", "-2", "1.00", ts),  # row 8
            ("o1", "9", "p1", "1", "-0.01", ts),  # row 9
            ("o1", "x", "p1", "1", "1.00", ts),  # row 10: the key part line_no
            ("o1", "11", "p1", "３", "２．５０", ts),  # row 11: full-width, valid after NFKC
            ("o1", "12", "p1", " 7 ", "0", ts),  # row 12: padded integer, zero price: valid
            ("o1", "13", "p1", "1", "1e3", ts),  # row 13
        ],
    )
    ingest_run(project, d)
    assert reasons_by_row(warehouse_path, "order_items") == {
        1: {"unparseable quantity: 12,5"},
        2: {"unparseable quantity: abc"},
        3: {"unparseable quantity: 1e3"},
        4: {"unparseable unit_price: 1.005"},
        5: {"unparseable unit_price: 12,50"},
        6: {"unparseable quantity: 1.5"},
        7: {"quantity below 1"},
        8: {"quantity below 1"},
        9: {"negative unit_price"},
        10: {"unparseable line_no: x"},
        13: {"unparseable unit_price: 1e3"},
    }
    assert query(
        warehouse_path,
        "SELECT line_no, quantity, unit_price, _row_no FROM staging.order_items ORDER BY 1",
    ) == [(11, 3, Decimal("2.50"), 11), (12, 7, Decimal("0.00"), 12)]


def test_missing_key_is_quarantined(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    d = tmp_path / "in"
    ts = "2025-12-01T10:00:00"
    write_entity(
        d,
        "orders",
        [
            ("", "c1", "paid", "east", ts, ts),  # row 1: empty key
            ("\u3000 ", "c1", "paid", "east", ts, ts),  # row 2: only (full-width) spaces
            ("o3", "c1", "paid", "east", ts, ts),  # row 3: fine
            ("o4", "c1", "paid", "east", "", ts),  # row 4: created_at is required
            ("o5", "c1", "paid", "east", ts, ""),  # row 5: the version is required
        ],
    )
    write_entity(d, "order_items", [("o3", "", "p1", "1", "1.00", ts)])
    ingest_run(project, d)
    assert reasons_by_row(warehouse_path, "orders") == {
        1: {"missing order_id"},
        2: {"missing order_id"},
        4: {"missing created_at"},
        5: {"missing updated_at"},
    }
    assert reasons_by_row(warehouse_path, "order_items") == {1: {"missing line_no"}}
    assert query(warehouse_path, "SELECT order_id FROM staging.orders") == [("o3",)]


def test_several_reasons_on_one_row_are_all_listed(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    d = tmp_path / "in"
    write_entity(d, "order_items", [("", "1", "p1", "abc", "-1", "yesterday")])
    ingest_run(project, d)
    assert reasons_by_row(warehouse_path, "order_items") == {
        1: {
            "missing order_id",
            "unparseable quantity: abc",
            "negative unit_price",
            "unparseable updated_at: yesterday",
        }
    }


def test_unparseable_timestamps_are_quarantined(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    d = tmp_path / "in"
    ok = "2025-12-01T10:00:00"
    write_entity(
        d,
        "orders",
        [
            ("o1", "c1", "paid", "east", "2025-13-45T99:00:00", ok),  # row 1
            ("o2", "c1", "paid", "east", ok, "yesterday"),  # row 2
            ("o3", "c1", "paid", "east", "2025-02-30", ok),  # row 3: no 30 February
            ("o4", "c1", "paid", "east", "2025-02-30T10:00:00+09:00", ok),  # row 4
            ("o5", "c1", "paid", "east", ok, ok),  # row 5: fine
        ],
    )
    ingest_run(project, d)
    assert reasons_by_row(warehouse_path, "orders") == {
        1: {"unparseable created_at: 2025-13-45T99:00:00"},
        2: {"unparseable updated_at: yesterday"},
        3: {"unparseable created_at: 2025-02-30"},
        4: {"unparseable created_at: 2025-02-30T10:00:00+09:00"},
    }
    assert query(warehouse_path, "SELECT order_id FROM staging.orders") == [("o5",)]


def test_timestamp_offsets_give_the_instant_and_the_tokyo_sales_date(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    d = tmp_path / "in"
    upd = "2025-12-05T00:00:00Z"
    write_entity(
        d,
        "orders",
        [
            # 15:30 UTC = 00:30 on 2 Dec in Tokyo (UTC+9)
            ("z", "c1", "paid", "east", "2025-12-01T15:30:00Z", upd),
            # 23:30+09:00 = 14:30 UTC, still 1 Dec in Tokyo
            ("plus9", "c1", "paid", "east", "2025-12-01T23:30:00+09:00", upd),
            # no offset = Tokyo local time: 23:30 JST = 14:30 UTC, 1 Dec
            ("naive", "c1", "paid", "east", "2025-12-01T23:30:00", upd),
            # space separator, no offset: 00:00 JST on 1 Dec = 15:00 UTC on 30 Nov
            ("space", "c1", "paid", "east", "2025-12-01 00:00:00", upd),
            # 10:00-05:00 = 15:00 UTC = 00:00 JST on 2 Dec
            ("minus5", "c1", "paid", "east", "2025-12-01T10:00:00-05:00", upd),
            # a date alone is midnight Tokyo: 15:00 UTC the day before
            ("dateonly", "c1", "paid", "east", "2025-12-01", upd),
        ],
    )
    ingest_run(project, d)
    got = {
        o: (c, sd, u)
        for o, c, sd, u in query(
            warehouse_path,
            "SELECT order_id, created_at, sales_date, updated_at FROM staging.orders",
        )
    }
    upd_utc = utc(2025, 12, 5)
    # aware datetimes compare as instants, whatever zone the driver returns them in
    assert got == {
        "dateonly": (utc(2025, 11, 30, 15), date(2025, 12, 1), upd_utc),
        "minus5": (utc(2025, 12, 1, 15), date(2025, 12, 2), upd_utc),
        "naive": (utc(2025, 12, 1, 14, 30), date(2025, 12, 1), upd_utc),
        "plus9": (utc(2025, 12, 1, 14, 30), date(2025, 12, 1), upd_utc),
        "space": (utc(2025, 11, 30, 15), date(2025, 12, 1), upd_utc),
        "z": (utc(2025, 12, 1, 15, 30), date(2025, 12, 2), upd_utc),
    }
    assert all(c.tzinfo is not None for c, _, _ in got.values())


# -- versions -------------------------------------------------------------------------------------


def test_latest_updated_at_wins_whatever_the_order_of_arrival(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    c = "2025-12-01T09:00:00"
    # batch 1: the newer version (12:00) comes first in the file, the older (11:00) after it
    b1 = tmp_path / "b1"
    write_entity(
        b1,
        "orders",
        [
            ("o1", "c1", "shipped", "east", c, "2025-12-01T12:00:00"),
            ("o1", "c1", "paid", "east", c, "2025-12-01T11:00:00"),
        ],
    )
    ingest_run(project, b1)
    # batch 2: an even older version of o1 arrives late: it loses to the current 12:00 one
    b2 = tmp_path / "b2"
    write_entity(b2, "orders", [("o1", "c1", "pending", "east", c, "2025-12-01T10:00:00")])
    ingest_run(project, b2)
    assert query(warehouse_path, "SELECT status, _batch_id, _row_no FROM staging.orders") == [
        ("shipped", 1, 1)
    ]
    # batch 3: a newer version (offset given: 04:00Z = 13:00 JST > 12:00 JST) replaces it
    b3 = tmp_path / "b3"
    write_entity(b3, "orders", [("o1", "c1", "delivered", "east", c, "2025-12-01T04:00:00Z")])
    ingest_run(project, b3)
    assert query(warehouse_path, "SELECT status, _batch_id FROM staging.orders") == [
        ("delivered", 3)
    ]
    assert query(
        warehouse_path,
        "SELECT _batch_id, _row_no, status, _reason FROM staging.orders_superseded ORDER BY 1, 2",
    ) == [
        (1, 1, "shipped", "replaced"),
        (1, 2, "paid", "superseded"),
        (2, 1, "pending", "superseded"),
    ]


def test_equal_updated_at_later_row_wins_within_a_file(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    d = tmp_path / "in"
    t = "2025-12-01T10:00:00"
    write_entity(
        d,
        "orders",
        [
            ("o1", "c1", "paid", "east", t, t),
            ("o1", "c1", "shipped", "east", t, t),
            ("o1", "c1", "delivered", "west", t, t),  # row 3: the last of three ties wins
        ],
    )
    ingest_run(project, d)
    assert query(warehouse_path, "SELECT status, region, _row_no FROM staging.orders") == [
        ("delivered", "west", 3)
    ]
    assert query(
        warehouse_path, "SELECT _row_no, _reason FROM staging.orders_superseded ORDER BY 1"
    ) == [(1, "superseded"), (2, "superseded")]


def test_equal_updated_at_later_file_path_wins_within_a_batch(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    d = tmp_path / "in"
    t = "2025-12-01T10:00:00"
    # orders_b.csv sorts after orders_a.csv; its row wins although it is row 1 of its file
    write_entity(d, "orders", [("o1", "c1", "shipped", "east", t, t)], suffix="_b")
    write_entity(
        d,
        "orders",
        [("o2", "c1", "paid", "east", t, t), ("o1", "c1", "paid", "east", t, t)],
        suffix="_a",
    )
    ingest_run(project, d)
    got = query(warehouse_path, "SELECT order_id, status, _source_file FROM staging.orders")
    assert srt([(o, s, Path(f).name) for o, s, f in got]) == [
        ("o1", "shipped", "orders_b.csv"),
        ("o2", "paid", "orders_a.csv"),
    ]


def test_equal_updated_at_later_batch_wins(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    t = "2025-12-01T10:00:00"
    b1, b2 = tmp_path / "b1", tmp_path / "b2"
    write_entity(b1, "orders", [("o1", "c1", "paid", "east", t, t)])
    ingest_run(project, b1)
    write_entity(b2, "orders", [("o1", "c1", "shipped", "east", t, t)])
    ingest_run(project, b2)
    assert query(warehouse_path, "SELECT status, _batch_id FROM staging.orders") == [("shipped", 2)]
    assert query(
        warehouse_path, "SELECT status, _batch_id, _reason FROM staging.orders_superseded"
    ) == [("paid", 1, "replaced")]


def test_later_batch_wins_a_tie_even_when_both_are_merged_in_one_run(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    t = "2025-12-01T10:00:00"
    b1, b2 = tmp_path / "b1", tmp_path / "b2"
    # batch 2's file path ("a") sorts before batch 1's ("z"): the batch decides, not the path
    write_entity(b1, "orders", [("o1", "c1", "paid", "east", t, t)], suffix="_z")
    write_entity(b2, "orders", [("o1", "c1", "shipped", "east", t, t)], suffix="_a")
    project.ingest("sales", [b1])
    project.ingest("sales", [b2])
    project.run("sales")
    assert query(warehouse_path, "SELECT status, _batch_id FROM staging.orders") == [("shipped", 2)]


def test_quarantined_newer_row_never_supersedes_the_valid_older_version(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    c = "2025-12-01T09:00:00"
    b1 = tmp_path / "b1"
    write_entity(
        b1,
        "orders",
        [
            ("o1", "c1", "paid", "east", c, "2025-12-01T10:00:00"),
            # newer version of o1 in the same file, but its created_at is unusable
            ("o1", "c1", "refunded", "east", "yesterday", "2025-12-01T11:00:00"),
        ],
    )
    write_entity(
        b1,
        "order_items",
        [
            ("o1", "1", "p1", "2", "5.00", "2025-12-01T10:00:00"),
            ("o1", "1", "p1", "0", "9.00", "2025-12-01T11:00:00"),  # newer but quantity 0
        ],
    )
    ingest_run(project, b1)
    b2 = tmp_path / "b2"
    write_entity(
        b2, "order_items", [("o1", "1", "p1", "abc", "9.00", "2025-12-01T12:00:00")]
    )  # newer still, unparseable quantity: arrives in a later batch
    write_entity(b2, "orders", [("o1", "c1", "cancelled", "east", c, "not a time")])
    ingest_run(project, b2)
    assert query(warehouse_path, "SELECT status, _batch_id, _row_no FROM staging.orders") == [
        ("paid", 1, 1)
    ]
    assert query(
        warehouse_path, "SELECT quantity, unit_price, _batch_id, _row_no FROM staging.order_items"
    ) == [(2, Decimal("5.00"), 1, 1)]
    assert query(warehouse_path, "SELECT count(*) FROM staging.orders_superseded") == [(0,)]
    assert query(warehouse_path, "SELECT count(*) FROM staging.order_items_quarantine") == [(2,)]
    # and the mart counts the valid version: 2 x 5.00 = 10.00 on 1 Dec
    assert query(warehouse_path, "SELECT sales_date, revenue FROM marts.daily_sales") == [
        (date(2025, 12, 1), Decimal("10.00"))
    ]


def test_exact_duplicate_rows_are_marked_duplicate(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    t = "2025-12-01T10:00:00"
    b1 = tmp_path / "b1"
    write_entity(
        b1,
        "orders",
        [
            ("o1", "c1", "paid", "east", t, t),  # row 1
            ("o1", "c1", "paid", "east", t, t),  # row 2: exact copy of row 1
            # row 3: same content after cleaning (padding, case of status): still a duplicate
            (" o1 ", "c1", " PAID ", "east", t, t),
        ],
    )
    ingest_run(project, b1)
    assert query(warehouse_path, "SELECT _row_no FROM staging.orders") == [(3,)]
    assert query(
        warehouse_path, "SELECT _row_no, _reason FROM staging.orders_superseded ORDER BY 1"
    ) == [(1, "duplicate"), (2, "duplicate")]
    # the same row re-sent in a new file (other content, so not skipped) is a duplicate too
    b2 = tmp_path / "b2"
    write_entity(
        b2, "orders", [("o2", "c2", "paid", "west", t, t), ("o1", "c1", "paid", "east", t, t)]
    )
    ingest_run(project, b2)
    assert query(
        warehouse_path,
        "SELECT _batch_id, _row_no, _reason FROM staging.orders_superseded ORDER BY 1, 2",
    ) == [(1, 1, "duplicate"), (1, 2, "duplicate"), (2, 2, "duplicate")]
    assert query(
        warehouse_path,
        "SELECT batch_id, rows_in, rows_used, rows_superseded, rows_duplicate, rows_quarantined "
        "FROM shukei.batch_counts WHERE entity = 'orders' ORDER BY 1",
    ) == [(1, 3, 1, 0, 2, 0), (2, 2, 1, 0, 1, 0)]


# -- conservation ---------------------------------------------------------------------------------


def test_conservation_per_batch_and_every_raw_row_in_exactly_one_place(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    c = "2025-12-01T09:00:00"
    b1 = tmp_path / "b1"
    write_entity(
        b1,
        "orders",
        [
            ("o1", "c1", "paid", "east", c, "2025-12-01T10:00:00"),  # 1: loses to row 2
            ("o1", "c1", "shipped", "east", c, "2025-12-01T11:00:00"),  # 2: used
            ("o2", "c2", "paid", "west", c, "2025-12-01T10:00:00"),  # 3: used (later replaced)
            ("o2", "c2", "paid", "west", c, "2025-12-01T10:00:00"),  # 4: duplicate of row 3...
            ("o3", "c3", "paid", "west", "yesterday", "2025-12-01T10:00:00"),  # 5: quarantined
        ],
    )
    # ...row 4 is the in-batch winner (later row), so row 3 is the duplicate. Either way:
    # batch 1 orders: in 5 = used 2 (o1, o2) + superseded 1 + duplicate 1 + quarantined 1
    write_entity(
        b1,
        "order_items",
        [
            ("o1", "1", "p1", "1", "1.00", "2025-12-01T10:00:00"),  # 1: used
            ("o1", "2", "p1", "0", "1.00", "2025-12-01T10:00:00"),  # 2: quarantined
        ],
    )
    # batch 1 items: in 2 = used 1 + 0 + 0 + quarantined 1
    ingest_run(project, b1)
    b2 = tmp_path / "b2"
    write_entity(
        b2,
        "orders",
        [
            ("o1", "c1", "pending", "east", c, "2025-12-01T09:30:00"),  # 1: older than current
            ("o2", "c2", "shipped", "west", c, "2025-12-01T12:00:00"),  # 2: used, replaces o2
            ("o1", "c1", "shipped", "east", c, "2025-12-01T11:00:00"),  # 3: = current o1: dup
            ("", "c9", "paid", "west", c, "2025-12-01T10:00:00"),  # 4: quarantined
            ("o5", "c5", "paid", "west", c, "yesterday"),  # 5: quarantined
        ],
    )
    # batch 2 orders: row 3 wins o1 within the batch, so row 1 is an in-batch "superseded";
    # row 3 equals the current o1 (same version, same content): "duplicate".
    # in 5 = used 1 (o2) + superseded 1 + duplicate 1 + quarantined 2
    ingest_run(project, b2)

    assert srt(
        query(
            warehouse_path,
            "SELECT batch_id, entity, rows_in, rows_used, rows_superseded, rows_duplicate, "
            "rows_quarantined FROM shukei.batch_counts",
        )
    ) == [
        (1, "order_items", 2, 1, 0, 0, 1),
        (1, "orders", 5, 2, 1, 1, 1),
        (2, "orders", 5, 1, 1, 1, 2),
    ]
    # where each raw row ended up, by hand
    places = query(
        warehouse_path,
        "SELECT _batch_id, _row_no, 'staging' FROM staging.orders "
        "UNION ALL SELECT _batch_id, _row_no, _reason FROM staging.orders_superseded "
        "UNION ALL SELECT _batch_id, _row_no, 'quarantine' FROM staging.orders_quarantine "
        "ORDER BY 1, 2",
    )
    assert places == [
        (1, 1, "superseded"),
        (1, 2, "staging"),
        (1, 3, "duplicate"),
        (1, 4, "replaced"),
        (1, 5, "quarantine"),
        (2, 1, "superseded"),
        (2, 2, "staging"),
        (2, 3, "duplicate"),
        (2, 4, "quarantine"),
        (2, 5, "quarantine"),
    ]
    # independent check: every raw row, by (_source_file, _row_no), is in exactly one place
    for ent in ("orders", "order_items"):
        bad = query(
            warehouse_path,
            f"""
            WITH placed AS (
                SELECT _source_file, _row_no FROM staging.{ent}
                UNION ALL SELECT _source_file, _row_no FROM staging.{ent}_superseded
                UNION ALL SELECT _source_file, _row_no FROM staging.{ent}_quarantine)
            SELECT * FROM (
                SELECT r._source_file, r._row_no,
                       (SELECT count(*) FROM placed p
                        WHERE p._source_file = r._source_file AND p._row_no = r._row_no) AS n
                FROM raw.{ent} r) AS q
            WHERE n <> 1
            """,
        )
        assert bad == []
        n_raw = query(warehouse_path, f"SELECT count(*) FROM raw.{ent}")[0][0]
        n_placed = query(
            warehouse_path,
            f"SELECT (SELECT count(*) FROM staging.{ent}) + "
            f"(SELECT count(*) FROM staging.{ent}_superseded) + "
            f"(SELECT count(*) FROM staging.{ent}_quarantine)",
        )[0][0]
        assert n_raw == n_placed == {"orders": 10, "order_items": 2}[ent]


@pytest.mark.parametrize("damage", ["lose", "duplicate"])
def test_conservation_check_fails_on_a_lost_or_duplicated_row(
    project: Project, tmp_path: Path, damage: str
) -> None:
    from shukei.errors import CheckFailed
    from shukei.staging.merge import _check_conservation

    d = tmp_path / "in"
    t = "2025-12-01T10:00:00"
    write_entity(
        d,
        "orders",
        [("o1", "c1", "paid", "east", t, t), ("o2", "c2", "paid", "west", t, t)],
    )
    ingest_run(project, d)
    with project.engine() as eng:
        eng.execute("DELETE FROM shukei.check_results")
        _check_conservation(eng, project.pipeline("sales"), 1)  # intact: passes
        if damage == "lose":
            eng.execute("DELETE FROM staging.orders WHERE order_id = 'o1'")
        else:  # one raw row in two places
            eng.execute(
                "INSERT INTO staging.orders_superseded SELECT *, 'superseded' FROM staging.orders "
                "WHERE order_id = 'o1'"
            )
        with pytest.raises(CheckFailed) as exc:
            _check_conservation(eng, project.pipeline("sales"), 1)
        assert exc.value.failed >= 1
        assert eng.fetchall(
            "SELECT status FROM shukei.check_results WHERE check_name = "
            "'row_count_conservation' AND target = 'raw.orders' ORDER BY checked_at"
        ) == [("pass",), ("fail",)]


# -- hostile text, raw, lineage -------------------------------------------------------------------


def test_hostile_text_is_stored_verbatim_and_tables_stay_intact(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    d = tmp_path / "in"
    t = "2025-12-01T10:00:00"
    write_entity(d, "orders", [(HOSTILE, HOSTILE, "paid", HOSTILE, t, t)])
    write_entity(d, "order_items", [(HOSTILE, "1", HOSTILE, "2", "1.50", t)])
    write_entity(d, "customers", [(HOSTILE, HOSTILE, "a@b.co", HOSTILE, t)])
    write_entity(d, "products", [(HOSTILE, HOSTILE, "Cat'); --", t)])
    ingest_run(project, d)
    assert query(warehouse_path, "SELECT order_id, customer_id, region FROM staging.orders") == [
        (HOSTILE, HOSTILE, HOSTILE)
    ]
    assert query(warehouse_path, "SELECT order_id, product_id FROM staging.order_items") == [
        (HOSTILE, HOSTILE)
    ]
    assert query(warehouse_path, "SELECT name, category FROM staging.products") == [
        (HOSTILE, "cat'); --")
    ]
    assert query(warehouse_path, "SELECT order_id FROM raw.orders") == [(HOSTILE,)]
    # it flowed through the marts too: 2 x 1.50 = 3.00, keyed by the hostile customer id
    assert query(warehouse_path, "SELECT region, revenue FROM marts.daily_sales_by_region") == [
        (HOSTILE, Decimal("3.00"))
    ]
    assert query(
        warehouse_path,
        "SELECT customer_id, customer_name, lifetime_value FROM marts.customer_metrics",
    ) == [(HOSTILE, HOSTILE, Decimal("3.00"))]
    tables = {
        (s, n)
        for s, n in query(
            warehouse_path,
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN ('raw', 'staging')",
        )
    }
    for ent in HEADERS:
        assert ("raw", ent) in tables
        assert ("staging", ent) in tables


def test_raw_keeps_values_exactly_as_received_with_lineage(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    b1 = tmp_path / "b1"
    f1 = write_entity(
        b1,
        "orders",
        [
            ("Ｏ１", "\u3000c1\u3000", " Cancelled ", "ｶﾀｶﾅ", "2025-12-01T15:30:00Z", "2025-12-01"),
            ("o2", " C2 ", "PAID", "East ", "2025-12-01T10:00:00", "bad"),
        ],
    )
    f2 = write_entity(
        b1, "orders", [("o3", "c3", "Paid", "west", "2025-12-01", "2025-12-01")], suffix="_more"
    )
    project.ingest("sales", [b1])
    b2 = tmp_path / "b2"
    f3 = write_entity(b2, "orders", [("o4", "c4", "paid", "west", "2025-12-02", "2025-12-02")])
    project.ingest("sales", [b2])
    project.run("sales")
    got = query(
        warehouse_path,
        "SELECT _batch_id, _source_file, _row_no, order_id, customer_id, status, region, "
        "created_at, updated_at FROM raw.orders",
    )
    rows = sorted((b, Path(f).resolve(), *rest) for b, f, *rest in got)
    assert rows == [
        (
            1,
            f1.resolve(),
            1,
            "Ｏ１",
            "\u3000c1\u3000",
            " Cancelled ",
            "ｶﾀｶﾅ",
            "2025-12-01T15:30:00Z",
            "2025-12-01",
        ),
        (1, f1.resolve(), 2, "o2", " C2 ", "PAID", "East ", "2025-12-01T10:00:00", "bad"),
        (1, f2.resolve(), 1, "o3", "c3", "Paid", "west", "2025-12-01", "2025-12-01"),
        (2, f3.resolve(), 1, "o4", "c4", "paid", "west", "2025-12-02", "2025-12-02"),
    ]
    # the quarantine keeps the raw text too, with the same lineage
    assert query(
        warehouse_path,
        "SELECT _batch_id, _row_no, customer_id, status, updated_at, _reason "
        "FROM staging.orders_quarantine",
    ) == [(1, 2, " C2 ", "PAID", "bad", "unparseable updated_at: bad")]
    assert query(
        warehouse_path, "SELECT count(*), count(DISTINCT _ingested_at) FROM raw.orders"
    ) == [(4, 2)]


def test_reingesting_the_same_file_is_a_noop_that_says_so(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    d = tmp_path / "in"
    t = "2025-12-01T10:00:00"
    f = write_entity(d, "orders", [("o1", "c1", "paid", "east", t, t)])
    first = project.ingest("sales", [d])
    assert first.batch_id == 1 and first.rows == 1 and first.skipped == []
    project.run("sales")
    again = project.ingest("sales", [f])
    assert again.batch_id is None
    assert again.rows == 0
    assert [Path(p).resolve() for p in again.skipped] == [f.resolve()]
    # the same content under another name is the same file
    copy = tmp_path / "copy" / "orders_copy.csv"
    copy.parent.mkdir()
    copy.write_bytes(f.read_bytes())
    third = project.ingest("sales", [copy])
    assert third.batch_id is None and len(third.skipped) == 1
    assert query(warehouse_path, "SELECT count(*) FROM raw.orders") == [(1,)]
    assert query(warehouse_path, "SELECT count(*) FROM shukei.batches") == [(1,)]
    rep = project.run("sales")
    assert rep.as_dict()["dates"] == []
    assert query(warehouse_path, "SELECT count(*) FROM staging.orders") == [(1,)]


def test_missing_column_fails_with_one_clear_error_and_loads_nothing(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    t = "2025-12-01T10:00:00"
    first = tmp_path / "first"
    write_entity(first, "orders", [("o1", "c1", "paid", "east", t, t)])
    project.ingest("sales", [first])
    d = tmp_path / "in"
    write_entity(d, "orders", [("o2", "c1", "paid", "east", t, t)])
    bad = d / "order_items.csv"
    bad.write_text(
        "order_id,line_no,product_id,unit_price,updated_at\no2,1,p1,1.00,2025-12-01\n",
        encoding="utf-8",
    )
    with pytest.raises(InputError) as exc:
        project.ingest("sales", [d])
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(bad) in msg or "order_items.csv" in msg
    assert "quantity" in msg
    # nothing of this call was loaded, not even the good orders file
    assert query(warehouse_path, "SELECT order_id FROM raw.orders") == [("o1",)]
    assert query(warehouse_path, "SELECT count(*) FROM raw.order_items") == [(0,)]
    assert query(warehouse_path, "SELECT count(*) FROM shukei.batches") == [(1,)]
    assert query(warehouse_path, "SELECT count(*) FROM shukei.files") == [(1,)]


def test_a_file_whose_name_matches_no_entity_fails_clearly(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    t = "2025-12-01T10:00:00"
    write_entity(tmp_path / "first", "orders", [("o1", "c1", "paid", "east", t, t)])
    project.ingest("sales", [tmp_path / "first"])
    d = tmp_path / "in"
    write_entity(d, "customers", [("c1", "Alice", "alice@example.com", "east", t)])
    f = write_entity(d, "orders", [("o2", "c1", "paid", "east", t, t)])
    f.rename(f.with_name("sales_export.csv"))
    with pytest.raises(InputError) as exc:
        project.ingest("sales", [d])
    msg = str(exc.value)
    assert "\n" not in msg
    assert "sales_export.csv" in msg
    assert "orders" in msg  # names the entities a file name may start with
    # nothing of the failed call was loaded (not even the good customers file)
    assert query(warehouse_path, "SELECT count(*) FROM raw.orders") == [(1,)]
    assert query(warehouse_path, "SELECT count(*) FROM raw.customers") == [(0,)]
    assert query(warehouse_path, "SELECT count(*) FROM shukei.batches") == [(1,)]


def test_entity_parameter_overrides_the_file_name(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    t = "2025-12-01T10:00:00"
    f = write_entity(tmp_path / "in", "orders", [("o1", "c1", "paid", "east", t, t)])
    odd = f.rename(f.with_name("export_2025.csv"))
    rep = project.ingest("sales", [odd], entity="orders")
    assert rep.rows == 1
    assert rep.files[0]["entity"] == "orders"
    # a file named like another entity is loaded as the forced one
    cust = write_csv(
        tmp_path / "in2" / "products.csv",
        HEADERS["customers"],
        [("c1", "Alice", "alice@example.com", "east", t)],
    )
    project.ingest("sales", [cust], entity="customers")
    project.run("sales")
    assert query(warehouse_path, "SELECT order_id FROM staging.orders") == [("o1",)]
    assert query(warehouse_path, "SELECT customer_id, name FROM staging.customers") == [
        ("c1", "Alice")
    ]
    assert query(warehouse_path, "SELECT count(*) FROM raw.products") == [(0,)]
    with pytest.raises(InputError) as exc:
        project.ingest("sales", [odd], entity="shipments")
    assert "shipments" in str(exc.value)


# -- other formats --------------------------------------------------------------------------------

FORMAT_ORDERS: list[tuple[Any, ...]] = [
    (
        "Ｏ１",
        "\u3000c1\u3000",
        " Cancelled ",
        "ｶﾀｶﾅ",
        "2025-12-01T15:30:00Z",
        "2025-12-01T15:30:00Z",
    ),
    ("o2", "c2", "paid", "east", "2025-12-01T10:00:00", "2025-12-01T10:00:00"),
    ("o3", "c2", "paid", None, "yesterday", "2025-12-01T10:00:00"),
]
FORMAT_ITEMS: list[tuple[Any, ...]] = [
    ("o2", "1", "p1", "３", "2.50", "2025-12-01T10:00:00"),
    ("o2", "2", "p1", "0", "1.00", "2025-12-01T10:00:00"),
    ("o2", "3", "p2", "1", "1.25", "2025-12-01T10:00:00"),
]


def test_jsonl_and_parquet_inputs_load_the_same_rows_as_csv(
    project: Project, warehouse_path: Warehouse, tmp_path: Path
) -> None:
    """The same rows as CSV, JSONL and Parquet, one batch each, into one warehouse.

    Raw text must be identical per file; every JSONL/Parquet row that CSV made valid must be an
    exact duplicate of it (same typed values), and the same rows must be quarantined for the same
    reasons.
    """
    csv_dir = tmp_path / "csv"
    write_entity(csv_dir, "orders", FORMAT_ORDERS)
    write_entity(csv_dir, "order_items", FORMAT_ITEMS)
    jdir = tmp_path / "jsonl"
    jdir.mkdir()
    for ent, rows in (("orders", FORMAT_ORDERS), ("order_items", FORMAT_ITEMS)):
        with open(jdir / f"{ent}.jsonl", "w", encoding="utf-8") as fh:
            for r in rows:
                fh.write(json.dumps(dict(zip(HEADERS[ent], r, strict=True)), ensure_ascii=False))
                fh.write("\n")
    pdir = tmp_path / "parquet"
    pdir.mkdir()
    for ent, rows in (("orders", FORMAT_ORDERS), ("order_items", FORMAT_ITEMS)):
        cols = HEADERS[ent]
        table = pa.table(
            {c: pa.array([r[i] for r in rows], pa.string()) for i, c in enumerate(cols)}
        )
        pq.write_table(table, pdir / f"{ent}.parquet")

    for batch, sub in enumerate(("csv", "jsonl", "parquet"), start=1):
        rep = project.ingest("sales", [tmp_path / sub])
        assert rep.batch_id == batch
        assert rep.rows == 6, sub
        project.run("sales")

    for ent, rows in (("orders", FORMAT_ORDERS), ("order_items", FORMAT_ITEMS)):
        cl = ", ".join(HEADERS[ent])
        got = query(warehouse_path, f"SELECT _batch_id, _row_no, {cl} FROM raw.{ent}")
        # each batch holds the rows exactly as written, numbered 1.. in file order
        for batch in (1, 2, 3):
            mine = sorted(r[1:] for r in got if r[0] == batch)
            assert mine == [(n, *r) for n, r in enumerate(rows, start=1)], (ent, batch)

    # by hand: the CSV batch makes O1 (NFKC of Ｏ１) and o2 valid, quarantines o3 (created_at);
    # items: lines 1 (qty ３ -> 3) and 3 valid, line 2 quarantined (quantity 0)
    assert srt(query(warehouse_path, "SELECT order_id, _batch_id FROM staging.orders")) == [
        ("O1", 1),
        ("o2", 1),
    ]
    assert srt(
        query(warehouse_path, "SELECT line_no, quantity, _batch_id FROM staging.order_items")
    ) == [(1, 3, 1), (3, 1, 1)]
    # the JSONL and Parquet copies of the valid rows are exact duplicates of the CSV ones
    assert srt(
        query(
            warehouse_path,
            "SELECT _batch_id, _row_no, _reason FROM staging.orders_superseded",
        )
    ) == [(2, 1, "duplicate"), (2, 2, "duplicate"), (3, 1, "duplicate"), (3, 2, "duplicate")]
    assert srt(
        query(
            warehouse_path,
            "SELECT _batch_id, _row_no, _reason FROM staging.order_items_superseded",
        )
    ) == [(2, 1, "duplicate"), (2, 3, "duplicate"), (3, 1, "duplicate"), (3, 3, "duplicate")]
    # and the same rows are quarantined for the same reasons in each format
    assert srt(
        query(warehouse_path, "SELECT _batch_id, _row_no, _reason FROM staging.orders_quarantine")
    ) == [(b, 3, "unparseable created_at: yesterday") for b in (1, 2, 3)]
    assert srt(
        query(
            warehouse_path, "SELECT _batch_id, _row_no, _reason FROM staging.order_items_quarantine"
        )
    ) == [(b, 2, "quantity below 1") for b in (1, 2, 3)]
    # o2 = 3 x 2.50 + 1 x 1.25 = 8.75 on 1 Dec, counted once
    assert query(
        warehouse_path, "SELECT sales_date, order_count, revenue FROM marts.daily_sales"
    ) == [(date(2025, 12, 1), 1, Decimal("8.75"))]
