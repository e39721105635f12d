"""The smallest end-to-end run, on every engine: hand-computed marts from one tiny batch."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from conftest import query, write_entity
from shukei.project import Project


def test_one_batch_end_to_end(project: Project, warehouse_path: Path, tmp_path: Path) -> None:
    data = tmp_path / "in"
    write_entity(
        data,
        "orders",
        [
            ("O1", "C1", "paid", "東京", "2025-12-01T10:00:00+09:00", "2025-12-01T10:00:00+09:00"),
            (
                "O2",
                "C2",
                " Cancelled ",
                "大阪",
                "2025-12-01T23:30:00+09:00",
                "2025-12-01T23:30:00+09:00",
            ),
            # 15:00Z is 00:00 on Dec 2 in Tokyo
            ("O3", "C1", "PAID", "Ｔｏｋｙｏ", "2025-12-01T15:00:00Z", "2025-12-01T15:00:00Z"),
            ("", "C1", "paid", "x", "2025-12-01T10:00:00", "2025-12-01T10:00:00"),
        ],
    )
    write_entity(
        data,
        "order_items",
        [
            ("O1", "1", "P1", "2", "100.50", "2025-12-01T10:00:00+09:00"),
            ("O1", "2", "P2", "1", "50.00", "2025-12-01T10:00:00+09:00"),
            ("O2", "1", "P1", "1", "10.00", "2025-12-01T10:00:00+09:00"),
            ("O3", "1", "P2", "3", "1.25", "2025-12-01T10:00:00+09:00"),
            ("O3", "2", "P2", "-1", "1.25", "2025-12-01T10:00:00+09:00"),
        ],
    )
    project.ingest("sales", [data])
    report = project.run("sales").as_dict()
    assert report["status"] == "success"
    assert report["dates"] == ["2025-12-01", "2025-12-02"]
    assert set(report["reasons"].values()) == {"missing"}
    rows = query(warehouse_path, "SELECT * FROM marts.daily_sales ORDER BY sales_date")
    # Dec 1: O1 = 2 x 100.50 + 1 x 50.00 = 251.00 (O2 cancelled); Dec 2: O3 = 3 x 1.25 = 3.75
    assert [tuple(r) for r in rows] == [
        (rows[0][0], 1, 3, Decimal("251.00"), 1, Decimal("251.00")),
        (rows[1][0], 1, 3, Decimal("3.75"), 1, Decimal("3.75")),
    ]
    assert str(rows[0][0]) == "2025-12-01" and str(rows[1][0]) == "2025-12-02"
    cm = query(
        warehouse_path,
        "SELECT customer_id, order_count, lifetime_value, avg_order_value "
        "FROM marts.customer_metrics",
    )
    # 251.00 + 3.75 = 254.75 over 2 orders = 127.375 -> 127.38
    assert cm == [("C1", 2, Decimal("254.75"), Decimal("127.38"))]
    reasons = query(warehouse_path, "SELECT _reason FROM staging.order_items_quarantine")
    assert reasons == [("quantity below 1",)]
