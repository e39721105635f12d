"""A big batch is merged in slices of whole keys: the result must not depend on the slicing."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

import shukei.staging.merge as merge
from conftest import query, write_entity
from shukei.project import Project

T = "2025-12-01T10:00:00+09:00"


def _batch(folder: Path) -> None:
    # O1 has three versions (the latest, 2 x 5.00, wins); ' O2 ' and 'Ｏ２' are one key after
    # cleaning, so they must meet in one slice (the later row, cancelled, wins); O3 is plain;
    # one row has no key and is quarantined.
    write_entity(
        folder,
        "orders",
        [
            ("O1", "C1", "paid", "R", T, "2025-12-01T10:00:00+09:00"),
            (" O2 ", "C2", "paid", "R", T, "2025-12-01T11:00:00+09:00"),
            ("O1", "C1", "paid", "R", T, "2025-12-01T12:00:00+09:00"),
            ("O3", "C3", "paid", "R", T, "2025-12-01T10:00:00+09:00"),
            ("Ｏ２", "C2", "cancelled", "R", T, "2025-12-01T11:00:00+09:00"),
            ("", "C9", "paid", "R", T, "2025-12-01T10:00:00+09:00"),
            ("O1", "C1", "paid", "R", T, "2025-12-01T09:00:00+09:00"),
        ],
    )
    write_entity(
        folder,
        "order_items",
        [
            ("O1", "1", "P1", "1", "1.00", "2025-12-01T10:00:00+09:00"),
            ("O1", "1", "P1", "2", "5.00", "2025-12-01T12:00:00+09:00"),
            ("O2", "1", "P1", "1", "7.00", T),
            ("O3", "1", "P1", "3", "2.00", T),
            ("O3", "1", "P1", "3", "2.00", T),
        ],
    )


@pytest.mark.parametrize("slice_rows", [1, 2, 3, 1000])
def test_slicing_does_not_change_staging_or_marts(
    project: Project,
    warehouse_path: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    slice_rows: int,
) -> None:
    monkeypatch.setattr(merge, "SLICE_ROWS", slice_rows)
    _batch(tmp_path / "in")
    project.ingest("sales", [tmp_path / "in"])
    rep = project.run("sales").as_dict()
    orders = rep["batches"][0]["entities"]["orders"]
    # 7 rows in = 3 used (O1, O2, O3) + 3 superseded (the two older O1 versions, and the first O2
    # spelling, which differs in status from the later one) + 1 quarantined (no key).
    assert orders == {
        "rows_in": 7,
        "rows_used": 3,
        "rows_superseded": 3,
        "rows_duplicate": 0,
        "rows_quarantined": 1,
    }
    items = rep["batches"][0]["entities"]["order_items"]
    # 5 in: O1 line 1 twice (the later wins), O2, O3 twice identical (one duplicate).
    assert items == {
        "rows_in": 5,
        "rows_used": 3,
        "rows_superseded": 1,
        "rows_duplicate": 1,
        "rows_quarantined": 0,
    }
    status = dict(query(warehouse_path, "SELECT order_id, status FROM staging.orders"))
    assert status == {"O1": "paid", "O2": "cancelled", "O3": "paid"}
    # Counted: O1 = 2 x 5.00 = 10.00, O3 = 3 x 2.00 = 6.00 (O2 cancelled) -> 16.00, 2 orders.
    assert query(warehouse_path, "SELECT order_count, revenue FROM marts.daily_sales") == [
        (2, Decimal("16.00"))
    ]
